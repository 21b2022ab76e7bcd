"""Load test of the pose service (`POST /pose/hybrid`) on loopback, bounded in requests and time.

For each level of concurrency (default 1, 4 and 16 clients), every client streams the frames of one
video (its own session) one after the other, as the backend does; a 503 is retried after the
server's `retry_after_ms` (or `Retry-After`), so every frame eventually gets a pose. Prints, per
level: throughput, latency of the successful requests (p50/p95/p99) and of whole frames (first
try to answer, retries included), the number of 503s, errors and lost frames.

    .venv/bin/python tools/loadtest.py                      # starts a server on a free loopback port
    .venv/bin/python tools/loadtest.py --url http://127.0.0.1:8000 --clients 1 4
    .venv/bin/python tools/loadtest.py --no-mesh --frames 20 --out load.json
"""
import argparse
import ipaddress
import json
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np


def _loopback(url: str) -> bool:
    "Whether the URL's host resolves to loopback addresses only."
    host = urlparse(url).hostname or ""
    try: addrs = {a[4][0] for a in socket.getaddrinfo(host, None)}
    except socket.gaierror: return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def load_frames(n: int) -> list[list[str]]:
    "Base64 JPEG frames of the four cameras of the rendered walk (one video per client, cycled)."
    from posebench.detect import read_video
    from posebench.service import encode_image_base64
    from posebench.synth import cached_capture
    cap = cached_capture("walk_ring4", progress=False)
    return [[encode_image_base64(f) for _, f in read_video(v, progress=False, stop=n)] for v in sorted((cap.root / "videos").glob("cam_*.mp4"))]


class Budget:
    "Shared request and time limits."
    def __init__(self, max_requests: int, deadline: float):
        self.left, self.deadline, self.lock = max_requests, deadline, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline: return False
            self.left -= 1
            return True


def run_client(url: str, frames: list[str], session: str, budget: Budget, stats: dict, lock: threading.Lock):
    "Send one video's frames in order; retry 503s after the advised delay; record everything."
    import httpx
    rng = np.random.default_rng(abs(hash(session)) % 2 ** 32)
    with httpx.Client(timeout=60) as c:
        for i, img in enumerate(frames):
            t_frame, answered = time.perf_counter(), False
            while budget.take():
                t0 = time.perf_counter()
                try: r = c.post(url + "/pose/hybrid", json=dict(image_base64=img, frame_number=i, session_id=session))
                except httpx.HTTPError as e:
                    with lock: stats["errors"].append(f"{type(e).__name__}: {e}")
                    break
                dt = time.perf_counter() - t0
                if r.status_code == 503:
                    with lock: stats["busy"] += 1; stats["busy_ms"].append(1e3 * dt)
                    ms = r.json().get("retry_after_ms") or 1e3 * float(r.headers.get("retry-after", 1))
                    time.sleep(ms / 1e3 * (0.5 + rng.random()))
                    continue
                if r.status_code != 200:
                    with lock: stats["errors"].append(f"HTTP {r.status_code}: {r.text[:200]}")
                    break
                body = r.json()
                ok = body["frame_number"] == i and len(body["keypoints"]) == 17 and body["status"] in ("observed", "predicted", "missing")
                with lock:
                    if not ok: stats["errors"].append(f"bad body for frame {i}")
                    stats["latency"].append(1e3 * dt); stats["frame_latency"].append(1e3 * (time.perf_counter() - t_frame))
                    stats["proc"].append(body["processing_time_ms"]); stats["status"][body["status"]] = stats["status"].get(body["status"], 0) + 1
                answered = ok
                break
            with lock: stats["answered" if answered else "lost"] += 1


