"""Hot reload of the rules in the running service: on SIGHUP or a folder change.

``RulesReloader`` polls the rules folder every ``interval_s`` seconds (the
names, sizes and modification times of its rule files) and also reloads when
``request`` is called, which the SIGHUP handler does. Polling keeps it free of
platform file-watch APIs and works on every file system, at the cost of up to
``interval_s`` of delay. A valid folder is swapped into every partition engine
at once, between two batches, since the event loop runs one task at a time; an
invalid one is logged with its errors, reported as a ``service`` alert, and the
old rules keep running. The next accepted reload resolves that alert.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.engine import Engine
from detector.reload import ReloadAlert, decide
from detector.ruleload import rule_files

logger = logging.getLogger("burnrate.reload")

Publish = Callable[[list[AlertRecord]], Awaitable[None]]
Adopt = Callable[[RuleSet], None]
Signature = tuple[tuple[str, int, int], ...]


def folder_signature(path: Path) -> Signature:
    """Return (name, size, mtime in ns) of every rule file at ``path``."""
    signature = []
    try:
        files = rule_files(path)
    except OSError:
        return ()
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        signature.append((file.name, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


class RulesReloader:
    """Reload the rules at ``path`` into the engines that ``engines`` returns.

    ``adopt`` receives every accepted rule set before the engines do, so the
    owner of the engines can create later ones with it.
    """

    def __init__(
        self,
        path: Path,
        rules: RuleSet,
        engines: Callable[[], Iterable[Engine]],
        publish: Publish,
        interval_s: float = 5.0,
        adopt: Adopt | None = None,
    ) -> None:
        self.path = path
        self.rules = rules
        self.engines = engines
        self.publish = publish
        self.interval_s = interval_s
        self.adopt = adopt
        self.reloads = 0
        self.rejected = 0
        self.alert = ReloadAlert(path)
        self._signature = folder_signature(path)
        self._requested = asyncio.Event()

    def request(self) -> None:
        """Ask for a reload now; the SIGHUP handler calls this."""
        self._requested.set()

    def install_sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGHUP, self.request)

    async def run(self) -> None:
        """Poll for changes and serve reload requests until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._requested.wait(), self.interval_s)
            except TimeoutError:
                pass
            forced = self._requested.is_set()
            self._requested.clear()
            signature = folder_signature(self.path)
            if forced or signature != self._signature:
                self._signature = signature
                await self.publish(self.reload(datetime.now(UTC)))

    def reload(self, now: datetime) -> list[AlertRecord]:
        """Load the folder and swap it in, or reject it; return the records to publish."""
        decision = decide(self.path, self.rules)
        if decision.ruleset is None:
            self.rejected += 1
            logger.error(
                "rules reload from %s rejected, the previous rules keep running: %s",
                self.path,
                "; ".join(str(problem) for problem in decision.problems),
            )
            rejected = self.alert.reject(decision.problems, now)
            return [] if rejected is None else [rejected]
        self.reloads += 1
        self.rules = decision.ruleset
        if self.adopt is not None:
            self.adopt(decision.ruleset)
        records: list[AlertRecord] = []
        resolved = self.alert.accept(now)
        if resolved is not None:
            records.append(resolved)
        for engine in self.engines():
            records.extend(engine.replace_rules(decision.ruleset))
        logger.info("rules reloaded from %s: %s", self.path, decision.diff)
        return records
