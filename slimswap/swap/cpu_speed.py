"""Which exported file of a mode runs fastest on this CPU, measured once and remembered.

The fastest precision is a property of the CPU, not of the model: ONNX Runtime's fp16 kernels
pay off where the CPU has fp16 arithmetic (ARM64, AVX512-FP16) and lose where it converts to
fp32 and back. On both CPUs this project has measured, fp32 wins: the Xeon with AVX-512 and
AMX, and the AVX2-only EPYC (lite, 2 threads: 32 / 24 / 45 ms a face at 1 / 4 / 16 faces a
call against fp16's 102 / 90 / 126; benchmarks/RESULTS.md, session 5, which also corrects
session 4's reading of the opposite). So instead of a fixed order, `fastest` times each
candidate file on a few 1-face calls the first time a machine needs the choice and keeps the
timings in a small JSON cache keyed by the CPU, ONNX Runtime's version, the thread count and
each file's hash: about 2 s, once.

Only files that reproduce the model closely compete (fp32 and fp16); INT8 stays the choice
of an explicit `--precision int8` (34 dB face PSNR against fp32, benchmarks/RESULTS.md). A
file within `TIE` of the fastest loses to the more exact one. `SLIMSWAP_ONNX_PRECISION`
pins the choice (e.g. for output identical across machines); `SLIMSWAP_CACHE` moves the cache.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from slimswap.files import atomic_write

log = logging.getLogger(__name__)

EXACT = ("fp32", "fp16")  # the order also breaks ties: fp32 is the more exact
TIE = 0.05  # a file must be 5 % faster to win over a more exact one
RUNS = 3  # timed 1-face calls per file, after one warm-up call


def cache_path() -> Path:
    root = os.environ.get("SLIMSWAP_CACHE") or Path.home() / ".cache" / "slimswap"
    return Path(root) / "cpu_speed.json"


def cpu_signature() -> str:
    """The CPU as the speed of a file depends on it: model name, vector features, cores."""
    from slimswap.evaluate.report import cpu_features, cpu_name

    flags = " ".join(f for f, on in cpu_features().items() if on)
    return f"{cpu_name()} [{flags}] x{os.cpu_count()}"


def time_onnx_file(path: Path, threads: int | None) -> float:
    """Median ms of a 1-face call of an ONNX generator on the CPU (random inputs), in a
    session set up as the swapper's (`compress.export.session`)."""
    from slimswap.compress.export import session as cpu_session

    session = cpu_session(path, threads)
    rng = np.random.default_rng(0)
    feed = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        dtype = np.float16 if "float16" in inp.type else np.float32
        feed[inp.name] = rng.standard_normal(shape).astype(dtype)
    session.run(None, feed)
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def fastest(
    candidates: Sequence,
    threads: int | None = None,
    timer: Callable[[Path, int | None], float] = time_onnx_file,
):
    """The candidate entry (ModelEntry-like: .precision, .path, .sha256, .name) to run on
    this CPU: the pinned precision if SLIMSWAP_ONNX_PRECISION names one, else the fastest
    of the exact files by (cached) measurement; None when none of them is exact."""
    exact = sorted(
        (e for e in candidates if e.precision in EXACT), key=lambda e: EXACT.index(e.precision)
    )
    pinned = os.environ.get("SLIMSWAP_ONNX_PRECISION", "")
    if pinned:
        chosen = [e for e in candidates if e.precision == pinned]
        if chosen:
            return chosen[0]
        log.warning("SLIMSWAP_ONNX_PRECISION=%s: no such file listed; measuring instead", pinned)
    if len(exact) < 2:
        return exact[0] if exact else None
    from importlib.metadata import version

    key = f"{cpu_signature()} | onnxruntime {version('onnxruntime')} | threads {threads or 0}"
    path = cache_path()
    cache = _load_cache(path)
    known = dict(cache.get(key, {}))
    ms = {}
    for e in exact:
        tag = e.sha256[:16] or e.name
        if tag not in known:
            log.info("timing %s once on this CPU (cached in %s)", e.name, path)
            known[tag] = round(timer(e.path, threads), 3)
        ms[e.name] = known[tag]
    if known != cache.get(key):
        cache[key] = known
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as tmp:
                tmp.write_text(json.dumps(cache, indent=1) + "\n")
        except OSError as exc:  # a read-only home still gets the measured choice
            log.info("could not cache CPU timings in %s: %s", path, exc)
    best = min(ms.values())
    return next(e for e in exact if ms[e.name] <= best * (1 + TIE))
