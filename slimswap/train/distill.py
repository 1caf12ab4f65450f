"""Distilling the teacher into the lite student (same loop, resume and DDP as the teacher).

The student sees exactly the teacher's inputs (target, warped-source guide, identity) and
learns the frozen teacher's output (L1), its bottleneck features (through a 1x1 projection,
since widths differ), the identity loss against the source and, at low weight, the
adversarial term from a discriminator that continues from the teacher's. Same-person pairs
keep their reconstruction term, so the student also learns from real photos, not only from
the teacher's mistakes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from slimswap.nets.warp_generator import SwapGeneratorConfig, WarpSwapGenerator
from slimswap.train import losses
from slimswap.train.teacher import TeacherTrainer, TrainConfig, load_module, unwrap


@dataclass
class DistillWeights:
    output: float = 20.0
    feature: float = 2.0
    identity: float = 10.0
    adversarial: float = 0.3
    reconstruction: float = 5.0


@dataclass
class DistillConfig:
    teacher: str = "models/teacher.safetensors"  # teacher weights (save_generator format)
    critic_from: str = ""  # folder holding the teacher run's D.safetensors, to start D from
    student: SwapGeneratorConfig = field(default_factory=SwapGeneratorConfig.student)
    weights: DistillWeights = field(default_factory=DistillWeights)


class DistillTrainer(TeacherTrainer):
    """TeacherTrainer whose generator is the student and whose G loss is distillation."""

    release_name = "student_ema_fp16.safetensors"

    def __init__(self, config: TrainConfig, distill: DistillConfig, dataset=None) -> None:
        self.distill = distill
        config.model = distill.student
        super().__init__(config, dataset)
        from slimswap.swap.weights import load_generator

        self.teacher = load_generator(distill.teacher, device=self.device).to(
            memory_format=self.memory_format
        )
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        if (
            distill.critic_from
            and self.step == 0
            and (Path(distill.critic_from) / "D.safetensors").exists()
        ):
            load_module(self.D, Path(distill.critic_from) / "D.safetensors")

    def build_generator(self) -> nn.Module:
        student = WarpSwapGenerator(self.cfg.model)
        teacher_width = SwapGeneratorConfig().widths[-1]
        self.project = nn.Conv2d(self.cfg.model.widths[-1], teacher_width, 1)
        student.add_module("distill_projection", self.project)  # trained with it, dropped on export
        return student

    def generator_loss(
        self, b: dict[str, torch.Tensor], D: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        w = self.distill.weights
        target, guide, src_emb, pair = b["target"], b["guide"], b["source_embedding"], b["pair"]
        with torch.no_grad():
            t_out, t_feat = self.teacher(target, guide, src_emb, return_features=True)
        swap, s_feat = self.G_train(target, guide, src_emb, return_features=True)
        projection = unwrap(self.G_train).distill_projection
        l_out = F.l1_loss(swap.float(), t_out.float())
        l_feat = F.l1_loss(projection(s_feat["bottleneck"]).float(), t_feat["bottleneck"].float())
        l_id = losses.identity_loss(self.identity(self.id_view(swap)), src_emb)
        l_adv = losses.hinge_g_loss([o[0] for o in D(swap)])
        l_rec = losses.masked_mean((swap.float() - target.float()).abs().mean(dim=(1, 2, 3)), pair)
        total = (
            w.output * l_out
            + w.feature * l_feat
            + w.identity * l_id
            + w.adversarial * l_adv
            + w.reconstruction * l_rec
        )
        return swap, total, {"kd": l_out, "feat": l_feat, "id": l_id, "adv": l_adv, "rec": l_rec}

    def release_model(self) -> nn.Module:
        """The EMA student without its distillation projection (training-only)."""
        student = copy.deepcopy(self.G_ema).cpu()
        del student.distill_projection
        return student


def distill_student(
    config: TrainConfig, distill: DistillConfig, export_compact: Path | None = None
) -> dict:
    """Train (or continue) the student; returns the last log row."""
    trainer = DistillTrainer(config, distill)
    if trainer.rank == 0:
        (Path(config.out) / "distill_config.json").write_text(
            json.dumps({"train": asdict(config), "distill": asdict(distill)}, indent=2)
        )
    last = trainer.fit()
    if trainer.rank == 0:
        trainer.sample_grid()
        if export_compact is not None:
            trainer.export_compact(Path(export_compact))
    return last
