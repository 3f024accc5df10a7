"""Fetch a day's costs from the OpenAI organization costs and usage endpoints.

``GET /v1/organization/costs`` returns pages of daily buckets
(``{"object": "page", "data": [bucket], "has_more", "next_page"}``), each bucket
``{"start_time", "end_time", "results": [...]}`` with results
``{"amount": {"value", "currency"}, "line_item", "project_id"}``. Costs are grouped
by ``project_id`` only: the costs endpoint has no model field, so OpenAI is compared
per project. ``GET /v1/organization/usage/completions`` grouped by model and
project adds the token counts per model to the alert details, for the per-model
breakdown. OpenAI's reference names the bucket list ``result`` in places and its
examples ``results``, so both are read. Requests use the admin key as a bearer token.
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
from detector.reconcile.settings import OPENAI, OpenAISettings, RetrySettings

COSTS_PATH = "/v1/organization/costs"
USAGE_PATH = "/v1/organization/usage/completions"
NO_PROJECT = "(no project)"
# A page token that repeats means the server is looping; stop rather than spin.
MAX_PAGES = 1000


def fetch_openai(
    day: date,
    now: datetime,
    settings: OpenAISettings,
    retry: RetrySettings,
    environ: Mapping[str, str],
    sleep: Sleep,
) -> ProviderReport:
    """Return OpenAI's costs for ``day`` per project, with usage per model in notes."""
    key = environ.get(settings.api_key_env)
    if not key:
        raise ProviderUnavailable(f"{settings.api_key_env} is not set")
    client = JsonClient(
        OPENAI, settings.base_url, {"Authorization": f"Bearer {key}"}, retry, sleep
    )
    try:
        start, end = day_bounds(day)
        params = {
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
            "bucket_width": "1d",
        }
        costs = list(
            _buckets(client, COSTS_PATH, {**params, "group_by": ["project_id"]})
        )
        notes: dict[str, str] = {}
        if settings.usage_breakdown:
            usage_params = {**params, "group_by": ["model", "project_id"]}
            notes = _usage_notes(_buckets(client, USAGE_PATH, usage_params), start)
    finally:
        client.close()

    lines, found = _cost_lines(costs, start)
    complete = found and settled(day, now, settings.settle_s)
    reason = ""
    if not found:
        reason = "OpenAI returned no cost bucket for the day yet"
    elif not complete:
        reason = f"the day ended less than {settings.settle_s / 3600:g} h ago"
    return ProviderReport(
        provider=OPENAI,
        day=day,
        complete=complete,
        lines=lines,
        reports_model=False,
        reports_project=True,
        partial_reason=reason,
        notes=notes,
    )


def _buckets(
    client: JsonClient, path: str, params: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    page: str | None = None
    for _ in range(MAX_PAGES):
        query = dict(params) if page is None else {**params, "page": page}
        body = client.get(path, query)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ProviderUnavailable(f"OpenAI {path} returned no data list")
        yield from body["data"]
        next_page = body.get("next_page")
        if not body.get("has_more") or not next_page:
            return
        if next_page == page:
            raise ProviderUnavailable(f"OpenAI {path} returned the same page twice")
        page = next_page
    raise ProviderUnavailable(f"OpenAI {path} returned more than {MAX_PAGES} pages")


def _results(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    results = bucket.get("results", bucket.get("result", []))
    if not isinstance(results, list):
        raise ProviderUnavailable("OpenAI bucket results are not a list")
    return results


def _cost_lines(
    buckets: list[dict[str, Any]], start: datetime
) -> tuple[dict[LineKey, Decimal], bool]:
    lines: dict[LineKey, Decimal] = defaultdict(Decimal)
    found = False
    for bucket in buckets:
        if bucket.get("start_time") != int(start.timestamp()):
            continue
        found = True
        for result in _results(bucket):
            amount = result.get("amount") or {}
            currency = str(amount.get("currency", "usd")).lower()
            if currency != "usd":
                raise ProviderUnavailable(
                    f"OpenAI reported a cost in {currency!r}; only usd is compared"
                )
            value = to_decimal(amount.get("value", 0), "OpenAI cost")
            project = result.get("project_id") or NO_PROJECT
            lines[(None, project)] += value
    return dict(lines), found


def _usage_notes(buckets: Iterator[dict[str, Any]], start: datetime) -> dict[str, str]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for bucket in buckets:
        if bucket.get("start_time") != int(start.timestamp()):
            continue
        for result in _results(bucket):
            key = (result.get("model") or "?", result.get("project_id") or NO_PROJECT)
            counts = totals[key]
            counts[0] += int(result.get("input_tokens") or 0)
            counts[1] += int(result.get("input_cached_tokens") or 0)
            counts[2] += int(result.get("output_tokens") or 0)
            counts[3] += int(result.get("num_model_requests") or 0)
    return {
        f"openai usage {model} / {project}": (
            f"input {counts[0]} tokens ({counts[1]} cached), "
            f"output {counts[2]} tokens, {counts[3]} requests"
        )
        for (model, project), counts in sorted(totals.items())
    }
