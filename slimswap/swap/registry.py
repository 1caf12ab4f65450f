"""The only way to build a swapper: `load_swapper`, over a plain table and models/MANIFEST.

models/MANIFEST is JSON: {"models": [{name, file, sha256, mode, backend, resolution,
precision, template, normalisation, params, macs, bytes, provenance, metrics}]}. Each entry
becomes a typed `ModelEntry`, and loading uses and checks what it says: the full sha256
before the weights are read, the alignment template (the pipeline's crops must be the ones
the model was trained on), the pixel normalisation (fed to the backend), the resolution and
the stored precision (compared with the file itself). A manifest that disagrees with its
files is a UserError naming both, never a silently wrong swap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slimswap.errors import UserError
from slimswap.files import atomic_write, verify_sha256
from slimswap.paths import models_dir
from slimswap.swap.base import Swapper

SWAP_MODES = ("auto", "quality", "lite", "classic")
BACKENDS = ("torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")
# which exported file a device prefers when several of one mode are listed. On a CPU the
# exact files (fp32, fp16) are timed once on the machine (swap/cpu_speed.py): fp32 is the
# faster on both CPUs measured (Xeon AVX-512/AMX, AVX2-only EPYC); fp16 can win only where
# the CPU computes in fp16. INT8 is never the automatic choice: less exact (34 dB face PSNR) and, with the v2 lite
# graph's float norms, AdaIN and attention between its Q/DQ pairs, slower than fp32 on the
# Xeon (27.8 vs 18.6 ms per 256 px face, benchmarks/RESULTS.md); it stays for `--precision
# int8` (the smallest file). This order ranks what the measurement does not decide.
ONNX_ORDER = {"cpu": ("fp32", "fp16", "int8"), "cuda": ("fp16", "fp32", "int8")}
REQUIRED = (
    "name",
    "file",
    "sha256",
    "mode",
    "backend",
    "resolution",
    "precision",
    "template",
    "normalisation",
)


@dataclass(frozen=True)
class ModelEntry:
    """One released model as models/MANIFEST lists it.

    precision: what the file holds (torch: the stored weight dtype, computed in fp32/fp16/bf16
    as asked; ONNX: fp32, fp16 or int8, run as exported). template / normalisation: the
    alignment the crops need and how pixels become model input; both are checked on load.
    """

    name: str
    file: str
    sha256: str
    mode: str  # quality | lite
    backend: str  # torch | onnx
    resolution: int
    precision: str
    template: str
    normalisation: str
    params: int = 0
    macs: int = 0
    bytes: int = 0
    # Set only when the model met its release targets on the native-size evaluation
    # (`slimswap eval swapper`); `--mode auto` picks no other learned model.
    auto: bool = False
    provenance: dict = field(default_factory=dict, compare=False)
    metrics: dict = field(default_factory=dict, compare=False)
    folder: Path = field(default_factory=models_dir, compare=False)

    @property
    def path(self) -> Path:
        return self.folder / self.file

    @classmethod
    def from_json(cls, data: dict, folder: Path) -> ModelEntry:
        missing = [k for k in REQUIRED if k not in data]
        name = data.get("name", "?")
        if missing:
            raise UserError(
                f"models/MANIFEST entry {name!r} lacks {', '.join(missing)}; "
                "restore the manifest with git or re-release the model"
            )
        if data["backend"] not in BACKENDS:
            raise UserError(
                f"models/MANIFEST entry {name!r} has unknown backend {data['backend']!r}"
            )
        known = {f for f in cls.__dataclass_fields__ if f != "folder"}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("resolution", "params", "macs", "bytes"):
            values[key] = int(values.get(key) or 0)
        return cls(**values, folder=Path(folder))

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "folder"}

    def normalisation_spec(self):
        """The backend's `Normalisation` for this model, or UserError if this code lacks it."""
        from slimswap.swap.neural import NORMALISATIONS

        key = self.normalisation.split(";")[0].strip()
        if key not in NORMALISATIONS:
            raise UserError(
                f"model {self.name} expects input {key!r}, which this slimswap cannot feed "
                f"(known: {', '.join(NORMALISATIONS)}); update slimswap"
            )
        return NORMALISATIONS[key]

    def check_template(self) -> None:
        from slimswap.face.align import TEMPLATE_NAME

        if self.template != TEMPLATE_NAME:
            raise UserError(
                f"model {self.name} was trained on crops aligned to {self.template!r}; this "
                f"slimswap aligns to {TEMPLATE_NAME!r}; update slimswap"
            )


