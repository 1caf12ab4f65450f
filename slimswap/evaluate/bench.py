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
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np

from slimswap.errors import UserError
from slimswap.evaluate import report
from slimswap.face.align import align, transform_points
from slimswap.paths import EXAMPLES_DIR, shared_data_dir
from slimswap.swap.base import SourceIdentity, Swapper
from slimswap.swap.registry import SWAP_MODES, ModelEntry, load_swapper, read_manifest, resolve_mode

if TYPE_CHECKING:
    from slimswap.face.analyser import FaceAnalyser

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


# ----------------------------------------------------------------------------- end to end


def trim_video(src: Path, dst: Path, max_frames: int) -> Path:
    """The first max_frames frames of src as a new video (no audio), for quick runs."""
    from slimswap import media

    info = media.probe_video(src)
    written = 0
    with media.VideoWriter(dst, info, None) as writer:
        for batch in media.read_frames(src, 16):
            batch = batch[: max_frames - written]
            writer.write(batch)
            written += len(batch)
            if written >= max_frames:
                break
    return dst


class GpuUtilSampler:
    """Mean GPU utilisation (%) while a job runs: NVML through torch, else nvidia-smi."""

    def __init__(self, period_s: float = 0.1) -> None:
        self.period_s = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            import torch

            return float(torch.cuda.utilization())
        except (ImportError, RuntimeError):  # no pynvml: ask nvidia-smi
            try:
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        "--query-gpu=utilization.gpu",
                        "--format=csv,noheader,nounits",
                        "-i",
                        "0",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                )
                return float(out.stdout.strip().splitlines()[0])
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return None

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            value = self._read()
            if value is None:
                return
            self.samples.append(value)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _warm(
    swapper: Swapper,
    identity: SourceIdentity,
    video: Path,
    analyser: FaceAnalyser,
    v: Variant,
    batch: int,
) -> None:
    """Call the swapper on the batch sizes the pipeline will use (compiles, captures, allocates)."""
    from slimswap import media

    frame = next(media.read_frames(video, 1))[0]
    faces = analyser.detect(frame)
    if not faces:
        return
    crop, affine = align(frame, faces[0].kps, swapper.resolution)
    lm = transform_points(faces[0].landmarks, affine).astype(np.float32)
    sizes = (
        [1, batch]
        if v.compile == "none"
        else [2**k for k in range(batch.bit_length()) if 2**k <= batch]
    )
    for n in sizes:
        swapper.swap(
            np.repeat(crop[None], n, 0), identity, target_landmarks=np.repeat(lm[None], n, 0)
        )


def e2e_in_process(spec: dict) -> dict:
    """One video through `swap_video` with one variant; run by the child process."""
    from slimswap import media
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.pipeline import SwapOptions, load_source_identity, swap_video

    v = Variant(**spec["variant"])
    video, source, out = Path(spec["video"]), Path(spec["source"]), Path(spec["output"])
    batch = int(spec["video_batch"])
    cuda = v.device == "cuda" and v.backend != "numpy"
    analyser = FaceAnalyser()
    swapper = v.load()
    t = time.perf_counter()
    identity = load_source_identity(source, analyser, swapper.resolution)  # loads dlib's models too
    _warm(swapper, identity, video, analyser, v, batch)
    warmup_s = time.perf_counter() - t
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    options = SwapOptions(overwrite=True, batch_size=batch)
    if cuda:
        with GpuUtilSampler() as sampler:
            rep = swap_video(source, video, out, swapper, options, analyser)
    else:
        rep = swap_video(source, video, out, swapper, options, analyser)
    info = media.probe_video(video)
    # the seven stages always (0 when unused), then any stage the pipeline added since
    stages = {
        s: rep.stage_seconds.get(s, 0.0)
        for s in [*STAGES, *sorted(set(rep.stage_seconds) - set(STAGES))]
    }
    staged = sum(stages.values())
    result = {
        "video": spec["video_name"],
        "width": info.width,
        "height": info.height,
        "frames": rep.frames,
        "frames_swapped": rep.frames_swapped,
        "seconds": rep.seconds,
        "fps": rep.fps,
        "fps_stages": rep.frames / staged if staged > 0 else 0.0,
        "stage_ms_per_frame": {s: 1000.0 * sec / max(rep.frames, 1) for s, sec in stages.items()},
        "other_ms_per_frame": 1000.0 * max(rep.seconds - staged, 0.0) / max(rep.frames, 1),
        "bottleneck": max(stages, key=stages.get),
        "warmup_s": warmup_s,
        "peak_rss_mib": peak_rss_mib(),
    }
    if cuda:
        import torch

        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        if sampler.samples:
            result["gpu_util_mean_pct"] = float(np.mean(sampler.samples))
    return result


