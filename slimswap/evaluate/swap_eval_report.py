"""`slimswap eval swapper`'s report: the markdown tables, notes and recognizer lines, the JSON
files and the picture grid. Part of slimswap.evaluate.swap_eval, which imports every name
here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.evaluate import expression, metrics, report
from slimswap.evaluate.recognition import EvalRecognizer, auc_summary
from slimswap.evaluate.swap_eval_scores import CELL_PX, CROSS_ONLY, EvalRun, SetResult


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return spec.format(v)


MAIN_COLUMNS = [
    ("pairs", "pairs", "{}"),
    ("sharpness_ratio", "sharpness swap/target ↑1", "{:.2f}"),
    ("sharpness_ratio_worst10", "worst 10 %", "{:.2f}"),
    ("rec_cos_to_source", "rec. cos → source ↑", "{:.3f}"),
    ("rec_cos_to_target", "rec. cos → target", "{:.3f}"),
    ("rec_top1_as_source", "top-1 as source ↑", "{:.1%}"),
    ("rec_top1_as_target", "top-1 as target ↓", "{:.1%}"),
    ("de2000_mean", "ΔE00 skin ↓", "{:.2f}"),
    ("de2000_p95", "ΔE00 p95 ↓", "{:.2f}"),
    ("landmark_nme", "landmark NME ↓", "{:.4f}"),
]
RECON_COLUMNS = [
    ("recon_pairs", "pairs", "{}"),
    ("recon_psnr", "face PSNR dB ↑", "{:.2f}"),
    ("recon_ssim", "face SSIM ↑", "{:.3f}"),
    ("recon_de2000_mean", "ΔE00 skin ↓", "{:.2f}"),
    ("recon_de2000_p95", "ΔE00 p95 ↓", "{:.2f}"),
    ("recon_sharpness_ratio", "sharpness ↑1", "{:.2f}"),
]
EXPRESSION_COLUMNS = [
    ("mouth_open_err", "mouth opening error ↓", "{:.3f}"),
    ("mouth_missed_share", "open mouth shown closed ↓", "{:.1%}"),
    ("open_mouth_pairs", "open-mouth targets", "{}"),
    ("eye_open_err", "eye opening error ↓", "{:.3f}"),
    ("eye_missed_share", "open eyes shown closed ↓", "{:.1%}"),
    ("mouth_nme", "mouth NME ↓", "{:.4f}"),
    ("eye_nme", "eye NME ↓", "{:.4f}"),
]
RECON_EXPRESSION_COLUMNS = [(f"recon_{k}", n, f) for k, n, f in EXPRESSION_COLUMNS]
SECONDARY_COLUMNS = [
    ("id_dist_to_source", "dlib dist → source ↓", "{:.3f}"),
    ("id_dist_to_target", "dlib dist → target", "{:.3f}"),
    ("share_below_0_6", "share < 0.6", "{:.1%}"),
    ("retrieval_top1", "dlib top-1 as source", "{:.1%}"),
    ("detected", "swaps dlib finds", "{}"),
    ("crop_px", "crop px", "{}"),
    ("self_psnr", "crop self-swap PSNR dB", "{:.2f}"),
    ("self_ssim", "crop self-swap SSIM", "{:.3f}"),
    ("seconds", "seconds", "{:.0f}"),
]


MAIN_NOTE = (
    "\nSharpness: mean |Laplacian| over brows, eyes, nose and mouth of the pasted swap over the "
    "target photo's, same pixels (1 = as sharp as the photo; well above 1 is added texture, not "
    "detail); worst 10 % = mean of the lowest tenth. rec. = the evaluation recognizer: cosine "
    "of the swap's embedding to the source photo's and the target photo's; top-1 = which "
    "held-out identity the swap is nearest to (mean embedding per identity, the pair's own "
    "photos left out). ΔE00: CIEDE2000 against the target over the skin (eyes, brows, lips "
    "and outline left out), mean and 95th percentile. NME: dlib's 68 landmarks of the swap vs "
    "the target's, over the outer-eye-corner distance.\n"
)
RECON_NOTE = (
    "\nPSNR and SSIM over the face (jaw line and brows) of the target photo at its own size.\n"
)
EXPRESSION_NOTE = (
    "\nFrom dlib's 68 landmarks found again on the pasted swap and the target's: opening = "
    "inner-lip (lid) gap over the nose-bridge-to-chin height; error = |swap - target|; "
    f"open mouth shown closed = share of targets with opening > {expression.MOUTH_OPEN} whose "
    f"swap is at or under it (eyes: {expression.EYE_OPEN}); NME of the 20 mouth and 12 eye "
    "points over the outer-eye-corner distance. Clip sets: sources are other held-out clips' "
    "people (different people) or an earlier frame of the same clip (same person).\n"
)
SECONDARY_NOTE = (
    "\nCrop self-swap: each swapper re-making a held-out face from its own identity, on the "
    f"aligned crop at the swapper's resolution (PSNR capped at {metrics.PSNR_CAP:.0f} dB).\n"
)


def markdown_table(results: Sequence[SetResult], columns=MAIN_COLUMNS, kinds=("photos",)) -> str:
    def cell(r: SetResult, key: str, spec: str) -> str:
        return "n/a" if (r.kind == "video" and key in CROSS_ONLY) else _fmt(getattr(r, key), spec)

    rows = [
        [r.model, r.test_set, *[cell(r, k, f) for k, _, f in columns]]
        for r in results
        if r.kind in kinds
    ]
    return report.markdown_table(["model", "test set", *[c[1] for c in columns]], rows)


def recognizer_lines(judge: EvalRecognizer, run: EvalRun) -> str:
    trained = auc_summary(judge.metrics)
    here = ", ".join(
        f"{k} {v['auc']:.3f} ({v['positive_pairs']} same / {v['negative_pairs']} different pairs)"
        for k, v in run.verification.items()
        if v
    )
    return (
        f"- evaluation recognizer: {judge.describe()}; never used in a training loss\n"
        f"- its verification AUC on the test identities: {trained or 'not recorded with the weights'} "
        f"(training report); on this run's photos: {here or 'n/a'}\n"
    )


def save_report(
    run: EvalRun, out_dir: Path, command: str, env: dict, config: dict, judge: EvalRecognizer
) -> dict[str, Path]:
    """eval.md, eval.json (rows as before: one per model and set), eval_run.json, eval_grid.png."""
    out_dir = Path(out_dir)
    paths = {
        "md": out_dir / "eval.md",
        "json": out_dir / "eval.json",
        "run": out_dir / "eval_run.json",
        "grid": out_dir / "eval_grid.png",
    }
    models = list(dict.fromkeys(r.model for r in run.results))
    report.write_json(paths["json"], [r.to_json() for r in run.results])
    report.write_json(
        paths["run"],
        {
            "environment": env,
            "command": command,
            "config": config,
            "seconds": run.seconds,
            "recognizer": {
                "file": str(judge.path),
                "sha256": judge.sha256,
                "listed": judge.listed,
                "training_metrics": judge.metrics,
            },
            "verification": run.verification,
            "sets": run.sets,
            "resumed_rows": run.resumed_rows,
        },
    )
    shrunk = ", ".join(f"{k}: {v['shrunk']} of {v['photos']}" for k, v in run.sets.items())
    size_line = (
        f"- photos at their own resolution, long side capped at {config.get('max_side')} px "
        f"(photos shrunk: {shrunk}); run time {run.seconds:.0f} s "
        f"({run.resumed_rows} pair scores from the cache)\n"
        f"- swaps driven by {config.get('driver', 'dlib')}'s landmarks and keypoints (source and "
        "target); every landmark score judged by dlib's 68 points\n"
    )
    md = [
        report.header("slimswap eval swapper", env, command),
        recognizer_lines(judge, run),
        size_line,
        "## Different people: the swap pasted into the target photo (native size)\n",
        markdown_table(run.results, MAIN_COLUMNS),
        MAIN_NOTE,
        "## Same person, another photo or a video frame >= 1 s away (ideal output: the target)\n",
        markdown_table(run.results, RECON_COLUMNS, kinds=("photos", "video")),
        RECON_NOTE,
        "## Expression: does the swap keep the target's mouth and eyes?\n",
        "Different people:\n",
        markdown_table(run.results, EXPRESSION_COLUMNS, kinds=("photos", "video")),
        "\nSame person (self-reenactment on clips):\n",
        markdown_table(run.results, RECON_EXPRESSION_COLUMNS, kinds=("photos", "video")),
        EXPRESSION_NOTE,
        "## Secondary: dlib (the identity loss trains against it) and crop-level numbers\n",
        markdown_table(run.results, SECONDARY_COLUMNS, kinds=("photos", "video")),
        SECONDARY_NOTE,
    ]
    if run.grid:
        md.append(
            f"## Picture\n\n![grid]({paths['grid'].name})\n\nRows: {len(run.grid)} different-person pairs; "
            f"columns: source | target | {' | '.join(models)}; each cell {CELL_PX} px cut around the "
            "face from the full-size result (text: sharpness ratio, recognizer cosine to source). "
            "Not in git: the photos are not redistributable.\n"
        )
        save_grid(run, models, paths["grid"])
    report.write_text(paths["md"], "\n".join(md))
    return paths


def _caption(cell: np.ndarray, text: str) -> np.ndarray:
    cell = cell.copy()
    cv2.rectangle(cell, (0, cell.shape[0] - 22), (cell.shape[1], cell.shape[0]), (0, 0, 0), -1)
    cv2.putText(
        cell,
        text,
        (6, cell.shape[0] - 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return cell


def save_grid(run: EvalRun, models: Sequence[str], path: Path) -> Path:
    """source | target | each model, one row per pair, a header strip with the names."""
    by_key = {(r["key"], r["model"]): r for r in run.rows}
    header = np.full((30, CELL_PX * (len(models) + 2), 3), 255, np.uint8)
    for i, name in enumerate(["source", "target", *models]):
        cv2.putText(
            header,
            name,
            (i * CELL_PX + 8, 21),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    lines = [header]
    for item in run.grid:
        cells = list(item.cells)
        first = by_key.get((item.key, models[0]), {})
        cells[1] = _caption(cells[1], f"face {first.get('face_px', 0):.0f} px wide")
        for j, m in enumerate(models):
            r = by_key.get((item.key, m), {})
            sharp, cos = (r.get(k) for k in ("sharpness_ratio", "rec_cos_to_source"))
            cells[2 + j] = _caption(
                cells[2 + j], f"sharp {_fmt(sharp, '{:.2f}')}  cos {_fmt(cos, '{:.2f}')}"
            )
        lines.append(np.hstack(cells))
    grid = np.vstack(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise UserError(f"could not write {path}")
    tmp.replace(path)
    return path
