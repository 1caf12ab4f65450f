"""The identity split of the data build: deterministic train/val/test by hashed names, and the
leak guard that moves anyone who looks like a held-out person out of training."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from slimswap.errors import UserError
from slimswap.train.build_config import BuildConfig


def _rank(name: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{name}".encode()).hexdigest()


def split_identities(face_counts: Mapping[str, int], cfg: BuildConfig) -> dict[str, list[str]]:
    """Deterministic identity split: hashes of the names order the identities.

    Test takes the first `test_identities` with >= test_min_images faces (so evaluation has
    pairs and triplets of unseen people); val the first `val_identities` of the rest with
    >= val_min_images in a second hash order (one order for both would leave val only the
    identities with exactly val_min_images faces); every other identity trains. Depends only
    on names and counts, not on the order of inputs.
    """
    test_order = sorted(face_counts, key=lambda n: (_rank(n, cfg.split_salt), n))
    test = [n for n in test_order if face_counts[n] >= cfg.test_min_images]
    test = test[: cfg.test_identities]
    val_order = sorted(face_counts, key=lambda n: (_rank(n, cfg.split_salt + ":val"), n))
    held = set(test)
    val = [n for n in val_order if n not in held and face_counts[n] >= cfg.val_min_images]
    val = val[: cfg.val_identities]
    taken = set(test) | set(val)
    train = [n for n in test_order if n not in taken]
    if not train:
        raise UserError(
            f"no identity left for training ({len(face_counts)} identities, "
            f"{cfg.test_identities} test + {cfg.val_identities} val requested): lower them"
        )
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def _centroids(identities: np.ndarray, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    sums: dict[str, np.ndarray] = {}
    counts: Counter = Counter()
    for name, emb in zip(identities, embeddings.astype(np.float64)):
        sums[name] = sums.get(name, 0) + emb
        counts[name] += 1
    return {n: sums[n] / counts[n] for n in sums}


def guard_leaks(
    splits: dict[str, list[str]],
    centroids: Mapping[str, np.ndarray],
    held_out: Sequence[str],
    threshold: float,
) -> list[dict]:
    """Move train/val identities that look like a held-out person into test (in place).

    The same person can be filed under two names (LFW's Angelina_Jolie is deepface's id01,
    LFW's Mireya_Moscoso is also Mireya_Elisa_Moscoso_Rodriguez). On the full build the mean
    embeddings of such pairs lay 0.26-0.35 apart. dlib also crowds some different people that
    close (several East Asian politicians in LFW), so a few look-alikes move too: harmless,
    they only leave training. Duplicates with a single photo on one side are mostly missed.
    """
    held = [n for n in held_out if n in centroids]
    if not held:
        return []
    held_mat = np.stack([centroids[n] for n in held])
    moved = []
    for split in ("train", "val"):
        keep = []
        for name in splits[split]:
            d = np.linalg.norm(held_mat - centroids[name], axis=1)
            j = int(np.argmin(d))
            if d[j] < threshold:
                dist = round(float(d[j]), 4)
                moved.append(
                    {"identity": name, "from": split, "nearest": held[j], "distance": dist}
                )
            else:
                keep.append(name)
        splits[split] = keep
    splits["test"] = sorted(set(splits["test"]) | {m["identity"] for m in moved})
    return moved