def bench_video(v: Variant, video: Path, name: str, cfg: BenchConfig, tmp: Path) -> dict:
    """End to end in a fresh process, so peak memory and warm caches belong to this row only."""
    spec = {
        "variant": asdict(v),
        "video": str(video),
        "video_name": name,
        "source": str(cfg.source),
        "output": str(tmp / f"e2e_{abs(hash((v.name, name)))}.mp4"),
        "video_batch": cfg.video_batch,
    }
    cmd = [sys.executable, "-m", "slimswap.evaluate.bench", "e2e", json.dumps(spec)]
    _, rc, _, out, err = run_measured(cmd)
    if rc != 0:
        raise UserError(
            f"end-to-end run of {v.name} on {name} failed (exit {rc}): {err.strip()[-800:]}"
        )
    return json.loads(out.strip().splitlines()[-1])


def cold_start(mode: str, cfg: BenchConfig, frame_png: Path, tmp: Path) -> dict:
    """Wall time of `slimswap swap` on one frame in a fresh process (start to PNG written)."""
    out_png = tmp / f"cold_{mode}.png"
    cmd = [
        sys.executable,
        "-m",
        "slimswap.cli",
        "swap",
        "-s",
        str(cfg.source),
        "-t",
        str(frame_png),
        "-o",
        str(out_png),
        "--mode",
        mode,
        "--device",
        cfg.device,
        "--overwrite",
    ]
    walls, rss = [], []
    for _ in range(cfg.plan["cold_runs"]):
        wall, rc, peak, _, err = run_measured(cmd)
        if rc != 0:
            raise UserError(
                f"cold-start run `slimswap swap --mode {mode}` failed (exit {rc}): {err.strip()[-800:]}"
            )
        walls.append(wall)
        rss.append(peak)
    return {
        "mode": mode,
        "device": cfg.device,
        "seconds_p50": float(np.median(walls)),
        "seconds_min": min(walls),
        "runs": len(walls),
        "peak_rss_mib": max(rss),
    }


# ----------------------------------------------------------------------------- the run


def bench_videos(cfg: BenchConfig) -> list[tuple[str, Path]]:
    """The bundled clip, then --video files (or, in full runs, one ../shared talking head)."""
    videos = [("clip.mp4", BUNDLED_CLIP)]
    extra = list(cfg.videos)
    root = shared_data_dir()
    if not extra and not cfg.quick and root is not None and (root / SHARED_VIDEO).is_file():
        extra = [root / SHARED_VIDEO]
    return videos + [(Path(p).name, Path(p)) for p in extra]


@dataclass
class BenchResult:
    environment: dict
    command: str
    config: dict
    models: list[dict] = field(default_factory=list)
    cold_start: list[dict] = field(default_factory=list)


