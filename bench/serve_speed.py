"""How fast is a pure workflow over `kflow serve`, next to a bare Starlette endpoint?

Starts, on loopback only, (1) ``kflow serve`` with a pure workflow and a fresh journal and
(2) a bare Starlette app under the same uvicorn settings whose endpoint computes the same
thing from the same JSON body, then drives each with the same local load generator (raw
HTTP/1.1 keep-alive connections on asyncio; a bounded number of requests) and reports
requests/s and p50/p99 latency side by side. Target: kflow at least half the bare
throughput. Every kflow request is a durable run: recorded in the journal (SQLite, WAL)
before its answer is sent.

    python bench/serve_speed.py                       # 5 rounds x 4000 requests, 16 conns
    python bench/serve_speed.py -n 20000 -c 32 --json # more, machine-readable

Exit status 1 when the target is missed (with --check).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORKFLOW = """\
## The benchmark's pure workflow.
module bench.pure

## Sum of the squares below n, and a greeting.
workflow Squares(n: int, name: str = "world") -> {total: int, greeting: str} {
  let total = sum([x * x for x in range(n)])
  return {total: total, greeting: "hello ${name}"}
}
"""

BARE_APP = '''\
import json, socket, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def squares(request):
    data = json.loads(await request.body())
    n = data["n"]
    name = data.get("name", "world")
    out = {"total": sum(x * x for x in range(n)), "greeting": f"hello {name}"}
    return Response(json.dumps(out, separators=(",", ":")).encode(),
                    media_type="application/json")


app = Starlette(routes=[Route("/workflows/Squares", squares, methods=["POST"])])
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                              server_header=False)).run(sockets=[sock])
'''

URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)")


def start(cmd: list[str], cwd: str, env: dict) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise SystemExit(f"server exited early: {' '.join(cmd)}")
            continue
        m = URL_RE.search(line)
        if m:
            port = int(m.group(1))
            while time.time() < deadline:  # the port is bound; wait until it answers
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return proc, port
                except OSError:
                    time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start in 30 s")


async def load(port: int, total: int, conns: int, body: bytes) -> tuple[float, list[float]]:
    req = (b"POST /workflows/Squares HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Content-Type: application/json\r\nContent-Length: "
           + str(len(body)).encode() + b"\r\n\r\n" + body)
    latencies: list[float] = []
    left = [total]
    errors = [0]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                t0 = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(m.group(1)) if m else 0)
                latencies.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors[0] += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.perf_counter() - t0
    if errors[0]:
        raise SystemExit(f"{errors[0]} requests were not answered 200")
    return elapsed, latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), or 0.0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def measure(proc: subprocess.Popen, port: int, n: int, conns: int, body: bytes) -> dict:
    cpu0 = cpu_seconds(proc.pid)
    me0 = cpu_seconds(os.getpid())
    elapsed, lat = asyncio.run(load(port, n, conns, body))
    cpu = cpu_seconds(proc.pid) - cpu0
    client = cpu_seconds(os.getpid()) - me0
    lat.sort()
    return {"requests": n, "rps": n / elapsed, "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "cpu_us_per_request": cpu / n * 1e6, "client_cpu_us_per_request": client / n * 1e6,
            "server_cpu_busy": cpu / elapsed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=4000, help="requests per server per round "
                    "(default 4000)")
    ap.add_argument("-r", "--rounds", type=int, default=5, help="rounds, alternating the "
                    "servers; the median round is reported (default 5)")
    ap.add_argument("-c", type=int, default=16, help="concurrent connections (default 16)")
    ap.add_argument("--size", type=int, default=50, help="the workflow's n (default 50)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--check", action="store_true", help="exit 1 below half the bare rps")
    args = ap.parse_args(argv)
    n = max(100, min(args.n, 100_000))
    rounds = max(1, min(args.rounds, 20))
    body = json.dumps({"n": args.size, "name": "bench"}).encode()
    names = ("bare starlette", "kflow serve")
    per: dict[str, list[dict]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory(prefix="kflow-serve-bench-") as tmp:
        Path(tmp, "pure.kflow").write_text(WORKFLOW)
        Path(tmp, "bare_app.py").write_text(BARE_APP)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmds = {
            "bare starlette": [sys.executable, "bare_app.py"],
            "kflow serve": [sys.executable, "-m", "kailash_dsl", "serve", "pure.kflow",
                            "--port", "0", "--db", str(Path(tmp, "runs.db"))],
        }
        procs: dict[str, tuple[subprocess.Popen, int]] = {}
        try:
            for name in names:
                procs[name] = start(cmds[name], tmp, env)
            for name in names:  # warm up
                asyncio.run(load(procs[name][1], min(500, n), args.c, body))
            for _ in range(rounds):
                for name in names:
                    proc, port = procs[name]
                    per[name].append(measure(proc, port, n, args.c, body))
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    results = {}
    for name in names:
        rs = sorted(per[name], key=lambda r: r["rps"])
        mid = rs[len(rs) // 2]
        results[name] = {**mid, "rounds_rps": [round(r["rps"]) for r in per[name]]}
    # each round measures both servers back to back: the median of the per-round ratios
    # is steadier than a ratio of medians on a machine whose speed drifts
    ratio = statistics.median(k["rps"] / b["rps"] for k, b in
                              zip(per["kflow serve"], per["bare starlette"]))
    cpu_ratio = results["bare starlette"]["cpu_us_per_request"] / \
        max(1e-9, results["kflow serve"]["cpu_us_per_request"])
    if args.json:
        print(json.dumps({"connections": args.c, "rounds": rounds, **results,
                          "ratio": ratio, "cpu_ratio": cpu_ratio}))
    else:
        print(textwrap.dedent(f"""\
            pure workflow over REST: {rounds} rounds x {n} requests per server, {args.c} \
connections, loopback (median round)
            {'':16}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'server CPU us/req':>19}"""))
        for name, r in results.items():
            print(f"{name:16}{r['rps']:12.0f}{r['p50_ms']:10.2f}{r['p99_ms']:10.2f}"
                  f"{r['cpu_us_per_request']:19.0f}")
        print(f"kflow / bare throughput: {ratio:.2f} (median of the rounds' ratios; target "
              f">= 0.50); by server CPU per request: {cpu_ratio:.2f}")
    return 1 if args.check and ratio < 0.5 else 0


if __name__ == "__main__":
    sys.exit(main())
