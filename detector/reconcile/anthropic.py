"""Fetch a day's costs from the Anthropic Admin API cost report.

``GET /v1/organizations/cost_report`` returns ``{"data": [bucket], "has_more",
"next_page"}``; a bucket is ``{"starting_at", "ending_at", "results": [...]}`` and a
result carries ``amount``, ``currency``, ``cost_type``, ``model``, ``workspace_id``
and ``description`` when grouped by ``workspace_id`` and ``description``. The amount
is a decimal string in the currency's lowest unit: ``"123.45"`` USD is $1.2345.
Token costs are compared per model and workspace. Web search and code execution
costs (``cost_type`` other than ``tokens``) are not metered from request events, so
they are left out and shown as excluded. Anthropic documents that Priority Tier
costs are missing from the cost report, so metered Priority Tier requests show as a
difference. Requests send the admin key in
``x-api-key`` and the API version in ``anthropic-version``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from detector.reconcile.report import (
    JsonClient,
    LineKey,
    ProviderReport,
    ProviderUnavailable,
    Sleep,
    day_bounds,
    settled,
    to_decimal,
)
from detector.reconcile.settings import ANTHROPIC, AnthropicSettings, RetrySettings

COST_REPORT_PATH = "/v1/organizations/cost_report"
DEFAULT_WORKSPACE = "(default workspace)"
MAX_PAGES = 1000


def fetch_anthropic(
    day: date,
    now: datetime,
    settings: AnthropicSettings,
    retry: RetrySettings,
    environ: Mapping[str, str],
    sleep: Sleep,
) -> ProviderReport:
    """Return Anthropic's token costs for ``day`` per model and workspace."""
    key = environ.get(settings.api_key_env)
    if not key:
        raise ProviderUnavailable(f"{settings.api_key_env} is not set")
    headers = {"x-api-key": key, "anthropic-version": settings.anthropic_version}
    client = JsonClient(ANTHROPIC, settings.base_url, headers, retry, sleep)
    start, end = day_bounds(day)
    params = {
        "starting_at": _rfc3339(start),
        "ending_at": _rfc3339(end),
        "bucket_width": "1d",
        "group_by[]": ["workspace_id", "description"],
    }
    try:
        buckets = list(_buckets(client, params))
    finally:
        client.close()

    lines: dict[LineKey, Decimal] = defaultdict(Decimal)
    excluded_usd = Decimal(0)
    found = False
    for bucket in buckets:
        if _parse_time(bucket.get("starting_at")) != start:
            continue
        found = True
        for result in bucket.get("results") or []:
            amount_usd = _amount_usd(result)
            cost_type = result.get("cost_type")
            model = result.get("model")
            if cost_type not in (None, "tokens") or not model:
                excluded_usd += amount_usd
                continue
            workspace = result.get("workspace_id") or DEFAULT_WORKSPACE
            lines[(model, workspace)] += amount_usd

    complete = found and settled(day, now, settings.settle_s)
    reason = ""
    if not found:
        reason = "Anthropic returned no cost bucket for the day yet"
    elif not complete:
        reason = f"the day ended less than {settings.settle_s / 3600:g} h ago"
    return ProviderReport(
        provider=ANTHROPIC,
        day=day,
        complete=complete,
        lines=dict(lines),
        reports_model=True,
        reports_project=True,
        partial_reason=reason,
        excluded_usd=excluded_usd,
    )


def _buckets(client: JsonClient, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    page: str | None = None
    for _ in range(MAX_PAGES):
        query = dict(params) if page is None else {**params, "page": page}
        body = client.get(COST_REPORT_PATH, query)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ProviderUnavailable("Anthropic cost report returned no data list")
        yield from body["data"]
        next_page = body.get("next_page")
        if not body.get("has_more") or not next_page:
            return
        if next_page == page:
            raise ProviderUnavailable("Anthropic cost report returned a page twice")
        page = next_page
    raise ProviderUnavailable(f"Anthropic cost report exceeded {MAX_PAGES} pages")


def _amount_usd(result: Mapping[str, Any]) -> Decimal:
    currency = str(result.get("currency", "USD")).upper()
    if currency != "USD":
        raise ProviderUnavailable(
            f"Anthropic reported a cost in {currency!r}; only USD is compared"
        )
    # The amount is in cents; moving the decimal point is exact.
    return to_decimal(result.get("amount", "0"), "Anthropic cost").scaleb(-2)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ProviderUnavailable(
            f"Anthropic bucket time {value!r} is not RFC 3339"
        ) from None
