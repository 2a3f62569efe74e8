"""The rule engine of a cloud worker: the current rule set, hot-reloaded from its files."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from cloud.actions import Action
from cloud.rules.errors import RulesFileError
from cloud.rules.loader import rule_files
from cloud.rules.metrics import RuleMetrics
from cloud.rules.ruleset import RuleSet
from thingmodels.envelope import Envelope
from thingmodels.loader import ModelRegistry
from thingmodels.topics import Topic

log = logging.getLogger("voltmesh.cloud.rules")

#: what identifies the state of the rule files: (path, inode, mtime_ns, size) per file
Snapshot = tuple[tuple[str, int, int, int], ...]


def snapshot(paths: Sequence[Path]) -> Snapshot | str:
    """The files' identity now, or the error text when the paths cannot be listed."""
    try:
        files = rule_files(paths)
    except RulesFileError as exc:
        return str(exc)
    out: list[tuple[str, int, int, int]] = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError as exc:
            return f"{file}: {exc.strerror}"
        out.append((str(file), st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class RuleEngine:
    """Holds the current :class:`RuleSet`; ``evaluate*`` delegate to it.

    The first load happens in the constructor and raises :class:`RulesFileError` (a worker
    must not start with broken rules). :meth:`run` polls the files (set of files, inode, mtime,
    size) every ``reload_interval`` seconds; a changed, valid set is swapped in with one
    assignment between two messages, so each message is evaluated by exactly one set. An
    invalid set keeps the old one, is logged once (until the files change again) and counted.
    """

    def __init__(self, paths: Sequence[Path | str], registry: CollectorRegistry,
                 reload_interval: float = 2.0, *, models: ModelRegistry | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.reload_interval = reload_interval
        self.models = models
        self.metrics = RuleMetrics(registry)
        self._snapshot = snapshot(self.paths)
        self.ruleset = RuleSet.load(self.paths, models=models, stats=self.metrics)
        self.metrics.loaded.set(self.ruleset.enabled)
        self.last_error: RulesFileError | None = None

    def evaluate(self, topic: Topic, env: Envelope) -> list[Action]:
        """The actions for one message (see :meth:`RuleSet.evaluate`)."""
        return self.ruleset.evaluate(topic, env)

    def evaluate_presence(self, gw: str, product: str, device: str, online: bool, ts_ms: int,
                          session: int, *, cause: str | None = None) -> list[Action]:
        """The actions for a presence transition (see :meth:`RuleSet.evaluate_presence`)."""
        return self.ruleset.evaluate_presence(gw, product, device, online, ts_ms, session,
                                              cause=cause)

    async def check(self) -> bool | None:
        """Reload if the files changed: True swapped, False invalid (old kept), None unchanged."""
        current = await asyncio.to_thread(snapshot, self.paths)
        if current == self._snapshot:
            return None
        self._snapshot = current
        try:
            new = await asyncio.to_thread(
                RuleSet.load, self.paths, models=self.models, stats=self.metrics
            )
        except RulesFileError as exc:
            self.last_error = exc
            self.metrics.reloads.labels(result="failed").inc()
            # an expected operator error: the message names file, line and rule; no traceback
            log.error("rule files invalid, keeping the %d rules loaded before: %s",  # noqa: TRY400
                      self.ruleset.enabled, exc)
            return False
        self.ruleset = new  # one assignment: the next message sees the new set
        self.last_error = None
        self.metrics.reloads.labels(result="ok").inc()
        self.metrics.loaded.set(new.enabled)
        log.info("rules reloaded: %d enabled of %d", new.enabled, len(new.rules))
        return True

    async def run(self) -> None:
        """Watch the rule files until cancelled."""
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                await self.check()
            except Exception:  # a bug must not end the watch: log and keep the current set
                log.exception("rule reload check failed")
