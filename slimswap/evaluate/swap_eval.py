"""`slimswap eval swapper`: score what a user sees, the swap pasted into their own photo.

Protocol (DESIGN.md "Evaluation protocol", issue 11). Every pair of held-out photos goes
through the product's own full-frame step (align, swap, mask, colour, paste-back; one adapter,
`swap_in_photo`) on the photo at its own resolution (long side capped at `max_side`, 1600 px
by default: only large deepface photos are shrunk). Scores are taken on the pasted photo:
- sharpness ratio (inner face: brows, eyes, nose, mouth), swap over target, mean and worst 10 %;
- identity by the evaluation-only recognizer (never in a loss): cosine to the source photo
  and to the target photo, and top-1 retrieval among the set's identities (mean embedding
  per identity, leaving out the pair's own two photos), as source and as target;
- skin colour: CIEDE2000 against the target (mean and 95th percentile);
- 68-landmark NME of the swap against the target (pose and expression must follow it), and
  the expression on its own (`evaluate/expression.py`): mouth and eye opening of the swap vs
  the target, the share of open-mouthed targets whose swap has its mouth closed, and the NME
  of the mouth and eye points, on photos and on clip frames (other clips' people as sources,
  and the clip's own earlier frame);
- dlib's distance to source and target, share < 0.6 and dlib retrieval (secondary: the
  generator's identity loss trains against dlib's network, so these flatter it);
- cross-photo reconstruction: source = another photo (or a frame a second or more away) of
  the target's own person, so the ideal output is the target itself: PSNR and SSIM over the
  face, plus the colour and sharpness scores;
- crop level (secondary): self-swap PSNR/SSIM on aligned crops at the swapper's resolution.
Per-pair scores are appended to `<out>/cache/pairs.jsonl` as they are made, so an interrupted
run continues where it stopped (the cache is keyed by the models' and recognizer's hashes).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.evaluate import expression, metrics, report
from slimswap.evaluate.heldout import (
    HeldOutSet,
    Photos,
    cross_pairs,
    face_box_view,
    redetect,
    resize,
    same_pairs,
)
from slimswap.evaluate.recognition import CROP_SIZE, EvalRecognizer, verification
from slimswap.evaluate.swap_eval_report import (
    EXPRESSION_COLUMNS,
    EXPRESSION_NOTE,
    MAIN_COLUMNS,
    MAIN_NOTE,
    RECON_COLUMNS,
    RECON_EXPRESSION_COLUMNS,
    RECON_NOTE,
    SECONDARY_COLUMNS,
    SECONDARY_NOTE,
    markdown_table,
    recognizer_lines,
    save_grid,
    save_report,
)
from slimswap.evaluate.swap_eval_scores import (
    CELL_PX,
    CROSS_ONLY,
    EvalRun,
    Gallery,
    GridRow,
    SetResult,
    Side,
    identity_scores,
    image_scores,
)
from slimswap.face.analyser import Face, FaceAnalyser
from slimswap.face.select import match_face
from slimswap.pipeline import identity_from_face, swap_frames
from slimswap.swap.base import SourceIdentity, Swapper

# the names of this module, including those of its two parts (swap_eval_scores, swap_eval_report)
__all__ = [
    "CELL_PX",
    "CROSS_ONLY",
    "EXPRESSION_COLUMNS",
    "EXPRESSION_NOTE",
    "MAIN_COLUMNS",
    "MAIN_NOTE",
    "QUICK_CLIP",
    "RECON_COLUMNS",
    "RECON_EXPRESSION_COLUMNS",
    "RECON_NOTE",
    "SCORING_VERSION",
    "SECONDARY_COLUMNS",
    "SECONDARY_NOTE",
    "SET_NAMES",
    "EvalConfig",
    "EvalRun",
    "Gallery",
    "GridRow",
    "PairStore",
    "SetResult",
    "Side",
    "aggregate",
    "evaluate_swappers",
    "fingerprint",
    "identity_scores",
    "image_scores",
    "listed_models",
    "load_sets",
    "markdown_table",
    "quick_config",
    "recognizer_lines",
    "save_grid",
    "save_report",
    "swap_in_photo",
]

SCORING_VERSION = 2  # bump when a per-pair score changes meaning: cached pairs are then redone


@dataclass
class EvalConfig:
    pairs: int = 100  # different-person (source, target) pairs per photo set
    same_pairs: int = 50  # same-person pairs per set (photos, and video frames)
    self_swaps: int = 50  # crop-level self-swaps per set
    grid: int = 16  # rows of the picture (different-person pairs, spread over the photo sets)
    max_side: int = 1600  # photos larger than this are shrunk before anything (time)
    min_gap_s: float = 1.0  # video frame pairs at least this far apart
    seed: int = 0
    resume: bool = True
    # whose landmarks drive the swap: "dlib" (the judge's own, the reports so far) or
    # "mediapipe" (the product's default analyser); dlib judges the result either way
    driver: str = "dlib"


# ----------------------------------------------------------------------------- the pipeline


def swap_in_photo(
    frame: np.ndarray, face: Face, swapper: Swapper, identity: SourceIdentity
) -> np.ndarray:
    """The product's full-frame step on one face (align, swap, mask, colour, paste-back) with
    the `swap` command's default paste options."""
    (out,) = swap_frames([frame], [[face]], swapper, identity)
    return out


