"""Daily reconciliation of metered LLM spend against the providers' own reports.

``run_reconciliation`` compares the spend that burnrate metered from request events
with the costs that OpenAI, Anthropic and AWS Cost Explorer (Bedrock) report for a
UTC day, and returns one outcome per provider with an alert when they differ or
when the provider could not be checked. ``detector.reconcile.cli`` adds the
``reconcile`` command.
"""

from detector.reconcile.job import (
    LineComparison,
    ProviderReconciliation,
    SpendKey,
    aggregate_metered,
    run_reconciliation,
)
from detector.reconcile.settings import ReconcileSettings

__all__ = [
    "LineComparison",
    "ProviderReconciliation",
    "ReconcileSettings",
    "SpendKey",
    "aggregate_metered",
    "run_reconciliation",
]
