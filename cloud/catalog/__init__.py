"""The station catalogue: stations, chargers, connectors, tariff versions, provisioning, API.

* :mod:`cloud.catalog.models` -- SQLModel tables (``catalog_*``) and the values handed out;
* :mod:`cloud.catalog.repo` -- :class:`Catalog` (CRUD, ``resolve_connector``, ``resolve_code``,
  ``tariff_at``, ``nearby``, ``free_connectors``);
* :mod:`cloud.catalog.provisioning` -- gateway desired state built from the catalogue, pushes;
* :mod:`cloud.catalog.api` -- the ``/api/v1`` router;
* :mod:`cloud.catalog.modes` -- operating modes and their start methods.
"""

from cloud.catalog.errors import CatalogError, Conflict, InvalidInput, NotFound
from cloud.catalog.models import (
    Charger,
    CodeRef,
    Connector,
    ConnectorRef,
    NearbyStation,
    Station,
    TariffInForce,
    TariffVersion,
)
from cloud.catalog.modes import OperatingMode, StartMethod, billing_source, start_methods
from cloud.catalog.repo import Catalog, LiveStatus, TenantScope

__all__ = [
    "Catalog",
    "CatalogError",
    "Charger",
    "CodeRef",
    "Conflict",
    "Connector",
    "ConnectorRef",
    "InvalidInput",
    "LiveStatus",
    "NearbyStation",
    "NotFound",
    "OperatingMode",
    "StartMethod",
    "Station",
    "TariffInForce",
    "TariffVersion",
    "TenantScope",
    "billing_source",
    "start_methods",
]
