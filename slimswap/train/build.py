"""Building the training shards: face analysis (dlib), the identity split and the leak guard.

`build_dataset` reads `<identity>/<image>` folders, detects, landmarks and embeds each face,
splits identities into train/val/test (plus extra test sets), keeps anyone who looks like a
held-out person out of training, and writes shards (train/shards.py) and manifest.json.
dlib, Pillow and rich are imported inside the functions that use them. The analysis step is
in build_analysis.py, the identity split and leak guard in build_split.py, the parameters
(BuildConfig) in build_config.py.

Layout of `out_dir`:
  cache/analysis_<key>.npz  detection, landmarks and embedding per input chunk; an interrupted
                            build resumes from here, and re-encoding at another quality is quick
  cache/mesh_<key>.npz      MediaPipe's mapped 68 landmarks of the same faces, per chunk
  <split>_<size>.npz        one shard per split and crop size (see train/shards.py)
  manifest.json             counts, split lists, sha256 of each shard, parameters, failures
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.face.align import TEMPLATE_5, align, transform_points
from slimswap.files import atomic_write, sha256_file
from slimswap.paths import REPO_ROOT, shared_data_dir
from slimswap.train.build_analysis import (
    ANALYSIS_VERSION,
    MESH_VERSION,
    _analyse_all,
    _imap,
    _init_worker,
    _mesh_all,
    pick_face,  # noqa: F401 (the build's face choice, imported from here)
    read_rgb_strict,
)
from slimswap.train.build_config import (
    MAIN,
    BuildConfig,
    BuildResult,
    _Item,
)
from slimswap.train.build_split import _centroids, guard_leaks, split_identities
from slimswap.train.shards import FORMAT_VERSION, shard_arrays, write_npz

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
DEFAULT_OUT_DIR = REPO_ROOT / "data" / "shards"


# ----------------------------------------------------------------------------- inputs


def list_images(root: Path) -> list[tuple[str, Path]]:
    """(identity folder, image path) for every image file under root/<identity>/.

    Folders starting with '_' or '.' are skipped (deepface_testset/_unlabeled_multi_face);
    files at the top level (README, label lists) are not images of anyone.
    """
    out = []
    for person in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "_."):
        for f in sorted(person.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                out.append((person.name, f))
    return out


def _collect(inputs: Sequence[Path], extra_tests: Mapping[str, Path]) -> list[_Item]:
    roots = [(Path(r), MAIN) for r in inputs] + [(Path(r), g) for g, r in extra_tests.items()]
    names = [r.name for r, _ in roots]
    if len(set(names)) != len(names):
        raise UserError(f"input folders must have distinct names (they prefix identities): {names}")
    if not inputs:
        raise UserError("no training input folders given")
    items = []
    for root, group in roots:
        if not root.is_dir():
            raise UserError(f"input folder not found: {root} (expected <identity>/<image> folders)")
        found = list_images(root)
        if not found:
            raise UserError(f"no images in {root} (expected <identity>/<image> folders)")
        for person, f in found:
            items.append(_Item(f, f"{root.name}/{person}/{f.name}", f"{root.name}/{person}", group))
    return items


# ----------------------------------------------------------------------------- crops


def _crop(job: tuple) -> list[tuple[int, bytes, np.ndarray, np.ndarray]]:
    """Align one source face at each requested size by dlib's landmarks; (size, encoded crop,
    dlib's landmarks in the crop, MediaPipe's mapped landmarks in the crop)."""
    from slimswap.face.analyser import kps_from_landmarks

    path, landmarks, mesh, sizes, codec, quality = job
    frame = read_rgb_strict(Path(path))
    kps = kps_from_landmarks(landmarks)
    flag = cv2.IMWRITE_WEBP_QUALITY if codec == "webp" else cv2.IMWRITE_JPEG_QUALITY
    out = []
    for size in sizes:
        crop, affine = align(frame, kps, size)
        ok, buf = cv2.imencode(f".{codec}", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [flag, quality])
        if not ok:
            raise RuntimeError(f"opencv could not encode a {codec} crop")
        out.append(
            (
                size,
                buf.tobytes(),
                transform_points(landmarks, affine).astype(np.float32),
                transform_points(mesh, affine).astype(np.float32),
            )
        )
    return out


# ----------------------------------------------------------------------------- build


def default_inputs() -> tuple[list[Path], dict[str, Path]]:
    """LFW + CelebA subset for training, deepface_testset as the extra test set."""
    data = shared_data_dir()
    if data is None:
        raise UserError(
            "../shared/data not found: pass input folders explicitly or set SLIMSWAP_SHARED"
        )
    train = [data / "lfw_deepfunneled", data / "celeba_wild_subset"]
    return train, {"deepface": data / "deepface_testset"}


def build_dataset(
    inputs: Sequence[str | Path] | None = None,
    out_dir: str | Path | None = None,
    extra_tests: Mapping[str, str | Path] | None = None,
    config: BuildConfig | None = None,
    progress: bool = True,
) -> BuildResult:
    """Build the training shards and manifest.json from `<identity>/<image>` folders.

    `inputs` are split by identity into train/val/test; each folder in `extra_tests`
    (name -> folder) becomes a test shard of its own. With no inputs at all, the shared LFW,
    CelebA subset and deepface test set are used. Re-running reuses the analysis cache.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} img/s" if task.speed else "- img/s")

    cfg = config or BuildConfig()
    if inputs is None and extra_tests is None:
        inputs, extra_tests = default_inputs()
    extra = {str(k): Path(v) for k, v in (extra_tests or {}).items()}
    if MAIN in extra or any(k in extra for k in ("train", "val", "test")):
        raise UserError(f"extra test set names must differ from train/val/test/main: {list(extra)}")
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    items = _collect([Path(p) for p in inputs or []], extra)
    log.info("%d images in %d identities", len(items), len({it.identity for it in items}))

    pool = None
    init_args = (cfg.detect_max_side, cfg.upsample_retry_max_side)
    if cfg.workers > 1:
        # spawn, not fork: forked workers hung at 0 % CPU once the parent had used OpenCV
        # (its thread pool does not survive fork). An executor, not multiprocessing.Pool,
        # because it fails when a worker dies where a Pool would restart it forever.
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(cfg.workers, ctx, _init_worker, init_args)
    else:
        _init_worker(*init_args)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, disable=not progress) as bar:
            table, cached = _analyse_all(items, out / "cache", cfg, pool, bar)
            table.update(_mesh_all(items, table, out / "cache", cfg, pool, bar))
            manifest = _write_shards(items, table, out, cfg, pool, bar)
    except BrokenProcessPool as exc:
        raise UserError(
            "a worker process died (crash, out of memory, or a script that calls build_dataset "
            "outside `if __name__ == '__main__':`, which spawned workers re-run); finished "
            f"chunks stay cached in {out / 'cache'}"
        ) from exc
    finally:  # on Ctrl-C too: finished chunks stay cached, queued work is dropped
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    seconds = time.perf_counter() - start
    log.info("built %s in %.0f s", out, seconds)
    return BuildResult(out, manifest, seconds, analysed=len(items) - cached, cached=cached)