def run_bench(cfg: BenchConfig, command: str, progress=None) -> tuple[BenchResult, dict[str, Path]]:
    """Measure every variant and write JSON, markdown and charts into cfg.out."""
    say = progress or (lambda msg: None)
    cfg.check()
    rows = variants(cfg)
    videos = bench_videos(cfg)
    env = report.environment(cfg.device)
    conf = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    conf.update(plan=cfg.plan, large_batch=cfg.large_batch, videos=[str(p) for p in cfg.videos])
    result = BenchResult(env, command, conf)
    with tempfile.TemporaryDirectory(prefix="slimswap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if cfg.max_frames:
            videos = [
                (n, trim_video(p, tmp / f"trim_{i}.mp4", cfg.max_frames))
                for i, (n, p) in enumerate(videos)
            ]
        inputs = BenchInputs(cfg.source, BUNDLED_CLIP, cfg.plan["crop_frames"])
        for v in rows:
            say(f"swap model: {v.name}")
            row = bench_model(v, cfg, inputs)
            row["videos"] = []
            for name, path in videos:
                say(f"end to end: {v.name} on {name}")
                row["videos"].append(bench_video(v, path, name, cfg, tmp))
            result.models.append(row)
        if cfg.cold_start:
            from slimswap import media

            frame_png = tmp / "first_frame.png"
            media.write_image(frame_png, next(media.read_frames(BUNDLED_CLIP, 1))[0])
            for mode in dict.fromkeys(v.mode for v in rows):
                say(f"cold start: {mode}")
                result.cold_start.append(cold_start(mode, cfg, frame_png, tmp))
    return result, write_bench_report(result, cfg)


# ----------------------------------------------------------------------------- report


def _tag(cfg: BenchConfig) -> str:
    return f"bench-{cfg.device}" + ("-quick" if cfg.quick else "")


def stage_names(result: BenchResult) -> list[str]:
    """STAGES, then any extra stage some row reported, in first-seen order."""
    names = dict.fromkeys(STAGES)
    for m in result.models:
        for r in m["videos"]:
            names.update(dict.fromkeys(r["stage_ms_per_frame"]))
    return list(names)


def markdown(result: BenchResult) -> str:
    cuda = result.environment["device"] == "cuda"
    batch = result.config["large_batch"]
    head = [
        "model",
        "backend",
        "device",
        "precision",
        "compile",
        "load s",
        "1st call s",
        "b1 p50 ms",
        "b1 p95 ms",
        f"b{batch} ms/face",
        f"faces/s @b{batch}",
        "peak RSS MiB",
    ]
    rows = [
        [
            m["name"],
            m["backend"],
            m["device"],
            m["precision"],
            m["compile"],
            m["load_s"],
            m["b1_first_call_s"],
            m["b1_p50_ms"],
            m["b1_p95_ms"],
            m["batch_ms_per_face"],
            m["throughput_faces_s"],
            m["process_peak_rss_mib"],
        ]
        + ([m.get("cuda_max_allocated_mib", float("nan"))] if cuda else [])
        for m in result.models
    ]
    parts = [
        report.header("slimswap bench", result.environment, result.command),
        "## Swap model (per call, warm-up excluded)\n",
        report.markdown_table(head + (["GPU MiB"] if cuda else []), rows),
        (
            "\nLatency is one `Swapper.swap` call on real aligned faces of the bundled clip, uint8 in and out "
            "(host<->device copies included); p50/p95 over repeats after warm-up. peak RSS is this process's "
            "peak so far (cumulative over rows).\n"
        ),
        "## End to end video (decode -> encode, `pipeline.swap_video`, fresh process per row)\n",
    ]
    stages = stage_names(result)
    vhead = [
        "model",
        "video",
        "frames",
        "fps",
        "fps (stages)",
        *[f"{s} ms/f" for s in stages],
        "other ms/f",
        "bottleneck",
        "peak RSS MiB",
    ] + (["GPU MiB", "GPU util %"] if cuda else [])
    vrows = [
        [
            m["name"],
            r["video"],
            r["frames"],
            r["fps"],
            r["fps_stages"],
            *[r["stage_ms_per_frame"].get(s, 0.0) for s in stages],
            r["other_ms_per_frame"],
            r["bottleneck"],
            r["peak_rss_mib"],
        ]
        + (
            [
                r.get("cuda_max_allocated_mib", float("nan")),
                r.get("gpu_util_mean_pct", float("nan")),
            ]
            if cuda
            else []
        )
        for m in result.models
        for r in m["videos"]
    ]
    parts += [
        report.markdown_table(vhead, vrows),
        (
            "\nfps = frames / wall time of `swap_video` (includes the source photo's analysis, not model "
            "load or warm-up); fps (stages) = frames / sum of the timed stages; `other` = the rest "
            "(the source photo's analysis, face selection, tracking).\n"
        ),
    ]
    if result.cold_start:
        parts += [
            "## Cold start (fresh `slimswap swap` process on one 512x512 frame, start to PNG written)\n",
            report.markdown_table(
                ["mode", "device", "seconds p50", "seconds min", "runs", "peak RSS MiB"],
                [
                    [
                        c["mode"],
                        c["device"],
                        c["seconds_p50"],
                        c["seconds_min"],
                        c["runs"],
                        c["peak_rss_mib"],
                    ]
                    for c in result.cold_start
                ],
            ),
            "",
        ]
    return "\n".join(parts) + "\n"


def charts(result: BenchResult, path: Path, stages_path: Path) -> None:
    plt = report.pyplot()
    names = [m["name"] for m in result.models]
    e2e = [(f"{m['name']} / {r['video']}", r) for m in result.models for r in m["videos"]]
    fig, axes = plt.subplots(1, 3, figsize=(15, 2.0 + 0.45 * max(len(names), len(e2e))))
    report.bar_panel(
        axes[0],
        names,
        [m["b1_p50_ms"] for m in result.models],
        "latency, batch 1 (p50)",
        "ms per face",
    )
    report.bar_panel(
        axes[1],
        names,
        [m["throughput_faces_s"] for m in result.models],
        f"throughput, batch {result.config['large_batch']}",
        "faces / s",
    )
    report.bar_panel(
        axes[2], [k for k, _ in e2e], [r["fps"] for _, r in e2e], "end to end video", "frames / s"
    )
    fig.suptitle(f"slimswap bench: {report.device_label(result.environment)}", fontsize=10)
    fig.tight_layout()
    report.save_figure(fig, path)

    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.5 * len(e2e)))
    left = np.zeros(len(e2e))
    colours = plt.get_cmap("tab10").colors
    for i, s in enumerate([*stage_names(result), "other"]):
        vals = np.array(
            [
                r["stage_ms_per_frame"].get(s, 0.0) if s != "other" else r["other_ms_per_frame"]
                for _, r in e2e
            ]
        )
        ax.barh(range(len(e2e)), vals, left=left, label=s, color=colours[i % len(colours)])
        left += vals
    ax.set_yticks(range(len(e2e)), [k for k, _ in e2e])
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame")
    ax.set_title("where the time goes (end to end, per stage)")
    ax.legend(
        ncol=8,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if len(e2e) < 3 else -0.12),
    )
    report.save_figure(fig, stages_path)


def write_bench_report(result: BenchResult, cfg: BenchConfig) -> dict[str, Path]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = _tag(cfg)
    paths = {
        k: out / f"{tag}{suffix}"
        for k, suffix in (
            ("json", ".json"),
            ("md", ".md"),
            ("png", ".png"),
            ("stages_png", "-stages.png"),
        )
    }
    report.write_json(paths["json"], result)
    report.write_text(
        paths["md"],
        markdown(result)
        + f"\n![bench]({paths['png'].name})\n\n![stages]({paths['stages_png'].name})\n",
    )
    charts(result, paths["png"], paths["stages_png"])
    return paths


def _child_main(argv: list[str]) -> int:
    """`python -m slimswap.evaluate.bench e2e SPEC_JSON`: one end-to-end run, JSON on stdout."""
    if len(argv) != 2 or argv[0] != "e2e":
        print("usage: python -m slimswap.evaluate.bench e2e SPEC_JSON", file=sys.stderr)
        return 2
    try:
        result = e2e_in_process(json.loads(argv[1]))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.jsonable(result)))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
