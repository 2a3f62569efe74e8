"""The drill's site: a PostgreSQL database (SQLite if none answers), the cloud worker and the
gateway as real ``voltmesh`` processes (so SIGKILL is real), and the seed.

Ports are chosen once and kept: a restarted process listens where the chargers and the
simulator's app back end expect it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
import yaml

from bench.chaos.errors import ChaosError
from bench.mosquitto import USERS
from bench.procs import free_port, stop_process, wait_port

log = logging.getLogger("bench.chaos")

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "rules"
GATEWAY = "drill-gw"  # a user of bench.mosquitto's password file
ADMIN = "admin"
PG = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@dataclass
class Database:
    """The cloud's database; ``drop()`` removes a PostgreSQL database the drill created."""

    url: str
    pg_name: str | None = None

    def drop(self) -> None:
        """Drop the drill's PostgreSQL database (nothing for SQLite)."""
        if self.pg_name is None:
            return
        with contextlib.suppress(Exception), psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def make_database(workdir: Path, *, postgres: bool = True) -> Database:
    """A uniquely named PostgreSQL database at 127.0.0.1:5432 if it answers, else SQLite."""
    if postgres:
        try:
            name = f"voltmesh_chaos_{secrets.token_hex(4)}"
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return Database(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name)
        except Exception as exc:
            log.info("chaos: PostgreSQL not usable (%s); SQLite instead", exc)
    return Database(f"sqlite:///{workdir / 'cloud.db'}")


@dataclass
class Secrets:
    """The cloud's auth secrets, shared by every cloud process of the drill (tokens survive a
    restart) and by the in-process seed."""

    jwt_secret: str = field(default_factory=lambda: os.environ.get(
        "VOLTMESH_JWT_SECRET") or secrets.token_urlsafe(48))
    #: the environment's admin password when set: the in-process seed's bootstrap reads it too
    admin_password: str = field(default_factory=lambda: os.environ.get(
        "VOLTMESH_ADMIN_PASSWORD") or secrets.token_urlsafe(18))

    def env(self) -> dict[str, str]:
        """The environment of a cloud process."""
        return {**os.environ, "VOLTMESH_JWT_SECRET": self.jwt_secret,
                "VOLTMESH_ADMIN_PASSWORD": self.admin_password}


def cloud_config(db: Database, broker_port: int, http_port: int,
                 auth: Secrets, *, worker_id: str = "chaos-cloud",
                 shared: bool = False) -> dict[str, Any]:
    """A cloud worker's YAML document (``shared``: one of N workers on a shared
    subscription)."""
    return {
        "worker_id": worker_id,
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "username": "cloud",
                 "password": USERS["cloud"], "backoff_max": 1.0,
                 # one worker: plain subscriptions, which Mosquitto keeps across its restarts;
                 # N workers: shared ones, whose losses on a broker restart the gateway's
                 # receipts cover (docs/scale-out.md "End-to-end receipts")
                 "shared_group": "voltmesh" if shared else None},
        "database_url": db.url,
        "http": {"host": "127.0.0.1", "port": http_port},
        "log_format": "console",
        "rules": {"paths": [str(RULES)]},
        "auth": {"jwt_secret": auth.jwt_secret,
                 "bootstrap": {"username": ADMIN, "password": auth.admin_password}},
        "catalog": {"provisioning_interval": 2.0},
        "orders": {"settle_grace": 2.0},
    }


def gateway_config(workdir: Path, broker_port: int, ykc_port: int,
                   ocpp_port: int) -> dict[str, Any]:
    """The gateway's YAML document; the outbox is a file in the work directory (it survives a
    SIGKILL)."""
    return {
        "gateway_id": GATEWAY,
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "username": GATEWAY,
                 "password": USERS[GATEWAY], "backoff_initial": 0.2, "backoff_max": 1.0},
        # events the broker lost in a restart window come again after the receipt timeout:
        # shorter than the shipped 30 s / 10 min so they land within the drill's settle wait
        "outbox": {"path": str(workdir / "gateway-outbox.db"), "receipt_timeout": "10s",
                   "receipt_timeout_max": "20s"},
        "telemetry": {"flush_interval": 1.0},
        "adapters": {
            "ykc": {"host": "127.0.0.1", "port": ykc_port, "heartbeat_interval": 5.0},
            "ocpp": {"host": "127.0.0.1", "port": ocpp_port, "security_profile": 1,
                     "heartbeat_interval": 30, "call_timeout": 10},
        },
    }


class Proc:
    """A ``python -m voltmesh <cmd> --config FILE`` process; logs appended to ``name.log``."""

    def __init__(self, name: str, cmd: str, config: Mapping[str, Any], workdir: Path,
                 ready_port: int, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.config_file = workdir / f"{name}.yaml"
        self.config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.log = workdir / f"{name}.log"
        self.ready_port = ready_port
        self.env = dict(env or os.environ)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until ``ready_port`` accepts."""
        if self._log_handle is None:
            self._log_handle = self.log.open("ab")
        self._log_handle.write(f"\n=== chaos: start #{self.starts + 1} ===\n".encode())
        self._log_handle.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voltmesh", self.cmd, "--config", str(self.config_file)],
            cwd=ROOT, env=self.env, stdout=self._log_handle, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChaosError(f"{self.name} exited with {self.proc.returncode}: "
                                 f"{self.tail()}")
            try:
                wait_port(self.ready_port, 0.5)
                return
            except TimeoutError:
                continue
        raise ChaosError(f"{self.name} did not listen on {self.ready_port} within "
                         f"{timeout:g}s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 15 s); the end of the drill."""
        stop_process(self.proc, grace=15)
        self.proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 2000) -> str:
        """The end of the log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)
