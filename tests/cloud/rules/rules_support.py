"""Helpers for the rule-engine tests: rule files in a temp dir, messages."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from cloud.rules import RuleSet
from thingmodels.envelope import Envelope, Sample
from thingmodels.topics import Topic, parse

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "config" / "rules"


def write(directory: Path, text: str, name: str = "rules.yaml") -> Path:
    """Write a rule file (dedented) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def ruleset(tmp_path: Path, text: str) -> RuleSet:
    """Load one rule file written from ``text``."""
    return RuleSet.load([write(tmp_path, text)])


def msg(topic: str, p: dict[str, Any] | None = None, *, ts: int | None = 1_000,
        seq: int | None = 7, msg_id: str = "01TESTMESSAGE0000000000000",
        batch: list[tuple[int | None, dict[str, Any]]] | None = None,
        **extra: Any) -> tuple[Topic, Envelope]:
    """A parsed topic and an envelope (``batch``: ``[(ts, p), ...]`` instead of ``p``)."""
    b = None if batch is None else tuple(Sample(t, sp) for t, sp in batch)
    return parse(topic), Envelope(id=msg_id, rts=5_000, ts=ts, seq=seq, src="ykc16", p=p, b=b,
                                  **extra)
