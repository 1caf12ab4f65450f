"""Batched MediaPipe face analysis (BlazeFace + 468-point mesh) in PyTorch on a GPU.

Needs only torch, numpy, opencv, safetensors (and onnxruntime for --check): no dlib, no PyAV,
no data beyond this repository (frames come from examples/clip.mp4, a 512x512 talking head,
decoded with OpenCV; the 1280x720 frames are the same frames scaled to 720 px high and padded
by reflection, so the face is about 1.4x larger). Run from the repository root:

    python benchmarks/gpu_analysis.py                        # CUDA, fp16 + fp32, both sizes
    python benchmarks/gpu_analysis.py --device cpu --frames 4 --batches 1 2 --precisions fp32 --repeats 2

Per (size, precision, batch): ms per frame and frames/s for
- detect: upload + BlazeFace (full range) + weighted NMS + mesh + refined mesh (what a
  detection frame costs),
- track: one mesh pass per face from the previous frame's mesh (what the other frames cost),
- upload (uint8 host -> device, one copy per batch), detector (warp + net + candidates) and
  one mesh pass (warp + net), timed alone,
and at the end the largest difference to the CPU/ONNX path (--check, NME of the 68 points).
CUDA time is wall time with a synchronising device->host copy at the end of every call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slimswap.face.analyser import FaceAnalyser
from slimswap.face.detect_mediapipe import roi_from_detection

SIZES = {"512x512": (512, 512), "1280x720": (1280, 720)}


def clip_frames(n: int) -> list[np.ndarray]:
    """n RGB frames of the bundled clip (cycled if it is shorter)."""
    cap = cv2.VideoCapture(str(ROOT / "examples" / "clip.mp4"))
    frames = []
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise SystemExit("OpenCV could not decode examples/clip.mp4")
    return [frames[i % len(frames)] for i in range(n)]


def to_size(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale to height h (aspect kept), then reflect-pad (or centre-crop) to width w."""
    s = h / frame.shape[0]
    img = cv2.resize(
        frame,
        (round(frame.shape[1] * s), h),
        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
    )
    extra = w - img.shape[1]
    if extra > 0:
        img = cv2.copyMakeBorder(img, 0, 0, extra // 2, extra - extra // 2, cv2.BORDER_REFLECT_101)
    elif extra < 0:
        img = img[:, -extra // 2 : -extra // 2 + w]
    return np.ascontiguousarray(img)


def timed(fn, repeats: int, sync) -> float:
    """Median wall ms of fn() after 2 warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(mp, chunk: list[np.ndarray], repeats: int, sync) -> tuple[float, ...]:
    """(faces per frame, then ms per call of: detect, track, upload, detector, one mesh pass)."""
    found = mp.faces_batch(chunk)
    prev = [fs[:1] for fs in found]
    up = mp.rt.upload(chunk)
    dets = mp._detections(chunk, up, 0)
    rois = [roi_from_detection(d) for ds in dets for d in ds[:1]]
    index = [i for i, ds in enumerate(dets) for _ in ds[:1]]
    return (
        sum(map(len, found)) / len(chunk),
        timed(lambda: mp.faces_batch(chunk), repeats, sync),
        timed(lambda: mp.track_batch(chunk, prev), repeats, sync),
        timed(lambda: mp.rt.upload(chunk), repeats, sync),
        timed(lambda: mp._detections(chunk, up, 0), repeats, sync),
        timed(lambda: mp._mesh(up, rois, index), repeats, sync),
    )


def nme(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean() / max(np.linalg.norm(b[36] - b[45]), 1e-6))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--frames", type=int, default=256, help="distinct frames (batches cycle through them)"
    )
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64, 128, 256])
    ap.add_argument("--precisions", nargs="+", default=["fp16", "fp32"])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--model", default="full", choices=["full", "short"], help="BlazeFace variant")
    ap.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the comparison with ONNX on the CPU",
    )
    args = ap.parse_args()

    import torch

    cuda = args.device.startswith("cuda")
    if not cuda:  # 2 OpenMP threads on a busy 2-core machine ran 10-100x slower than 1
        torch.set_num_threads(1)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(
        f"device {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, cv2 {cv2.__version__}"
    )
    print(f"detector BlazeFace {args.model} range, mesh refined once on detection frames\n")
    base = clip_frames(args.frames)
    rows = []
    checks = []
    for size in args.sizes:
        w, h = SIZES[size]
        frames = [to_size(f, w, h) for f in base]
        for precision in args.precisions:
            fa = FaceAnalyser(
                device=args.device, precision=precision, runtime="torch", model=args.model
            )
            mp = fa._mediapipe
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            for batch in args.batches:
                chunk = [frames[i % len(frames)] for i in range(batch)]
                rows.append((size, precision, batch, *measure(mp, chunk, args.repeats, sync)))
                r = rows[-1]
                print(
                    f"{size} {precision} batch {batch}: detect {r[4] / batch:.3f} ms/frame "
                    f"({1000 * batch / r[4]:.0f} fps), track {r[5] / batch:.3f} ms/frame ({1000 * batch / r[5]:.0f} fps)",
                    flush=True,
                )
            if cuda:
                print(
                    f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB ({size} {precision})"
                )
            if args.check:
                onnx = FaceAnalyser(device="cpu")  # the CPU path: ONNX Runtime + cv2 warps
                sample = frames[: min(8, len(frames))]
                for ours, ref in zip(fa.detect_batch(sample), onnx.detect_batch(sample)):
                    if len(ours) != len(ref):
                        checks.append((size, precision, float("inf")))
                        continue
                    checks += [
                        (size, precision, nme(a.landmarks, b.landmarks)) for a, b in zip(ours, ref)
                    ]
    print("\n| size | precision | batch | faces/frame | detect ms/frame | detect fps | track ms/frame | track fps "
          "| upload ms/frame | detector ms/frame | mesh pass ms/frame |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, precision, batch, fpf, td, tt, tu, tdet, tm in rows:
        print(
            f"| {size} | {precision} | {batch} | {fpf:.2f} | {td / batch:.3f} | {1000 * batch / td:.0f} | "
            f"{tt / batch:.3f} | {1000 * batch / tt:.0f} | {tu / batch:.3f} | {tdet / batch:.3f} | {tm / batch:.3f} |"
        )
    if checks:
        print("\n68-point NME against the CPU/ONNX path (first 8 frames):")
        for size in args.sizes:
            for precision in args.precisions:
                vals = [v for s, p, v in checks if s == size and p == precision]
                if vals:
                    print(
                        f"  {size} {precision}: max {max(vals):.4f}, mean {statistics.mean(vals):.4f}"
                    )


if __name__ == "__main__":
    main()
