"""Face analysis, MediaPipe vs dlib, on this CPU: detection rates, landmark NME, ms per frame.

    PYTHONPATH=. python benchmarks/analysis.py --pairs 100 --out benchmarks/analysis

1. Detection rate per robustness subset (slimswap.evaluate.robustness's transformations on
   CelebA in-the-wild photos; the reference face of each clean photo is dlib's, as in
   `slimswap eval robustness`, so photos dlib cannot read at all are not in the subsets -
   which favours dlib; `clean_recall` counts the other way round); a face counts as found
   when a detection overlaps the reference box by IoU >= 0.3 (`match_face`), at upsample 0
   and with one more upsampling step as a retry.
2. Clean recall: CelebA photos (each holds its labelled person) where a backend finds a face.
3. The group photo insightface t1.jpg (6 faces).
4. Landmark NME of MediaPipe's 68-point map against dlib on the deepface test set (held out
   from the map's fit), per landmark group.
5. ms per 512x512 frame of the bundled talking-head clip: full analysis (detect + landmarks),
   the tracking step (landmarks from the previous frame), batch 1 and 8.
Writes analysis.json and analysis.md to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap import media
from slimswap.evaluate import report, robustness
from slimswap.evaluate.metrics import OUTER_EYE_CORNERS, landmark_nme
from slimswap.face.analyser import FaceAnalyser
from slimswap.face.record import box_from_landmarks
from slimswap.face.select import iou, match_face
from slimswap.paths import EXAMPLES_DIR, shared_data_dir

SUBSETS = ("clean", "profile", "small", "low_light", "occlusion_rect", "occlusion_hand")
GROUPS = [
    ("jaw", 0, 17), ("brows", 17, 27), ("nose", 27, 36), ("eyes", 36, 48), ("lips", 48, 68),
]  # fmt: skip


def read(path: Path, max_side: int = 800) -> np.ndarray:
    bgr = cv2.imread(str(path))
    s = max_side / max(bgr.shape[:2])
    if s < 1:
        bgr = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def detection_rates(backends: dict, ref: FaceAnalyser, root: Path, pairs: int, photos: int) -> dict:
    faces = robustness.face_set_from_folder(root / "celeba_wild_subset", ref, max_photos=photos)
    clean = robustness._CleanFaces(faces, ref)
    params = robustness.TransformParams()
    out = {}
    for subset in SUBSETS:
        cases = robustness.plan_cases(faces, pairs, 0, (subset,))
        found = {name: [0, 0] for name in backends}
        n = 0
        for case in cases:
            if n >= pairs:
                break
            frame, ref_face = clean(case.target)
            if ref_face is None:
                continue
            frame, ref_face = robustness.transform(subset, frame, ref_face, case.seed, params)
            n += 1
            for name, analyser in backends.items():
                hit = match_face(analyser.detect(frame, upsample=0), ref_face.bbox) is not None
                retry = (
                    hit or match_face(analyser.detect(frame, upsample=1), ref_face.bbox) is not None
                )
                found[name][0] += hit
                found[name][1] += retry
        out[subset] = {
            "faces": n,
            **{k: {"found": v[0] / n, "found_upsample_1": v[1] / n} for k, v in found.items()},
        }
        print(subset, out[subset], flush=True)
    return out


def clean_recall(backends: dict, root: Path, photos: int) -> dict:
    paths = sorted((root / "celeba_wild_subset").glob("*/*.jpg"))
    paths = paths[:: max(1, len(paths) // photos)][:photos]
    hits = {name: 0 for name in backends}
    for p in paths:
        frame = read(p)
        for name, analyser in backends.items():
            hits[name] += bool(analyser.detect(frame))
    return {"photos": len(paths), **{k: v / len(paths) for k, v in hits.items()}}


def group_photo(backends: dict, root: Path) -> dict:
    frame = read(root / "insightface_wheel_samples/t1.jpg", 4000)
    return {
        f"{name} upsample {u}": len(a.detect(frame, upsample=u))
        for name, a in backends.items()
        for u in (0, 1)
    }


def landmark_agreement(mp: FaceAnalyser, dl: FaceAnalyser, root: Path) -> dict:
    nmes, kps, per_point = [], [], []
    for p in sorted((root / "deepface_testset").glob("id*/*.jpg")):
        frame = read(p)
        d_faces, m_faces = dl.detect(frame), mp.detect(frame)
        if not d_faces or not m_faces:
            continue
        d = max(d_faces, key=lambda f: f.area)
        m = max(m_faces, key=lambda f: iou(f.bbox, d.bbox))
        iod = float(
            np.linalg.norm(d.landmarks[OUTER_EYE_CORNERS[0]] - d.landmarks[OUTER_EYE_CORNERS[1]])
        )
        nmes.append(landmark_nme(m.landmarks, d.landmarks))
        kps.append(float(np.linalg.norm(m.kps - d.kps, axis=1).mean() / iod))
        per_point.append(np.linalg.norm(m.landmarks - d.landmarks, axis=1) / iod)
    pp = np.mean(per_point, 0)
    return {
        "faces": len(nmes), "nme_mean": float(np.mean(nmes)), "nme_median": float(np.median(nmes)),
        "nme_max": float(np.max(nmes)), "kps5_mean": float(np.mean(kps)),
        "groups": {g: float(pp[a:b].mean()) for g, a, b in GROUPS},
    }  # fmt: skip


def timings(repeats: int) -> dict:
    """Median ms per frame of each backend's operations, interleaved: every repeat runs every
    operation once, so a busy neighbour on the shared machine slows all rows alike."""
    import torch

    # torch's CPU ops with 2 OpenMP threads on this loaded 2-core machine ran 10-100x slower
    # than with 1 (barrier spinning); the CPU torch row is a reference for the GPU code path
    torch.set_num_threads(1)
    frames = [f for b in media.read_frames(EXAMPLES_DIR / "clip.mp4", 8) for f in b][:8]
    assert frames[0].shape[:2] == (512, 512), frames[0].shape
    backends = {
        "mediapipe onnx, 1 thread": FaceAnalyser(threads=1),
        "mediapipe onnx, 2 threads": FaceAnalyser(threads=2),
        "mediapipe torch cpu fp32, 1 thread": FaceAnalyser(runtime="torch", precision="fp32"),
        "dlib (1 thread)": FaceAnalyser(detector="dlib"),
    }
    ops = {}
    for name, a in backends.items():
        prev = [fs[:1] for fs in a.detect_batch(frames)]
        ops[name, "detect, batch 1"] = (lambda a=a: a.detect_batch(frames[:1]), 1)
        ops[name, "detect, batch 8"] = (lambda a=a: a.detect_batch(frames), 8)
        ops[name, "track, batch 1"] = (lambda a=a, p=prev: a.track_batch(frames[:1], p[:1]), 1)
        ops[name, "track, batch 8"] = (lambda a=a, p=prev: a.track_batch(frames, p), 8)
        if name.startswith("dlib"):  # what the current pipeline does between detections
            box = box_from_landmarks(prev[0][0].landmarks)
            ops[name, "landmarks in box"] = (lambda a=a, b=box: a.landmarks(frames[0], b), 1)
    for fn, _ in ops.values():
        fn()  # warm-up
    times: dict[tuple[str, str], list[float]] = {k: [] for k in ops}
    for _ in range(repeats):
        for key, (fn, n) in ops.items():
            t = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t) * 1000 / n)
    out: dict[str, dict[str, float]] = {}
    for (name, op), ts in times.items():
        out.setdefault(name, {})[op] = float(np.median(ts))
    for row in out.values():
        row["video, detect every 5 (batch 1)"] = (
            row["detect, batch 1"] + 4 * row["track, batch 1"]
        ) / 5
    for name, row in out.items():
        print(name, row, flush=True)
    return out


def markdown(res: dict, env: dict, command: str) -> str:
    lines = [report.header("Face analysis: MediaPipe vs dlib (CPU)", env, command)]
    lines.append(f"- load average before / after: {res['load_before']} / {res['load_after']}\n")
    rows = []
    for subset, r in res["detection"].items():
        rows.append(
            [
                subset,
                r["faces"],
                *[
                    f"{r[b]['found']:.0%} ({r[b]['found_upsample_1']:.0%})"
                    for b in ("mediapipe", "dlib")
                ],
            ]
        )
    lines += ["## Detection rate per subset (found at upsample 0; with one more upsampling step)\n",
              report.markdown_table(["subset", "faces", "mediapipe", "dlib"], rows), ""]  # fmt: skip
    cr = res["clean_recall"]
    lines.append(
        f"Clean recall, {cr['photos']} CelebA photos: mediapipe {cr['mediapipe']:.1%}, dlib {cr['dlib']:.1%}.\n"
    )
    lines.append(
        "Group photo t1.jpg (6 faces): "
        + ", ".join(f"{k}: {v}" for k, v in res["t1"].items())
        + "\n"
    )
    la = res["landmarks"]
    lines.append(
        f"## 68-point map vs dlib ({la['faces']} deepface faces, held out from the fit)\n\n"
        f"NME mean {la['nme_mean']:.4f}, median {la['nme_median']:.4f}, max {la['nme_max']:.4f}; 5 keypoints "
        f"{la['kps5_mean']:.4f} of the eye distance. Per group: "
        + ", ".join(f"{g} {v:.4f}" for g, v in la["groups"].items())
        + "\n"
    )
    cols = ["detect, batch 1", "detect, batch 8", "track, batch 1", "track, batch 8"]
    cols += ["video, detect every 5 (batch 1)", "landmarks in box"]
    rows = [[name, *[r.get(c, float("nan")) for c in cols]] for name, r in res["timing"].items()]
    lines += [
        "## ms per 512x512 frame (examples/clip.mp4, median)\n",
        report.markdown_table(["backend", *cols], rows),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=100, help="faces per robustness subset")
    ap.add_argument(
        "--photos", type=int, default=300, help="CelebA photos for the face set / clean recall"
    )
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/analysis"))
    ap.add_argument(
        "--skip", nargs="*", default=[], help="parts to skip: detection recall t1 landmarks timing"
    )
    args = ap.parse_args()
    root = shared_data_dir()
    if root is None:
        raise SystemExit("needs ../shared/data")
    mp, dl = FaceAnalyser(), FaceAnalyser(detector="dlib")
    backends = {"mediapipe": mp, "dlib": dl}
    res: dict = {"load_before": round(os.getloadavg()[0], 2)}
    if "timing" not in args.skip:
        res["timing"] = timings(args.repeats)
    if "t1" not in args.skip:
        res["t1"] = group_photo(backends, root)
        print(res["t1"])
    if "landmarks" not in args.skip:
        res["landmarks"] = landmark_agreement(mp, dl, root)
        print(res["landmarks"])
    if "recall" not in args.skip:
        res["clean_recall"] = clean_recall(backends, root, args.photos)
        print(res["clean_recall"])
    if "detection" not in args.skip:
        res["detection"] = detection_rates(backends, dl, root, args.pairs, args.photos)
    res["load_after"] = round(os.getloadavg()[0], 2)
    env = report.environment("cpu")
    command = "PYTHONPATH=. python benchmarks/analysis.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "analysis.json"
    if args.skip and path.is_file():  # a partial run updates the parts it measured
        old = json.loads(path.read_text())
        res = {**{k: v for k, v in old.items() if k not in ("environment", "command")}, **res}
        command = f"{old['command']}; then {command}"
    report.write_json(path, {"environment": env, "command": command, **res})
    if all(k in res for k in ("timing", "t1", "landmarks", "clean_recall", "detection")):
        report.write_text(args.out / "analysis.md", markdown(res, env, command))
    print(args.out)


if __name__ == "__main__":
    main()
