"""Run a single-node Apache Kafka broker on loopback for development and tests.

The broker is the official Kafka release pinned in pom.xml beside this file. On
first use Maven copies its jars into a cache folder, so no Kafka download or
container engine is needed: only Java 17+ and Maven. The broker runs in KRaft
combined mode (broker and controller in one JVM), listens on 127.0.0.1 only and
keeps its configuration, data and log file in one data folder.

Command line::

    python deploy/kafka/launch.py [--data-dir DIR] [--port N]

prints ``bootstrap=127.0.0.1:PORT`` on stdout once the broker serves metadata,
and stops the broker on SIGTERM or SIGINT. Tests import ``KafkaBroker`` from
this file through tests/kafka_broker.py.

The module uses the standard library alone so that it runs with any Python 3.11
before the project is installed. For that reason the readiness probe encodes
its two Kafka requests (ApiVersions and Metadata) by hand in place of using a
Kafka client library.
"""

from __future__ import annotations

import argparse
import base64
import collections
import ctypes
import hashlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NamedTuple, Self
from xml.etree import ElementTree

POM_PATH = Path(__file__).resolve().with_name("pom.xml")
CACHE_ENV = "BURNRATE_KAFKA_CACHE"
DEFAULT_CACHE_ROOT = Path("~/.cache/burnrate")
LOOPBACK_HOST = "127.0.0.1"
NODE_ID = 1
LOG_TAIL_LINES = 40
LOG_FILE_NAME = "kafka.log"
KRAFT_LOG_DIR_NAME = "kraft-combined-logs"
JARS_COMPLETE_MARKER = ".burnrate-complete"
MAVEN_TIMEOUT_S = 600.0
STORAGE_FORMAT_TIMEOUT_S = 120.0

# Kafka API keys and the Metadata versions whose wire format _encode_metadata
# and _parse_metadata_brokers implement (v4 to v8 share the non-flexible
# encoding, and v9+ switch to tagged fields).
API_VERSIONS_KEY = 18
METADATA_KEY = 3
METADATA_MIN_VERSION = 4
METADATA_MAX_VERSION = 8

LOG4J2_PROPERTIES = """\
# Written by deploy/kafka/launch.py: the broker logs to stdout, which the
# launcher appends to kafka.log in the data folder.
status = warn
# Kafka logs its own shutdown from a JVM shutdown hook, so log4j2 must not
# stop its appenders in a hook of its own first.
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
"""

logger = logging.getLogger("burnrate.kafka_broker")


class KafkaBrokerError(RuntimeError):
    """Failure to fetch, format, start or stop the Kafka broker."""


class BrokerEndpoint(NamedTuple):
    """One broker listed in a Metadata response."""

    node_id: int
    host: str
    port: int


# --- Jars -------------------------------------------------------------------


