"""How much an INT8 swap moves with the batch size and the thread count on this CPU (issue 23).

ONNX Runtime picks its INT8 kernels by CPU (VNNI or not, AVX2 or AVX-512, AMX) and by the shape
of the work, so the same file gives slightly different pixels for a face alone and for the
same face in a batch. This prints, for every released ONNX lite file, the face-region PSNR and
the worst pixel of (a) batch of 8 vs each face alone and (b) INT8 vs fp32, at 1 and 2 threads,
on the same real faces the registry test uses, with the CPU's name and INT8 features.

    PYTHONPATH=. python benchmarks/int8_spread.py [--out benchmarks/int8/spread_<cpu>.json]

Other CPUs can be emulated with QEMU's user mode (Debian's qemu-user), which answers ONNX
Runtime's CPUID with the named model's features, so MLAS takes that CPU's kernels:
    CPU_LABEL="qemu Haswell (AVX2, no AVX-512, no VNNI)" PYTHONPATH=. qemu-x86_64 -cpu Haswell \
        .venv/bin/python benchmarks/int8_spread.py --out benchmarks/int8/spread_qemu_haswell.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    from helpers import bundled_face_frames

    from slimswap.evaluate.metrics import masked_psnr
    from slimswap.evaluate.report import cpu_features, cpu_name
    from slimswap.face.align import align, transform_points
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.face.warp import face_region_mask
    from slimswap.paths import EXAMPLES_DIR
    from slimswap.pipeline import load_source_identity
    from slimswap.swap.registry import load_swapper

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    analyser = FaceAnalyser()
    frames = bundled_face_frames(15)[1:]  # the astronaut and clip frames (the source is Hopper)
    crops, lms = [], []
    for frame in frames:
        face = max(analyser.detect(frame), key=lambda f: f.area)
        crop, affine = align(frame, face.kps, 256)
        crops.append(crop)
        lms.append(transform_points(face.landmarks, affine).astype(np.float32))
    crops, lms = np.stack(crops), np.stack(lms)
    face = np.stack([face_region_mask(lm, 256) > 0.5 for lm in lms])
    identity = load_source_identity(EXAMPLES_DIR / "grace_hopper.jpg", analyser, 256)
    rows = []
    ref = {}
    for threads in (1, 2):
        for precision in ("fp32", "int8"):
            sw = load_swapper(f"lite_256_{precision}", "cpu", threads=threads)
            batch = sw.swap(crops, identity, target_landmarks=lms)
            single = np.concatenate(
                [
                    sw.swap(crops[i : i + 1], identity, target_landmarks=lms[i : i + 1])
                    for i in range(len(crops))
                ]
            )
            ref[(threads, precision)] = batch
            psnr = [masked_psnr(batch[i], single[i], face[i]) for i in range(len(crops))]
            diff = np.abs(batch.astype(int) - single)
            rows.append(
                {
                    "threads": threads,
                    "precision": precision,
                    "what": f"batch of {len(crops)} vs alone",
                    "face_psnr_min_db": float(min(psnr)),
                    "face_psnr_mean_db": float(np.mean(psnr)),
                    "max_abs": int(diff.max()),
                    "rms": float(np.sqrt((diff.astype(float) ** 2).mean())),
                }
            )
        a, b = ref[(threads, "int8")], ref[(threads, "fp32")]
        psnr = [masked_psnr(a[i], b[i], face[i]) for i in range(len(crops))]
        diff = np.abs(a.astype(int) - b)
        rows.append(
            {
                "threads": threads,
                "precision": "int8",
                "what": "int8 vs fp32",
                "face_psnr_min_db": float(min(psnr)),
                "face_psnr_mean_db": float(np.mean(psnr)),
                "max_abs": int(diff.max()),
                "rms": float(np.sqrt((diff.astype(float) ** 2).mean())),
            }
        )
    import os

    label = os.environ.get("CPU_LABEL")  # under QEMU, /proc/cpuinfo still names the host
    result = {
        "cpu": label or cpu_name(),
        "features": "as the label says (emulated)" if label else cpu_features(),
        "faces": len(crops),
        "rows": rows,
    }
    print(result["cpu"], result["features"])
    for r in rows:
        print(
            f"{r['threads']} thr {r['precision']:5s} {r['what']:22s} face PSNR min {r['face_psnr_min_db']:.1f} "
            f"mean {r['face_psnr_mean_db']:.1f} dB, max |d| {r['max_abs']}, rms {r['rms']:.2f}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
