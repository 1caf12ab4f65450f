"""The evaluation-only face recognizer: a judge of identity that no training loss ever sees.

The swap generator is trained against dlib's ResNet, so dlib's distance flatters it (a
generator can learn what that one network looks for). This recognizer is trained by the
project from scratch (CosFace margin loss) on the training split's identities, shares nothing
with dlib's network, and is only ever used to score swaps. It reads the project's aligned
crops (`slimswap.face.align.align` at any size; resampled to 112 px inside) and returns
L2-normalised embeddings compared by cosine.

Architecture: a small IResNet (pre-activation residual blocks with PReLU, as in ArcFace's
IResNet) with a MobileFaceNet-style global depthwise head, so the weights stay a few MB.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 112


@dataclass
class RecognizerConfig:
    widths: tuple[int, ...] = (64, 128, 192, 256)  # channels of the four stages (56/28/14/7 px)
    depths: tuple[int, ...] = (2, 3, 4, 2)  # residual blocks per stage
    embed_dim: int = 256
    extra: dict = field(default_factory=dict)  # free-form notes saved with the weights

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RecognizerConfig:
        d = json.loads(text)
        d["widths"], d["depths"] = tuple(d["widths"]), tuple(d["depths"])
        return cls(**d)


class IRBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.short(x)


class FaceRecognizer(nn.Module):
    """(N, 3, S, S) aligned crops in [-1, 1] -> (N, embed_dim) unit-length embeddings."""

    def __init__(self, config: RecognizerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or RecognizerConfig()
        self.stem = nn.Sequential(
            nn.Conv2d(3, c.widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(c.widths[0]),
            nn.PReLU(c.widths[0]),
        )
        blocks, cin = [], c.widths[0]
        for width, depth in zip(c.widths, c.depths):
            for i in range(depth):
                blocks.append(IRBlock(cin, width, 2 if i == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        side = INPUT_SIZE // 2 ** len(c.widths)  # 7
        # global depthwise conv: a learned spatial weighting instead of average pooling
        self.head = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cin, side, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.Flatten(),
            nn.Linear(cin, c.embed_dim, bias=False),
            nn.BatchNorm1d(c.embed_dim),
        )

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.shape[-1] != INPUT_SIZE or crops.shape[-2] != INPUT_SIZE:
            crops = F.interpolate(
                crops,
                size=(INPUT_SIZE, INPUT_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return F.normalize(self.head(self.blocks(self.stem(crops))).float(), dim=1)


class CosFaceHead(nn.Module):
    """Large-margin cosine classifier (CosFace): logits s * (cos - m at the true class).

    Used only to train the recognizer; it is not part of the released weights.
    """

    def __init__(
        self, embed_dim: int, classes: int, scale: float = 32.0, margin: float = 0.35
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, embed_dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(embeddings.float(), F.normalize(self.weight.float(), dim=1))
        cos = cos - self.margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return F.cross_entropy(self.scale * cos, labels)


def save_recognizer(net: FaceRecognizer, path: Path, metrics: dict | None = None) -> Path:
    """fp16 weights with the config (and training metrics) in the safetensors metadata."""
    from safetensors.torch import save_file

    tensors = {
        k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in net.state_dict().items()
    }
    meta = {"config": net.config.to_json(), "metrics": json.dumps(metrics or {})}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_recognizer(path: str | Path, device: str | torch.device = "cpu") -> FaceRecognizer:
    """The recognizer saved by `save_recognizer`, in eval mode, fp32."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        config = RecognizerConfig.from_json(f.metadata()["config"])
    net = FaceRecognizer(config)
    net.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    )
    return net.to(device).eval()