def read_kafka_version(pom_path: Path = POM_PATH) -> str:
    """Return the ``kafka.version`` property pinned in the Maven pom."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ElementTree.parse(pom_path).getroot()
    element = root.find("m:properties/m:kafka.version", namespace)
    if element is None or not (element.text or "").strip():
        raise KafkaBrokerError(f"{pom_path} has no <kafka.version> property")
    return (element.text or "").strip()


def default_libs_dir(version: str) -> Path:
    """Return the jar cache folder: $BURNRATE_KAFKA_CACHE or ~/.cache/burnrate."""
    cache_root = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT).expanduser()
    return cache_root / f"kafka-{version}" / "libs"


def ensure_jars(libs_dir: Path, pom_path: Path = POM_PATH) -> Path:
    """Copy the broker jars into libs_dir with Maven unless they are already there.

    A marker file that stores the pom's SHA-256 is written last, so a folder
    left by an interrupted copy, or by an older pom, is fetched again.
    """
    pom_digest = hashlib.sha256(pom_path.read_bytes()).hexdigest()
    if _jars_complete(libs_dir, pom_digest):
        return libs_dir

    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    staging_dir = Path(tempfile.mkdtemp(prefix="libs-", dir=libs_dir.parent))
    try:
        logger.info("Fetching Kafka jars with Maven into %s", libs_dir)
        _run_maven_copy(pom_path, staging_dir)
        (staging_dir / JARS_COMPLETE_MARKER).write_text(pom_digest + "\n")
        _replace_dir(staging_dir, libs_dir, pom_digest)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return libs_dir


def _jars_complete(libs_dir: Path, pom_digest: str) -> bool:
    marker = libs_dir / JARS_COMPLETE_MARKER
    return marker.is_file() and marker.read_text().strip() == pom_digest


def _run_maven_copy(pom_path: Path, output_dir: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaBrokerError(
            "mvn not found on PATH: install Maven 3.6 or newer to fetch the Kafka jars"
        )
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom_path),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
    ]
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MAVEN_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        raise KafkaBrokerError(
            f"Maven failed to fetch the Kafka jars (exit code {result.returncode}). "
            f"Last lines of its output:\n" + "\n".join(output[-LOG_TAIL_LINES:])
        )


def _replace_dir(staging_dir: Path, libs_dir: Path, pom_digest: str) -> None:
    """Move staging_dir to libs_dir, tolerating another process that won the race."""
    if libs_dir.exists() and not _jars_complete(libs_dir, pom_digest):
        shutil.rmtree(libs_dir)
    try:
        staging_dir.rename(libs_dir)
    except OSError:
        if not _jars_complete(libs_dir, pom_digest):
            raise


def build_classpath(libs_dir: Path) -> str:
    """Join every jar in libs_dir into a Java class path."""
    jars = sorted(libs_dir.glob("*.jar"))
    if not jars:
        raise KafkaBrokerError(f"no jars found in {libs_dir}")
    return os.pathsep.join(str(jar) for jar in jars)


def find_java() -> str:
    """Return the java executable: $JAVA_HOME/bin/java, else java on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise KafkaBrokerError(
            "java not found on PATH or in $JAVA_HOME: install Java 17 or newer"
        )
    return java


# --- Configuration ----------------------------------------------------------


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free when checked.

    Another process can take the port between this check and the broker's
    bind, in which case the broker fails to start and the error shows the log.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def new_cluster_id() -> str:
    """Return a random cluster id in the format of ``kafka-storage random-uuid``.

    Kafka writes a UUID as unpadded URL-safe base64. Its Uuid.randomUuid()
    skips ids that start with "-" (newer releases: that contain "-") because
    a command line reads a leading "-" as an option, so this skips every id
    that contains "-".
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if "-" not in cluster_id:
            return cluster_id


def render_server_properties(
    kraft_log_dir: Path, broker_port: int, controller_port: int
) -> str:
    """Return server.properties for a one-node KRaft broker on loopback."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        # A static voter set keeps no endpoint in the metadata log, so a restart
        # on new ports reuses the data folder without reformatting it.
        "controller.quorum.voters": f"{NODE_ID}@{LOOPBACK_HOST}:{controller_port}",
        "listeners": (
            f"PLAINTEXT://{LOOPBACK_HOST}:{broker_port},"
            f"CONTROLLER://{LOOPBACK_HOST}:{controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK_HOST}:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(kraft_log_dir),
        "auto.create.topics.enable": "true",
        "num.partitions": "1",
        # One broker cannot hold more than one replica of an internal topic.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # The default 50 partitions of __consumer_offsets take seconds to create
        # when the first consumer group joins, and one broker gains nothing
        # from them.
        "offsets.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    lines = ["# Written by deploy/kafka/launch.py on every start."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def read_log_tail(log_path: Path, line_count: int = LOG_TAIL_LINES) -> str:
    """Return the last line_count lines of a log file, or a note if it is missing."""
    try:
        with log_path.open("r", encoding="utf-8", errors="replace") as log:
            tail = collections.deque(log, maxlen=line_count)
    except FileNotFoundError:
        return f"({log_path} was not written)"
    return "".join(tail).rstrip("\n")


def read_first_error(
    log_path: Path, start_offset: int, max_lines: int = 5
) -> str | None:
    """Return the first ERROR entry written after start_offset, or None.

    A broker that fails logs its cause well before the hundreds of shutdown
    lines that follow, so the last lines of the log rarely show it.
    """
    try:
        with log_path.open("rb") as log:
            log.seek(start_offset)
            text = log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    entry: list[str] = []
    for line in text.splitlines():
        if entry:
            if line.startswith("[") or len(entry) == max_lines:
                break
            entry.append(line)
        elif "] ERROR " in line or "] FATAL " in line:
            entry.append(line)
    return "\n".join(entry) if entry else None


# --- Readiness probe --------------------------------------------------------


class _ProtocolError(Exception):
    """A response that does not match the Kafka wire format expected here."""


def probe_metadata(
    host: str, port: int, timeout_s: float = 2.0
) -> list[BrokerEndpoint]:
    """Return the brokers that the broker at host:port lists in a Metadata response.

    Raises OSError when the connection fails and _ProtocolError when the
    response cannot be read. KRaft lists only registered, unfenced brokers, so
    a broker that lists itself accepts client requests.
    """
    with socket.create_connection((host, port), timeout=timeout_s) as connection:
        api_versions = _send_request(connection, API_VERSIONS_KEY, 0, 1, b"")
        metadata_version = _pick_metadata_version(api_versions)
        body = _encode_metadata(metadata_version)
        response = _send_request(connection, METADATA_KEY, metadata_version, 2, body)
    return _parse_metadata_brokers(response)


def _send_request(
    connection: socket.socket,
    api_key: int,
    api_version: int,
    correlation_id: int,
    body: bytes,
) -> bytes:
    """Send one request with header v1 and return the response body."""
    client_id = b"burnrate-launch"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id))
    payload = header + client_id + body
    connection.sendall(struct.pack(">i", len(payload)) + payload)

    (size,) = struct.unpack(">i", _receive_exactly(connection, 4))
    response = _receive_exactly(connection, size)
    (response_correlation_id,) = struct.unpack_from(">i", response)
    if response_correlation_id != correlation_id:
        raise _ProtocolError(
            f"correlation id {response_correlation_id}, expected {correlation_id}"
        )
    return response[4:]


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise _ProtocolError("connection closed before the response ended")
        chunks += chunk
    return bytes(chunks)


