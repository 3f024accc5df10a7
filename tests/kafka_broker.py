"""Kafka broker access for tests: an existing broker or one started on loopback.

``KafkaBroker`` lives in deploy/kafka/launch.py, the launcher that developers
run by hand, so tests start the broker exactly as documented. deploy/ is not a
Python package, so this module loads that file by path.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

LAUNCH_PATH = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "launch.py"
EXTERNAL_BOOTSTRAP_ENV = "BURNRATE_TEST_KAFKA"


def _load_launcher() -> ModuleType:
    module_name = "burnrate_kafka_launch"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, LAUNCH_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the Kafka launcher from {LAUNCH_PATH}")
    module = importlib.util.module_from_spec(spec)
    # Registered before execution, as a regular import would, so that the
    # module's classes resolve their own module at run time.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


launch = _load_launcher()
KafkaBroker = launch.KafkaBroker
KafkaBrokerError = launch.KafkaBrokerError
free_loopback_port = launch.free_loopback_port


def external_bootstrap() -> str | None:
    """Return $BURNRATE_TEST_KAFKA, the bootstrap of a broker to use, if it is set."""
    return os.environ.get(EXTERNAL_BOOTSTRAP_ENV) or None
