"""Catalogue configuration (a ``catalog:`` section of the cloud config; unknown keys refused)."""

from __future__ import annotations

from pydantic import Field

from cloud.strict import Strict


class CatalogConfig(Strict):
    """Provisioning loop settings."""

    #: seconds between provisioning rounds (pending pushes, tariffs coming into force)
    provisioning_interval: float = Field(default=30.0, gt=0)
