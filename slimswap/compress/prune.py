"""Iterative structured pruning with torch-pruning, each step followed by a short distillation.

At most `step_ratio` of each prunable layer's channels go per step (Taylor importance on real
batches; layers the sensitivity analysis protects are left whole), then the pruned network
is fine-tuned to reproduce the unpruned network's swaps, until MACs (or parameters) fall to
the target ratio.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from slimswap.compress.sensitivity import swap_batch_loss


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


def count(model: nn.Module, example_inputs: tuple) -> tuple[int, int]:
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example_inputs=example_inputs)
    return int(macs), int(params)


def distill_finetune(
    student: nn.Module, teacher: nn.Module, batches: list, steps: int, lr: float = 1e-4
) -> float:
    """Fit the pruned net to the unpruned net's outputs on real batches; returns the last L1."""
    if steps <= 0:
        return float("nan")
    opt = torch.optim.Adam(student.parameters(), lr=lr, betas=(0.5, 0.999))
    student.train()
    loss = torch.tensor(float("nan"))
    for i in range(steps):
        target, identity, _ = batches[i % len(batches)]
        with torch.no_grad():
            ref = teacher(target, identity)
        loss = (student(target, identity) - ref).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    student.eval()
    return float(loss.detach())


def prune_iteratively(
    model: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    target_ratio: float = 0.5,
    metric: str = "macs",
    step_ratio: float = 0.1,
    protected: list[str] = (),
    finetune_steps: int = 20,
    on_step: Callable[[PruneStep], None] | None = None,
) -> PruneResult:
    """Prune a copy of `model` until its MACs (or params) are at most target_ratio of the original."""
    import torch_pruning as tp

    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    model = copy.deepcopy(model).eval()
    target, identity, _ = batches[0]
    example = (target[:1], identity[:1])
    base_macs, base_params = count(model, example)
    modules = dict(model.named_modules())
    ignored = [modules[n] for n in protected if n in modules]
    ignored.append(model.out)  # the RGB(+mask) head keeps its 4 channels
    # removing r of the channels removes about 1-(1-r)^2 of the MACs of a conv between two pruned layers
    # (a schedule 30 % past that estimate; the loop stops as soon as the target is met)
    channel_ratio = min(0.9, 1.3 * (1 - math.sqrt(target_ratio)))
    n_steps = max(1, math.ceil(channel_ratio / step_ratio))
    pruner = tp.pruner.MetaPruner(
        model,
        example_inputs=example,
        importance=tp.importance.TaylorImportance(),
        pruning_ratio=channel_ratio,
        iterative_steps=n_steps,
        ignored_layers=ignored,
        global_pruning=False,
    )
    result = PruneResult(model, base_macs, base_params, base_macs, base_params)
    for step in range(n_steps):
        model.zero_grad()
        for t, e, se in batches[:2]:
            swap_batch_loss(model, t, e, se).backward()
        pruner.step()
        model.zero_grad()
        l1 = distill_finetune(model, teacher, batches, finetune_steps)
        macs, params = count(model, example)
        row = PruneStep(step + 1, macs / base_macs, params / base_params, l1)
        result.steps.append(row)
        if on_step:
            on_step(row)
        result.macs, result.params = macs, params
        if (row.macs_ratio if metric == "macs" else row.params_ratio) <= target_ratio:
            break
    result.model = model
    return result
