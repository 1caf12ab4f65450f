"""Writing benchmark and evaluation results: JSON for machines, markdown and PNG for people.

Every result file records where it was measured (device, library versions) and the command
that produced it, so a number in benchmarks/RESULTS.md can always be traced and reproduced.
Non-finite numbers become JSON null (JSON has no NaN), which the tests look for.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from slimswap import __version__
from slimswap.files import atomic_write

VERSIONED = ("torch", "onnxruntime", "dlib-bin", "numpy", "opencv-python-headless", "av")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as the user typed it (`slimswap ...`), shell-quoted."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "slimswap " + shlex.join(args)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# what decides how INT8 models run on x86: VNNI accumulates u8 x s8 in int32, AVX2 alone in a
# saturating int16 (see compress/quantize.py)
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_features() -> dict[str, bool]:
    """Which of CPU_FEATURES this CPU has (from /proc/cpuinfo; all False where unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return dict.fromkeys(CPU_FEATURES, False)
    flags = next(
        (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
    )
    return {f: f in flags for f in CPU_FEATURES}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "slimswap": __version__}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def environment(device: str) -> dict:
    """What a reader needs to compare two runs: hardware, library versions, date."""
    env = {
        "device": device,
        "cpu": cpu_name(),
        "cpu_features": [f for f, on in cpu_features().items() if on],
        "cpu_cores": os.cpu_count() or 0,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
    }
    if device == "cuda":
        import torch

        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = str(torch.version.cuda)
    return env


def device_label(env: Mapping) -> str:
    if env.get("device") == "cuda":
        return f"{env.get('gpu')} (CUDA {env.get('cuda')})"
    return f"{env.get('cpu')} ({env.get('cpu_cores')} cores)"


def jsonable(obj):
    """Plain JSON types: numpy scalars/arrays unwrapped, dataclasses as dicts, NaN/inf -> None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def missing_fields(obj, prefix: str = "") -> list[str]:
    """Paths of fields that are null or not a finite number (after `jsonable`)."""
    if isinstance(obj, Mapping):
        return [
            p
            for k, v in obj.items()
            for p in missing_fields(v, f"{prefix}.{k}" if prefix else str(k))
        ]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in missing_fields(v, f"{prefix}[{i}]")]
    if obj is None or (isinstance(obj, float) and not math.isfinite(obj)):
        return [prefix]
    return []


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return path


def write_json(path: Path, data) -> Path:
    return write_text(path, json.dumps(jsonable(data), indent=1, allow_nan=False) + "\n")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return "n/a" if not math.isfinite(v) else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return "n/a" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def header(title: str, env: Mapping, command: str) -> str:
    v = env["versions"]
    libs = ", ".join(f"{k} {val}" for k, val in v.items())
    return (
        f"# {title}\n\n"
        f"- device: {device_label(env)}\n"
        f"- versions: {libs}\n"
        f"- command: `{command}`\n"
        f"- date: {env['date']}\n"
    )


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure atomically and free it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write(path) as tmp:  # keeps the suffix: matplotlib picks the format from it
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on servers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_panel(ax, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> None:
    """One horizontal bar per label with its value printed at the bar's end."""
    vals = [v if (v is not None and math.isfinite(v)) else 0.0 for v in values]
    y = np.arange(len(labels))
    ax.barh(y, vals, color="#4C72B0")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    for yi, v in zip(y, vals):
        ax.text(v, yi, f" {v:.3g}", va="center", fontsize=8)
    ax.margins(x=0.2)
