"""Prometheus metrics of one cloud worker (its own registry: no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class CloudMetrics:
    """Counters and gauges exposed on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "voltmesh_cloud_messages", "Messages consumed, by topic kind", ["kind"],
            registry=self.registry,
        )
        self.malformed = Counter(
            "voltmesh_cloud_malformed", "Messages refused as malformed, by reason", ["reason"],
            registry=self.registry,
        )
        self.handler_errors = Counter(
            "voltmesh_cloud_handler_errors", "Handler failures, by handler", ["handler"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "voltmesh_cloud_duplicates", "Messages seen before (same id), ignored",
            registry=self.registry,
        )
        self.stale_states = Counter(
            "voltmesh_cloud_stale_states", "Presence states from an older session, ignored",
            registry=self.registry,
        )
        self.devices_online = Gauge(
            "voltmesh_cloud_devices_online", "Devices online (as seen by this worker)",
            registry=self.registry,
        )
        self.takeovers = Counter(
            "voltmesh_cloud_session_takeovers", "Sessions of offline peer workers adopted",
            registry=self.registry,
        )
        self.receipts = Counter(
            "voltmesh_cloud_receipts", "Event ids receipted to gateways, by outcome (sent: "
            "published; lost: the publish failed, the gateway publishes the event again)",
            ["outcome"], registry=self.registry,
        )
        self.mqtt_connects = Counter(
            "voltmesh_cloud_mqtt_connects", "Broker connections made", registry=self.registry,
        )
