"""Loopback HTTP servers that implement the providers' cost APIs for the tests.

Each fake serves the documented response shape of one API from amounts the test
stores per UTC day, splits the results into pages of ``page_size`` results to
exercise pagination, checks the credentials, and can respond to the first
``throttle`` requests with HTTP 429 (Cost Explorer: ``LimitExceededException``).
Every request is recorded so tests can check what the client sent.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

Response = tuple[int, dict[str, str], bytes]
T = TypeVar("T")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeProvider:
    """Shared state of a fake: stored days, paging, throttling and the request log."""

    page_size: int = 2
    throttle: int = 0
    retry_after: str | None = "7"
    requests: list[Recorded] = field(default_factory=list)

    def take_throttle(self) -> bool:
        if self.throttle > 0:
            self.throttle -= 1
            return True
        return False

    def handle(self, request: Recorded) -> Response:
        raise NotImplementedError


def closed_port_url() -> str:
    """Return a loopback URL on a port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def serve(fake: FakeProvider) -> Iterator[str]:
    """Serve ``fake`` on an ephemeral loopback port and yield its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            request = Recorded(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={key.lower(): value for key, value in self.headers.items()},
                body=self.rfile.read(length),
            )
            fake.requests.append(request)
            status, headers, body = fake.handle(request)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _dispatch
        do_POST = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _json(
    status: int, document: Any, headers: dict[str, str] | None = None
) -> Response:
    all_headers = {"content-type": "application/json", **(headers or {})}
    return status, all_headers, json.dumps(document).encode()


def _raw_json(status: int, text: str) -> Response:
    """A JSON body written by hand, so amounts keep the exact digits given."""
    return status, {"content-type": "application/json"}, text.encode()


def _page_token(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    return int(base64.b64decode(token).decode().split(":")[1])


def _paginate(
    days: list[tuple[date, list[T]]], offset: int, page_size: int
) -> tuple[dict[date, list[T]], bool]:
    """Cut one page of ``page_size`` results; a day without results still appears."""
    flat: list[tuple[date, T | None]] = []
    for day, items in days:
        if items:
            flat.extend((day, item) for item in items)
        else:
            flat.append((day, None))
    page: dict[date, list[T]] = {}
    for day, item in flat[offset : offset + page_size]:
        page.setdefault(day, [])
        if item is not None:
            page[day].append(item)
    return page, offset + page_size < len(flat)


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


@dataclass
class FakeOpenAI(FakeProvider):
    """``/v1/organization/costs`` and ``/v1/organization/usage/completions``.

    ``costs[day]`` contains ``(project_id, line_item, amount_json)`` where
    ``amount_json`` is the JSON number text of ``amount.value``; ``usage[day]``
    contains result objects. A day that is not stored has no bucket.
    """

    admin_key: str = "sk-admin-loopback"
    costs: dict[date, list[tuple[str | None, str, str]]] = field(default_factory=dict)
    usage: dict[date, list[dict[str, Any]]] = field(default_factory=dict)

    def handle(self, request: Recorded) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.admin_key}":
            return _json(401, {"error": {"message": "invalid admin key"}})
        if self.take_throttle():
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            return _json(429, {"error": {"message": "rate limited"}}, headers)
        start = int(request.query["start_time"][0])
        end = int(request.query["end_time"][0])
        page = request.query.get("page", [None])[0]
        if request.path == "/v1/organization/costs":
            results = {
                day: [self._cost_result(*item) for item in items]
                for day, items in self.costs.items()
            }
        elif request.path == "/v1/organization/usage/completions":
            results = {
                day: [json.dumps(item) for item in items]
                for day, items in self.usage.items()
            }
        else:
            return _json(404, {"error": {"message": "not found"}})
        days = [
            (day, results[day]) for day in sorted(results) if start <= _unix(day) < end
        ]
        return self._page(days, _page_offset(page))

    @staticmethod
    def _cost_result(project: str | None, line_item: str, amount: str) -> str:
        project_json = json.dumps(project)
        return (
            '{"object": "organization.costs.result", '
            f'"amount": {{"value": {amount}, "currency": "usd"}}, '
            f'"line_item": {json.dumps(line_item)}, "project_id": {project_json}}}'
        )

    def _page(self, days: list[tuple[date, list[str]]], offset: int) -> Response:
        buckets, more = _paginate(days, offset, self.page_size)
        data = ",".join(
            '{"object": "bucket", '
            f'"start_time": {_unix(day)}, "end_time": {_unix(day) + 86400}, '
            f'"results": [{",".join(items)}]}}'
            for day, items in buckets.items()
        )
        next_page = json.dumps(_page_token(offset + self.page_size) if more else None)
        return _raw_json(
            200,
            f'{{"object": "page", "data": [{data}], "has_more": {json.dumps(more)}, '
            f'"next_page": {next_page}}}',
        )


@dataclass
class FakeAnthropic(FakeProvider):
    """``/v1/organizations/cost_report`` grouped by workspace and description.

    ``costs[day]`` contains result objects whose ``amount`` is the cents string.
    """

    admin_key: str = "sk-ant-admin-loopback"
    version: str = "2023-06-01"
    costs: dict[date, list[dict[str, Any]]] = field(default_factory=dict)

    def handle(self, request: Recorded) -> Response:
        if request.headers.get("x-api-key") != self.admin_key:
            return _json(
                401, {"type": "error", "error": {"type": "authentication_error"}}
            )
        if request.headers.get("anthropic-version") != self.version:
            return _json(400, {"type": "error", "error": {"type": "invalid_request"}})
        if self.take_throttle():
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            return _json(
                429, {"type": "error", "error": {"type": "rate_limit_error"}}, headers
            )
        if request.path != "/v1/organizations/cost_report":
            return _json(404, {"type": "error", "error": {"type": "not_found_error"}})
        start = datetime.fromisoformat(request.query["starting_at"][0])
        end = datetime.fromisoformat(request.query["ending_at"][0])
        offset = _page_offset(request.query.get("page", [None])[0])

        days = [
            (day, self.costs[day])
            for day in sorted(self.costs)
            if start <= datetime(day.year, day.month, day.day, tzinfo=UTC) < end
        ]
        buckets, more = _paginate(days, offset, self.page_size)
        return _json(
            200,
            {
                "data": [
                    {
                        "starting_at": f"{day.isoformat()}T00:00:00Z",
                        "ending_at": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
                        "results": items,
                    }
                    for day, items in buckets.items()
                ],
                "has_more": more,
                "next_page": _page_token(offset + self.page_size) if more else None,
            },
        )


@dataclass
class FakeCostExplorer(FakeProvider):
    """Cost Explorer ``GetCostAndUsage`` over the AWS JSON 1.1 protocol.

    ``groups[day]`` contains ``(tag value, amount string)`` pairs, reported under the
    request's tag key; ``estimated`` lists the days marked Estimated.
    """

    access_key: str = "AKIDLOOPBACK"
    groups: dict[date, list[tuple[str, str]]] = field(default_factory=dict)
    estimated: set[date] = field(default_factory=set)
    data_unavailable: bool = False

    def handle(self, request: Recorded) -> Response:
        target = request.headers.get("x-amz-target", "")
        if target != "AWSInsightsIndexService.GetCostAndUsage":
            return self._error(400, "UnknownOperationException", target)
        if f"Credential={self.access_key}/" not in request.headers.get(
            "authorization", ""
        ):
            return self._error(403, "UnrecognizedClientException", "bad credentials")
        if self.take_throttle():
            return self._error(400, "LimitExceededException", "Rate exceeded")
        if self.data_unavailable:
            return self._error(400, "DataUnavailableException", "no data yet")
        body = json.loads(request.body)
        start = date.fromisoformat(body["TimePeriod"]["Start"])
        end = date.fromisoformat(body["TimePeriod"]["End"])
        metric = body["Metrics"][0]
        group_by = body.get("GroupBy") or []
        offset = _page_offset(body.get("NextPageToken"))

        days = [
            (start + timedelta(days=n), self.groups.get(start + timedelta(days=n), []))
            for n in range((end - start).days)
        ]
        results, more = _paginate(days, offset, self.page_size)
        document: dict[str, Any] = {
            "GroupDefinitions": group_by,
            "ResultsByTime": [
                self._result(day, items, metric, group_by)
                for day, items in results.items()
            ],
            "DimensionValueAttributes": [],
        }
        if more:
            document["NextPageToken"] = _page_token(offset + self.page_size)
        return _json(200, document, {"content-type": "application/x-amz-json-1.1"})

    def _result(
        self,
        day: date,
        items: list[tuple[str, str]],
        metric: str,
        group_by: list[dict[str, str]],
    ) -> dict[str, Any]:
        period = {
            "Start": day.isoformat(),
            "End": (day + timedelta(days=1)).isoformat(),
        }
        result: dict[str, Any] = {
            "TimePeriod": period,
            "Estimated": day in self.estimated,
        }
        if group_by:
            tag = group_by[0]["Key"]
            result["Total"] = {}
            result["Groups"] = [
                {
                    "Keys": [f"{tag}${value}"],
                    "Metrics": {metric: {"Amount": amount, "Unit": "USD"}},
                }
                for value, amount in items
            ]
        else:
            total = sum((Decimal(amount) for _, amount in items), Decimal(0))
            result["Total"] = {metric: {"Amount": str(total), "Unit": "USD"}}
            result["Groups"] = []
        return result

    @staticmethod
    def _error(status: int, code: str, message: str) -> Response:
        return _json(
            status,
            {"__type": code, "message": message},
            {"content-type": "application/x-amz-json-1.1", "x-amzn-errortype": code},
        )