# ----------------------------------------------------------------------------- the run


class PairStore:
    """Per-pair scores, appended to a JSONL file as they are made (resume after a stop).

    Grid cells of the pairs shown in the picture are kept beside it as PNGs.
    """

    def __init__(self, folder: Path | None, fingerprint: str) -> None:
        self.folder, self.fp, self.rows = folder, fingerprint, {}
        self.path = folder / "pairs.jsonl" if folder else None
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interrupted write
                    continue
                if row.get("fp") == fingerprint:
                    self.rows[(row["key"], row["model"])] = row
        self.loaded = len(self.rows)

    def get(self, key: str, model: str) -> dict | None:
        return self.rows.get((key, model))

    def add(self, row: dict) -> dict:
        row = {"fp": self.fp, **report.jsonable(row)}
        self.rows[(row["key"], row["model"])] = row
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        return row

    def _cell(self, key: str, i: int) -> Path:
        digest = hashlib.sha1(f"{self.fp}|{key}|{i}".encode()).hexdigest()[:20]
        return self.folder / "cells" / f"{digest}.png"

    def save_cells(self, key: str, cells: Sequence[np.ndarray]) -> None:
        if self.folder is None:
            return
        for i, cell in enumerate(cells):
            path = self._cell(key, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(cell, cv2.COLOR_RGB2BGR))

    def cells(self, key: str, count: int) -> list[np.ndarray] | None:
        if self.folder is None:
            return None
        out = []
        for i in range(count):
            path = self._cell(key, i)
            img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
            if img is None:
                return None
            out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        return out


def listed_models() -> dict[str, dict]:
    """models/MANIFEST entries by name, read as plain JSON (any kind of entry)."""
    from slimswap.swap.registry import manifest_path

    path = manifest_path()
    if not path.is_file():
        return {}
    try:
        return {e["name"]: e for e in json.loads(path.read_text()).get("models", [])}
    except (json.JSONDecodeError, KeyError, TypeError):
        return {}


def fingerprint(swappers: Sequence[Swapper], judge: EvalRecognizer, cfg: EvalConfig) -> str:
    """What the cached scores depend on: models (by weight hash), recognizer, size cap."""
    listed = listed_models()
    parts = [str(SCORING_VERSION), judge.sha256, str(cfg.max_side)]
    if cfg.driver != "dlib":  # keeps the cache keys of dlib-driven runs as they were
        parts.append(f"driver:{cfg.driver}")
    for sw in swappers:
        parts.append(f"{sw.name}:{sw.resolution}:{listed.get(sw.name, {}).get('sha256', '')}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _gallery(
    hs: HeldOutSet, photos: Photos, judge: EvalRecognizer
) -> tuple[HeldOutSet, Gallery | None, int]:
    """The set (minus photos without a face, for folders) and its per-photo embeddings.

    Video sets have no different-person pairs, so no gallery: their frames are analysed
    only when a pair uses them.
    """
    if hs.kind == "video":
        return hs, None, 0
    if hs.crops is not None and hs.dlib is not None:  # a shard: crops and descriptors are there
        crops = np.stack([resize(c, CROP_SIZE) for c in hs.crops])
        return hs, Gallery(hs.labels, judge.embed_crops(crops), hs.dlib), 0
    keep, rec, dl = [], [], []
    for i, path in enumerate(hs.paths):
        face = photos.face(path)
        if face is not None:
            keep.append(i)
            rec.append(judge.embed_faces([photos.frame(path)], [face.kps])[0])
            dl.append(face.embedding)
    if len(np.unique(hs.labels[keep])) < 2:
        raise UserError(f"{hs.name}: faces found in photos of fewer than two people")
    sub = HeldOutSet(hs.name, hs.kind, [hs.paths[i] for i in keep], hs.labels[keep], hs.identities)
    return sub, Gallery(sub.labels, np.stack(rec), np.stack(dl)), len(hs.paths) - len(keep)


