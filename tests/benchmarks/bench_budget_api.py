"""Latency of the budget API under concurrent load on loopback: prints p50 and p99.

The server is aiohttp, the web driver Faust uses, with the same handler logic
as ``GET /v1/budget/{tenant}`` (``budget_api.respond``) over a board of 10,000
tenants. 8 concurrent clients send 20,000 requests in total, with keep-alive.
Client and server share one machine, so the figures include client time; the
Faust consumer is not running, so they exclude competition with event handling.
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from detector.service.budget_api import AuditLog, BudgetBoard, respond

TOKEN = "bench-token"
TENANTS = 10_000
CLIENTS = 8
REQUESTS = 20_000


def build_board(folder: Path) -> BudgetBoard:
    board = BudgetBoard(AuditLog(folder / "audit.jsonl"))
    wall = datetime(2026, 5, 4, tzinfo=UTC)
    for index in range(TENANTS):
        view = {
            "tenant": f"tenant-{index}",
            "as_of": wall.isoformat(),
            "timezone": "UTC",
            "budgets": [{"budget_id": "monthly", "used": "12.5", "limit": "100",
                         "used_pct": "13", "forecast": "80.1", "decision": "allow",
                         "period_start": "2026-05-01T00:00:00+00:00",
                         "period_end": "2026-06-01T00:00:00+00:00",
                         "degrade_to": {}}],
            "decision": "allow",
            "binding_budget": "monthly",
            "degrade_to": {},
        }
        board.update(view, wall)
    return board


async def serve(board: BudgetBoard) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        status, body, _ = respond(
            board, TOKEN, request.match_info["tenant"], request.headers.get("Authorization")
        )
        return web.Response(body=body, status=status, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/budget/{tenant}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def client(port: int, count: int, offset: int, latencies_s: list[float]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for index in range(count):
            tenant = f"tenant-{(offset + index * 7919) % TENANTS}"
            started = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/v1/budget/{tenant}") as reply:
                await reply.read()
                assert reply.status == 200
            latencies_s.append(time.perf_counter() - started)


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        board = build_board(Path(folder))
        runner, port = await serve(board)
        latencies_s: list[float] = []
        started = time.perf_counter()
        per_client = REQUESTS // CLIENTS
        await asyncio.gather(
            *(client(port, per_client, n, latencies_s) for n in range(CLIENTS))
        )
        elapsed_s = time.perf_counter() - started
        await runner.cleanup()
    latencies_ms = sorted(value * 1000 for value in latencies_s)
    quantiles = statistics.quantiles(latencies_ms, n=100)
    print(f"budget API, {CLIENTS} concurrent clients, {len(latencies_ms)} requests, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"  throughput {len(latencies_ms) / elapsed_s:,.0f} requests/s")
    print(f"  p50 {quantiles[49]:.2f} ms  p99 {quantiles[98]:.2f} ms  "
          f"max {latencies_ms[-1]:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
