"""Fit the 468-point mesh -> 68-point layout table (slimswap/face/mesh_map.py MESH_TO_68).

The rest of slimswap (alignment template, area mask, evaluation NME) speaks dlib's 68-point
layout, so the mesh must land where dlib's predictor puts its points. For each of the 68
points this picks two mesh vertices a, b and a blend t in [0, 1] minimising the mean
inter-ocular-normalised distance (1 - t) * mesh[a] + t * mesh[b] -> dlib point, over faces
both backends find (LFW + CelebA photos: the fitting set); then reports the NME of the fitted
table on the held-out deepface test set. Prints the table to paste into mesh_map.py.

    PYTHONPATH=. python tools/fit_mesh68.py --fit 500 --cache /tmp/mesh68.npz
    PYTHONPATH=. python tools/fit_mesh68.py --fit 500 --clip-every 10 --only jaw \
        --cache /tmp/mesh68_clips.npz   # the jaw refit on talking heads too (issue 20)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap.evaluate.expression import MOUTH_OPEN, mouth_opening
from slimswap.evaluate.metrics import OUTER_EYE_CORNERS
from slimswap.face.analyser import FaceAnalyser
from slimswap.face.mesh_map import (
    LEFT_BROW,
    LEFT_EYE,
    LIPS_INNER,
    LIPS_OUTER,
    MESH_TO_68,
    RIGHT_BROW,
    RIGHT_EYE,
    mesh_to_68,
)
from slimswap.face.select import iou
from slimswap.paths import shared_data_dir

GROUPS = [
    ("jaw", 0, 17), ("right brow", 17, 22), ("left brow", 22, 27), ("nose bridge", 27, 31),
    ("nose base", 31, 36), ("right eye", 36, 42), ("left eye", 42, 48), ("outer lips", 48, 60),
    ("inner lips", 60, 68),
]  # fmt: skip


def load(path: Path, max_side: int = 800) -> np.ndarray | None:
    bgr = cv2.imread(str(path))
    if bgr is None:
        return None
    s = max_side / max(bgr.shape[:2])
    if s < 1:
        bgr = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clip_frames(clips: list[Path], every: int) -> list[tuple[str, np.ndarray]]:
    """Every `every`-th frame of each clip, as (name, RGB): talking heads open their mouths,
    which the mostly neutral photos do not."""
    from slimswap import media

    out = []
    for clip in clips:
        frames = [f for batch in media.read_frames(clip, 32) for f in batch]
        out += [(f"{clip.stem}#{i}", frames[i]) for i in range(0, len(frames), every)]
    return out


def pairs(
    paths: list[Path] | list[tuple[str, np.ndarray]], mp: FaceAnalyser, dl: FaceAnalyser
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(mesh (N,468,3), dlib 68 (N,68,2), names) for the largest face both backends find,
    in photo files or (name, RGB) frames."""
    meshes, dlibs, names = [], [], []
    for p in paths:
        if isinstance(p, tuple):
            p, img = p
        else:
            img = load(p)
        if img is None:
            continue
        a, b = mp.detect(img), dl.detect(img)
        if not a or not b:
            continue
        fb = max(b, key=lambda f: f.area)
        fa = max(a, key=lambda f: iou(f.bbox, fb.bbox))
        if iou(fa.bbox, fb.bbox) < 0.3:
            continue
        meshes.append(fa.mesh)
        dlibs.append(fb.landmarks)
        names.append(str(p))
    return np.stack(meshes), np.stack(dlibs), names


def iod(lm68: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lm68[:, OUTER_EYE_CORNERS[0]] - lm68[:, OUTER_EYE_CORNERS[1]], axis=-1)


# Where a named mesh contour exists, dlib's points may only use its vertices, and lid and lip
# points only those of their own half: eyelids stay on their lid when an eye closes, lip
# points on their lip when the mouth opens. (The fitting photos are mostly neutral, so a free
# fit blends across the eye or the lips: 1-2 % better NME here, wrong on open mouths.)
def _half(contour: tuple[int, ...], upper: bool) -> tuple[int, ...]:
    """The first half of a closed contour (corner to corner, both included) or the rest."""
    n = len(contour) // 2
    return contour[: n + 1] if upper else (*contour[n:], contour[0])


