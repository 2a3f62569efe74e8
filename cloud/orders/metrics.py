"""Prometheus counters of the orders service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class OrdersMetrics:
    """Counters on a given registry (a private one when none is given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.events = Counter(
            "voltmesh_orders_events", "Session events handled, by name and outcome "
            "(applied, duplicate, rejected, ignored)", ["name", "outcome"],
            registry=self.registry)
        self.billed = Counter(
            "voltmesh_orders_billed", "Orders billed, by the status they reached", ["status"],
            registry=self.registry)
        self.payments = Counter(
            "voltmesh_orders_payments", "Wallet debits attempted, by outcome", ["outcome"],
            registry=self.registry)
        self.refunds = Counter(
            "voltmesh_orders_refunds", "Refunds, by outcome", ["outcome"],
            registry=self.registry)
