"""Settings of the daily spend reconciliation, as a YAML file or a rule-file section.

Credentials never appear here: each provider names the environment variable that
holds its admin key (AWS reads the usual ``AWS_*`` variables). Base URLs are
settings so that tests and proxies can aim the job elsewhere.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

OPENAI = "openai"
ANTHROPIC = "anthropic"
BEDROCK = "aws.bedrock"

Share = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetrySettings(_Frozen):
    """How often and how long to retry a throttled or failed provider request."""

    max_attempts: int = Field(default=5, ge=1, le=20)
    # A Retry-After longer than this fails the check rather than stall the job.
    max_retry_after_s: Seconds = 300.0
    # The first wait when the provider sends no Retry-After; it doubles each time.
    backoff_s: Seconds = 2.0
    timeout_s: Seconds = 30.0


class OpenAISettings(_Frozen):
    """OpenAI organization costs and completions usage, read with an admin key."""

    base_url: str = "https://api.openai.com"
    api_key_env: str = "OPENAI_ADMIN_KEY"
    # NOTE: 12 h is an estimate of how long OpenAI takes to complete a day's
    # costs, not a documented figure. Raise it if finished days still change.
    settle_s: Seconds = 12 * 3600.0
    usage_breakdown: bool = True


class AnthropicSettings(_Frozen):
    """Anthropic Admin API cost report, read with an admin key."""

    base_url: str = "https://api.anthropic.com"
    api_key_env: str = "ANTHROPIC_ADMIN_KEY"
    anthropic_version: str = "2023-06-01"
    # NOTE: an estimate, as for OpenAI.
    settle_s: Seconds = 12 * 3600.0


CostMetric = Literal[
    "UnblendedCost", "NetUnblendedCost", "AmortizedCost", "NetAmortizedCost"
]


class BedrockSettings(_Frozen):
    """AWS Cost Explorer costs of the Bedrock services, per cost allocation tag."""

    # None uses boto3's endpoint for the region.
    endpoint_url: str | None = None
    region: str = "us-east-1"
    # Cost Explorer SERVICE values to sum. Third-party models bill under their own
    # Marketplace service names, which the deployment lists here.
    services: tuple[str, ...] = Field(default=("Amazon Bedrock",), min_length=1)
    # A cost allocation tag whose values are the projects; None compares totals.
    project_tag: str | None = None
    metric: CostMetric = "UnblendedCost"
    # Cost Explorer marks a day Estimated until the month's bill is final, weeks
    # later. With accept_estimated, a day is compared once settle_s has passed.
    accept_estimated: bool = True
    settle_s: Seconds = 36 * 3600.0


class ReconcileSettings(_Frozen):
    """What to compare, where the reports come from and when to alert."""

    # A difference above this share of the provider's amount raises an alert.
    threshold_share: Share = Decimal("0.03")
    # Differences below this amount never alert, whatever their share.
    min_difference_usd: Money = Decimal("0.01")
    severity: Literal["critical", "error", "warning", "info"] = "warning"
    runbook_url: str | None = None
    openai: OpenAISettings | None = None
    anthropic: AnthropicSettings | None = None
    bedrock: BedrockSettings | None = None
    # provider -> tenant -> the provider's project (OpenAI project id, Anthropic
    # workspace id, Bedrock tag value). A tenant not listed is its own project.
    projects: dict[str, dict[str, str]] = {}
    # provider -> metered model name -> the name in the provider's report.
    models: dict[str, dict[str, str]] = {}
    retry: RetrySettings = RetrySettings()
