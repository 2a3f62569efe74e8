"""Provisioning: the desired state the catalogue gives each gateway, and pushing it.

The gateway's desired document (``ev/v1/{gw}/gateway/{gw}/desired``, retained) is what the edge
reads to admit chargers and to answer billing-model requests::

    {"devices": [{"id": "32010200000001", "protocol": "ykc"},   # product: charger (default)
                 {"id": "CP-7", "protocol": "ocpp16"}],
     "tariff": {edge_doc of the gateway's main station},            # when it has one
     ...parts added with Provisioning.add_part (e.g. "cards")}

It is one MQTT packet (the broker's ``max_packet_size`` and the envelope limit: 1 MiB), so it
holds only what admission needs, 22 bytes + the id per charger (37 for a 15-character id:
20,000 chargers take 740 KB). Everything else about a charger is in its own document (below);
with the password hash and the descriptive fields in the gateway document it stopped fitting at
~7,400 chargers.

A desired document replaces the previous one as a whole, so every producer of a key in the
gateway document (the offline card list of :mod:`cloud.accounts`, for one) must contribute it
through :meth:`Provisioning.add_part`; this module publishes the merged document.

Per-charger documents (``ev/v1/{gw}/charger/{id}/desired``) are published for every charger::

    {"kind": "dc", "connectors": 2, "ratedKw": "120", "mode": "online_billing",
     "station": "<station id>",
     "tariff": {...},               # YKC: its own station's tariff, when it has one
     "password_sha256": "<hex>"}    # OCPP with a password: HTTP Basic (security profile 1/2)

The edge prefers a pile's ``tariff`` over the gateway's, so a gateway serving several stations
bills each pile right; the OCPP listener checks a charger's password against its
``password_sha256``.

Pushes are tracked per gateway (generation vs pushed generation in ``catalog_gateway_sync``): a
change that could not be pushed (no broker, a publish error) stays pending and
:meth:`Provisioning.sync` -- run periodically by :meth:`Provisioning.run` -- pushes it later;
the same loop announces tariff versions when their ``effective_from`` arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cloud.billing.errors import TariffError
from cloud.billing.tariff import edge_doc
from cloud.catalog.models import Charger, Protocol
from cloud.catalog.repo import Catalog
from thingmodels.ids import now_ms

log = logging.getLogger("voltmesh.cloud.catalog")

#: cloud.consumer.Consumer.publish_desired: (gw, product, device, doc) -> version
PublishDesired = Callable[[str, str, str, dict[str, Any]], Awaitable[int]]
#: a contributor of one key of the gateway document: gw -> value (None: key left out)
Part = Callable[[str], Any]


@dataclass
class PushResult:
    """What one push to a gateway did."""

    gateway: str
    status: Literal["published", "skipped", "failed"]
    documents: list[str] = field(default_factory=list)  # "gateway/<gw>", "charger/<pile>"
    problems: list[str] = field(default_factory=list)  # e.g. a tariff YKC cannot express
    detail: str | None = None

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"gateway": self.gateway, "status": self.status, "documents": self.documents,
                "problems": self.problems, "detail": self.detail}


class Provisioning:
    """Builds and pushes desired-state documents from the catalogue."""

    def __init__(self, catalog: Catalog, *, publish_timeout: float = 10.0) -> None:
        self.catalog = catalog
        self.publish_timeout = publish_timeout
        self._parts: dict[str, Part] = {}
        self._last_version = 0

    def _next_version(self) -> int:
        """Desired-state versions: ms since the epoch, strictly increasing in this process
        (the edge keeps a document only when its version is newer than the one it holds)."""
        self._last_version = max(now_ms(), self._last_version + 1)
        return self._last_version

    def add_part(self, key: str, build: Part) -> None:
        """Contribute ``key`` to every gateway document (``build(gw)``; None leaves it out)."""
        if key in ("devices", "tariff", "version"):
            raise ValueError(f"{key!r} belongs to the catalogue's gateway document")
        self._parts[key] = build

    # -- documents (sync: call from a worker thread) ------------------------------------------

    def _tariff_doc(self, station_id: str, problems: list[str]) -> dict[str, Any] | None:
        held = self.catalog.tariff_at(station_id, self.catalog.clock())
        if held is None:
            problems.append(f"station {station_id} has no tariff in force")
            return None
        ref, tariff = held
        try:
            return edge_doc(tariff, ref.version, code=ref.code,
                            rounding="majority" if ref.ykc_rounding == "majority" else "refuse")
        except TariffError as exc:
            problems.append(f"tariff {ref.id} (station {station_id} v{ref.version}) has no YKC "
                            f"form: {exc}")
            return None

    @staticmethod
    def _device(charger: Charger) -> dict[str, Any]:
        """The charger's entry in the gateway document: what admission needs, no more (the
        edge takes an entry without ``product`` for a charger)."""
        return {"id": charger.device_id, "protocol": charger.protocol}

    @staticmethod
    def _charger_doc(charger: Charger) -> dict[str, Any]:
        """The charger's own document (its tariff added by the caller)."""
        doc: dict[str, Any] = {
            "kind": charger.kind, "connectors": charger.connector_count,
            "ratedKw": str(charger.rated_kw), "mode": charger.operating_mode,
            "station": charger.station_id,
        }
        if charger.protocol != Protocol.YKC and charger.password_sha256 is not None:
            doc["password_sha256"] = charger.password_sha256
        return doc

    def _documents(self, gw: str, only_chargers: set[str] | None,
                   problems: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
        chargers = self.catalog.list_chargers(gateway_id=gw, limit=1_000_000)
        doc: dict[str, Any] = {"devices": [self._device(c) for c in chargers]}
        tariffs: dict[str, dict[str, Any] | None] = {}

        def tariff_of(station_id: str) -> dict[str, Any] | None:
            if station_id not in tariffs:
                tariffs[station_id] = self._tariff_doc(station_id, problems)
            return tariffs[station_id]

        ykc = [c for c in chargers if c.protocol == Protocol.YKC]
        if ykc:
            # the gateway default: the station with most YKC chargers here (ties: lowest id)
            counts = Counter(c.station_id for c in ykc)
            tariff = tariff_of(min(counts, key=lambda s: (-counts[s], s)))
            if tariff is not None:
                doc["tariff"] = tariff
        for key, build in self._parts.items():
            value = build(gw)
            if value is not None:
                doc[key] = value
        out = [("gateway", gw, doc)]
        for charger in chargers:
            if only_chargers is not None and charger.device_id not in only_chargers:
                continue
            own = self._charger_doc(charger)
            if charger.protocol == Protocol.YKC:
                tariff = tariff_of(charger.station_id)
                if tariff is not None:
                    own["tariff"] = tariff
            out.append(("charger", charger.device_id, own))
        return out

    def gateway_desired(self, gw: str) -> dict[str, Any]:
        """The gateway's desired document (without ``version``: publish_desired adds it)."""
        return self._documents(gw, set(), [])[0][2]

    def charger_docs(self, gw: str) -> dict[str, dict[str, Any]]:
        """Per-charger desired documents of the gateway's chargers (device id -> doc)."""
        return {device: doc for product, device, doc in self._documents(gw, None, [])[1:]
                if product == "charger"}

    # -- pushing --------------------------------------------------------------------------------

    async def push(self, gw: str, publish_desired: PublishDesired | None, *,
                   chargers: Iterable[str] | None = None) -> PushResult:
        """Publish the gateway document and the per-charger documents.

        ``chargers`` limits the per-charger documents to those piles (None: all); when other
        changes are pending for the gateway, all are pushed anyway. Without a broker
        (``publish_desired`` None) nothing is published and the change stays pending.
        """
        if publish_desired is None:
            return PushResult(gw, "skipped", detail="no broker: publish_desired is not set; "
                                                     "pushed later by the provisioning loop")
        generation, pushed = await asyncio.to_thread(self.catalog.sync_state, gw)
        only = None if chargers is None or generation - pushed > 1 else set(chargers)
        problems: list[str] = []
        docs = await asyncio.to_thread(self._documents, gw, only, problems)
        result = PushResult(gw, "published", problems=problems)
        try:
            for product, device, doc in docs:
                async with asyncio.timeout(self.publish_timeout):
                    await publish_desired(gw, product, device,
                                          {**doc, "version": self._next_version()})
                result.documents.append(f"{product}/{device}")
        except Exception as exc:  # noqa: BLE001 - the change is stored; the push is retried
            result.status, result.detail = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("desired-state push to %s failed: %s", gw, exc)
            await asyncio.to_thread(self.catalog.mark_pushed, gw, generation,
                                    error=result.detail)
            return result
        await asyncio.to_thread(self.catalog.mark_pushed, gw, generation)
        return result

    async def push_station(self, station_id: str,
                           publish_desired: PublishDesired | None) -> list[PushResult]:
        """Announce the station's tariff in force to all its gateways (and any other pending
        change of those gateways)."""
        await asyncio.to_thread(self.catalog.refresh_tariffs, None, [station_id])
        gateways = await asyncio.to_thread(self.catalog.gateways_of_station, station_id)
        chargers = await asyncio.to_thread(self.catalog.list_chargers, station_id=station_id,
                                           limit=1_000_000)
        piles = [c.device_id for c in chargers if c.protocol == Protocol.YKC]
        return [await self.push(gw, publish_desired, chargers=piles) for gw in gateways]

    async def sync(self, publish_desired: PublishDesired | None) -> list[PushResult]:
        """Announce tariffs that came into force and push every gateway with pending changes."""
        await asyncio.to_thread(self.catalog.refresh_tariffs)
        dirty = await asyncio.to_thread(self.catalog.dirty_gateways)
        return [await self.push(gw, publish_desired) for gw in dirty]

    async def run(self, publish_desired: PublishDesired, interval: float = 30.0) -> None:
        """Call :meth:`sync` every ``interval`` seconds until cancelled (errors are logged)."""
        while True:
            try:
                await self.sync(publish_desired)
            except Exception:
                log.exception("provisioning round failed")
            await asyncio.sleep(interval)