def manifest_path() -> Path:
    return models_dir() / "MANIFEST"


def read_manifest() -> list[ModelEntry]:
    """The swap models listed in models/MANIFEST.

    The manifest also lists the face-analysis nets (mode "analysis", read by
    slimswap.face.detect_mediapipe) and the evaluation-only recognizer (mode "evaluation",
    read by slimswap.evaluate.recognition); they are left out here, so nothing that
    enumerates swappers (modes, bench, UI) ever takes them for one.
    """
    path = manifest_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path} is not valid JSON ({exc}); restore it with `git checkout -- {path}`"
        ) from None
    swap_modes = set(SWAP_MODES) - {"auto", "classic"}
    entries = [e for e in data.get("models", []) if e.get("mode") in swap_modes]
    return [ModelEntry.from_json(e, path.parent) for e in entries]


def _raw_manifest() -> dict:
    """models/MANIFEST as plain JSON (an empty one where there is none), for writing."""
    path = manifest_path()
    return json.loads(path.read_text()) if path.is_file() else {"models": []}


def _write_manifest(data: dict) -> None:
    with atomic_write(manifest_path()) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_manifest_entry(entry: dict) -> None:
    """Add or replace one model entry (by name), keeping the others."""
    data = _raw_manifest()
    data["models"] = [e for e in data["models"] if e["name"] != entry["name"]] + [entry]
    _write_manifest(data)


def update_manifest_entry(name: str, **fields) -> None:
    """Set fields of one listed entry in place (e.g. `auto`), keeping the order of entries."""
    data = _raw_manifest()
    found = [e for e in data["models"] if e["name"] == name]
    if not found:
        raise UserError(f"{name!r} is not listed in {manifest_path()}")
    found[0].update(fields)
    _write_manifest(data)


def write_manifest_section(key: str, value: object) -> None:
    """Set one top-level section of the manifest other than "models" (e.g. the compression
    summary), keeping everything else; written atomically."""
    if key == "models":
        raise ValueError("model entries are written one at a time by write_manifest_entry")
    data = _raw_manifest()
    data[key] = value
    _write_manifest(data)


def remove_manifest_entries(names: list[str]) -> list[str]:
    """Drop the entries with these names (others kept, written atomically); returns the
    names that were listed."""
    if not manifest_path().is_file():
        return []
    data = _raw_manifest()
    removed = [e["name"] for e in data["models"] if e["name"] in names]
    data["models"] = [e for e in data["models"] if e["name"] not in names]
    _write_manifest(data)
    return removed


def available_modes() -> list[str]:
    """Learned modes with a model file present."""
    return sorted({e.mode for e in read_manifest() if e.path.is_file()})


# What `--mode auto` means, said once: the help of every --mode, `slimswap models` and the web
# UI's model choice read it from here.
AUTO_ORDER = ("lite", "quality")  # of the learned modes that cleared their targets, the first
AUTO_RULE = "the learned model whose evaluation cleared its targets, else classic"
AUTO_RULE_LIVE = "live on a CPU: lite where installed"
WHY_CLEARED = "the learned model whose evaluation cleared its targets"
WHY_LIVE_CPU = "live video on a CPU needs the fast model: quality cannot keep a camera's pace"
WHY_CLASSIC = (
    "no learned model has cleared its evaluation targets; the landmark warp needs no weights"
)


@dataclass(frozen=True)
class AutoChoice:
    """What `--mode auto` runs on a device, and why (see auto_choice)."""

    device: str
    mode: str  # quality | lite | classic
    model: str  # the listed model that runs (pick_entry), or "landmark warp" for classic
    reason: str
    live: bool = False

    def line(self) -> str:
        """e.g. `auto on this machine (cpu): quality (teacher_256_fp32) - <reason>`."""
        where = f"auto{' in live mode' if self.live else ''} on this machine ({self.device})"
        return f"{where}: {self.mode} ({self.model}) - {self.reason}"


def _auto(device: str, live: bool) -> tuple[str, str]:
    """(mode, reason) of `auto`: the one place it is decided."""
    if live and device == "cpu" and "lite" in available_modes():
        return "lite", WHY_LIVE_CPU
    ready = {e.mode for e in read_manifest() if e.auto and e.path.is_file()}
    for m in AUTO_ORDER:
        if m in ready:
            return m, WHY_CLEARED
    return "classic", WHY_CLASSIC


