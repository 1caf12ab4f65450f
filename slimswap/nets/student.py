"""The lite student: a depthwise-separable generator with attention fusion, for CPU speed.

Same interface as the teacher ((target in [-1,1], dlib identity) -> swap in [-1,1]) and the
same 32px-skip topology, so distillation can match it stage by stage. Differences, all for
speed: depthwise-separable convolutions everywhere but the stem; a width multiplier; and an
attention fusion block at 16 px where the identity-modulated path (query) looks up what it
needs from the target's encoder features (key/value), added through a learnable gamma
initialised to 0 so the block starts as an identity map and cannot hurt early training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slimswap.nets.generator import TeacherConfig, decode, inner_face_prior
from slimswap.nets.warp_generator import AdaIN, AttentionFusion


@dataclass
class StudentConfig:
    resolution: int = 128
    id_dim: int = 128
    base: int = 24  # channels at 128 px
    deep: int = 160  # channels at 32 and 16 px
    n_blocks: int = 4
    attn_dim: int = 64
    use_mask: bool = True

    @classmethod
    def from_teacher(
        cls, teacher: TeacherConfig, width: float = 0.5, attn_dim: int = 64
    ) -> StudentConfig:
        """The student for a teacher at a width multiplier (channels rounded to multiples of 8)."""
        r8 = lambda c: max(8, int(round(c * width / 8)) * 8)
        return cls(
            teacher.resolution,
            teacher.id_dim,
            r8(teacher.base),
            r8(teacher.deep),
            teacher.n_blocks,
            attn_dim,
            teacher.use_mask,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StudentConfig:
        return cls(**json.loads(text))


class DWSeparable(nn.Module):
    """3x3 depthwise + 1x1 pointwise: ~1/9 of a full conv's MACs at equal width."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.pw = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class DWAdaINBlock(nn.Module):
    def __init__(self, channels: int, id_dim: int) -> None:
        super().__init__()
        self.conv1 = DWSeparable(channels, channels)
        self.norm1 = AdaIN(channels, id_dim)
        self.conv2 = DWSeparable(channels, channels)
        self.norm2 = AdaIN(channels, id_dim)

    def forward(self, x: torch.Tensor, idv: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(self.conv1(x), idv), 0.2)
        return x + self.norm2(self.conv2(h), idv)


def dw_down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        DWSeparable(cin, cout, stride=2), nn.InstanceNorm2d(cout, affine=True), nn.LeakyReLU(0.2)
    )


def dw_up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), DWSeparable(cin, cout))


class StudentGenerator(nn.Module):
    arch = "StudentGenerator"

    def __init__(self, config: StudentConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or StudentConfig()
        b, d = c.base, c.deep
        self.stem = nn.Sequential(nn.Conv2d(3, b, 3, padding=1), nn.LeakyReLU(0.2))  # 128
        self.down1 = dw_down(b, 2 * b)  # 64
        self.down2 = dw_down(2 * b, d)  # 32
        self.down3 = dw_down(d, d)  # 16
        self.blocks = nn.ModuleList(DWAdaINBlock(d, c.id_dim) for _ in range(c.n_blocks))
        self.fusion = AttentionFusion(d, c.attn_dim)
        self.up3 = dw_up(d, d)  # 32
        self.fuse32 = nn.Conv2d(2 * d, d, 1)
        self.norm32 = AdaIN(d, c.id_dim)
        self.up2 = dw_up(d, 2 * b)  # 64
        self.norm64 = nn.InstanceNorm2d(2 * b, affine=True)
        self.up1 = dw_up(2 * b, b)  # 128
        self.norm128 = nn.InstanceNorm2d(b, affine=True)
        self.out = nn.Conv2d(b, 4 if c.use_mask else 3, 3, padding=1)
        self.register_buffer("face_prior", inner_face_prior(c.resolution), persistent=False)

    def forward(self, target: torch.Tensor, identity: torch.Tensor, return_features: bool = False):
        idv = F.normalize(identity.float(), dim=1).to(target.dtype)
        x64 = self.down1(self.stem(target))
        x32 = self.down2(x64)
        enc16 = self.down3(x32)
        h = enc16
        for block in self.blocks:
            h = block(h, idv)
        h = self.fusion(h, enc16)
        bottleneck = h
        h, rgb = decode(self, h, x32, idv, target)
        if return_features:
            return rgb, {"bottleneck": bottleneck, "dec64": h}
        return rgb
