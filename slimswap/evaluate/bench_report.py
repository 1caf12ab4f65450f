"""`slimswap bench`'s report: the markdown tables and the charts of a BenchResult, written
with its JSON into the output folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimswap.evaluate import report
from slimswap.evaluate.bench import STAGES, BenchConfig, BenchResult


def _tag(cfg: BenchConfig) -> str:
    return f"bench-{cfg.device}" + ("-quick" if cfg.quick else "")


def stage_names(result: BenchResult) -> list[str]:
    """STAGES, then any extra stage some row reported, in first-seen order."""
    names = dict.fromkeys(STAGES)
    for m in result.models:
        for r in m["videos"]:
            names.update(dict.fromkeys(r["stage_ms_per_frame"]))
    return list(names)


def markdown(result: BenchResult) -> str:
    cuda = result.environment["device"] == "cuda"
    batch = result.config["large_batch"]
    head = [
        "model",
        "backend",
        "device",
        "precision",
        "compile",
        "load s",
        "1st call s",
        "b1 p50 ms",
        "b1 p95 ms",
        f"b{batch} ms/face",
        f"faces/s @b{batch}",
        "peak RSS MiB",
    ]
    rows = [
        [
            m["name"],
            m["backend"],
            m["device"],
            m["precision"],
            m["compile"],
            m["load_s"],
            m["b1_first_call_s"],
            m["b1_p50_ms"],
            m["b1_p95_ms"],
            m["batch_ms_per_face"],
            m["throughput_faces_s"],
            m["process_peak_rss_mib"],
        ]
        + ([m.get("cuda_max_allocated_mib", float("nan"))] if cuda else [])
        for m in result.models
    ]
    parts = [
        report.header("slimswap bench", result.environment, result.command),
        "## Swap model (per call, warm-up excluded)\n",
        report.markdown_table(head + (["GPU MiB"] if cuda else []), rows),
        (
            "\nLatency is one `Swapper.swap` call on real aligned faces of the bundled clip, uint8 in and out "
            "(host<->device copies included); p50/p95 over repeats after warm-up. peak RSS is this process's "
            "peak so far (cumulative over rows).\n"
        ),
        "## End to end video (decode -> encode, `pipeline.swap_video`, fresh process per row)\n",
    ]
    stages = stage_names(result)
    vhead = [
        "model",
        "video",
        "frames",
        "fps",
        "fps (stages)",
        *[f"{s} ms/f" for s in stages],
        "other ms/f",
        "bottleneck",
        "peak RSS MiB",
    ] + (["GPU MiB", "GPU util %"] if cuda else [])
    vrows = [
        [
            m["name"],
            r["video"],
            r["frames"],
            r["fps"],
            r["fps_stages"],
            *[r["stage_ms_per_frame"].get(s, 0.0) for s in stages],
            r["other_ms_per_frame"],
            r["bottleneck"],
            r["peak_rss_mib"],
        ]
        + (
            [
                r.get("cuda_max_allocated_mib", float("nan")),
                r.get("gpu_util_mean_pct", float("nan")),
            ]
            if cuda
            else []
        )
        for m in result.models
        for r in m["videos"]
    ]
    parts += [
        report.markdown_table(vhead, vrows),
        (
            "\nfps = frames / wall time of `swap_video` (includes the source photo's analysis, not model "
            "load or warm-up); fps (stages) = frames / sum of the timed stages; `other` = the rest "
            "(the source photo's analysis, face selection, tracking).\n"
        ),
    ]
    if result.cold_start:
        parts += [
            "## Cold start (fresh `slimswap swap` process on one 512x512 frame, start to PNG written)\n",
            report.markdown_table(
                ["mode", "device", "seconds p50", "seconds min", "runs", "peak RSS MiB"],
                [
                    [
                        c["mode"],
                        c["device"],
                        c["seconds_p50"],
                        c["seconds_min"],
                        c["runs"],
                        c["peak_rss_mib"],
                    ]
                    for c in result.cold_start
                ],
            ),
            "",
        ]
    return "\n".join(parts) + "\n"


def charts(result: BenchResult, path: Path, stages_path: Path) -> None:
    plt = report.pyplot()
    names = [m["name"] for m in result.models]
    e2e = [(f"{m['name']} / {r['video']}", r) for m in result.models for r in m["videos"]]
    fig, axes = plt.subplots(1, 3, figsize=(15, 2.0 + 0.45 * max(len(names), len(e2e))))
    report.bar_panel(
        axes[0],
        names,
        [m["b1_p50_ms"] for m in result.models],
        "latency, batch 1 (p50)",
        "ms per face",
    )
    report.bar_panel(
        axes[1],
        names,
        [m["throughput_faces_s"] for m in result.models],
        f"throughput, batch {result.config['large_batch']}",
        "faces / s",
    )
    report.bar_panel(
        axes[2], [k for k, _ in e2e], [r["fps"] for _, r in e2e], "end to end video", "frames / s"
    )
    fig.suptitle(f"slimswap bench: {report.device_label(result.environment)}", fontsize=10)
    fig.tight_layout()
    report.save_figure(fig, path)

    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.5 * len(e2e)))
    left = np.zeros(len(e2e))
    colours = plt.get_cmap("tab10").colors
    for i, s in enumerate([*stage_names(result), "other"]):
        vals = np.array(
            [
                r["stage_ms_per_frame"].get(s, 0.0) if s != "other" else r["other_ms_per_frame"]
                for _, r in e2e
            ]
        )
        ax.barh(range(len(e2e)), vals, left=left, label=s, color=colours[i % len(colours)])
        left += vals
    ax.set_yticks(range(len(e2e)), [k for k, _ in e2e])
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame")
    ax.set_title("where the time goes (end to end, per stage)")
    ax.legend(
        ncol=8,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if len(e2e) < 3 else -0.12),
    )
    report.save_figure(fig, stages_path)


def write_bench_report(result: BenchResult, cfg: BenchConfig) -> dict[str, Path]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = _tag(cfg)
    paths = {
        k: out / f"{tag}{suffix}"
        for k, suffix in (
            ("json", ".json"),
            ("md", ".md"),
            ("png", ".png"),
            ("stages_png", "-stages.png"),
        )
    }
    report.write_json(paths["json"], result)
    report.write_text(
        paths["md"],
        markdown(result)
        + f"\n![bench]({paths['png'].name})\n\n![stages]({paths['stages_png'].name})\n",
    )
    charts(result, paths["png"], paths["stages_png"])
    return paths
