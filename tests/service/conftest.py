"""Fixtures of the service tests: a factory of workers that are always ended."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.harness import ServiceProcess, Topics, write_rules

WorkerFactory = Callable[..., ServiceProcess]


@pytest.fixture
def make_worker(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[WorkerFactory]:
    """Return a factory of unstarted workers; every worker it made is killed at the end.

    A failing test prints the tail of each worker's log.
    """
    made: list[ServiceProcess] = []

    def factory(
        topics: Topics, rules: dict[str, Any], name: str = "worker", **options: Any
    ) -> ServiceProcess:
        rules_dir = write_rules(tmp_path / f"rules-{name}", rules)
        worker = ServiceProcess(
            kafka_bootstrap, topics, rules_dir, tmp_path, name=name, **options
        )
        made.append(worker)
        return worker

    yield factory

    for worker in made:
        if worker.process is not None:
            worker.kill()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for worker in made:
            print(worker.log_tail(120))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so fixtures can see a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
