"""Iterative structured pruning with torch-pruning, each step followed by a short distillation.

At most `step_ratio` of each prunable layer's channels go per step (Taylor importance on real
face batches; layers the sensitivity analysis protects, and the parts that cannot be pruned
consistently, `sensitivity.unprunable_modules`, are left whole), then the pruned network is
fine-tuned to reproduce the unpruned network's swaps, until MACs (or parameters) fall to the
target ratio. torch-pruning's dependency graph couples the channels across the guide and
target encoders' concatenations, the InstanceNorm affine terms, the AdaIN gamma/beta Linear
pairs and the bottleneck's residual stream, so a step keeps every shape consistent.

The graph is traced on small inputs (`sensitivity.TRACE_RESOLUTION`); MACs are counted at
the model's own resolution.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from slimswap.compress.data import FaceBatch
from slimswap.compress.export import example_inputs, input_names
from slimswap.compress.sensitivity import TRACE_RESOLUTION, importance_loss, unprunable_modules


@dataclass
class PruneStep:
    step: int
    macs_ratio: float
    params_ratio: float
    finetune_l1: float


@dataclass
class PruneResult:
    model: nn.Module
    base_macs: int
    base_params: int
    macs: int
    params: int
    steps: list[PruneStep] = field(default_factory=list)


def count(model: nn.Module, inputs: dict[str, torch.Tensor] | None = None) -> tuple[int, int]:
    """(MACs, parameters) of one forward at the model's resolution (batch 1 by default).

    torch-pruning counts convolutions, Linear layers and norms; the attention's two batched
    matmuls (about 2 x 256 x 256 x 48 MACs at a 16 px bottleneck) are not counted.
    """
    import torch_pruning as tp

    inputs = inputs if inputs is not None else example_inputs(model)
    args = tuple(inputs[n] for n in input_names(model))  # positional: the counter wants them
    macs, params = tp.utils.count_ops_and_params(model, example_inputs=args)
    return int(macs), int(params)


def distill_finetune(
    student: nn.Module, teacher: nn.Module, batches: list[FaceBatch], steps: int, lr: float = 1e-4
) -> float:
    """Fit the pruned net to the unpruned net's outputs on real swap and reconstruction pairs;
    returns the last L1."""
    if steps <= 0:
        return float("nan")
    opt = torch.optim.Adam(student.parameters(), lr=lr, betas=(0.5, 0.999))
    student.train()
    loss = torch.tensor(float("nan"))
    for i in range(steps):
        inputs = (batches[i % len(batches)].swap, batches[i % len(batches)].recon)[i % 2]
        with torch.no_grad():
            ref = teacher(**inputs)
        loss = (student(**inputs) - ref).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    student.eval()
    return float(loss.detach())


def prune_iteratively(
    model: nn.Module,
    batches: list[FaceBatch],
    target_ratio: float = 0.5,
    metric: str = "macs",
    step_ratio: float = 0.1,
    protected: list[str] = (),
    finetune_steps: int = 20,
    on_step: Callable[[PruneStep], None] | None = None,
) -> PruneResult:
    """Prune a copy of `model` until its MACs (or params) are at most target_ratio of the
    original."""
    import torch_pruning as tp

    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    model = copy.deepcopy(model).eval()
    base_macs, base_params = count(model)
    modules = dict(model.named_modules())
    ignored = [modules[n] for n in protected if n in modules] + unprunable_modules(model)
    # removing r of the channels removes about 1-(1-r)^2 of the MACs of a conv between two
    # pruned layers (a schedule 30 % past that estimate; the loop stops once the target is met)
    channel_ratio = min(0.9, 1.3 * (1 - math.sqrt(target_ratio)))
    n_steps = max(1, math.ceil(channel_ratio / step_ratio))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unwrapped parameters")
        pruner = tp.pruner.MetaPruner(
            model,
            example_inputs=example_inputs(model, resolution=TRACE_RESOLUTION),
            importance=tp.importance.TaylorImportance(),
            pruning_ratio=channel_ratio,
            iterative_steps=n_steps,
            ignored_layers=ignored,
            global_pruning=False,
        )
    result = PruneResult(model, base_macs, base_params, base_macs, base_params)
    for step in range(n_steps):
        model.zero_grad()
        for batch in batches[:2]:
            importance_loss(model, batch).backward()
        pruner.step()
        model.zero_grad()
        l1 = distill_finetune(model, teacher, batches, finetune_steps)
        macs, params = count(model)
        row = PruneStep(step + 1, macs / base_macs, params / base_params, l1)
        result.steps.append(row)
        if on_step:
            on_step(row)
        result.macs, result.params = macs, params
        if (row.macs_ratio if metric == "macs" else row.params_ratio) <= target_ratio:
            break
    result.model = model
    return result
