"""Helpers of the replica benchmarks: a redis-server with AOF, HAProxy in front of replicas.

Imported as a sibling module (``import replicas``) by ``serve_lm_load.py`` and ``serve_failover.py``.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

import common

log = logging.getLogger("benchmarks.replicas")


class Redis:
    """Debian's redis-server on loopback with ``--appendonly yes`` (``appendfsync everysec``) under ``directory``."""

    def __init__(self, directory: Path, *, port: int | None = None, aof: bool = True) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
        self.binary = binary
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or common.free_port()
        self.aof = aof
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> float:
        """Start it and wait until it answers (the AOF loaded); returns the seconds that took."""
        import redis

        t0 = time.perf_counter()
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.directory), "--appendonly", "yes" if self.aof else "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        while True:
            try:
                client.ping()
                break
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                if self.proc.poll() is not None or time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.01)
        client.close()
        return time.perf_counter() - t0

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None


HAPROXY = """global
    maxconn 512
    stats socket {stats} mode 600 level admin
defaults
    mode http
    timeout connect 100ms
    timeout client 30s
    timeout server 30s
    timeout check 3s
    retries 3
    option redispatch 1
    option http-buffer-request
    retry-on conn-failure empty-response junk-response response-timeout 503
frontend lmrec
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
{servers}
"""


def start_haproxy(replica_ports: list[int], workdir: Path) -> tuple[subprocess.Popen, str]:
    """HAProxy (Debian's) round-robin over the replicas: a replica whose connection fails is marked down at
    once (``observe layer4``, ``on-error mark-down``), ``/health`` every 500 ms brings it back (a slow
    health answer under load does not take a live replica out: 3 s timeout, 3 failures); a request that
    fails to connect, or gets no answer (the replica died with it), is sent again to the next replica (the body
    is buffered, so POSTs are replayed: the service's event ids make a replayed batch a duplicate, not a
    second copy); returns it and its URL."""
    if shutil.which("haproxy") is None:
        raise SystemExit("haproxy is not installed: apt-get install -y haproxy")
    port = common.free_port()
    servers = "\n".join(
        f"    server r{i} 127.0.0.1:{p} check inter 500ms fall 3 rise 2 observe layer4 error-limit 1 on-error mark-down"
        for i, p in enumerate(replica_ports)
    )
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(port=port, servers=servers, stats=(workdir / "haproxy.sock").resolve()))
    proc = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError(f"haproxy exited with {proc.returncode}: check {cfg} with `haproxy -c -f {cfg}`")
    return proc, f"http://127.0.0.1:{port}"


def haproxy_stats(workdir: Path) -> dict[str, dict[str, int]]:
    """Per replica: requests sent (``stot``), retried (``wretr``), redispatched to the other replica
    (``wredis``), connection errors (``econ``) and response errors (``eresp``), from HAProxy's stats socket."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str((workdir / "haproxy.sock").resolve()))
        sock.sendall(b"show stat\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    lines = raw.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "replicas" and row.get("svname", "").startswith("r"):
            out[row["svname"]] = {k: int(row[k] or 0) for k in ("stot", "wretr", "wredis", "econ", "eresp")}
    return out