class _Evaluation:
    """The state of one run: analysed photos, caches, the pair store, the growing results."""

    def __init__(
        self,
        swappers: Sequence[Swapper],
        judge: EvalRecognizer,
        cfg: EvalConfig,
        analyser: FaceAnalyser,
        store: PairStore,
    ) -> None:
        self.swappers, self.judge, self.cfg, self.analyser = swappers, judge, cfg, analyser
        self.store = store
        self.photos = Photos(analyser, cfg.max_side)
        self.driver = None if cfg.driver == "dlib" else FaceAnalyser(detector=cfg.driver)
        self.driven: dict[Path, Face] = {}
        self.identities: dict[tuple[Path, int], SourceIdentity] = {}
        self.recs: dict[Path, np.ndarray] = {}
        self.reused = 0  # per-pair scores taken from the store

    def side(self, hs: HeldOutSet, i: int) -> Side | None:
        hint = None if hs.dlib is None else hs.dlib[i]
        face = self.photos.face(hs.paths[i], hint)
        if face is None:
            return None
        if hs.paths[i] not in self.recs:
            frame = self.photos.frame(hs.paths[i])
            self.recs[hs.paths[i]] = self.judge.embed_faces([frame], [face.kps])[0]
        return Side(i, hs.paths[i], face, self.recs[hs.paths[i]])

    def driving(self, side: Side) -> Face:
        """The face that drives the swap: the judge's own, or the face the driver analyser
        finds where the judge found it (its landmarks and keypoints, the judge's dlib
        descriptor); the judge's when the driver finds none there."""
        if self.driver is None:
            return side.face
        if side.path not in self.driven:
            from dataclasses import replace

            found = self.driver.detect(self.photos.frame(side.path))
            best = match_face(found, side.face.bbox)
            self.driven[side.path] = (
                side.face if best is None else replace(best, embedding=side.face.embedding)
            )
        return self.driven[side.path]

    def identity(self, side: Side, resolution: int) -> SourceIdentity:
        key = (side.path, resolution)
        if key not in self.identities:
            frame = self.photos.frame(side.path)
            self.identities[key] = identity_from_face(frame, self.driving(side), resolution)
        return self.identities[key]

    def pair(
        self, hs: HeldOutSet, gallery: Gallery | None, kind: str, s: int, t: int, cells: bool
    ) -> tuple[list[dict], list[np.ndarray] | None] | None:
        """Every swapper's scores on one pair (from the store when there), and the pair's
        grid cells when asked for; None when a photo has no face."""
        key = f"{hs.name}|{kind}|{hs.paths[s]}|{hs.paths[t]}"
        cached = [self.store.get(key, sw.name) for sw in self.swappers]
        views = self.store.cells(key, len(self.swappers) + 2) if cells else None
        if all(cached) and (views is not None or not cells):
            if cached[0].get("skipped"):
                return None
            self.reused += len(cached)
            return cached, views
        source, target = self.side(hs, s), self.side(hs, t)
        if source is None or target is None:
            for sw in self.swappers:
                self.store.add({"key": key, "model": sw.name, "skipped": True})
            return None
        frame = self.photos.frame(target.path)
        views = [
            face_box_view(self.photos.frame(source.path), source.face.landmarks, CELL_PX),
            face_box_view(frame, target.face.landmarks, CELL_PX),
        ]
        rows = []
        for sw in self.swappers:
            t0 = time.perf_counter()
            out = swap_in_photo(
                frame, self.driving(target), sw, self.identity(source, sw.resolution)
            )
            lm = target.face.landmarks
            row = {
                "key": key, "set": hs.name, "kind": kind, "model": sw.name,
                "source": str(source.path), "target": str(target.path),
                "face_px": float(np.ptp(lm[:, 0])),
                **image_scores(out, frame, lm, reconstruction=kind == "same"),
            }  # fmt: skip
            swapped = redetect(out, target.face, self.analyser)
            row["swap_detected"] = swapped is not None
            if swapped is not None:
                row["landmark_nme"] = metrics.landmark_nme(swapped.landmarks, lm)
                row.update(expression.pair_scores(swapped.landmarks, lm))
            if kind == "cross" and gallery is not None:
                row.update(
                    identity_scores(
                        out, source, target, gallery, self.judge, self.analyser, swapped
                    )
                )
            row["seconds"] = time.perf_counter() - t0
            rows.append(self.store.add(row))
            views.append(face_box_view(out, lm, CELL_PX))
        if cells:
            self.store.save_cells(key, views)
        return rows, views if cells else None

    def self_swap(self, hs: HeldOutSet, t: int) -> list[dict]:
        """Crop level: each swapper re-making a held-out face from its own identity."""
        key = f"{hs.name}|self|{hs.paths[t]}|{hs.paths[t]}"
        rows = []
        for sw in self.swappers:
            row = self.store.get(key, sw.name)
            self.reused += row is not None
            if row is None:
                ident = self.identity(self.side(hs, t), sw.resolution)
                (own,) = sw.swap(ident.crop[None], ident, target_landmarks=ident.landmarks[None])
                psnr = min(metrics.PSNR_CAP, metrics.psnr(own, ident.crop))
                row = self.store.add(
                    {"key": key, "set": hs.name, "kind": "self", "model": sw.name,
                     "psnr": psnr, "ssim": metrics.ssim(own, ident.crop)}
                )  # fmt: skip
            rows.append(row)
        return rows


