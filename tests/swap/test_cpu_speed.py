"""The CPU picks its exported file by a measurement on the machine, made once and cached."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from slimswap.swap import cpu_speed


@dataclass
class Entry:
    name: str
    precision: str
    path: Path
    sha256: str


FILES = [
    Entry("m_fp32", "fp32", Path("m_fp32.onnx"), "a" * 64),
    Entry("m_fp16", "fp16", Path("m_fp16.onnx"), "b" * 64),
    Entry("m_int8", "int8", Path("m_int8.onnx"), "c" * 64),
]


class Timer:
    def __init__(self, ms: dict[str, float]) -> None:
        self.ms, self.calls = ms, []

    def __call__(self, path: Path, threads: int | None) -> float:
        self.calls.append((path.stem, threads))
        return self.ms[path.stem]


@pytest.fixture(autouse=True)
def measured(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIMSWAP_ONNX_PRECISION", raising=False)
    monkeypatch.setenv("SLIMSWAP_CACHE", str(tmp_path))


def test_the_faster_exact_file_wins_and_int8_never_does():
    timer = Timer({"m_fp32": 200.0, "m_fp16": 125.0, "m_int8": 50.0})
    assert cpu_speed.fastest(FILES, 2, timer).name == "m_fp16"
    assert sorted(timer.calls) == [("m_fp16", 2), ("m_fp32", 2)]  # INT8 is not even timed
    timer = Timer({"m_fp32": 100.0, "m_fp16": 97.0})  # within 5 %: the more exact file
    assert cpu_speed.fastest(FILES, 1, timer).name == "m_fp32"


def test_a_measurement_is_made_once_per_cpu_threads_and_file():
    timer = Timer({"m_fp32": 120.0, "m_fp16": 180.0})
    assert cpu_speed.fastest(FILES, 2, timer).name == "m_fp32"
    assert cpu_speed.fastest(FILES, 2, timer).name == "m_fp32"
    assert len(timer.calls) == 2  # the second call read the cache
    cpu_speed.fastest(FILES, 1, timer)  # other thread count: measured again
    assert len(timer.calls) == 4
    changed = [FILES[0], Entry("m_fp16", "fp16", Path("m_fp16.onnx"), "d" * 64)]
    cpu_speed.fastest(changed, 2, timer)  # a re-exported file: only it is timed again
    assert timer.calls[-1] == ("m_fp16", 2) and len(timer.calls) == 5
    cache = json.loads(cpu_speed.cache_path().read_text())
    (key,) = [k for k in cache if k.endswith("threads 2")]
    assert cpu_speed.cpu_signature() in key and set(cache[key]) == {"a" * 16, "b" * 16, "d" * 16}


def test_a_pinned_precision_and_a_damaged_cache(monkeypatch):
    timer = Timer({"m_fp32": 120.0, "m_fp16": 60.0})
    monkeypatch.setenv("SLIMSWAP_ONNX_PRECISION", "fp32")
    assert cpu_speed.fastest(FILES, 2, timer).name == "m_fp32" and not timer.calls
    monkeypatch.delenv("SLIMSWAP_ONNX_PRECISION")
    cpu_speed.cache_path().write_text("{not json")
    assert cpu_speed.fastest(FILES, 2, timer).name == "m_fp16"  # measured afresh, rewritten
    assert json.loads(cpu_speed.cache_path().read_text())


def test_the_registry_runs_the_file_measured_fastest_here():
    """On this machine, for real: the lite files are timed and the registry's CPU choice is
    the fastest exact one by those timings (fp32 on both CPUs measured so far)."""
    from slimswap.swap.registry import pick_entry, read_manifest

    lite = [e for e in read_manifest() if e.mode == "lite" and e.backend == "onnx"]
    if len([e for e in lite if e.precision in cpu_speed.EXACT]) < 2:
        pytest.skip("fewer than two exact lite files listed")
    chosen = pick_entry("lite", "cpu", threads=1)
    (timings,) = [v for k, v in json.loads(cpu_speed.cache_path().read_text()).items()]
    ms = {e.precision: timings[e.sha256[:16]] for e in lite if e.precision in cpu_speed.EXACT}
    assert all(t > 0 for t in ms.values())
    assert ms[chosen.precision] <= min(ms.values()) * (1 + cpu_speed.TIE)
    assert chosen.precision in cpu_speed.EXACT