ALLOWED = {
    **{j: RIGHT_BROW for j in range(17, 22)}, **{j: LEFT_BROW for j in range(22, 27)},
    36: RIGHT_EYE, 39: RIGHT_EYE, 37: _half(RIGHT_EYE, True), 38: _half(RIGHT_EYE, True),
    40: _half(RIGHT_EYE, False), 41: _half(RIGHT_EYE, False),
    42: LEFT_EYE, 45: LEFT_EYE, 43: _half(LEFT_EYE, True), 44: _half(LEFT_EYE, True),
    46: _half(LEFT_EYE, False), 47: _half(LEFT_EYE, False),
    48: LIPS_OUTER, 54: LIPS_OUTER, **{j: _half(LIPS_OUTER, True) for j in range(49, 54)},
    **{j: _half(LIPS_OUTER, False) for j in range(55, 60)},
    60: LIPS_INNER, 64: LIPS_INNER, **{j: _half(LIPS_INNER, True) for j in range(61, 64)},
    **{j: _half(LIPS_INNER, False) for j in range(65, 68)},
}  # fmt: skip


# The jaw may extrapolate past its two vertices (t in -1..2): dlib follows the silhouette,
# which lies outside the mesh's outermost skin vertices (its chin about 3 % of the face
# height below the mesh's lowest, on every set measured), and a blend within [0, 1] cannot
# reach it. The generator was trained on dlib's points; a chin placed too high makes it
# close open mouths (issue 20).
JAW_T = np.linspace(-1, 2, 61)


def fit(
    meshes: np.ndarray, dlibs: np.ndarray, top: int = 12, contours: bool = True
) -> list[tuple[int, int, float]]:
    norm = iod(dlibs)[:, None]
    xy = meshes[:, :, :2]
    table = []
    for j in range(68):
        ts = JAW_T if j < 17 else np.linspace(0, 1, 21)
        d = np.linalg.norm(xy - dlibs[:, j : j + 1], axis=-1) / norm  # (N, 468)
        order = np.argsort(d.mean(0))
        if contours and j in ALLOWED:
            order = [v for v in order if v in ALLOWED[j]]
        cand = order[:top]
        best = (float(d[:, cand[0]].mean()), int(cand[0]), int(cand[0]), 0.0)
        for a in cand:
            for b in cand:
                if b <= a:
                    continue
                pts = (1 - ts[:, None, None]) * xy[None, :, a] + ts[:, None, None] * xy[None, :, b]
                err = (np.linalg.norm(pts - dlibs[None, :, j], axis=-1) / norm[None, :, 0]).mean(1)
                k = int(err.argmin())
                if err[k] < best[0]:
                    best = (float(err[k]), int(a), int(b), float(ts[k]))
        table.append(best[1:])
    return table


