"""Does the swap keep the target's expression? Mouth and eye opening from 68 landmarks.

A swap must take identity from the source and everything else from the target: pose, gaze
and above all the expression. The 68-point NME over the whole face hides a closed mouth on an
open-mouthed target (eight inner-lip points of 68), so the mouth and the eyes are scored on
their own, on the landmarks found again on the pasted swap against the target's:
- opening: the inner-lip gap (and each eye's lid gap) over the face height, so it does not
  depend on the face's size in the frame;
- missed: the target's mouth is open (> MOUTH_OPEN) and the swap's is not (the failure users
  see first), likewise for open eyes shown closed;
- group NME: the mouth's 20 points and the eyes' 12, over the target's outer-eye-corner
  distance (as the whole-face NME).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slimswap.evaluate.metrics import OUTER_EYE_CORNERS

MOUTH = slice(48, 68)
EYES = slice(36, 48)
# inner-lip pairs facing each other (upper 61-63 above lower 67-65) and each eye's upper/lower
# lid pairs (37/41, 38/40 and 43/47, 44/46) in dlib's 68-point layout
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
EYE_LID_PAIRS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))
NOSE_BRIDGE, CHIN = 27, 8
MOUTH_OPEN = 0.05  # inner-lip gap over face height above which a mouth counts as open
EYE_OPEN = 0.03  # lid gap over face height above which an eye counts as open


def face_height(landmarks: np.ndarray) -> float:
    """Top of the nose bridge to the chin: the face's vertical size, whatever its pose."""
    lm = np.asarray(landmarks, np.float64)
    return float(max(np.linalg.norm(lm[CHIN] - lm[NOSE_BRIDGE]), 1e-6))


def _gap(lm: np.ndarray, pairs: Sequence[tuple[int, int]]) -> float:
    return float(np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in pairs]))


def mouth_opening(landmarks: np.ndarray) -> float:
    """Mean inner-lip gap over the face height (0 for closed lips, ~0.1-0.3 open)."""
    lm = np.asarray(landmarks, np.float64)
    return _gap(lm, INNER_LIP_PAIRS) / face_height(lm)


def eye_opening(landmarks: np.ndarray) -> float:
    """Mean lid gap of both eyes over the face height."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.mean([_gap(lm, eye) for eye in EYE_LID_PAIRS])) / face_height(lm)


def group_nme(pred: np.ndarray, ref: np.ndarray, group: slice) -> float:
    """Mean error of one landmark group over the reference's outer-eye-corner distance."""
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    iod = np.linalg.norm(ref[OUTER_EYE_CORNERS[0]] - ref[OUTER_EYE_CORNERS[1]])
    return float(np.linalg.norm(pred[group] - ref[group], axis=1).mean() / max(iod, 1e-6))


def pair_scores(swap_landmarks: np.ndarray, target_landmarks: np.ndarray) -> dict[str, float]:
    """Expression scores of one swap (its landmarks found again) against its target."""
    ms, mt = mouth_opening(swap_landmarks), mouth_opening(target_landmarks)
    es, et = eye_opening(swap_landmarks), eye_opening(target_landmarks)
    return {
        "mouth_open_target": mt,
        "mouth_open_swap": ms,
        "mouth_open_err": abs(ms - mt),
        "mouth_missed": float(mt > MOUTH_OPEN and ms <= MOUTH_OPEN),
        "eye_open_target": et,
        "eye_open_swap": es,
        "eye_open_err": abs(es - et),
        "eye_missed": float(et > EYE_OPEN and es <= EYE_OPEN),
        "mouth_nme": group_nme(swap_landmarks, target_landmarks, MOUTH),
        "eye_nme": group_nme(swap_landmarks, target_landmarks, EYES),
    }


def summary(rows: Sequence[dict]) -> dict[str, float]:
    """Set-level expression numbers from per-pair rows (pairs whose swap was found again).

    missed shares are over the pairs whose target had the mouth (eyes) open, so a set of
    closed-mouth targets cannot hide the failure.
    """
    scored = [r for r in rows if r.get("mouth_open_err") is not None]
    nan = float("nan")
    if not scored:
        return {
            k: nan
            for k in (
                "mouth_open_err",
                "mouth_missed_share",
                "eye_open_err",
                "eye_missed_share",
                "mouth_nme",
                "eye_nme",
            )
        } | {"open_mouth_pairs": 0}
    open_mouth = [r for r in scored if r["mouth_open_target"] > MOUTH_OPEN]
    open_eyes = [r for r in scored if r["eye_open_target"] > EYE_OPEN]

    def mean(rs: Sequence[dict], key: str) -> float:
        return float(np.mean([r[key] for r in rs])) if rs else nan

    return {
        "mouth_open_err": mean(scored, "mouth_open_err"),
        "mouth_missed_share": mean(open_mouth, "mouth_missed"),
        "open_mouth_pairs": len(open_mouth),
        "eye_open_err": mean(scored, "eye_open_err"),
        "eye_missed_share": mean(open_eyes, "eye_missed"),
        "mouth_nme": mean(scored, "mouth_nme"),
        "eye_nme": mean(scored, "eye_nme"),
    }