def resolve_mode(mode: str, device: str, live: bool = False) -> str:
    """`auto`: lite, else quality, where a model of that mode met its release targets on the
    native-size evaluation (MANIFEST `"auto": true`); otherwise classic, the landmark warp,
    which needs no weights and never falls below what the evaluation measured for it.

    live: for a live loop, where `auto` on a CPU means lite whenever a lite model is
    installed: quality (the evaluation's choice) takes ~140 ms per face on a 2-core CPU and
    cannot keep a camera's pace; live video needs the fast model first.
    """
    if mode not in SWAP_MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(SWAP_MODES)}")
    if mode != "auto":
        return mode
    return _auto(device, live)[0]


def auto_choice(device: str = "cpu", live: bool = False) -> AutoChoice:
    """What `--mode auto` resolves to on `device` (for a live loop with `live`), the listed
    model it then runs and why: what `slimswap models` prints and the web UI shows."""
    mode, reason = _auto(device, live)
    model = "landmark warp" if mode == "classic" else pick_entry(mode, device).name
    return AutoChoice(device, mode, model, reason, live)


def runs_at(entry: ModelEntry, precision: str) -> bool:
    """Whether the entry can run at a requested precision (ONNX files run as exported)."""
    if precision == "auto":
        return True
    return (
        precision in TORCH_PRECISIONS if entry.backend == "torch" else entry.precision == precision
    )


def pick_entry(
    mode: str, device: str, precision: str = "auto", threads: int | None = None
) -> ModelEntry:
    """The listed model a mode runs on this device: a CPU runs an ONNX file where one is
    listed (ONNX Runtime ran the teacher in 107 ms per face against torch's 228 ms on the
    2-core machine), the exact file measured fastest on this CPU with `threads` (see
    ONNX_ORDER); a GPU prefers torch weights."""
    entries = [e for e in read_manifest() if e.mode == mode]
    if not entries:
        raise UserError(f"no {mode} model is listed in {manifest_path()}; use --mode classic")
    usable = [e for e in entries if runs_at(e, precision)]
    if not usable:
        listed = ", ".join(f"{e.name} ({e.backend} {e.precision})" for e in entries)
        raise UserError(f"no {mode} model runs at precision {precision}; listed: {listed}")
    prefer = "onnx" if device == "cpu" else "torch"
    order = ONNX_ORDER[device]

    def rank(e: ModelEntry) -> tuple:
        onnx_rank = order.index(e.precision) if e.precision in order else len(order)
        return (e.backend != prefer, onnx_rank if e.backend == "onnx" else 0, e.name)

    best = min(usable, key=rank)
    if device == "cpu" and precision == "auto" and best.backend == "onnx":
        from slimswap.swap.cpu_speed import fastest

        onnx = [e for e in usable if e.backend == "onnx" and e.path.is_file()]
        return fastest(onnx, threads) or best
    return best


def _compile_mode(compile: bool | str) -> str:
    from slimswap.swap.neural import COMPILE_MODES

    mode = ("compile" if compile else "none") if isinstance(compile, bool) else compile
    if mode not in COMPILE_MODES:
        raise UserError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
    return mode


def _load_classic(
    entry: ModelEntry | None, device: str, precision: str, compile: str, threads: int | None
) -> Swapper:
    from slimswap.swap.classic import ClassicSwapper

    if precision not in ("auto", "fp32") or compile != "none":
        raise UserError("the classic swapper runs in numpy: no --precision or --compile")
    return ClassicSwapper()


def _load_torch(
    entry: ModelEntry, device: str, precision: str, compile: str, threads: int | None
) -> Swapper:
    from slimswap.swap.neural import TorchSwapper, check_device
    from slimswap.swap.weights import load_generator, stored_precision

    check_device(device)
    if precision not in ("auto", *TORCH_PRECISIONS):
        raise UserError(
            f"{entry.name} is a torch model: precision fp32, fp16 or bf16, not {precision}"
        )
    norm = entry.normalisation_spec()
    model = load_generator(entry.path, expected_sha256=entry.sha256 or None)
    stored = stored_precision(entry.path)
    if stored != entry.precision:
        raise UserError(
            f"{entry.path} holds {stored} weights but models/MANIFEST says {entry.precision}"
        )
    if int(model.config.resolution) != entry.resolution:
        raise UserError(
            f"{entry.path} is a {model.config.resolution} px model but models/MANIFEST says "
            f"{entry.resolution}"
        )
    if precision == "auto":
        precision = "fp16" if device == "cuda" else "fp32"
    return TorchSwapper(model, entry.name, device, precision, compile, norm=norm)


