"""Generate the burnrate Grafana dashboards into this folder as JSON.

    python deploy/grafana/dashboards.py          # writes deploy/grafana/*.json
    python deploy/grafana/dashboards.py --check  # exit 1 if a file is stale

The dashboards are built with grafana-foundation-sdk (the Grafana Labs builder
library, schema of Grafana 11.6) from the metric names in
``detector.metrics_catalog``, so a renamed metric breaks generation rather than a
panel. Every query reads the Prometheus data source chosen in the ``datasource``
variable. A test compares the checked-in files with the generator's output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from detector.metrics_catalog import spec

FOLDER = Path(__file__).resolve().parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
PANEL_HEIGHT = 8
PANEL_WIDTH = 12


def metric(name: str) -> str:
    """Return the exported sample name of a catalogue metric; raise if it is not listed."""
    return spec(name).exported_names[0]


def query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
    )


def panel(title: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    built = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .height(PANEL_HEIGHT)
        .span(PANEL_WIDTH)
        .datasource(DATASOURCE)
    )
    for item in queries:
        built = built.with_target(item)
    return built


def base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    variable = (
        dashboard.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
    )
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["burnrate"])
        .refresh("30s")
        .time("now-24h", "now")
        .timezone("browser")
        .with_variable(variable)
    )


def spend_dashboard() -> dashboard.Dashboard:
    spend = metric("burnrate_llm_spend_usd")
    tokens = metric("burnrate_llm_tokens")
    return (
        base("burnrate-spend", "burnrate: LLM spend", "Spend by tenant, route and model.")
        .with_row(dashboard.Row("Spend"))
        .with_panel(panel(
            "Spend per hour by tenant", "currencyUSD",
            query(f"sum by (tenant) (increase({spend}[1h]))", "{{tenant}}"),
        ))
        .with_panel(panel(
            "Spend per hour by route", "currencyUSD",
            query(f"sum by (route) (increase({spend}[1h]))", "{{route}}"),
        ))
        .with_panel(panel(
            "Spend per hour by model", "currencyUSD",
            query(f"sum by (provider, model) (increase({spend}[1h]))",
                  "{{provider}}/{{model}}"),
        ))
        .with_panel(panel(
            "Tokens per second by class", "short",
            query(f"sum by (token_class) (rate({tokens}[5m]))", "{{token_class}}"),
        ))
    )


def budget_dashboard() -> dashboard.Dashboard:
    decisions = metric("burnrate_budget_decision_changes")
    answers = metric("burnrate_budget_api_requests")
    alerts = metric("burnrate_alerts_published")
    spend = metric("burnrate_llm_spend_usd")
    return (
        base("burnrate-budgets", "burnrate: budget burn and forecast",
             "Spend against budgets, predictive alerts and gateway decisions.")
        .with_row(dashboard.Row("Burn"))
        .with_panel(panel(
            "Spend today by tenant (UTC day)", "currencyUSD",
            query(f"sum by (tenant) (increase({spend}[1d]))", "{{tenant}}"),
        ))
        .with_panel(panel(
            "Run rate projected over 30 days", "currencyUSD",
            query(f"sum by (tenant) (rate({spend}[6h])) * 30 * 86400", "{{tenant}}"),
        ))
        .with_panel(panel(
            "Budget and forecast alerts firing per hour", "short",
            query(f'sum by (tier) (increase({alerts}{{status="firing",'
                  f'tier=~"absolute|predictive"}}[1h]))', "{{tier}}"),
        ))
        .with_panel(panel(
            "Gateway decisions", "short",
            query(f"sum by (decision) (increase({decisions}[1h]))", "changed to {{decision}}"),
            query(f"sum by (decision) (rate({answers}[5m]))", "answers {{decision}}", "B"),
        ))
    )


def latency_dashboard() -> dashboard.Dashboard:
    built = base("burnrate-latency", "burnrate: LLM latency",
                 "Time to first token, time per output token and duration.")
    built = built.with_row(dashboard.Row("Latency"))
    for name, title in (
        ("burnrate_llm_time_to_first_token_seconds", "Time to first token"),
        ("burnrate_llm_time_per_output_token_seconds", "Time per output token"),
        ("burnrate_llm_operation_duration_seconds", "Request duration"),
    ):
        bucket = metric(name)
        queries = [
            query(
                f"histogram_quantile({quantile}, sum by (le, model) (rate({bucket}[5m])))",
                f"p{label} {{{{model}}}}", ref_id,
            )
            for quantile, label, ref_id in (("0.5", "50", "A"), ("0.95", "95", "B"),
                                            ("0.99", "99", "C"))
        ]
        built = built.with_panel(panel(title, "s", *queries))
    return built


def errors_dashboard() -> dashboard.Dashboard:
    errors = metric("burnrate_llm_errors")
    refusals = metric("burnrate_llm_refusals")
    requests = metric("burnrate_llm_requests")
    return (
        base("burnrate-errors", "burnrate: errors and refusals",
             "Errors by type and refusal rate by model.")
        .with_row(dashboard.Row("Errors"))
        .with_panel(panel(
            "Errors per second by type", "short",
            query(f"sum by (provider, error_type) (rate({errors}[5m]))",
                  "{{provider}} {{error_type}}"),
        ))
        .with_panel(panel(
            "Error ratio by model", "percentunit",
            query(f"sum by (model) (rate({errors}[5m])) / "
                  f"sum by (model) (rate({requests}[5m]))", "{{model}}"),
        ))
        .with_panel(panel(
            "Refusal ratio by model", "percentunit",
            query(f"sum by (model) (rate({refusals}[5m])) / "
                  f"sum by (model) (rate({requests}[5m]))", "{{model}}"),
        ))
    )


def service_dashboard() -> dashboard.Dashboard:
    return (
        base("burnrate-service", "burnrate: service health",
             "Consumption, lag, evaluation time, rejects and label budgets.")
        .with_row(dashboard.Row("Consumption"))
        .with_panel(panel(
            "Events per second", "short",
            query(f"sum(rate({metric('burnrate_events_consumed')}[5m]))", "consumed"),
            query(f"sum by (reason) (rate({metric('burnrate_events_rejected')}[5m]))",
                  "rejected {{reason}}", "B"),
            query(f"sum(rate({metric('burnrate_events_late')}[5m]))", "late", "C"),
        ))
        .with_panel(panel(
            "Consumer lag", "short",
            query(f"sum by (instance, partition) ({metric('burnrate_consumer_lag_records')})",
                  "{{instance}} p{{partition}}"),
        ))
        .with_panel(panel(
            "Batch evaluation time p99", "s",
            query("histogram_quantile(0.99, sum by (le, instance) "
                  f"(rate({metric('burnrate_batch_evaluation_seconds')}[5m])))",
                  "{{instance}}"),
        ))
        .with_panel(panel(
            "Notifications by outcome", "short",
            query(f"sum by (receiver, outcome) (rate({metric('burnrate_notifications')}[5m]))",
                  "{{receiver}} {{outcome}}"),
        ))
        .with_panel(panel(
            "Label values folded into other", "short",
            query(f"sum by (metric, label) "
                  f"(increase({metric('burnrate_metric_label_values_folded')}[1h]))",
                  "{{metric}} {{label}}"),
        ))
        .with_panel(panel(
            "Tenants and series in memory", "short",
            query(f"sum({metric('burnrate_tenants_active')})", "tenants"),
            query(f"sum({metric('burnrate_series_active')})", "series", "B"),
        ))
    )


DASHBOARDS = {
    "spend.json": spend_dashboard,
    "budgets.json": budget_dashboard,
    "latency.json": latency_dashboard,
    "errors.json": errors_dashboard,
    "service.json": service_dashboard,
}


def render() -> dict[str, str]:
    """Return each dashboard file name with its JSON text."""
    return {
        name: json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the files with the generator's output, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = FOLDER / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards: {', '.join(stale)}: run {sys.argv[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
