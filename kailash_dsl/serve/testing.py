"""Run ``kflow serve`` as a child process on a free loopback port (tests, benchmarks).

    with ServeProcess.start(["orders.kflow"], db="runs.db", cwd=folder) as srv:
        httpx.post(srv.url + "/workflows/FulfilOrder", json={...})

The server is asked for port 0; the port it got is read from the line it prints once it
is ready. Its stderr is drained in a thread (kept in :attr:`ServeProcess.log`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_READY = re.compile(r"kflow serve: .* on (http://127\.0\.0\.1:\d+)")


class ServeProcess:
    def __init__(self, proc: subprocess.Popen, url: str, lines: list[str]) -> None:
        self.proc = proc
        self.url = url
        self.lines = lines

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @classmethod
    def start(cls, files: list[str], *, db: str | os.PathLike, cwd: str | os.PathLike,
              args: list[str] | None = None, env: dict | None = None,
              timeout: float = 30.0) -> ServeProcess:
        cmd = [sys.executable, "-m", "kailash_dsl", "serve", *map(str, files),
               "--host", "127.0.0.1", "--port", "0", "--db", str(db), *(args or [])]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=full_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        found: list[str] = []
        ready = threading.Event()

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                m = _READY.search(line)
                if m and not found:
                    found.append(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(timeout) or not found:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"kflow serve did not start: {' '.join(cmd)}\n"
                               + "".join(lines))
        return cls(proc, found[0], lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(cond, timeout: float = 10.0, every: float = 0.05):
    """Poll ``cond()`` until it returns something truthy; that value, or None."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        time.sleep(every)


def write_files(folder: str | os.PathLike, files: dict[str, str]) -> Path:
    base = Path(folder)
    base.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (base / name).write_text(text, encoding="utf-8")
    return base