def _load_onnx(
    entry: ModelEntry, device: str, precision: str, compile: str, threads: int | None
) -> Swapper:
    from slimswap.swap.neural import OnnxSwapper

    if compile != "none":
        raise UserError(f"{entry.name} is an ONNX file: --compile applies to torch models only")
    if not runs_at(entry, precision):
        raise UserError(
            f"{entry.name} is exported in {entry.precision}; it cannot run in {precision}"
        )
    norm = entry.normalisation_spec()
    if entry.sha256:
        verify_sha256(entry.path, entry.sha256)
    swapper = OnnxSwapper(entry.path, name=entry.name, device=device, threads=threads, norm=norm)
    if swapper.resolution != entry.resolution:
        raise UserError(
            f"{entry.path} is a {swapper.resolution} px model but models/MANIFEST says "
            f"{entry.resolution}"
        )
    return swapper


# the one table from a backend name to its factory
SWAPPERS = {"classic": _load_classic, "torch": _load_torch, "onnx": _load_onnx}


def _unlisted_entry(path: Path) -> ModelEntry:
    """An entry for a model file the manifest does not list (e.g. a pruned export to
    evaluate): nothing to check its hash against, so the file is taken as it is."""
    from slimswap.face.align import TEMPLATE_NAME
    from slimswap.swap.neural import PM1
    from slimswap.swap.weights import read_metadata, stored_precision

    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    backend = {".onnx": "onnx", ".safetensors": "torch"}.get(path.suffix.lower())
    if backend is None:
        raise UserError(
            f"unknown model file type {path.suffix!r}: {path}; use .onnx or .safetensors"
        )
    if backend == "torch":
        resolution = int(read_metadata(path).get("config", {}).get("resolution", 0))
        precision = stored_precision(path)
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        resolution, precision = int(session.get_inputs()[0].shape[-1]), "unknown"
    return ModelEntry(
        name=path.stem,
        file=path.name,
        sha256="",
        mode="file",
        backend=backend,
        resolution=resolution,
        precision=precision,
        template=TEMPLATE_NAME,
        normalisation=PM1.name,
        folder=path.parent,
    )


def find_entry(
    model: str | Path, device: str = "cpu", precision: str = "auto", threads: int | None = None
) -> ModelEntry | None:
    """What `model` names: None for classic, else the ModelEntry to load.

    `model` is a mode (auto, quality, lite, classic), a models/MANIFEST name, or a file.
    """
    text = str(model)
    if text in SWAP_MODES:
        mode = resolve_mode(text, device)
        return None if mode == "classic" else pick_entry(mode, device, precision, threads)
    entries = read_manifest()
    for e in entries:
        if e.name == text:
            return e
    path = Path(text)
    if path.suffix.lower() in (".onnx", ".safetensors") or path.is_file():
        for e in entries:
            if path.is_file() and e.path.is_file() and e.path.resolve() == path.resolve():
                return e
        return _unlisted_entry(path)
    raise UserError(
        f"unknown mode {text!r}; choose one of {', '.join(SWAP_MODES)}, a model listed by "
        "`slimswap models`, or a .onnx/.safetensors file"
    )


def load_swapper(
    model: str | Path = "auto",
    device: str = "cpu",
    precision: str = "auto",
    compile: bool | str = False,
    threads: int | None = None,
) -> Swapper:
    """Build a swapper: the classic one, or a learned model checked against its manifest entry.

    model: a mode (auto, quality, lite, classic), a models/MANIFEST name or a model file.
    precision: auto (fp16 on CUDA, fp32 on CPU for torch; ONNX files as exported), fp32,
    fp16, bf16 or int8 (which picks the matching exported file). compile: torch models only;
    True or "compile" for torch.compile, "cudagraphs" for CUDA graphs too. threads: ONNX
    Runtime's intra-op threads for an ONNX model (None: its default; torch models run on
    torch's process-wide threads).
    """
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu or cuda, got {device!r}")
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    mode = _compile_mode(compile)
    entry = find_entry(model, device, precision, threads)
    if entry is None:
        return SWAPPERS["classic"](None, device, precision, mode, threads)
    if not entry.path.is_file():
        raise UserError(
            f"model file missing: {entry.path} (listed in models/MANIFEST); restore it with git"
        )
    if entry.sha256:
        entry.check_template()
    return SWAPPERS[entry.backend](entry, device, precision, mode, threads)