def run_level(url: str, videos: list[list[str]], clients: int, frames: int, budget: Budget) -> dict:
    "One concurrency level: `clients` threads, each streaming `frames` frames of its own session."
    stats = dict(latency=[], frame_latency=[], proc=[], busy=0, busy_ms=[], errors=[], answered=0, lost=0, status={})
    lock = threading.Lock()
    tag = f"load{clients}-{time.monotonic_ns()}"
    threads = [threading.Thread(target=run_client, args=(url, videos[k % len(videos)][:frames], f"{tag}-{k}", budget, stats, lock)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.perf_counter() - t0
    q = lambda xs, p: float(np.percentile(xs, p)) if xs else float("nan")
    return dict(clients=clients, frames=clients * frames, answered=stats["answered"], lost=stats["lost"], wall_s=wall,
                throughput_fps=stats["answered"] / wall, p50_ms=q(stats["latency"], 50), p95_ms=q(stats["latency"], 95), p99_ms=q(stats["latency"], 99),
                frame_p50_ms=q(stats["frame_latency"], 50), frame_p95_ms=q(stats["frame_latency"], 95),
                proc_p50_ms=q(stats["proc"], 50), n_503=stats["busy"], busy_p95_ms=q(stats["busy_ms"], 95),
                errors=len(stats["errors"]), error_samples=stats["errors"][:3], status=stats["status"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running service on loopback (default: start one on a free port)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels")
    p.add_argument("--frames", type=int, default=20, help="frames per client per level (<= 90)")
    p.add_argument("--max-requests", type=int, default=5000, help="total requests, retries included, over all levels")
    p.add_argument("--max-seconds", type=float, default=600, help="total time limit")
    p.add_argument("--mesh", action=argparse.BooleanOptionalAction, default=True, help="server started here: pose the body mesh")
    p.add_argument("--max-concurrent", type=int, default=None, help="server started here: POSEBENCH_MAX_CONCURRENT")
    p.add_argument("--queue-size", type=int, default=None, help="server started here: POSEBENCH_QUEUE_SIZE")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    a = p.parse_args(argv)
    if a.url and not _loopback(a.url): p.error(f"{a.url}: this load test only talks to loopback addresses (127.0.0.1, ::1, localhost)")
    if not 1 <= a.frames <= 90: p.error("--frames must be in 1..90 (the rendered walk has 90 frames)")
    import httpx
    from posebench.service import ServerProcess, ServiceConfig
    videos = load_frames(a.frames)
    budget = Budget(a.max_requests, time.monotonic() + a.max_seconds)
    srv = None
    if a.url: url = a.url.rstrip("/")
    else:
        cfg = ServiceConfig.from_env(mesh=a.mesh, max_concurrent=a.max_concurrent, queue_size=a.queue_size)
        srv = ServerProcess(cfg, log=Path("/tmp") / f"posebench-loadtest-{int(time.time())}.log").start()
        url = srv.url
    try:
        cfg_seen = httpx.get(url + "/metrics").json()
        # warm up: the first frames of a process pay for lazy imports and allocations
        run_level(url, videos, 1, min(3, a.frames), Budget(10, time.monotonic() + 60))
        rows = [run_level(url, videos, c, a.frames, budget) for c in a.clients]
        metrics = httpx.get(url + "/metrics").json()
    finally:
        if srv is not None: srv.stop()
    print(f"pose service load test: {url}, max_concurrent {cfg_seen['max_concurrent']}, queue_size {cfg_seen['queue_size']}, "
          f"{a.frames} frames per client, mesh {'on' if a.mesh else 'off'}")
    hdr = f"{'clients':>7} {'frames':>6} {'answered':>8} {'lost':>4} {'fps':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'frame p95':>9} {'proc p50':>8} {'503s':>5} {'errors':>6}"
    print(hdr)
    for r in rows:
        print(f"{r['clients']:>7} {r['frames']:>6} {r['answered']:>8} {r['lost']:>4} {r['throughput_fps']:>6.1f} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} "
              f"{r['p99_ms']:>7.0f} {r['frame_p95_ms']:>9.0f} {r['proc_p50_ms']:>8.0f} {r['n_503']:>5} {r['errors']:>6}")
    base = next((r for r in rows if r["clients"] == 1), None)
    four = next((r for r in rows if r["clients"] == 4), None)
    if base and four: print(f"p95 at 4 clients / p95 at 1 client: {four['p95_ms'] / base['p95_ms']:.2f} (goal < 2)")
    print(f"server metrics: requests {metrics['requests']}, latency {metrics['latency_ms']}, sessions {metrics['sessions']}")
    if a.out: a.out.write_text(json.dumps(dict(rows=rows, server_metrics=metrics), indent=1))
    bad = sum(r["errors"] + r["lost"] for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
