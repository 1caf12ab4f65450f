"""Which layers can lose channels: Taylor saliency and measured quality drop per layer.

Two views, both on real aligned faces with real warp guides (`compress.data`): (1) first-order
Taylor saliency |w * dL/dw| per output channel, averaged per layer, from the gradient of a
same-person reconstruction loss; (2) the measured drop when one layer alone is structurally
pruned by 10/30/50 %: torch-pruning removes the coupled channels everywhere they appear (the
next layer's inputs, the concatenations feeding the decoder skips, the InstanceNorm affine
terms, both AdaIN Linear layers of that channel, every layer on a residual stream), and the
PSNR of the pruned model's swaps against the unpruned model's swaps inside the face region
is recorded. Layers whose
30 % cut costs more than `protect_below_db` are protected from pruning.

What is never pruned, and why:
- `out`: the RGB + mask head has exactly 4 output channels.
- depthwise convolutions (groups > 1): they follow their input channels, and the one that
  reads the target image directly (the student's `t_down.0`) would cut image channels.
- the student's attention fusion (`fusion.q/k/v`): its q and k channels meet in a batched
  matmul and v's output is reshaped back onto the bottleneck; torch-pruning's graph does not
  map channels through bmm/transpose/reshape consistently (a 3-channel cut of `fuse16` left
  q with 124 input channels for a 125-channel bottleneck), so the whole bottleneck stream of
  a model with attention stays whole.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimswap.compress.data import FaceBatch
from slimswap.compress.export import example_inputs
from slimswap.files import atomic_write

RATIOS = (0.1, 0.3, 0.5)
TRACE_RESOLUTION = 64  # dependency graphs are traced on small inputs: same graph, 16x cheaper
UNPRUNABLE = ("out",)  # module names whose output channels are fixed
UNPRUNABLE_PARTS = ("fusion.",)  # attention: channels cannot be mapped through bmm (see above)


@dataclass
class LayerSensitivity:
    name: str
    channels: int
    saliency: float  # mean Taylor saliency per channel, normalised to the max layer = 1
    # pruning ratio -> PSNR vs the unpruned swaps, inside the face region (outside it the swap
    # is mostly the target by construction)
    psnr_db: dict[float, float] = field(default_factory=dict)
    coupled: list[str] = field(default_factory=list)  # other layers that lose the same channels


def importance_loss(model: nn.Module, batch: FaceBatch) -> torch.Tensor:
    """Same-person reconstruction L1: the swap of a person onto another photo of themselves
    should be that photo. It exercises the guide, target and identity paths alike and,
    unlike "stay near the current swap", has a non-zero gradient at the current weights."""
    return (model(**batch.recon) - batch.recon["target"]).abs().mean()


def input_depthwise(model: nn.Module) -> set[str]:
    """Depthwise convolutions that read a model input (the student's first target layer):
    their channels are the input image's, which no pruning may remove.

    Matched by shape, not identity: the generator may hand the conv a masked copy of the
    input (`hide_target_face` blanks the target's face before its encoder).
    """
    inputs = example_inputs(model, resolution=TRACE_RESOLUTION)
    given = {tuple(t.shape) for t in inputs.values()}
    found: set[str] = set()
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, args, name=n: found.add(name) if tuple(args[0].shape) in given else None
        )
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.groups > 1
    ]
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for h in hooks:
            h.remove()
    return found


def _fixed(name: str) -> bool:
    return name in UNPRUNABLE or any(name.startswith(p) for p in UNPRUNABLE_PARTS)


def prunable_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Convolutions whose output channels may be removed (grouped convs follow their inputs)."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.groups == 1 and not _fixed(n)
    ]


def unprunable_modules(model: nn.Module) -> list[nn.Module]:
    """The modules pruning must leave whole (see the module docstring for why)."""
    on_input = input_depthwise(model)
    return [
        m
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and (_fixed(n) or n in on_input)
    ]


def taylor_saliency(model: nn.Module, batches: list[FaceBatch]) -> dict[str, float]:
    model = copy.deepcopy(model).train()
    model.zero_grad()
    for batch in batches:
        importance_loss(model, batch).backward()
    scores = {}
    for name, conv in prunable_convs(model):
        g = conv.weight.grad
        scores[name] = (
            0.0 if g is None else float((conv.weight.detach() * g).abs().sum(dim=(1, 2, 3)).mean())
        )
    top = max(scores.values()) or 1.0
    return {k: v / top for k, v in scores.items()}


def dependency_graph(model: nn.Module):
    """torch-pruning's dependency graph of the generator, traced on small example inputs."""
    import warnings

    import torch_pruning as tp

    with torch.enable_grad(), warnings.catch_warnings():  # traced through autograd
        # the attention's scalar gate (fusion.gamma) has no channel axis to prune
        warnings.filterwarnings("ignore", message="Unwrapped parameters")
        return tp.DependencyGraph().build_dependency(
            model, example_inputs=example_inputs(model, resolution=TRACE_RESOLUTION)
        )


def coupled_layers(model: nn.Module, layer_name: str, graph=None) -> list[str]:
    """The other convolutions and Linear layers that lose channels when `layer_name` does."""
    import torch_pruning as tp

    graph = graph or dependency_graph(model)
    modules = dict(model.named_modules())
    names = {id(m): n for n, m in modules.items()}
    group = graph.get_pruning_group(modules[layer_name], tp.prune_conv_out_channels, idxs=[0])
    found = {
        names[id(dep.target.module)]
        for dep, _ in group
        if isinstance(dep.target.module, nn.Conv2d | nn.Linear)
    }
    return sorted(found - {layer_name})


def prune_layer(model: nn.Module, layer_name: str, ratio: float) -> nn.Module:
    """A copy of model with `ratio` of one conv's output channels removed (lowest L1 norm)."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    layer = dict(model.named_modules())[layer_name]
    n_remove = int(layer.out_channels * ratio)
    if n_remove == 0:
        return model
    norms = layer.weight.detach().abs().sum(dim=(1, 2, 3))
    idxs = norms.argsort()[:n_remove].tolist()
    graph = dependency_graph(model)
    group = graph.get_pruning_group(layer, tp.prune_conv_out_channels, idxs=idxs)
    if graph.check_pruning_group(group):
        group.prune()
    return model


def psnr_pm1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> float:
    """PSNR in [-1, 1]; weight (N,1,H,W) restricts the error to a region (the face)."""
    err = (a.double() - b.double()) ** 2
    if weight is None:
        mse = float(err.mean())
    else:
        w = weight.double().expand_as(err)
        mse = float((err * w).sum() / w.sum().clamp(min=1e-12))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


@torch.no_grad()
def _swaps(model: nn.Module, batches: list[FaceBatch]) -> torch.Tensor:
    return torch.cat([model(**b.swap) for b in batches])


@torch.no_grad()
def analyse(
    model: nn.Module,
    batches: list[FaceBatch],
    ratios: tuple[float, ...] = RATIOS,
    progress: bool = True,
) -> list[LayerSensitivity]:
    """One row per prunable convolution: saliency and PSNR vs the unpruned swaps per ratio."""
    from rich.progress import track

    model = model.eval()
    ref = _swaps(model, batches)
    face = torch.cat([b.swap["guide"][:, -1:] for b in batches])  # see export.face_weight
    with torch.enable_grad():
        sal = taylor_saliency(model, batches)
        graph = dependency_graph(model)
    rows = []
    for name, conv in track(prunable_convs(model), description="sensitivity", disable=not progress):
        row = LayerSensitivity(
            name, conv.out_channels, sal.get(name, 0.0), coupled=coupled_layers(model, name, graph)
        )
        for r in ratios:
            row.psnr_db[r] = psnr_pm1(_swaps(prune_layer(model, name, r), batches), ref, face)
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
        + " | protected | also loses the channels |"
    )
    lines = [head, "|" + "---|" * (5 + len(ratios))]
    for row in rows:
        cells = " | ".join(f"{row.psnr_db[r]:.1f}" for r in ratios)
        coupled = ", ".join(row.coupled)
        lines.append(
            f"| {row.name} | {row.channels} | {row.saliency:.3f} | {cells} | "
            f"{'yes' if row.name in protected else ''} | {coupled} |"
        )
    return "\n".join(lines)


def save_report(
    rows: list[LayerSensitivity], protected: list[str], out_dir: Path, header: str = ""
) -> Path:
    """sensitivity.md / .json / .png in out_dir; returns the PNG's path."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / "sensitivity.md") as tmp:
        tmp.write_text("# Layer sensitivity\n\n" + header + markdown(rows, protected) + "\n")
    rows_json = [
        {
            "layer": r.name,
            "channels": r.channels,
            "saliency": r.saliency,
            "psnr_db": {str(k): v for k, v in r.psnr_db.items()},
            "coupled": r.coupled,
        }
        for r in rows
    ]
    with atomic_write(out_dir / "sensitivity.json") as tmp:
        tmp.write_text(json.dumps(rows_json, indent=1))
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
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
