"""The base of every cloud config section (a leaf module: every package's config imports it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of every config section: unknown keys refused."""

    model_config = ConfigDict(extra="forbid")
