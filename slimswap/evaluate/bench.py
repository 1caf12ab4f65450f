"""`slimswap bench`: how fast every available swapper is on this machine, measured one way.

For each model and backend (the classic swapper; every models/MANIFEST entry whose file is
present: torch on CPU, torch on CUDA in fp16/bf16 with optional torch.compile and CUDA
graphs, ONNX Runtime) it measures:
- swap-model latency per call at batch 1 and at a large batch (p50/p95 over many repeats,
  warm-up excluded; CUDA timed with events), so throughput = batch / p50;
- model load time in this process, and cold start: a fresh `slimswap swap` process from its
  start to the first swapped frame written (one image), timed from outside;
- end to end video (decode -> encode through `pipeline.swap_video`) with the per-stage
  seconds, in a fresh child process per model so its peak RSS (and GPU memory) is its own.
Results go to JSON, markdown and PNG charts via evaluate/report.py.

    bench.py         the rows (variants), timing, the swap-model rows, the result
    bench_e2e.py     end to end and cold start, each in a fresh process
    bench_report.py  markdown and charts
    bench_run.py     the run: every row through all of them (`run_bench`)
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slimswap.errors import UserError
from slimswap.face.align import align, transform_points
from slimswap.paths import EXAMPLES_DIR
from slimswap.swap.base import SourceIdentity, Swapper
from slimswap.swap.registry import SWAP_MODES, ModelEntry, load_swapper, read_manifest, resolve_mode

STAGES = ("decode", "detect", "landmarks", "align", "swap", "paste", "encode")
BUNDLED_CLIP = EXAMPLES_DIR / "clip.mp4"
DEFAULT_SOURCE = EXAMPLES_DIR / "grace_hopper.jpg"
SHARED_VIDEO = "videos/liveportrait_driving_d12.mp4"  # 512x512 talking head, not the clip's d10
MIN_REPEATS = 3


@dataclass
class BenchConfig:
    modes: tuple[str, ...] = ()  # empty: every available mode
    device: str = "cpu"
    quick: bool = False
    videos: tuple[Path, ...] = ()  # besides the bundled clip; empty: a ../shared video (full runs)
    out: Path = Path("benchmarks/bench")
    batch: int = 0  # the large batch; 0: 64 (quick: 8)
    max_frames: int = 0  # cut every video to its first N frames; 0: whole video
    compile: bool = True  # CUDA torch models: also torch.compile and CUDA-graph variants
    cold_start: bool = True
    source: Path = DEFAULT_SOURCE
    video_batch: int = 16  # frames per swapper call in the video pipeline (SwapOptions.batch_size)

    @property
    def large_batch(self) -> int:
        return self.batch or (8 if self.quick else 64)

    @property
    def plan(self) -> dict:
        """Repeat counts; time budgets stop slow CPU variants early (never below MIN_REPEATS)."""
        if self.quick:
            return {
                "warmup": 1,
                "repeats_1": 10,
                "budget_1": 2.0,
                "repeats_b": 3,
                "budget_b": 3.0,
                "loads": 1,
                "cold_runs": 1,
                "crop_frames": 4,
            }
        return {
            "warmup": 3,
            "repeats_1": 100,
            "budget_1": 20.0,
            "repeats_b": 20,
            "budget_b": 30.0,
            "loads": 3,
            "cold_runs": 3,
            "crop_frames": 16,
        }

    def check(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise UserError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UserError(
                    "--device cuda was asked for but no CUDA GPU is available; use --device cpu"
                )
        bad = [m for m in self.modes if m not in SWAP_MODES]
        if bad:
            raise UserError(f"unknown --mode {bad[0]!r}; choose from {', '.join(SWAP_MODES)}")
        if self.batch < 0 or self.max_frames < 0:
            raise UserError("--batch and --max-frames must be 0 (default) or positive")
        for p in (self.source, *self.videos):
            if not Path(p).is_file():
                raise UserError(f"file not found: {p}")


@dataclass(frozen=True)
class Variant:
    """One way of running one model: a row of the benchmark table."""

    name: str
    mode: str
    backend: str  # numpy | torch | onnx
    device: str
    precision: str  # fp32 | fp16 | bf16 | what the exported file holds
    compile: str = "none"  # none | compile | cudagraphs
    entry: str = ""  # models/MANIFEST name; "" for classic

    def load(self) -> Swapper:
        """The swapper this row measures, built (and hash-checked) by registry.load_swapper."""
        if self.backend == "numpy":
            return load_swapper("classic", "cpu")
        precision = self.precision if self.backend == "torch" else "auto"
        return load_swapper(self.entry, self.device, precision, self.compile)


# ----------------------------------------------------------------------------- which rows


def _onnx_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def variants(cfg: BenchConfig) -> list[Variant]:
    """Every model/backend combination available here, filtered by --mode."""
    wanted = {resolve_mode(m, cfg.device) for m in cfg.modes}
    out: list[Variant] = []
    if not wanted or "classic" in wanted:
        out.append(Variant("classic", "classic", "numpy", "cpu", "fp32"))
    for e in read_manifest():
        if (wanted and e.mode not in wanted) or not e.path.is_file():
            continue
        if e.backend == "onnx":
            out.append(
                Variant(f"{e.name} onnx cpu", e.mode, "onnx", "cpu", e.precision, entry=e.name)
            )
            if cfg.device == "cuda" and _onnx_has_cuda():
                out.append(
                    Variant(
                        f"{e.name} onnx cuda", e.mode, "onnx", "cuda", e.precision, entry=e.name
                    )
                )
        elif cfg.device == "cpu":
            out.append(
                Variant(f"{e.name} torch cpu fp32", e.mode, "torch", "cpu", "fp32", entry=e.name)
            )
        else:
            combos = [("fp16", "none"), ("bf16", "none")]
            if cfg.compile:
                combos += [("fp16", "compile"), ("fp16", "cudagraphs")]
            for p, c in combos:
                label = f"{e.name} torch cuda {p}" + ("" if c == "none" else f" {c}")
                out.append(Variant(label, e.mode, "torch", "cuda", p, c, e.name))
    missing = wanted - {v.mode for v in out}
    if missing:
        raise UserError(
            f"no {', '.join(sorted(missing))} model file is present (see `slimswap models`); "
            "bench what exists with --mode classic"
        )
    return out


def _entry(name: str) -> ModelEntry:
    return next(e for e in read_manifest() if e.name == name)


# ----------------------------------------------------------------------------- timing


def time_calls(fn, warmup: int, repeats: int, budget_s: float, cuda: bool) -> np.ndarray:
    """Seconds per call after `warmup` untimed calls; stops at `repeats` or after budget_s."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (
        len(times) < MIN_REPEATS or time.perf_counter() - start < budget_s
    ):
        if cuda:
            import torch

            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            begin.record()
            fn()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1000.0)
        else:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return np.asarray(times)


