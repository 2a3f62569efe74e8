"""Typed configuration of the rule engine (a section of the cloud config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cloud.strict import Strict


class RulesConfig(Strict):
    """Where the rule files are and how often they are checked for changes.

    ``paths`` are rule files or directories of ``*.yaml``; relative paths are resolved against
    a base directory (the cloud config file's directory) by :meth:`resolved`.
    """

    paths: list[str] = Field(default_factory=lambda: ["config/rules"])
    #: seconds between two checks of the files (mtime, size, file set)
    reload_interval: float = Field(default=2.0, gt=0)

    def resolved(self, base: Path | str) -> list[Path]:
        """``paths`` with relative entries resolved against ``base``."""
        root = Path(base)
        return [p if p.is_absolute() else (root / p) for p in map(Path, self.paths)]
