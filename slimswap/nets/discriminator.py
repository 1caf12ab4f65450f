"""Multi-scale PatchGAN discriminator (hinge loss) with spectral norm.

Two scales (128 and 64 px) judge texture and face structure separately; the intermediate
activations feed the generator's feature-matching term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    def __init__(self, base: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, cout = 3, base
        for _ in range(n_layers):
            layers.append(
                nn.Sequential(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2))
            )
            cin, cout = cout, min(cout * 2, 512)
        layers.append(nn.Sequential(spectral_norm(nn.Conv2d(cin, cin, 3, 1, 1)), nn.LeakyReLU(0.2)))
        self.layers = nn.ModuleList(layers)
        self.head = spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return self.head(x), feats


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, base: int = 64, scales: int = 2) -> None:
        super().__init__()
        self.nets = nn.ModuleList(PatchDiscriminator(base) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        outs = []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 2)
            outs.append(net(x))
        return outs
