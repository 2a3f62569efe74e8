"""A real Mosquitto started from the project's config/mosquitto files on a free port (tests, bench).

Only the listener port and the file paths are replaced; every other setting (queue limits,
persistence, ACL rules) is the shipped one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from bench.procs import free_port, listening, start_process, stop_process

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "mosquitto"

USERS = {
    "cloud": "cloud-pw",
    "gwA": "gwA-pw",
    "gwB": "gwB-pw",
    "drill-gw": "drill-pw",
    "bench-gw": "bench-pw",
}


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary, if installed."""
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


class Mosquitto:
    """One broker process; start/stop/restart keep the same port and persistence directory."""

    def __init__(self, workdir: Path, *, port: int | None = None, auth: bool = True) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self._render()

    def _render(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
        subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
        acl = self.workdir / "acl"
        shutil.copy(SHIPPED / "acl", acl)
        lines = []
        for line in (SHIPPED / "mosquitto.conf").read_text().splitlines():
            key = line.split(" ", 1)[0]
            if key == "listener":
                line = f"listener {self.port} 127.0.0.1"
            elif key == "password_file":
                line = f"password_file {passwd}" if self.auth else ""
            elif key == "acl_file":
                line = f"acl_file {acl}" if self.auth else ""
            elif key == "allow_anonymous" and not self.auth:
                line = "allow_anonymous true"
            elif key == "persistence_location":
                line = f"persistence_location {data}/"
            lines.append(line)
        lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        for path in (passwd, acl):
            os.chmod(path, 0o600)

    def start(self) -> None:
        """Start (or restart) the broker and wait until it listens."""
        binary = mosquitto_binary()
        assert binary, "mosquitto is not installed (scripts/install-system-deps.sh)"
        self.proc = start_process([binary, "-c", str(self.conf)], self.log,
                                  lambda: listening(self.port), timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker (SIGTERM saves persistence) and wait until its port is free again,
        so a restart can bind it."""
        stop_process(self.proc, self.port, sig=sig, grace=10)
        self.proc = None
