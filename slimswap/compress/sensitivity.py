"""Which layers can lose channels: Taylor saliency and measured quality drop per layer.

Two views, both on real aligned faces: (1) first-order Taylor saliency |w * dL/dw| per
output channel, summed per layer, from gradients of a swap loss; (2) the measured drop when
one layer alone is structurally pruned by 10/30/50 % (torch-pruning removes the coupled
channels everywhere they appear): PSNR of the pruned model's swaps against the unpruned
model's swaps. Layers whose 30 % cut costs more than `protect_below_db` are protected from
pruning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

RATIOS = (0.1, 0.3, 0.5)


@dataclass
class LayerSensitivity:
    name: str
    channels: int
    saliency: float  # mean Taylor saliency per channel, normalised to the max layer = 1
    psnr_db: dict[float, float] = field(default_factory=dict)  # pruning ratio -> PSNR vs unpruned


def swap_batch_loss(
    model: nn.Module, target: torch.Tensor, identity: torch.Tensor, self_identity: torch.Tensor
) -> torch.Tensor:
    """Default importance loss: self-swap reconstruction plus staying near the current swap.

    Self-swaps exercise the attribute path (pose, expression, lighting); the second term
    exercises the identity path without needing the identity network.
    """
    with torch.no_grad():
        ref = model(target, identity)
    return (
        (model(target, self_identity) - target).abs().mean()
        + (model(target, identity) - ref).abs().mean()
        + 1e-3 * model(target, identity).pow(2).mean()
    )


def prunable_convs(
    model: nn.Module, skip: tuple[str, ...] = ("out",)
) -> list[tuple[str, nn.Conv2d]]:
    """Convolutions whose output channels may be removed (grouped convs follow their inputs)."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.groups == 1 and n not in skip
    ]


def taylor_saliency(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    model = copy.deepcopy(model).train()
    model.zero_grad()
    for target, identity, self_identity in batches:
        swap_batch_loss(model, target, identity, self_identity).backward()
    scores = {}
    for name, conv in prunable_convs(model):
        g = conv.weight.grad
        scores[name] = (
            0.0 if g is None else float((conv.weight.detach() * g).abs().sum(dim=(1, 2, 3)).mean())
        )
    top = max(scores.values()) or 1.0
    return {k: v / top for k, v in scores.items()}


def prune_layer(
    model: nn.Module, layer_name: str, ratio: float, example_inputs: tuple
) -> nn.Module:
    """A copy of model with `ratio` of one conv's output channels removed (lowest L1 norm)."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    layer = dict(model.named_modules())[layer_name]
    n_remove = int(layer.out_channels * ratio)
    if n_remove == 0:
        return model
    norms = layer.weight.detach().abs().sum(dim=(1, 2, 3))
    idxs = norms.argsort()[:n_remove].tolist()
    with torch.enable_grad():  # the dependency graph is traced through autograd
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        group = graph.get_pruning_group(layer, tp.prune_conv_out_channels, idxs=idxs)
        if graph.check_pruning_group(group):
            group.prune()
    return model


def psnr_pm1(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


@torch.no_grad()
def analyse(
    model: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    ratios: tuple[float, ...] = RATIOS,
    progress: bool = True,
) -> list[LayerSensitivity]:
    from rich.progress import track

    model = model.eval()
    target, identity, _ = batches[0]
    example = (target[:1], identity[:1])
    ref = model(target, identity)
    with torch.enable_grad():
        sal = taylor_saliency(model, batches)
    rows = []
    for name, conv in track(prunable_convs(model), description="sensitivity", disable=not progress):
        row = LayerSensitivity(name, conv.out_channels, sal.get(name, 0.0))
        for r in ratios:
            pruned = prune_layer(model, name, r, example)
            row.psnr_db[r] = psnr_pm1(pruned(target, identity), ref)
        rows.append(row)
    return rows


def protected_layers(
    rows: list[LayerSensitivity], protect_below_db: float = 25.0, ratio: float = 0.3
) -> list[str]:
    return [r.name for r in rows if r.psnr_db.get(ratio, 99.0) < protect_below_db]


def markdown(rows: list[LayerSensitivity], protected: list[str]) -> str:
    ratios = sorted({r for row in rows for r in row.psnr_db})
    head = (
        "| layer | channels | Taylor saliency | "
        + " | ".join(f"PSNR @{int(r * 100)}% cut" for r in ratios)
        + " | protected |"
    )
    lines = [head, "|" + "---|" * (4 + len(ratios))]
    for row in rows:
        cells = " | ".join(f"{row.psnr_db[r]:.1f}" for r in ratios)
        lines.append(
            f"| {row.name} | {row.channels} | {row.saliency:.3f} | {cells} | {'yes' if row.name in protected else ''} |"
        )
    return "\n".join(lines)


def save_report(rows: list[LayerSensitivity], protected: list[str], out_dir: Path) -> Path:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sensitivity.md").write_text(
        "# Layer sensitivity\n\n" + markdown(rows, protected) + "\n"
    )
    (out_dir / "sensitivity.json").write_text(
        json.dumps(
            [
                {
                    "layer": r.name,
                    "channels": r.channels,
                    "saliency": r.saliency,
                    "psnr_db": {str(k): v for k, v in r.psnr_db.items()},
                }
                for r in rows
            ],
            indent=1,
        )
    )
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(8, len(rows) * 0.45), 8), sharex=True)
    names = [r.name for r in rows]
    a1.bar(
        names,
        [r.saliency for r in rows],
        color=["tab:red" if n in protected else "tab:blue" for n in names],
    )
    a1.set_ylabel("Taylor saliency (norm.)")
    for ratio in sorted({r for row in rows for r in row.psnr_db}):
        a2.plot(
            names,
            [min(r.psnr_db[ratio], 60) for r in rows],
            marker="o",
            label=f"{int(ratio * 100)}% cut",
        )
    a2.set_ylabel("PSNR vs unpruned (dB)")
    a2.legend()
    plt.xticks(rotation=70, fontsize=7)
    fig.tight_layout()
    path = out_dir / "sensitivity.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
