"""Fetch a day's Bedrock costs from AWS Cost Explorer with boto3.

``GetCostAndUsage`` is called for the one day with ``DAILY`` granularity, the
configured metric and a filter on the configured ``SERVICE`` values. With a project
tag it groups by that tag, and each group's key reads ``<tag>$<value>`` (an empty
value for untagged costs); without one it reads the day's ``Total``. Amounts are
strings, converted to ``Decimal``. Pages follow ``NextPageToken``.

Cost Explorer marks a day ``Estimated`` until the month's bill is final. Such a day
is partial unless ``accept_estimated`` is set, and in every case it is partial until
``settle_s`` after the day's end. ``DataUnavailableException`` is reported as partial.

Credentials come from ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
``AWS_SESSION_TOKEN`` and are passed to the client, so boto3 never falls back to
its other sources (files, instance metadata). botocore's own retries are switched
off: throttling is retried here with the injected sleep and the shared limits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from detector.reconcile.report import (
    LineKey,
    ProviderReport,
    ProviderUnavailable,
    Sleep,
    settled,
    to_decimal,
)
from detector.reconcile.settings import BEDROCK, BedrockSettings, RetrySettings

if TYPE_CHECKING:
    from mypy_boto3_ce import CostExplorerClient
    from mypy_boto3_ce.type_defs import GetCostAndUsageRequestTypeDef

THROTTLING_CODES = frozenset({"LimitExceededException", "ThrottlingException"})
UNTAGGED = "(untagged)"
MAX_PAGES = 1000


class _DataUnavailable(Exception):
    pass


def fetch_bedrock(
    day: date,
    now: datetime,
    settings: BedrockSettings,
    retry: RetrySettings,
    environ: Mapping[str, str],
    sleep: Sleep,
) -> ProviderReport:
    """Return the Bedrock services' costs for ``day``, per project tag if set."""
    client = _client(settings, retry, environ)
    try:
        results = list(_results_by_time(client, _request(day, settings), retry, sleep))
    except _DataUnavailable:
        return _report(
            day,
            settings,
            {},
            complete=False,
            reason=("Cost Explorer has no data for the day yet"),
        )

    lines: dict[LineKey, Decimal] = defaultdict(Decimal)
    found = False
    estimated = False
    for result in results:
        if result.get("TimePeriod", {}).get("Start") != day.isoformat():
            continue
        found = True
        estimated = estimated or bool(result.get("Estimated"))
        for project, amount in _amounts(result, settings):
            lines[(None, project)] += amount

    reason = ""
    if not found:
        reason = "Cost Explorer returned no result for the day"
    elif estimated and not settings.accept_estimated:
        reason = "Cost Explorer marks the day Estimated"
    elif not settled(day, now, settings.settle_s):
        reason = f"the day ended less than {settings.settle_s / 3600:g} h ago"
    report = _report(day, settings, dict(lines), complete=not reason, reason=reason)
    if estimated:
        report.notes["bedrock estimated"] = "Cost Explorer marks the day Estimated"
    return report


def _report(
    day: date,
    settings: BedrockSettings,
    lines: dict[LineKey, Decimal],
    *,
    complete: bool,
    reason: str,
) -> ProviderReport:
    return ProviderReport(
        provider=BEDROCK,
        day=day,
        complete=complete,
        lines=lines,
        reports_model=False,
        reports_project=settings.project_tag is not None,
        partial_reason=reason,
    )


def _client(
    settings: BedrockSettings, retry: RetrySettings, environ: Mapping[str, str]
) -> CostExplorerClient:
    access_key = environ.get("AWS_ACCESS_KEY_ID")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        raise ProviderUnavailable(
            "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set"
        )
    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=retry.timeout_s,
        read_timeout=retry.timeout_s,
    )
    return boto3.client(
        "ce",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
        config=config,
    )


def _request(day: date, settings: BedrockSettings) -> GetCostAndUsageRequestTypeDef:
    request: GetCostAndUsageRequestTypeDef = {
        "TimePeriod": {
            "Start": day.isoformat(),
            "End": (day + timedelta(days=1)).isoformat(),
        },
        "Granularity": "DAILY",
        "Metrics": [settings.metric],
        "Filter": {"Dimensions": {"Key": "SERVICE", "Values": list(settings.services)}},
    }
    if settings.project_tag is not None:
        request["GroupBy"] = [{"Type": "TAG", "Key": settings.project_tag}]
    return request


def _results_by_time(
    client: CostExplorerClient,
    request: GetCostAndUsageRequestTypeDef,
    retry: RetrySettings,
    sleep: Sleep,
) -> Iterator[Any]:
    token: str | None = None
    for _ in range(MAX_PAGES):
        page_request = (
            dict(request) if token is None else {**request, "NextPageToken": token}
        )
        response = _call(client, page_request, retry, sleep)
        yield from response.get("ResultsByTime", [])
        next_token = response.get("NextPageToken")
        if not next_token:
            return
        if next_token == token:
            raise ProviderUnavailable(
                "Cost Explorer returned the same page token twice"
            )
        token = next_token
    raise ProviderUnavailable(f"Cost Explorer returned more than {MAX_PAGES} pages")


def _call(
    client: CostExplorerClient,
    request: dict[str, Any],
    retry: RetrySettings,
    sleep: Sleep,
) -> Any:
    backoff_s = retry.backoff_s
    for attempt in range(1, retry.max_attempts + 1):
        try:
            return client.get_cost_and_usage(**request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "DataUnavailableException":
                raise _DataUnavailable from None
            if code not in THROTTLING_CODES:
                raise ProviderUnavailable(f"Cost Explorer failed: {error}") from None
            problem = f"Cost Explorer throttled the request ({code})"
        except BotoCoreError as error:
            problem = f"Cost Explorer request failed: {error}"
        if attempt == retry.max_attempts:
            raise ProviderUnavailable(f"{problem} on all {retry.max_attempts} attempts")
        sleep(backoff_s)
        backoff_s *= 2
    raise AssertionError("the retry loop returns or raises")


def _amounts(
    result: Any, settings: BedrockSettings
) -> Iterator[tuple[str | None, Decimal]]:
    if settings.project_tag is None:
        yield None, _metric_usd(result.get("Total", {}), settings.metric)
        return
    for group in result.get("Groups", []):
        keys = group.get("Keys") or [""]
        _, _, value = keys[0].partition("$")
        yield value or UNTAGGED, _metric_usd(group.get("Metrics", {}), settings.metric)


def _metric_usd(metrics: Mapping[str, Any], metric: str) -> Decimal:
    value = metrics.get(metric)
    if value is None:
        return Decimal(0)
    unit = value.get("Unit", "USD")
    if unit != "USD":
        raise ProviderUnavailable(f"Cost Explorer {metric} is in {unit!r}, not USD")
    return to_decimal(value.get("Amount", "0"), f"Cost Explorer {metric}")
