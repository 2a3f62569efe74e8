"""A real HTTP/1.1 server on a free loopback port that answers from a script (webhook, Influx)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.support.net import free_port

HANG = -1  # a script entry that never answers


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # monotonic arrival


@dataclass
class ScriptedHttp:
    """Answers each request with the next (status, headers) of ``script``; the last repeats.

    ``per_path`` scripts take precedence for their path. A status of ``HANG`` reads the
    request and never answers.
    """

    port: int = 0
    script: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(204, {})])
    per_path: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *statuses: int | tuple[int, dict[str, str]], path: str | None = None) -> None:
        entries = [s if isinstance(s, tuple) else (s, {}) for s in statuses]
        if path is None:
            self.script = entries
        else:
            self.per_path[path] = entries

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _next(self, path: str) -> tuple[int, dict[str, str]]:
        script = self.per_path.get(path, self.script)
        return script.pop(0) if len(script) > 1 else script[0]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = target.split("?", 1)[0]
                self.requests.append(Request(method, path, headers, body, time.monotonic()))
                status, extra = self._next(path)
                if status == HANG:
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.sleep(3600)
                    return
                text = b"" if status in (204, 304) else \
                    f'{{"code":"x","message":"status {status}"}}'.encode()
                reply = [f"HTTP/1.1 {status} X", "Content-Type: application/json",
                         f"Content-Length: {len(text)}"]
                reply += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(reply) + "\r\n\r\n").encode() + text)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()


@pytest.fixture
async def scripted_http() -> AsyncIterator[ScriptedHttp]:
    """A scripted HTTP server on a free loopback port."""
    http = ScriptedHttp(port=free_port())
    server = await asyncio.start_server(http.handle, "127.0.0.1", http.port)
    try:
        yield http
    finally:
        server.close()
        for task in http.tasks:  # handlers may hang on purpose
            task.cancel()
        await asyncio.gather(*http.tasks, return_exceptions=True)