def percentiles_ms(seconds: np.ndarray) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    p50, p95 = np.percentile(np.asarray(seconds) * 1000.0, [50, 95])
    return float(p50), float(p95)


def peak_rss_mib() -> float:
    """This process's peak resident set so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_measured(cmd: list[str], timeout_s: float = 900.0) -> tuple[float, int, float, str, str]:
    """Run a command; (wall seconds, exit code, peak RSS MiB of that child, stdout, stderr).

    os.wait4 gives the child's own rusage; RUSAGE_CHILDREN would mix all children.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout_s:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise UserError(
                    f"benchmark child timed out after {timeout_s:.0f}s: {' '.join(cmd)}"
                )
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            wall,
            proc.returncode,
            usage.ru_maxrss / 1024.0,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


# ----------------------------------------------------------------------------- inputs


class BenchInputs:
    """Real inputs for the latency runs: faces of the bundled clip and the source identity."""

    def __init__(self, source: Path, video: Path, n_frames: int) -> None:
        from slimswap import media
        from slimswap.face.analyser import FaceAnalyser
        from slimswap.pipeline import load_source_identity

        self.analyser = FaceAnalyser()
        self._load_identity = load_source_identity
        self.source = source
        frames = next(media.read_frames(video, n_frames))
        self.frames_faces = [(f, faces[0]) for f in frames if (faces := self.analyser.detect(f))]
        if not self.frames_faces:
            raise UserError(f"no face found in the first {n_frames} frames of {video}")
        self._identity: dict[int, SourceIdentity] = {}

    def identity(self, resolution: int) -> SourceIdentity:
        if resolution not in self._identity:
            self._identity[resolution] = self._load_identity(self.source, self.analyser, resolution)
        return self._identity[resolution]

    def crops(self, resolution: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n aligned crops (the clip's faces, repeated) and their landmarks in crop pixels."""
        crops, lms = [], []
        for k in range(n):
            frame, face = self.frames_faces[k % len(self.frames_faces)]
            crop, affine = align(frame, face.kps, resolution)
            crops.append(crop)
            lms.append(transform_points(face.landmarks, affine).astype(np.float32))
        return np.stack(crops), np.stack(lms)


# ----------------------------------------------------------------------------- swap model


def bench_model(v: Variant, cfg: BenchConfig, inputs: BenchInputs) -> dict:
    """Load time, batch-1 latency and large-batch throughput of one variant, in this process."""
    plan = cfg.plan
    cuda = v.device == "cuda" and v.backend != "numpy"
    loads = []
    for _ in range(plan["loads"]):
        t = time.perf_counter()
        swapper = v.load()
        loads.append(time.perf_counter() - t)
    identity = inputs.identity(swapper.resolution)
    batch = cfg.large_batch
    crops, lms = inputs.crops(swapper.resolution, batch)
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()

    def call(n: int):
        return lambda: swapper.swap(crops[:n], identity, target_landmarks=lms[:n])

    row: dict = {k: v2 for k, v2 in asdict(v).items()}
    row.update(resolution=swapper.resolution, load_s=float(np.median(loads)), load_first_s=loads[0])
    if v.entry:
        e = _entry(v.entry)
        row.update(params=e.params, file_mib=e.path.stat().st_size / 2**20)
    for n, key, reps, budget in (
        (1, "b1", plan["repeats_1"], plan["budget_1"]),
        (batch, "batch", plan["repeats_b"], plan["budget_b"]),
    ):
        t = time.perf_counter()
        call(n)()  # first call: lazy init, compilation, CUDA-graph capture
        row[f"{key}_first_call_s"] = time.perf_counter() - t
        times = time_calls(call(n), plan["warmup"], reps, budget, cuda)
        p50, p95 = percentiles_ms(times)
        row[f"{key}_p50_ms"], row[f"{key}_p95_ms"], row[f"{key}_repeats"] = p50, p95, len(times)
    row["batch"] = batch
    row["batch_ms_per_face"] = row["batch_p50_ms"] / batch
    row["throughput_faces_s"] = 1000.0 * batch / row["batch_p50_ms"]
    row["throughput_b1_faces_s"] = 1000.0 / row["b1_p50_ms"]
    row["process_peak_rss_mib"] = peak_rss_mib()
    if cuda:
        import torch

        row["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


# ----------------------------------------------------------------------------- the run


@dataclass
class BenchResult:
    environment: dict
    command: str
    config: dict
    models: list[dict] = field(default_factory=list)
    cold_start: list[dict] = field(default_factory=list)