def _write_shards(items: list[_Item], table: dict, out: Path, cfg: BuildConfig, pool, bar) -> dict:
    from slimswap.face.analyser import kps_from_landmarks

    ok = table["reasons"] == ""
    failures = [
        {"source": it.source, "reason": str(r)}
        for it, r, good in zip(items, table["reasons"], ok)
        if not good
    ]
    identities = np.array([it.identity for it in items])
    main = np.array([it.group == MAIN for it in items]) & ok
    face_counts = Counter(identities[main].tolist())
    splits = split_identities(face_counts, cfg)
    groups = sorted({it.group for it in items} - {MAIN})
    for g in groups:
        splits[g] = sorted({it.identity for it, good in zip(items, ok) if it.group == g and good})
    centroids = _centroids(identities[ok], table["embeddings"][ok])
    held_out = splits["test"] + [n for g in groups for n in splits[g]]
    moved = guard_leaks(splits, centroids, held_out, cfg.leak_threshold)
    split_of = {n: s for s, names in splits.items() for n in names}

    # which sizes each good face gets; jobs in source order so shards are deterministic
    jobs, owners = [], []
    for i in np.flatnonzero(ok):
        kps = kps_from_landmarks(table["landmarks"][i])
        iod = float(np.linalg.norm(kps[1] - kps[0]))
        sizes = tuple(s for s in cfg.sizes if iod >= cfg.min_iod(s))
        lm, mesh = table["landmarks"][i], table["mesh_landmarks"][i]
        jobs.append((str(items[i].path), lm, mesh, sizes, cfg.codec, cfg.quality))
        owners.append(i)
    task = bar.add_task("cropping", total=len(jobs))
    rows: dict[tuple[str, int], list] = defaultdict(list)
    for i, crops in zip(owners, _imap(pool, _crop, jobs, chunksize=16)):
        it = items[i]
        for size, data, lm, mesh in crops:
            row = (it.source, it.identity, table["embeddings"][i], data, lm, mesh)
            rows[(split_of[it.identity], size)].append(row)
        bar.advance(task)

    split_names = ["train", "val", "test", *groups]
    shards = {}
    for split in split_names:
        for size in cfg.sizes:
            r = rows.get((split, size))
            if not r:
                continue
            name = f"{split}_{size}.npz"
            arrays = shard_arrays(size, sorted(r, key=lambda row: row[0]))
            write_npz(out / name, arrays, stored=("images",))
            mb = (out / name).stat().st_size / 1e6
            if split == "train" and size == cfg.sizes[0] and mb > cfg.max_train_mb:
                (out / name).unlink()
                raise UserError(
                    f"{name} came out at {mb:.1f} MB, over the {cfg.max_train_mb} MB limit: "
                    f"lower the quality (now {cfg.quality})"
                )
            shards[name] = {
                "split": split,
                "size": size,
                "images": len(r),
                "identities": len(arrays["identities"]),
                "bytes": (out / name).stat().st_size,
                "sha256": sha256_file(out / name),
            }

    split_info = {}
    for split in split_names:
        names = splits[split]
        counts = Counter(identities[ok & np.isin(identities, names)].tolist())
        split_info[split] = {
            "identities": len(names),
            "images": int(sum(counts.values())),
            f"identities_with_{cfg.test_min_images}plus": sum(
                c >= cfg.test_min_images for c in counts.values()
            ),
            "images_per_size": {str(s): len(rows.get((split, s), [])) for s in cfg.sizes},
        }
    manifest = {
        "version": FORMAT_VERSION,
        "params": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("workers", "chunk_images")},
            "min_iod_px": {str(s): round(cfg.min_iod(s), 2) for s in cfg.sizes},
            "template_5": TEMPLATE_5.tolist(),
            "alignment": "slimswap.face.align.align: similarity to TEMPLATE_5, bilinear, reflect",
            "analysis_version": ANALYSIS_VERSION,
            "embedding": "dlib_face_recognition_resnet_model_v1 on the source image",
        },
        "inputs": _input_summary(items),
        "totals": {"images": len(items), "faces": int(ok.sum()), "failures": len(failures)},
        "mesh": {
            "version": MESH_VERSION,
            "detected": int(table["mesh_detected"][ok].sum()),
            "in_dlib_box": int((~table["mesh_detected"][ok]).sum()),
            "missing": int(np.isnan(table["mesh_landmarks"][ok]).any(axis=(1, 2)).sum()),
        },
        "splits": split_info,
        "shards": shards,
        "identities": splits,
        "leak_guard": {"threshold": cfg.leak_threshold, "moved_to_test": moved},
        "failure_counts": dict(Counter(f["reason"].split(":")[0] for f in failures)),
        "failures": failures,
    }
    text = json.dumps(manifest, indent=1) + "\n"
    with atomic_write(out / "manifest.json") as tmp:
        tmp.write_text(text)
    return json.loads(text)  # tuples become lists: the same object a reader of the file gets


def _input_summary(items: list[_Item]) -> list[dict]:
    roots: dict[str, dict] = {}
    for it in items:
        root = it.source.split("/", 1)[0]
        entry = roots.setdefault(
            root, {"name": root, "group": it.group, "images": 0, "identities": set()}
        )
        entry["images"] += 1
        entry["identities"].add(it.identity)
    return [{**e, "identities": len(e["identities"])} for e in roots.values()]