def nme(meshes: np.ndarray, dlibs: np.ndarray, table) -> tuple[float, np.ndarray]:
    """Mean NME over faces and the (68,) per-point mean error, with `table` as the map."""
    a, b, t = (np.array(c) for c in zip(*table))
    xy = meshes[:, :, :2]
    pred = (1 - t[None, :, None]) * xy[:, a] + t[None, :, None] * xy[:, b]
    err = np.linalg.norm(pred - dlibs, axis=-1) / iod(dlibs)[:, None]
    return float(err.mean()), err.mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--fit", type=int, default=500, help="fitting photos (LFW + CelebA, fixed sample)"
    )
    ap.add_argument("--cache", type=Path, default=None, help="npz to reuse the detections from")
    ap.add_argument(
        "--clip-every",
        type=int,
        default=0,
        help="also fit on every N-th frame of the training clips (../shared/data/videos less "
        "the held-out ones), and test on the held-out clips' frames; 0: photos only",
    )
    ap.add_argument(
        "--only",
        default="",
        help="groups whose rows the printed table takes from the new fit (e.g. jaw); the "
        "other rows stay as in mesh_map.py",
    )
    args = ap.parse_args()
    root = shared_data_dir()
    if root is None:
        raise SystemExit("needs ../shared/data")
    none = np.zeros((0, 468, 3), np.float32), np.zeros((0, 68, 2), np.float32)
    if args.cache and args.cache.is_file():
        z = np.load(args.cache)
        fit_m, fit_d, test_m, test_d = z["fit_m"], z["fit_d"], z["test_m"], z["test_d"]
        clips = (z["clip_m"], z["clip_d"]) if "clip_m" in z else none
        held = (z["held_m"], z["held_d"]) if "held_m" in z else none
    else:
        mp, dl = FaceAnalyser(), FaceAnalyser(detector="dlib")
        lfw = sorted((root / "lfw_deepfunneled").glob("*/*.jpg"))
        celeba = sorted((root / "celeba_wild_subset").glob("*/*.jpg"))
        rng = np.random.default_rng(0)
        fit_paths = [lfw[i] for i in rng.choice(len(lfw), args.fit // 2, replace=False)]
        fit_paths += [
            celeba[i] for i in rng.choice(len(celeba), args.fit - len(fit_paths), replace=False)
        ]
        test_paths = sorted((root / "deepface_testset").glob("id*/*.jpg"))
        fit_m, fit_d, _ = pairs(fit_paths, mp, dl)
        test_m, test_d, _ = pairs(test_paths, mp, dl)
        clips = held = none
        if args.clip_every:
            from slimswap.train.video_frames import HELD_OUT_CLIPS

            videos = sorted((root / "videos").glob("*.mp4"))
            train = [c for c in videos if c.stem not in HELD_OUT_CLIPS]
            test = [c for c in videos if c.stem in HELD_OUT_CLIPS]
            clips = pairs(clip_frames(train, args.clip_every), mp, dl)[:2]
            held = pairs(clip_frames(test, args.clip_every), mp, dl)[:2]
        if args.cache:
            np.savez(
                args.cache, fit_m=fit_m, fit_d=fit_d, test_m=test_m, test_d=test_d,
                clip_m=clips[0], clip_d=clips[1], held_m=held[0], held_d=held[1],
            )  # fmt: skip
    # the training clips' frames join the fitting photos; the held-out clips' are a test set
    fit_m = np.concatenate([fit_m, clips[0]]).astype(np.float32)
    fit_d = np.concatenate([fit_d, clips[1]]).astype(np.float32)
    held_m, held_d = held
    open_held = np.array([mouth_opening(d) > MOUTH_OPEN for d in held_d], bool)
    table = fit(fit_m, fit_d)
    if args.only:
        keep = {g.strip() for g in args.only.split(",")}
        group_of = [next(n for n, a, b in GROUPS if a <= j < b) for j in range(68)]
        table = [t if group_of[j] in keep else MESH_TO_68[j] for j, t in enumerate(table)]
    free = fit(fit_m, fit_d, contours=False)
    for name, tab in (("current", MESH_TO_68), ("free fit", free), ("contour fit", table)):
        f, _ = nme(fit_m, fit_d, tab)
        t, per_point = nme(test_m, test_d, tab)
        groups = ", ".join(f"{g} {per_point[a:b].mean():.4f}" for g, a, b in GROUPS)
        print(
            f"{name}: NME fit set {f:.4f} ({len(fit_m)} faces), deepface {t:.4f} ({len(test_m)} faces); {groups}"
        )
        if len(held_m):
            h, hp = nme(held_m, held_d, tab)
            o, op = nme(held_m[open_held], held_d[open_held], tab)
            print(
                f"    held-out clips: NME {h:.4f} (jaw {hp[0:17].mean():.4f}), open mouths "
                f"({open_held.sum()} of {len(held_m)}) NME {o:.4f} (jaw {op[0:17].mean():.4f}, "
                f"chin {op[8]:.4f})"
            )
    print("MESH_TO_68 = (")
    for g, a, b in GROUPS:
        print(f"    # {g} ({a}-{b - 1})")
        items = [f"({x}, {y}, {t:.2f})" for x, y, t in table[a:b]]
        for i in range(0, len(items), 5):
            print("    " + ", ".join(items[i : i + 5]) + ",")
    print(")")
    assert np.allclose(mesh_to_68(fit_m[0]), mesh_to_68(fit_m[0]))


if __name__ == "__main__":
    main()
