"""`slimswap eval robustness`: where each swapper breaks, on harder versions of held-out faces.

The subsets are built from the test identities' ORIGINAL photos (not the aligned crops), with
real image transformations, so the whole pipeline is exercised as a user would run it:
- clean: the photos as they are (the reference row);
- occlusion_rect: an opaque rectangle over one side of the lower face (a phone, a microphone);
- occlusion_hand: a skin-coloured hand-shaped blob over the mouth and a cheek;
- profile: the test faces with the largest yaw (measured on their landmarks), untransformed;
- low_light: gamma darkening plus sensor noise;
- small: the frame downscaled so the face is about `small_face_px` wide.
Per pair the scoring is dlib's analysis of the swapped frame (ID distance to source and
target, 68-landmark NME against the target's reference landmarks). The target's reference face comes from the clean photo, mapped through the
transformation, so occluded or darkened landmarks never become their own reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.evaluate import metrics, report
from slimswap.evaluate.heldout import face_view, load_rgb, resize
from slimswap.face.align import align, transform_points
from slimswap.face.analyser import Face, FaceAnalyser, embedding_distance, kps_from_landmarks
from slimswap.face.select import match_face
from slimswap.pipeline import swap_frames
from slimswap.swap.base import SourceIdentity, Swapper

MAX_SIDE = 800  # large deepface photos are shrunk before analysis (seconds otherwise)
SUBSETS = ("clean", "occlusion_rect", "occlusion_hand", "profile", "low_light", "small")
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)
JAW_LEFT, JAW_RIGHT, NOSE_TIP, CHIN = 0, 16, 30, 8


@dataclass(frozen=True)
class TransformParams:
    low_light_gamma: float = 2.2  # >1 darkens the mid-tones
    low_light_gain: float = 0.5  # exposure after the gamma
    low_light_noise: float = 8.0  # std of Gaussian read noise, grey levels
    small_face_px: float = 48.0  # jaw-to-jaw width after downscaling (dlib HOG at upsample 0 starts missing faces near 50 px)
    occlusion_seed: int = 0


# ----------------------------------------------------------------------------- the face set


@dataclass
class FaceSet:
    """Held-out faces: what a test shard knows of each, plus its original photo."""

    name: str
    labels: np.ndarray
    embeddings: np.ndarray  # dlib descriptors of the clean photos
    landmarks: np.ndarray  # (N, 68, 2) in crop pixels
    size: int
    photos: list[Path]
    crop_of: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.labels)


def face_set_from_shard(shard_path: Path, data_root: Path) -> FaceSet:
    """A test shard (slimswap.train.shards) and the photos it was cut from (under data_root)."""
    from slimswap.train.shards import load_shard

    shard = load_shard(shard_path)
    return FaceSet(
        name=Path(shard_path).stem,
        labels=np.asarray(shard.labels),
        embeddings=np.asarray(shard.embeddings),
        landmarks=np.asarray(shard.landmarks, np.float32),
        size=shard.size,
        photos=[data_root / str(p) for p in shard.sources],
        crop_of=shard.image,
    )


def face_set_from_folder(
    folder: Path, analyser: FaceAnalyser, max_photos: int = 40, size: int = 128
) -> FaceSet:
    """Photos under <folder>/<identity>/*.jpg analysed here (for when no test shard is built).

    Identities are visited round-robin so a few photos already cover several people.
    """
    folder = Path(folder)
    people = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    per_person = [
        sorted(q for q in p.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        for p in people
    ]
    order = [
        (i, files[k])
        for k in range(max(map(len, per_person), default=0))
        for i, files in enumerate(per_person)
        if k < len(files)
    ]
    labels, embs, lms, photos, crops = [], [], [], [], []
    for label, path in order:
        if len(photos) >= max_photos:
            break
        frame = load_rgb(path, MAX_SIDE)
        faces = analyser.detect(frame) or analyser.detect(frame, upsample=analyser.upsample + 1)
        if not faces:
            continue
        face = analyser.embed(frame, max(faces, key=lambda f: f.area))
        crop, affine = align(frame, face.kps, size)
        labels.append(label)
        embs.append(face.embedding)
        lms.append(transform_points(face.landmarks, affine))
        photos.append(path)
        crops.append(crop)
    if len({*labels}) < 2:
        raise UserError(
            f"{folder} needs photos of at least two people in <identity>/ subfolders with detectable faces"
        )
    return FaceSet(
        name=folder.name,
        labels=np.array(labels),
        embeddings=np.stack(embs).astype(np.float32),
        landmarks=np.stack(lms).astype(np.float32),
        size=size,
        photos=photos,
        crop_of=lambda i: crops[i],
    )


# ----------------------------------------------------------------------------- transformations


def yaw_proxy(landmarks: np.ndarray) -> float:
    """Signed head turn from 2-D landmarks, in [-1, 1] (0 frontal): where the nose tip sits
    between the two jaw ends along the eye line. Hand-written; no 3-D head model needed."""
    lm = np.asarray(landmarks, np.float64)
    axis = lm[RIGHT_EYE].mean(0) - lm[LEFT_EYE].mean(0)
    axis /= max(np.linalg.norm(axis), 1e-9)
    left = float((lm[NOSE_TIP] - lm[JAW_LEFT]) @ axis)
    right = float((lm[JAW_RIGHT] - lm[NOSE_TIP]) @ axis)
    return (right - left) / max(abs(right) + abs(left), 1e-9)


def face_width(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[JAW_RIGHT] - landmarks[JAW_LEFT]))


def _skin_colour(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Median colour inside the landmark hull: the occluder looks like the person's own hand."""
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
    pixels = frame[mask > 0]
    return np.median(pixels, 0) if len(pixels) else np.array([180.0, 140.0, 120.0])


def _composite(
    frame: np.ndarray, alpha: np.ndarray, colour: np.ndarray, shading: np.ndarray | None = None
) -> np.ndarray:
    layer = np.broadcast_to(colour.astype(np.float32), frame.shape).copy()
    if shading is not None:
        layer *= shading[..., None]
    a = alpha[..., None]
    return np.clip(frame.astype(np.float32) * (1 - a) + layer * a, 0, 255).astype(np.uint8)


def occlude_rect(frame: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An opaque rectangle from one jaw side to past the face's centre line, nose tip to chin."""
    lm = np.asarray(landmarks, np.float32)
    w = face_width(lm)
    side = rng.integers(2)
    centre_x = lm[NOSE_TIP, 0]
    x0, x1 = (
        (lm[JAW_LEFT, 0] - 0.1 * w, centre_x + 0.1 * w)
        if side == 0
        else (centre_x - 0.1 * w, lm[JAW_RIGHT, 0] + 0.1 * w)
    )
    y0, y1 = lm[NOSE_TIP, 1], lm[CHIN, 1] + 0.1 * w
    alpha = np.zeros(frame.shape[:2], np.float32)
    cv2.rectangle(alpha, (int(x0), int(y0)), (int(x1), int(y1)), 1.0, thickness=-1)
    colour = rng.uniform(20, 90, 3)  # a dark object
    return _composite(frame, alpha, colour)


def occlude_hand(frame: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand-shaped blob (palm ellipse + four finger ellipses, soft edge) over the mouth and a
    cheek, in the face's own skin tone with a little shading. Drawn by hand with cv2.ellipse."""
    lm = np.asarray(landmarks, np.float32)
    w = face_width(lm)
    side = 1 if rng.integers(2) else -1
    mouth = lm[48:68].mean(0)
    palm = mouth + np.array([side * 0.18 * w, 0.05 * w])
    tilt = float(rng.uniform(-25, 25)) + side * 20
    alpha = np.zeros(frame.shape[:2], np.float32)
    pt = lambda p: (round(float(p[0])), round(float(p[1])))
    cv2.ellipse(alpha, pt(palm), (int(0.24 * w), int(0.2 * w)), tilt, 0, 360, 1.0, -1)
    theta = np.deg2rad(tilt - 90)
    for k, length in enumerate((0.26, 0.3, 0.28, 0.22)):
        ang = theta + np.deg2rad((k - 1.5) * 14)
        base = (
            palm
            + 0.16 * w * np.array([np.cos(ang), np.sin(ang)])
            + (k - 1.5) * 0.09 * w * np.array([-np.sin(theta), np.cos(theta)])
        )
        tip_centre = base + 0.5 * length * w * np.array([np.cos(ang), np.sin(ang)])
        cv2.ellipse(
            alpha,
            pt(tip_centre),
            (int(0.5 * length * w), int(0.045 * w)),
            float(np.rad2deg(ang)),
            0,
            360,
            1.0,
            -1,
        )
    sigma = max(0.6, 0.012 * w)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    shading = cv2.GaussianBlur(
        rng.uniform(0.8, 1.0, frame.shape[:2]).astype(np.float32), (0, 0), 0.08 * w
    )
    return _composite(frame, alpha, 0.9 * _skin_colour(frame, lm), shading)


def low_light(
    frame: np.ndarray, rng: np.random.Generator, p: TransformParams = TransformParams()
) -> np.ndarray:
    """Under-exposure: gamma and gain on [0, 1] intensities, then Gaussian sensor noise."""
    dark = np.power(frame.astype(np.float32) / 255.0, p.low_light_gamma) * p.low_light_gain * 255.0
    noisy = dark + rng.normal(0.0, p.low_light_noise, frame.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def downscale(frame: np.ndarray, landmarks: np.ndarray, face_px: float) -> tuple[np.ndarray, float]:
    """The frame resized (INTER_AREA) so the face is about face_px wide; (frame, scale)."""
    scale = min(1.0, face_px / max(face_width(landmarks), 1.0))
    if scale >= 1.0:
        return frame.copy(), 1.0
    h, w = frame.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return small, size[0] / w


def scale_face(face: Face, scale: float) -> Face:
    """A Face in the coordinates of a frame resized by `scale` (pixel centres kept)."""
    lm = ((face.landmarks + 0.5) * scale - 0.5).astype(np.float32)
    bbox = (face.bbox * scale).astype(np.float32)
    return Face(
        bbox=bbox,
        landmarks=lm,
        kps=kps_from_landmarks(lm),
        score=face.score,
        embedding=face.embedding,
    )


def transform(
    subset: str, frame: np.ndarray, ref: Face, seed: int, p: TransformParams
) -> tuple[np.ndarray, Face]:
    """The subset's version of a clean frame and the reference face mapped into it."""
    rng = np.random.default_rng([p.occlusion_seed, seed])
    if subset in ("clean", "profile"):
        return frame, ref
    if subset == "occlusion_rect":
        return occlude_rect(frame, ref.landmarks, rng), ref
    if subset == "occlusion_hand":
        return occlude_hand(frame, ref.landmarks, rng), ref
    if subset == "low_light":
        return low_light(frame, rng, p), ref
    if subset == "small":
        small, scale = downscale(frame, ref.landmarks, p.small_face_px)
        return small, scale_face(ref, scale)
    raise ValueError(f"unknown subset {subset!r}")


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One (source, transformed target) pair; detection on the target is shared by all models."""

    subset: str
    source: int
    target: int
    seed: int
    ref: Face | None = None  # reference face in the transformed frame
    face: Face | None = None  # what the pipeline's detector found there (None: missed)
    found_default: bool = False  # found at the configured upsample (not only on retry)


def _pick_sources(
    labels: np.ndarray, targets: Sequence[int], rng: np.random.Generator
) -> list[int]:
    out = []
    for t in targets:
        others = np.flatnonzero(labels != labels[t])
        out.append(int(rng.choice(others)))
    return out


def plan_cases(
    faces: FaceSet, n: int, seed: int = 0, subsets: Sequence[str] = SUBSETS
) -> list[Case]:
    """n candidate pairs per subset (x3 spares for photos without a reference face): random
    targets shared by the transformed subsets, the largest-|yaw| faces for `profile`."""
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(faces))][: 3 * n]
    by_yaw = [
        int(i) for i in np.argsort([-abs(yaw_proxy(lm)) for lm in faces.landmarks], kind="stable")
    ][: 3 * n]
    # one source per target, the same in every transformed subset, so subsets compare paired
    sources = _pick_sources(faces.labels, order, np.random.default_rng([seed, 1]))
    profile_sources = _pick_sources(faces.labels, by_yaw, np.random.default_rng([seed, 2]))
    cases = []
    for subset in subsets:
        pairs = zip(profile_sources, by_yaw) if subset == "profile" else zip(sources, order)
        cases += [Case(subset, s, t, seed=k) for k, (s, t) in enumerate(pairs)]
    return cases


class _CleanFaces:
    """The clean photo and its reference face (largest, upsampling retried), per target."""

    def __init__(self, faces: FaceSet, analyser: FaceAnalyser) -> None:
        self.faces, self.analyser, self.cache = faces, analyser, {}

    def __call__(self, t: int) -> tuple[np.ndarray, Face | None]:
        if t not in self.cache:
            if len(self.cache) > 512:
                self.cache.clear()
            frame = load_rgb(self.faces.photos[t], MAX_SIDE)
            found = self.analyser.detect(frame) or self.analyser.detect(
                frame, upsample=self.analyser.upsample + 1
            )
            self.cache[t] = (frame, max(found, key=lambda f: f.area) if found else None)
        return self.cache[t]


def detect_target(
    frame: np.ndarray, ref: Face, analyser: FaceAnalyser, upsample: int
) -> tuple[Face | None, bool]:
    """What the pipeline would swap: the detection at the reference face, retrying with one
    more upsampling step (what `--upsample` buys a user); (face, found without the retry)."""
    face = match_face(analyser.detect(frame, upsample=upsample), ref.bbox)
    if face is not None:
        return face, True
    return match_face(analyser.detect(frame, upsample=upsample + 1), ref.bbox), False


# ----------------------------------------------------------------------------- scoring


@dataclass
class PairScore:
    swap_detected: bool
    id_dist_to_source: float = float("nan")
    id_dist_to_target: float = float("nan")
    landmark_nme: float = float("nan")
    swapped: np.ndarray | None = field(default=None, repr=False)


def score_swap(
    swapper: Swapper,
    frame: np.ndarray,
    face: Face,
    ref: Face,
    identity: SourceIdentity,
    source_emb: np.ndarray,
    target_emb: np.ndarray,
    analyser: FaceAnalyser,
    upsample: int,
) -> PairScore:
    """swap_eval's per-pair protocol on any frame: swap `face`, re-detect, embed, compare.

    NME is against `ref` (the clean photo's landmarks mapped into this frame).
    """
    (out,) = swap_frames([frame], [[face]], swapper, identity)
    best = match_face(analyser.detect(out, upsample=upsample), face.bbox)
    if best is None:
        best = match_face(analyser.detect(out, upsample=upsample + 1), face.bbox)
    if best is None:
        return PairScore(False, swapped=out)
    best = analyser.embed(out, best)
    return PairScore(
        True,
        embedding_distance(best.embedding, source_emb),
        embedding_distance(best.embedding, target_emb),
        metrics.landmark_nme(best.landmarks, ref.landmarks),
        swapped=out,
    )


@dataclass
class SubsetResult:
    model: str
    subset: str
    test_set: str
    pairs: int = 0  # transformed targets evaluated
    target_detect_rate: float = float("nan")  # face found at --upsample
    target_detect_rate_retry: float = float("nan")  # ... or with one more upsampling step
    swap_detect_rate: float = float("nan")  # of swapped targets: dlib still finds the face
    id_dist_to_source: float = float("nan")
    id_dist_to_target: float = float("nan")
    share_below_0_6: float = float("nan")
    landmark_nme: float = float("nan")
    seconds: float = 0.0


@dataclass
class RobustnessRun:
    models: list[str]
    results: list[SubsetResult]
    examples: dict[str, list[np.ndarray]]  # subset -> [transformed view, swap view per model]
    skipped: dict[str, int]  # subset -> candidates without a reference face in the clean photo


def _identity(faces: FaceSet, s: int, resolution: int) -> SourceIdentity:
    return SourceIdentity(
        embedding=faces.embeddings[s].astype(np.float32),
        crop=resize(faces.crop_of(s), resolution),
        landmarks=faces.landmarks[s].astype(np.float32) * resolution / faces.size,
    )


def evaluate_robustness(
    swappers: Sequence[Swapper],
    faces: FaceSet,
    n: int = 100,
    seed: int = 0,
    upsample: int = 0,
    params: TransformParams = TransformParams(),
    subsets: Sequence[str] = SUBSETS,
    analyser: FaceAnalyser | None = None,
    progress: bool = False,
) -> RobustnessRun:
    """Each subset's detection rates and swap quality for every swapper (n pairs a subset)."""
    from rich.progress import track

    analyser = analyser or FaceAnalyser(upsample=upsample, detector="dlib")  # as the report says
    clean = _CleanFaces(faces, analyser)
    cases = plan_cases(faces, n, seed, subsets)
    done = {s: 0 for s in subsets}
    skipped = {s: 0 for s in subsets}
    stats: dict[tuple[str, str], dict[str, list]] = {}
    examples: dict[str, list[np.ndarray]] = {}
    spent: dict[tuple[str, str], float] = {}
    for case in track(cases, description="robustness", disable=not progress):
        if done[case.subset] >= n:
            continue
        frame, ref = clean(case.target)
        if ref is None:
            skipped[case.subset] += 1
            continue
        frame, case.ref = transform(case.subset, frame, ref, case.seed, params)
        case.face, case.found_default = detect_target(frame, case.ref, analyser, upsample)
        done[case.subset] += 1
        views = [face_view(frame, case.ref)]
        for sw in swappers:
            key = (sw.name, case.subset)
            st = stats.setdefault(
                key, {k: [] for k in ("found", "found_default", "swap_det", "src", "tgt", "nme")}
            )
            st["found"].append(case.face is not None)
            st["found_default"].append(case.found_default)
            if case.face is None:
                continue
            t0 = time.perf_counter()
            score = score_swap(
                sw,
                frame,
                case.face,
                case.ref,
                _identity(faces, case.source, sw.resolution),
                faces.embeddings[case.source],
                faces.embeddings[case.target],
                analyser,
                upsample,
            )
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - t0
            st["swap_det"].append(score.swap_detected)
            if score.swap_detected:
                st["src"].append(score.id_dist_to_source)
                st["tgt"].append(score.id_dist_to_target)
                st["nme"].append(score.landmark_nme)
            views.append(face_view(score.swapped, case.ref))
        if case.subset not in examples and len(views) == len(swappers) + 1:
            examples[case.subset] = views
    results = []
    for sw in swappers:
        for subset in subsets:
            st = stats.get((sw.name, subset))
            r = SubsetResult(sw.name, subset, faces.name)
            if st:
                r.pairs = len(st["found"])
                r.target_detect_rate = float(np.mean(st["found_default"]))
                r.target_detect_rate_retry = float(np.mean(st["found"]))
                r.swap_detect_rate = (
                    float(np.mean(st["swap_det"])) if st["swap_det"] else float("nan")
                )
                if st["src"]:
                    r.id_dist_to_source = float(np.mean(st["src"]))
                    r.id_dist_to_target = float(np.mean(st["tgt"]))
                    r.share_below_0_6 = float(np.mean(np.array(st["src"]) < 0.6))
                    r.landmark_nme = float(np.mean(st["nme"]))
                r.seconds = spent.get((sw.name, subset), 0.0)
            results.append(r)
    if not any(r.pairs for r in results):
        raise UserError(
            f"no test face of {faces.name} could be analysed; check the photos under the data folder"
        )
    return RobustnessRun([sw.name for sw in swappers], results, examples, skipped)


# ----------------------------------------------------------------------------- report

COLUMNS = [
    ("pairs", "pairs", "{}"),
    ("target_detect_rate", "target found", "{:.0%}"),
    ("target_detect_rate_retry", "found w/ +1 upsample", "{:.0%}"),
    ("swap_detect_rate", "swap detected", "{:.0%}"),
    ("id_dist_to_source", "ID dist → source ↓", "{:.3f}"),
    ("id_dist_to_target", "ID dist → target", "{:.3f}"),
    ("share_below_0_6", "share < 0.6 ↑", "{:.0%}"),
    ("landmark_nme", "landmark NME ↓", "{:.4f}"),
]


def markdown_table(results: Sequence[SubsetResult]) -> str:
    def fmt(v, f):
        return "n/a" if isinstance(v, float) and not np.isfinite(v) else f.format(v)

    rows = [[r.model, r.subset, *[fmt(getattr(r, k), f) for k, _, f in COLUMNS]] for r in results]
    return report.markdown_table(["model", "subset", *[c[1] for c in COLUMNS]], rows)


def save_robustness_report(
    run: RobustnessRun, out_dir: Path, command: str, env: dict, config: dict
) -> dict[str, Path]:
    """robustness.{json,md,png} and robustness_grid.png (transformed target | swap per model)."""
    out_dir = Path(out_dir)
    paths = {
        k: out_dir / f"robustness{s}"
        for k, s in (("json", ".json"), ("md", ".md"), ("png", ".png"), ("grid", "_grid.png"))
    }
    report.write_json(
        paths["json"],
        {
            "environment": env,
            "command": command,
            "config": config,
            "skipped_without_reference": run.skipped,
            "results": [asdict(r) for r in run.results],
        },
    )
    md = [
        report.header("slimswap eval robustness", env, command),
        markdown_table(run.results),
        (
            "\n`target found`: dlib finds the transformed target face at the run's `--upsample`; "
            "`found w/ +1 upsample`: also counting a retry with one more upsampling step (those are "
            "swapped too); `swap detected`: of the swapped targets, dlib still finds a face at the "
            "same place. ID distances and NME average over detected swaps; NME is against the clean "
            "photo's landmarks mapped into the transformed frame.\n"
        ),
        f"Transformations: {config.get('transforms')}\n",
        f"![robustness]({paths['png'].name})\n\n![examples]({paths['grid'].name})\n",
    ]
    report.write_text(paths["md"], "\n".join(md))
    _chart(run.results, paths["png"])
    _grid(run.examples, run.models, paths["grid"])
    return paths


def _chart(results: Sequence[SubsetResult], path: Path) -> None:
    plt = report.pyplot()
    models = list(dict.fromkeys(r.model for r in results))
    subsets = list(dict.fromkeys(r.subset for r in results))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    width = 0.8 / len(models)
    panels = (
        ("target_detect_rate", "target face found"),
        ("swap_detect_rate", "swapped face detected"),
        ("id_dist_to_source", "ID distance to source (lower is better)"),
    )
    for ax, (key, title) in zip(axes, panels):
        for i, m in enumerate(models):
            vals = [
                next(getattr(r, key) for r in results if r.model == m and r.subset == s)
                for s in subsets
            ]
            vals = [v if np.isfinite(v) else 0.0 for v in vals]
            ax.bar(np.arange(len(subsets)) + i * width, vals, width, label=m)
        ax.set_xticks(np.arange(len(subsets)) + 0.4 - width / 2, subsets, rotation=30, ha="right")
        ax.set_title(title)
        if key == "id_dist_to_source":
            ax.axhline(0.6, color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    report.save_figure(fig, path)


def _grid(examples: dict[str, list[np.ndarray]], models: Sequence[str], path: Path) -> None:
    if not examples:
        return
    plt = report.pyplot()
    rows = list(examples.items())
    cols = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.8 * cols, 1.8 * len(rows)), squeeze=False)
    for r, (subset, views) in enumerate(rows):
        for c, img in enumerate(views):
            axes[r][c].imshow(img)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(subset, fontsize=8)
    axes[0][0].set_title("target", fontsize=8)
    for c, name in enumerate(models, start=1):
        axes[0][c].set_title(name, fontsize=8)
    fig.tight_layout()
    report.save_figure(fig, path)
