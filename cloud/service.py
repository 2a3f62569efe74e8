"""One cloud worker: MQTT consumer, device registry, presence, HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from cloud.api.app import create_app
from cloud.config import CloudConfig
from cloud.consumer import Consumer
from cloud.metrics import CloudMetrics
from cloud.registry import DeviceRegistry, make_engine
from thingmodels.envelope import Envelope
from thingmodels.topics import Kind, Topic

log = logging.getLogger("voltmesh.cloud")


class CloudService:
    """Composes the cloud worker's parts; ``run()`` until cancelled."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.metrics = CloudMetrics()
        self.engine = make_engine(config.database_url)
        self.registry = DeviceRegistry(self.engine)
        self.consumer = Consumer(config.mqtt, self.metrics, worker_id=config.worker_id)
        self.consumer.add_handler("registry", self._track)
        self.app: FastAPI = create_app(
            self.registry, self.metrics, worker_id=config.worker_id, commands=self.consumer,
            health=lambda: (self.consumer.connected.is_set(), self.consumer.shared_active),
        )
        self.app.state.cloud = self
        self.http_port: int | None = None
        self.started = asyncio.Event()

    async def _track(self, topic: Topic, env: Envelope) -> None:
        ts = env.rts
        if topic.kind is Kind.STATE:
            p = env.p or {}
            online, session = p.get("online"), p.get("session")
            if not isinstance(online, bool) or isinstance(session, bool) or \
                    not isinstance(session, int):
                self.metrics.malformed.labels(reason="state").inc()
                return
            if not self.registry.presence(topic.gw, topic.product, topic.device, online,
                                          session, ts):
                self.metrics.stale_states.inc()
            return
        props: dict[str, Any] | None = None
        if topic.kind is Kind.PROP:
            props = {}
            for sample in env.samples():
                props.update(sample.p)
        self.registry.seen(topic.gw, topic.product, topic.device, ts, props)

    async def _flush_loop(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.config.flush_interval)
                await asyncio.to_thread(self.registry.flush)
        finally:
            await asyncio.to_thread(self.registry.flush)

    async def _serve_http(self) -> None:
        server = uvicorn.Server(uvicorn.Config(
            self.app, host=self.config.http.host, port=self.config.http.port, log_config=None,
            access_log=False, lifespan="off",
        ))
        # the process (voltmesh CLI) owns signals; uvicorn must not capture them
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        task = asyncio.create_task(server.serve(), name="http")
        try:
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError("HTTP server stopped during start-up")
                await asyncio.sleep(0.05)
            for srv in server.servers:
                for sock in srv.sockets:
                    self.http_port = sock.getsockname()[1]
            self.started.set()
            await asyncio.shield(task)
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.consumer.run(), name="consumer")
            tg.create_task(self._flush_loop(), name="registry-flush")
            tg.create_task(self._serve_http(), name="http")
