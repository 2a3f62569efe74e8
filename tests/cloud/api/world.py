"""An API app on a real database: registry, catalogue, tenancy (tenants A, B, agent of A)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cloud.api.app import create_app
from cloud.catalog.models import Charger
from cloud.catalog.provisioning import Provisioning
from cloud.catalog.repo import Catalog
from cloud.metrics import CloudMetrics
from cloud.registry import DeviceRegistry
from tests.support.tenancy import Tenancy, install_tenancy


@dataclass
class ApiWorld:
    """The app, its parts, and a charger of A (2 connectors) and one of B, on own gateways."""

    app: FastAPI
    registry: DeviceRegistry
    catalog: Catalog
    tenancy: Tenancy
    gw_a: str
    gw_b: str
    charger_a: Charger
    charger_b: Charger

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url="http://test")


def build_api_world(engine: Engine, *, commands: object = None,
                    pile: str | None = None) -> ApiWorld:
    """``pile``: A's charger is that YKC pile (one connector) instead of an OCPP charger."""
    registry = DeviceRegistry(engine)
    app = create_app(registry, CloudMetrics(), commands=commands)
    catalog = Catalog(engine)
    app.state.catalog = catalog
    app.state.provisioning = Provisioning(catalog)
    app.state.publish_desired = getattr(commands, "publish_desired", None)
    tenancy = install_tenancy(app, engine)
    suffix = uuid.uuid4().hex[:8]
    gw_a, gw_b = f"gwa{suffix}", f"gwb{suffix}"
    chargers = []
    for tenant, gw, count in ((tenancy.a, gw_a, 2), (tenancy.b, gw_b, 1)):
        station = catalog.create_station(tenant_id=tenant, name=f"S {gw}", lat=31.2, lon=121.5,
                                         tz="Asia/Shanghai")
        ykc = pile is not None and gw == gw_a
        chargers.append(catalog.register_charger(
            station_id=station.id, gateway_id=gw, device_id=pile if ykc else f"CP{gw}",
            protocol="ykc" if ykc else "ocpp16", kind="dc" if ykc else "ac",
            rated_kw=Decimal(7), connector_count=1 if ykc else count))
    return ApiWorld(app, registry, catalog, tenancy, gw_a, gw_b, chargers[0], chargers[1])
