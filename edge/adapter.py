"""The interface every protocol adapter (YKC, OCPP, Modbus, MQTT-native devices) implements.

An adapter owns a set of devices. It runs as one long-lived task under the gateway's TaskGroup
(``run``), reports what its devices say through the :class:`~edge.context.EdgeContext` it is
given, and executes service calls routed to it by the dispatcher (``invoke``). It never talks to
MQTT itself and never imports ``cloud``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge.errors import ServiceNotSupported

if TYPE_CHECKING:
    from edge.context import EdgeContext


class Adapter(ABC):
    """Base class of protocol adapters."""

    #: short name used in logs and metrics
    name: str = "adapter"
    #: envelope ``src`` tag of what it reports
    src: str = "edge"

    @abstractmethod
    def owns(self, product: str, device: str) -> bool:
        """Whether service calls for this device go to this adapter."""

    @abstractmethod
    async def run(self, ctx: EdgeContext) -> None:
        """Serve devices until cancelled."""

    async def wait_ready(self) -> None:
        """Return once the adapter serves devices (its listeners are bound); default: at once.

        The gateway's ``started`` waits for every adapter's (``voltmesh edge`` freezes the
        start-up heap for the garbage collector after it).
        """
        return

    async def invoke(
        self, product: str, device: str, service: str, params: Mapping[str, Any], deadline_ms: int
    ) -> dict[str, Any]:
        """Execute a service on a device and return its output params.

        Raise a :class:`~edge.errors.DeviceError` subclass to answer with its code. The dispatcher
        enforces the deadline around this call; adapters pass ``deadline_ms`` on to devices
        whose protocol carries one.
        """
        raise ServiceNotSupported(f"{self.name} has no service {product}.{service}")

    async def apply_desired(
        self, product: str, device: str, version: int, doc: Mapping[str, Any]
    ) -> None:
        """Apply a desired-state document for one of its devices (default: nothing to do)."""
        return
