"""A small 68-landmark regressor on aligned crops, used only as a training loss.

dlib's landmark predictor is not differentiable, so the teacher's pose/expression term needs
a network: this one is trained on the data build's dlib landmarks (in crop coordinates) and
then judges whether a swap kept the target's landmarks.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


class LandmarkNet(nn.Module):
    """crops in [-1,1] (N,3,S,S) -> landmarks (N,68,2) in units of the crop side (0..1)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        chans = [3, w, 2 * w, 4 * w, 8 * w, 8 * w]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * w * 16, 512), nn.ReLU(inplace=True), nn.Linear(512, 136)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1, 68, 2) + 0.5
