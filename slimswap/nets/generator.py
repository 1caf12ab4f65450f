"""The teacher swap generator: a U-Net over the target crop with identity-modulated bottleneck.

Pose, expression, lighting and background travel from the target through the encoder and a
single 32x32 skip; the source identity enters through AdaIN (scale and shift per channel,
predicted from the L2-normalised dlib embedding) in every bottleneck block and in the 32px
decoder stage. Skips at 64 and 128 px are deliberately absent: with them the generator learns
to copy the target and identity never moves (shared/notes/teacher_feasibility.md). To keep the
target's background and hair exact anyway, the decoder predicts a soft mask and the output is
mask * generated + (1 - mask) * target, where the mask is never below a fixed soft ellipse over
the inner face of the aligned crop. Without that floor the mask itself becomes the copy path:
a first H100 run drove it to zero within minutes (self-swap L1 2e-5, identity loss flat at the
target's own value, discriminator at chance).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slimswap.nets.warp_generator import AdaIN


@dataclass
class TeacherConfig:
    resolution: int = 128  # crop side in pixels
    id_dim: int = 128  # dlib descriptor size
    base: int = 64  # channels at full resolution; doubled per downsampling up to `deep`
    deep: int = 256  # channels at 32 and 16 px
    n_blocks: int = 4  # AdaIN residual blocks at 16 px
    use_mask: bool = True  # blend the generated face into the target with a predicted mask

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TeacherConfig:
        return cls(**json.loads(text))


class AdaINResBlock(nn.Module):
    def __init__(self, channels: int, id_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = AdaIN(channels, id_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = AdaIN(channels, id_dim)

    def forward(self, x: torch.Tensor, idv: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(self.conv1(x), idv), 0.2)
        h = self.norm2(self.conv2(h), idv)
        return x + h


def down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1),
        nn.InstanceNorm2d(cout, affine=True),
        nn.LeakyReLU(0.2),
    )


def up_conv(cin: int, cout: int) -> nn.Sequential:
    """Nearest upsample + 3x3 conv: avoids the checkerboard of transposed convolutions."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1)
    )


class TeacherGenerator(nn.Module):
    """(target crop in [-1,1], identity [N,128]) -> swapped crop in [-1,1]."""

    def __init__(self, config: TeacherConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TeacherConfig()
        b, d = c.base, c.deep
        self.stem = nn.Sequential(nn.Conv2d(3, b, 7, padding=3), nn.LeakyReLU(0.2))  # 128
        self.down1 = down(b, 2 * b)  # 64
        self.down2 = down(2 * b, d)  # 32
        self.down3 = down(d, d)  # 16
        self.blocks = nn.ModuleList(AdaINResBlock(d, c.id_dim) for _ in range(c.n_blocks))
        self.up3 = up_conv(d, d)  # 32
        self.fuse32 = nn.Conv2d(2 * d, d, 1)
        self.norm32 = AdaIN(d, c.id_dim)
        self.up2 = up_conv(d, 2 * b)  # 64
        self.norm64 = nn.InstanceNorm2d(2 * b, affine=True)
        self.up1 = up_conv(2 * b, b)  # 128
        self.norm128 = nn.InstanceNorm2d(b, affine=True)
        self.out = nn.Conv2d(b, 4 if c.use_mask else 3, 3, padding=1)
        self.register_buffer("face_prior", inner_face_prior(c.resolution), persistent=False)

    def forward(self, target: torch.Tensor, identity: torch.Tensor, return_features: bool = False):
        idv = F.normalize(identity.float(), dim=1).to(target.dtype)
        x128 = self.stem(target)
        x64 = self.down1(x128)
        x32 = self.down2(x64)
        h = self.down3(x32)
        for block in self.blocks:
            h = block(h, idv)
        bottleneck = h
        h, rgb = decode(self, h, x32, idv, target)
        if return_features:
            return rgb, {"bottleneck": bottleneck, "dec64": h}
        return rgb


def decode(
    net: nn.Module, h: torch.Tensor, x32: torch.Tensor, idv: torch.Tensor, target: torch.Tensor
):
    """Decoder wiring shared by teacher and student (same stages, so distillation can match them).

    16 px bottleneck -> 32 px (+ the encoder's 32 px skip, identity-modulated) -> 64 -> 128 ->
    RGB + mask blended over the target. Returns (last features, swapped image).
    """
    h = F.leaky_relu(net.up3(h), 0.2)
    h = F.leaky_relu(net.norm32(net.fuse32(torch.cat([h, x32], 1)), idv), 0.2)
    h = F.leaky_relu(net.norm64(net.up2(h)), 0.2)
    h = F.leaky_relu(net.norm128(net.up1(h)), 0.2)
    return h, blend_with_target(net.out(h), target, net.face_prior if net.config.use_mask else None)


def blend_with_target(
    out: torch.Tensor, target: torch.Tensor, prior: torch.Tensor | None
) -> torch.Tensor:
    """tanh RGB, composited over the target by max(learned mask, inner-face prior)."""
    rgb = torch.tanh(out[:, :3])
    if prior is None:
        return rgb
    mask = torch.maximum(torch.sigmoid(out[:, 3:4]), prior.to(rgb.dtype))
    return mask * rgb + (1 - mask) * target


def inner_face_prior(resolution: int, feather: float = 0.06) -> torch.Tensor:
    """(1,1,S,S) soft ellipse covering brows to chin and cheek to cheek of an aligned crop."""
    ys, xs = torch.meshgrid(
        torch.linspace(0, 1, resolution), torch.linspace(0, 1, resolution), indexing="ij"
    )
    # centre and radii in crop units, from the template (eyes y=0.31, mouth y=0.70, eyes 0.35 apart)
    r = torch.sqrt(((xs - 0.493) / 0.30) ** 2 + ((ys - 0.53) / 0.36) ** 2)
    return torch.clamp((1 - r) / feather + 0.5, 0, 1)[None, None]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