def _pick_metadata_version(api_versions: bytes) -> int:
    """Return the highest Metadata version that both the broker and this probe know.

    The body is an ApiVersions v0 response: error code, then an array of
    (api key, min version, max version).
    """
    error_code, api_count = struct.unpack_from(">hi", api_versions)
    if error_code != 0:
        raise _ProtocolError(f"ApiVersions returned error code {error_code}")
    for index in range(api_count):
        api_key, min_version, max_version = struct.unpack_from(
            ">hhh", api_versions, 6 + 6 * index
        )
        if api_key != METADATA_KEY:
            continue
        version = min(max_version, METADATA_MAX_VERSION)
        if version < max(min_version, METADATA_MIN_VERSION):
            raise _ProtocolError(
                f"broker supports Metadata v{min_version}-v{max_version}, the probe "
                f"v{METADATA_MIN_VERSION}-v{METADATA_MAX_VERSION}"
            )
        return int(version)
    raise _ProtocolError("ApiVersions response does not list Metadata")


def _encode_metadata(version: int) -> bytes:
    """Encode a Metadata request for no topics, so the response lists brokers only."""
    topic_count = 0
    allow_auto_topic_creation = 0
    body = struct.pack(">ib", topic_count, allow_auto_topic_creation)
    if version >= 8:
        include_cluster_operations = 0
        include_topic_operations = 0
        body += struct.pack(">bb", include_cluster_operations, include_topic_operations)
    return body


def _parse_metadata_brokers(response: bytes) -> list[BrokerEndpoint]:
    """Read the broker array of a Metadata v4-v8 response body."""
    offset = 4  # throttle_time_ms
    (broker_count,) = struct.unpack_from(">i", response, offset)
    offset += 4
    brokers = []
    for _ in range(broker_count):
        node_id, host_length = struct.unpack_from(">ih", response, offset)
        offset += 6
        host = response[offset : offset + host_length].decode()
        offset += host_length
        port, rack_length = struct.unpack_from(">ih", response, offset)
        offset += 6 + max(rack_length, 0)
        brokers.append(BrokerEndpoint(node_id, host, port))
    return brokers