def _plans(hs: HeldOutSet, cfg: EvalConfig) -> list[tuple[str, list[tuple[int, int]], int]]:
    """(kind, candidate pairs, how many to score): three candidates per wanted pair, so
    photos without a detectable face do not shorten the run."""
    plans = []
    if hs.kind == "photos" or len(np.unique(hs.labels)) > 1:  # clips: another clip's person
        plans.append(("cross", cross_pairs(hs.labels, 3 * cfg.pairs, cfg.seed), cfg.pairs))
    gap = 0.0 if hs.fps is None else cfg.min_gap_s * hs.fps
    same = same_pairs(hs.labels, 3 * cfg.same_pairs, cfg.seed + 1, hs.frame_index, gap)
    plans.append(("same", same, cfg.same_pairs))
    return plans


def evaluate_swappers(
    swappers: Sequence[Swapper],
    sets: Sequence[HeldOutSet],
    judge: EvalRecognizer,
    cfg: EvalConfig | None = None,
    cache_dir: Path | None = None,
    analyser: FaceAnalyser | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvalRun:
    """Score every swapper on every set (see the module docstring); per-pair rows are cached."""
    start = time.time()
    cfg = cfg or EvalConfig()
    store = PairStore(cache_dir if cfg.resume else None, fingerprint(swappers, judge, cfg))
    ev = _Evaluation(swappers, judge, cfg, analyser or FaceAnalyser(detector="dlib"), store)
    say = progress or (lambda msg: None)
    photo_sets = [hs for hs in sets if hs.kind == "photos"]
    per_set_grid = -(-cfg.grid // max(1, len(photo_sets)))
    run = EvalRun([], [])
    for hs0 in sets:
        hs, gallery, no_face = _gallery(hs0, ev.photos, judge)
        say(f"{hs.name}: {len(hs)} photos of {len(np.unique(hs.labels))} identities")
        if gallery is not None:
            run.verification[hs.name] = verification(gallery.recognizer, gallery.labels)
        rows: list[dict] = []
        targets: list[int] = []
        for kind, candidates, want in _plans(hs, cfg):
            done = 0
            for s, t in candidates:
                if done >= want:
                    break
                show = kind == "cross" and len(run.grid) < cfg.grid and done < per_set_grid
                scored = ev.pair(hs, gallery, kind, s, t, cells=show)
                if scored is None:
                    continue
                pair_rows, cells = scored
                rows += pair_rows
                targets.append(t)
                done += 1
                if cells is not None:
                    run.grid.append(GridRow(pair_rows[0]["key"], cells))
                if done % 10 == 0:
                    say(f"{hs.name} {kind}: {done}/{want} pairs")
        for t in list(dict.fromkeys(targets))[: cfg.self_swaps]:
            rows += ev.self_swap(hs, t)
        run.rows += rows
        run.sets[hs.name] = {
            "kind": hs.kind, "photos": len(hs), "identities": len(np.unique(hs.labels)),
            "no_face": no_face, "shrunk": sum(p in ev.photos.shrunk for p in hs.paths),
        }  # fmt: skip
        for sw in swappers:
            run.results.append(aggregate([r for r in rows if r["model"] == sw.name], sw, hs))
    if not any(r.pairs or r.recon_pairs for r in run.results):
        raise UserError("no pair could be scored: no face was found in the held-out photos")
    run.seconds, run.resumed_rows = time.time() - start, ev.reused
    return run


def _mean(rows: Sequence[dict], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None and math.isfinite(r[key])]
    return float(np.mean(vals)) if vals else math.nan


def aggregate(rows: Sequence[dict], swapper: Swapper, hs: HeldOutSet) -> SetResult:
    """Per-pair rows of one swapper on one set -> the set's numbers."""
    modes = {name: e.get("mode", name) for name, e in listed_models().items()}
    cross = [r for r in rows if r["kind"] == "cross"]
    same = [r for r in rows if r["kind"] == "same"]
    own = [r for r in rows if r["kind"] == "self"]
    found = [r for r in cross if r.get("swap_detected")]
    judged = [r for r in found if "id_dist_to_source" in r]  # clip sets have no gallery
    res = SetResult(
        swapper.name,
        modes.get(swapper.name, swapper.name),
        hs.name,
        hs.kind,
        crop_px=swapper.resolution,
    )
    res.pairs, res.detected = len(cross), len(found)
    res.identities = len(np.unique(hs.labels))
    res.id_dist_to_source = _mean(judged, "id_dist_to_source")
    res.id_dist_to_target = _mean(judged, "id_dist_to_target")
    if judged:
        res.share_below_0_6 = float(np.mean([r["id_dist_to_source"] < 0.6 for r in judged]))
    res.retrieval_top1 = _mean(judged, "dlib_top1_as_source")
    res.landmark_nme = _mean(found, "landmark_nme")
    res.sharpness_ratio = _mean(cross, "sharpness_ratio")
    res.sharpness_ratio_worst10 = metrics.mean_of_lowest(
        [r["sharpness_ratio"] for r in cross if r.get("sharpness_ratio") is not None]
    )
    for k in (
        "rec_cos_to_source",
        "rec_cos_to_target",
        "rec_top1_as_source",
        "rec_top1_as_target",
        "de2000_mean",
        "de2000_p95",
    ):
        setattr(res, k, _mean(cross, k))
    res.recon_pairs = len(same)
    res.recon_psnr, res.recon_ssim = _mean(same, "psnr"), _mean(same, "ssim")
    res.recon_de2000_mean, res.recon_de2000_p95 = (
        _mean(same, "de2000_mean"),
        _mean(same, "de2000_p95"),
    )
    res.recon_sharpness_ratio = _mean(same, "sharpness_ratio")
    for prefix, part in (("", cross), ("recon_", same)):
        for key, value in expression.summary(part).items():
            setattr(res, prefix + key, value)
    res.self_swaps = len(own)
    res.self_psnr, res.self_ssim = _mean(own, "psnr"), _mean(own, "ssim")
    res.seconds = float(sum(r.get("seconds", 0.0) for r in rows))
    return res


# ----------------------------------------------------------------------------- the sets

SET_NAMES = ("test", "deepface", "video")
QUICK_CLIP = "liveportrait_driving_d10"  # 512 px: a quick decode


def quick_config(cfg: EvalConfig) -> EvalConfig:
    """A few real faces, for CI: every field computed, in a minute on two cores."""
    return EvalConfig(
        pairs=4,
        same_pairs=2,
        self_swaps=2,
        grid=4,
        max_side=cfg.max_side,
        seed=cfg.seed,
        min_gap_s=cfg.min_gap_s,
        resume=cfg.resume,
        driver=cfg.driver,
    )


def load_sets(
    names: Sequence[str],
    shards_dir: Path,
    data_root: Path,
    frames_dir: Path | None,
    cache_dir: Path,
    quick: bool = False,
    exclude_seen: Path | None = None,
) -> list[HeldOutSet]:
    """The held-out sets by name: test (test split shard), deepface (its shard, else the
    deepface_testset folder; the folder in --quick), video (the held-out clips' frames).

    Shard sources are found under ../shared/data or, for video frames the build extracted,
    beside `frames_dir` (the build's frames folder).
    """
    from slimswap.evaluate import heldout

    roots = [data_root] if frames_dir is None else [data_root, frames_dir.parent]
    sets = []
    for name in names:
        if name == "test":
            sets.append(heldout.set_from_shard(shards_dir / "test_128.npz", roots, exclude_seen))
        elif name == "deepface":
            shard = shards_dir / "deepface_128.npz"
            if shard.is_file() and not quick:
                sets.append(heldout.set_from_shard(shard, roots, exclude_seen))
            else:
                folder = data_root / "deepface_testset"
                sets.append(
                    heldout.set_from_folder(folder, per_identity=2, identities=3, smallest=True)
                    if quick
                    else heldout.set_from_folder(folder)
                )
        elif name == "video":
            clips = [QUICK_CLIP] if quick else None
            root = heldout.held_out_frames(frames_dir, data_root / "videos", cache_dir, clips)
            sets.append(
                heldout.set_from_frames(
                    root, data_root / "videos", clips, per_clip=4 if quick else None
                )
            )
        else:
            raise UserError(f"--sets takes a comma list of {', '.join(SET_NAMES)}, got {name!r}")
    return sets
