"""The ``burnrate routes deliver`` command: send notifications until SIGTERM.

Delivery runs as its own process next to ``burnrate serve``, not inside it.
The service's offsets must not wait for a receiver's outage or rate limit, a
restart of either process must not stop the other, and only delivery needs
receiver secrets. The two meet at the alerts topic: the service writes alert
records to it and delivery reads it in its own consumer group
(``--from-kafka``, the default). ``--alerts-file`` reads an ``alerts.jsonl``
that ``burnrate backtest`` writes instead, and follows it as it grows.

Settings come from ``BURNRATE_*`` variables (``routing.settings``). The
routing file is ``routing.yaml`` in the rules folder, or the file that
``--rules`` names. Exit status: 0 after SIGTERM or SIGINT, 1 when the routing
file is invalid, the metrics port cannot be opened or delivery fails, 2 on
invalid settings. With ``BURNRATE_ROUTING_METRICS_PORT`` set, the process
serves its Prometheus metrics (``routing.metrics``) on that port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from detector.errors import RuleError
from routing.clock import SystemClock
from routing.config import RoutingConfig
from routing.delivery import build_dispatcher
from routing.load import load_routing
from routing.metrics import DeliveryMetrics, MetricsServer
from routing.outbox import FileOutbox, Outbox
from routing.settings import DeliverSettings

logger = logging.getLogger("burnrate.routing")

ROUTING_FILE = "routing.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``routes deliver`` to ``parser``."""
    parser.add_argument(
        "--rules",
        type=Path,
        help=f"rules folder with {ROUTING_FILE}, or the routing file itself "
        "(default: BURNRATE_RULES or ./rules)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from-kafka",
        action="store_true",
        help="read alert records from BURNRATE_ALERTS_TOPIC (the default)",
    )
    source.add_argument(
        "--alerts-file",
        type=Path,
        metavar="FILE",
        help="read alert records from a JSON Lines file and follow it as it grows",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="folder for ledger.sqlite and audit.jsonl "
        "(default: BURNRATE_ROUTING_STATE_DIR or ./burnrate-routing)",
    )


def run_deliver(args: argparse.Namespace) -> int:
    """Run ``routes deliver``; return the exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        settings = DeliverSettings()
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            name = "BURNRATE_" + "_".join(str(part) for part in detail["loc"]).upper()
            print(f"invalid setting {name}: {detail['msg']}", file=sys.stderr)
        return 2
    path = routing_file(args.rules or settings.rules)
    try:
        config = load_routing(path)
    except RuleError as error:
        print(error, file=sys.stderr)
        return 1
    state_dir = args.state_dir or settings.routing_state_dir
    return asyncio.run(_deliver(config, settings, state_dir, args.alerts_file))


def routing_file(path: Path) -> Path:
    """Return the routing file for ``--rules``: a folder's routing.yaml, or the file."""
    return path / ROUTING_FILE if path.is_dir() else path


async def _deliver(
    config: RoutingConfig,
    settings: DeliverSettings,
    state_dir: Path,
    alerts_file: Path | None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, _request_stop, number, stop)
    if alerts_file is not None:
        logger.info("reading alert records from %s", alerts_file)
        return await _run(config, settings, FileOutbox(alerts_file), state_dir, stop)
    return await _deliver_from_kafka(config, settings, state_dir, stop)


async def _deliver_from_kafka(
    config: RoutingConfig,
    settings: DeliverSettings,
    state_dir: Path,
    stop: asyncio.Event,
) -> int:
    # Imported here so that --alerts-file works without the Kafka client.
    from aiokafka.errors import KafkaError

    from routing.kafka_outbox import KafkaOutbox

    outbox = KafkaOutbox(
        settings.kafka_bootstrap,
        settings.alerts_topic,
        settings.group_id,
        wait_s=settings.routing_read_wait_s,
        offset_reset=settings.routing_offset_reset,
    )
    try:
        await outbox.start()
    except KafkaError as error:
        logger.error(
            "connection to Kafka at %s failed: %s (check BURNRATE_KAFKA_BOOTSTRAP)",
            settings.kafka_bootstrap,
            error,
        )
        return 1
    try:
        return await _run(config, settings, outbox, state_dir, stop)
    except KafkaError as error:
        logger.error("reading %s failed: %s", settings.alerts_topic, error)
        return 1
    finally:
        await outbox.stop()


async def _run(
    config: RoutingConfig,
    settings: DeliverSettings,
    outbox: Outbox,
    state_dir: Path,
    stop: asyncio.Event,
) -> int:
    metrics = DeliveryMetrics(receiver.name for receiver in config.receivers)
    server = None
    if settings.routing_metrics_port:
        server = _serve_metrics(metrics, settings)
        if server is None:
            return 1
    dispatcher = build_dispatcher(config, outbox, state_dir, SystemClock(), metrics=metrics)
    logger.info("ledger and audit log in %s", state_dir)
    try:
        await dispatcher.run(stop)
    finally:
        if server is not None:
            server.close()
    return 0


def _serve_metrics(metrics: DeliveryMetrics, settings: DeliverSettings) -> MetricsServer | None:
    address, port = settings.routing_metrics_address, settings.routing_metrics_port
    try:
        server = metrics.serve(port, address)
    except OSError as error:
        logger.error(
            "serving metrics on %s port %d failed: %s "
            "(check BURNRATE_ROUTING_METRICS_ADDRESS and BURNRATE_ROUTING_METRICS_PORT)",
            address, port, error,
        )
        return None
    logger.info("serving metrics at http://%s:%d/metrics", address, port)
    return server


def _request_stop(number: int, stop: asyncio.Event) -> None:
    logger.info("stopping on %s", signal.Signals(number).name)
    stop.set()