# --- Broker process ---------------------------------------------------------


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _exit_with_parent() -> None:
    """Ask Linux to send SIGTERM to the broker when the launching thread exits.

    Runs in the child between fork and exec, so it only calls prctl(2) through
    a library loaded before the fork. This keeps a killed test run or launcher
    from leaving a JVM behind.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class KafkaBroker:
    """A single-node Kafka broker in KRaft mode, listening on 127.0.0.1.

    ``start()`` fetches the jars on first use, formats the data folder on its
    first start, starts the JVM and waits until the broker serves metadata.
    ``stop()`` sends SIGTERM and waits for a clean shutdown. The broker exits
    with the thread that called ``start()`` (on Linux), so start it from a
    thread that lives as long as the broker should.

    Without data_dir a temporary folder is used and removed by ``stop()``.
    Without port a free port is picked on each start. The controller port is
    always picked anew.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        port: int | None = None,
        *,
        libs_dir: Path | None = None,
        heap_max: str = "512m",
        startup_timeout_s: float = 90.0,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.requested_port = port
        self.libs_dir = libs_dir
        self.heap_max = heap_max
        self.startup_timeout_s = startup_timeout_s
        # Seconds from start() to a broker that serves metadata, including
        # the jar fetch and storage format when they run.
        self.startup_s: float | None = None
        self.port: int | None = None
        self._owns_data_dir = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_start_offset = 0

    @property
    def bootstrap(self) -> str:
        """The bootstrap.servers address, ``127.0.0.1:PORT``."""
        if self.port is None or not self.is_running():
            raise KafkaBrokerError("the Kafka broker is not running: call start()")
        return f"{LOOPBACK_HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's log file inside the data folder."""
        return self._require_data_dir() / LOG_FILE_NAME

    @property
    def pid(self) -> int | None:
        """The process id of the broker JVM, or None when it is not running."""
        return self._process.pid if self.is_running() and self._process else None

    def is_running(self) -> bool:
        """Return True while the broker JVM has not exited."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start the broker, wait until it serves metadata and return its bootstrap.

        Raises KafkaBrokerError with the first error and the last 40 lines of
        the broker log when the broker exits, or is not ready startup_timeout_s
        after its JVM started.
        """
        if self.is_running():
            raise KafkaBrokerError(
                f"the Kafka broker is already running on {self.port}"
            )
        started_at = time.monotonic()
        java = find_java()
        libs_dir = self.libs_dir or default_libs_dir(read_kafka_version())
        classpath = build_classpath(ensure_jars(libs_dir))

        data_dir = self._prepare_data_dir()
        log_exists = self.log_path.is_file()
        self._log_start_offset = self.log_path.stat().st_size if log_exists else 0
        self.port = self.requested_port or free_loopback_port()
        properties_path = self._write_config(data_dir, self.port)
        self._format_storage_once(java, classpath, properties_path)
        process = self._spawn(java, classpath, properties_path)
        try:
            self._wait_until_ready(process, self.port, spawned_at=time.monotonic())
        except BaseException:
            self._terminate(timeout_s=10.0)
            raise

        self.startup_s = time.monotonic() - started_at
        logger.info(
            "Kafka broker started in %.1f s on %s (pid %s, data %s)",
            self.startup_s,
            self.bootstrap,
            self.pid,
            data_dir,
        )
        return self.bootstrap

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the broker with SIGTERM, then SIGKILL after timeout_s.

        Removes the data folder if the broker created it. Calling stop() on a
        stopped broker does nothing.
        """
        self._terminate(timeout_s)
        if self._owns_data_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._owns_data_dir = False

    def _require_data_dir(self) -> Path:
        if self.data_dir is None:
            raise KafkaBrokerError("the Kafka broker has no data folder: call start()")
        return self.data_dir

    def _prepare_data_dir(self) -> Path:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="burnrate-kafka-"))
            self._owns_data_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def _write_config(self, data_dir: Path, broker_port: int) -> Path:
        controller_port = free_loopback_port()
        while controller_port == broker_port:
            controller_port = free_loopback_port()
        properties = render_server_properties(
            data_dir / KRAFT_LOG_DIR_NAME, broker_port, controller_port
        )
        properties_path = data_dir / "server.properties"
        properties_path.write_text(properties)
        (data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        return properties_path

    def _java_command(self, java: str, classpath: str, main_class: str) -> list[str]:
        data_dir = self._require_data_dir()
        return [
            java,
            f"-Xmx{self.heap_max}",
            # The C1 compiler alone gives up peak throughput, which a development
            # broker does not need, for a faster start. On a busy 2-core machine
            # (OpenJDK 17, Kafka 4.4.0) startup_s fell from 11-13 s to 7 s.
            "-XX:TieredStopAtLevel=1",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={data_dir}",
            "-cp",
            classpath,
            main_class,
        ]

    def _format_storage_once(
        self, java: str, classpath: str, properties_path: Path
    ) -> None:
        """Format the KRaft log folder with a new cluster id unless already done."""
        kraft_log_dir = properties_path.parent / KRAFT_LOG_DIR_NAME
        if (kraft_log_dir / "meta.properties").is_file():
            return
        command = self._java_command(java, classpath, "kafka.tools.StorageTool")
        command += ["format", "--cluster-id", new_cluster_id()]
        command += ["--config", str(properties_path)]
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=STORAGE_FORMAT_TIMEOUT_S,
                check=False,
            )
        if result.returncode != 0:
            raise KafkaBrokerError(
                f"formatting Kafka storage in {kraft_log_dir} failed (exit code "
                f"{result.returncode}). Last lines of {self.log_path}:\n"
                + read_log_tail(self.log_path)
            )

    def _spawn(
        self, java: str, classpath: str, properties_path: Path
    ) -> subprocess.Popen[bytes]:
        command = self._java_command(java, classpath, "kafka.Kafka")
        command.append(str(properties_path))
        self._log_file = self.log_path.open("ab")
        # A new session keeps a terminal's Ctrl+C away from the JVM, so the
        # launcher decides when and how the broker stops.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Safe in a process with threads: the hook imports nothing and only
            # calls prctl(2), so no lock held at fork time can block it.
            preexec_fn=_exit_with_parent,  # noqa: PLW1509
        )
        return self._process

    def _wait_until_ready(
        self, process: subprocess.Popen[bytes], port: int, spawned_at: float
    ) -> None:
        deadline = spawned_at + self.startup_timeout_s
        last_error = "no response yet"
        while time.monotonic() < deadline:
            exit_code = process.poll()
            if exit_code is not None:
                raise self._startup_error(f"the broker exited with code {exit_code}")
            try:
                brokers = probe_metadata(LOOPBACK_HOST, port)
            except (OSError, _ProtocolError, struct.error) as error:
                last_error = f"{type(error).__name__}: {error}"
            else:
                if BrokerEndpoint(NODE_ID, LOOPBACK_HOST, port) in brokers:
                    return
                last_error = f"Metadata lists brokers {brokers}"
            time.sleep(0.2)
        raise self._startup_error(
            f"timed out after {self.startup_timeout_s:g} s waiting for the broker "
            f"to serve metadata ({last_error})"
        )

    def _startup_error(self, reason: str) -> KafkaBrokerError:
        message = (
            f"Kafka broker failed to start on {LOOPBACK_HOST}:{self.port}: {reason}."
        )
        first_error = read_first_error(self.log_path, self._log_start_offset)
        if first_error is not None:
            message += f"\nFirst error in {self.log_path}:\n{first_error}"
        message += f"\nLast {LOG_TAIL_LINES} lines of {self.log_path}:\n"
        return KafkaBrokerError(message + read_log_tail(self.log_path))

    def _terminate(self, timeout_s: float) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "Kafka broker (pid %s) ignored SIGTERM for %.0f s, sending SIGKILL",
                    process.pid,
                    timeout_s,
                )
                process.kill()
                process.wait()
            logger.info("Kafka broker (pid %s) stopped", process.pid)
        self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


# --- Command line -----------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Run a single-node Apache Kafka broker on 127.0.0.1 until SIGTERM or "
            "SIGINT. Jars are cached in $BURNRATE_KAFKA_CACHE/kafka-VERSION/libs "
            "(default ~/.cache/burnrate)."
        )
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder for configuration, data and kafka.log; kept after exit "
        "(default: a temporary folder removed at exit)",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="client (PLAINTEXT) port on 127.0.0.1 (default: a free port)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the broker until SIGTERM or SIGINT and return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop_requested = threading.Event()

    def request_stop(signal_number: int, frame: types.FrameType | None) -> None:
        logger.info("Received %s, stopping", signal.Signals(signal_number).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    broker = KafkaBroker(data_dir=args.data_dir, port=args.port)
    try:
        broker.start()
    except KafkaBrokerError as error:
        logger.error("%s", error)
        return 1
    print(f"bootstrap={broker.bootstrap}", flush=True)

    try:
        while not stop_requested.wait(timeout=0.5):
            if not broker.is_running():
                logger.error(
                    "Kafka broker exited unexpectedly. Last lines of %s:\n%s",
                    broker.log_path,
                    read_log_tail(broker.log_path),
                )
                return 1
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
