"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafka_broker import KafkaBroker, external_bootstrap

KAFKA_STARTUP_S = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Bootstrap address of a Kafka broker: $BURNRATE_TEST_KAFKA, else one started here.

    A broker that fails to start raises in setup, so every test that uses this
    fixture errors and the run fails. No test is skipped.
    """
    bootstrap = external_bootstrap()
    if bootstrap is not None:
        yield bootstrap
        return

    broker = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start()
    request.config.stash[KAFKA_STARTUP_S] = broker.startup_s
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long the session's Kafka broker took to start."""
    startup_s = terminalreporter.config.stash.get(KAFKA_STARTUP_S, None)
    if startup_s is not None:
        terminalreporter.write_line(f"Kafka broker started in {startup_s:.1f} s")
