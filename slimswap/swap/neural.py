"""Learned swappers behind the Swapper protocol: a torch backend and an ONNX Runtime backend.

Both take uint8 crops and the source's dlib descriptor, so the pipeline cannot tell them (or
the classic swapper) apart. The torch backend uploads uint8 crops and normalises them on the
device (a quarter of the bytes of float input over PCIe), computes in fp32, fp16 or bf16 and
can run a torch.compile'd graph (optionally with CUDA graphs); ONNX Runtime runs the exported
files (the INT8 lite model on a CPU). `to_model_input` / `from_model_output` are the one place
pixels become model values and back, for both backends and for the compression tools.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import torch

from slimswap.errors import UserError
from slimswap.swap.base import CropSwapper, SourceIdentity


@dataclass(frozen=True)
class Normalisation:
    """How RGB uint8 pixels map to model values: value = pixel / scale - shift."""

    name: str  # as models/MANIFEST writes it (its text up to the first ';')
    scale: float
    shift: float


PM1 = Normalisation("RGB in [-1, 1]", 127.5, 1.0)
NORMALISATIONS = {n.name: n for n in (PM1,)}


@overload
def to_model_input(crops: np.ndarray, norm: Normalisation = PM1) -> np.ndarray: ...
@overload
def to_model_input(crops: torch.Tensor, norm: Normalisation = PM1) -> torch.Tensor: ...
def to_model_input(crops, norm=PM1):
    """uint8 NHWC RGB -> float32 NCHW model values (numpy in, numpy out).

    A tensor stays on its device, so a GPU normalises what was uploaded as uint8; the NCHW
    view of NHWC memory is channels_last, which is what the GPU convolutions want.
    """
    x = torch.from_numpy(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops
    y = x.permute(0, 3, 1, 2).float().div(norm.scale).sub(norm.shift)
    return y.numpy() if isinstance(crops, np.ndarray) else y


@overload
def from_model_output(out: np.ndarray, norm: Normalisation = PM1) -> np.ndarray: ...
@overload
def from_model_output(out: torch.Tensor, norm: Normalisation = PM1) -> torch.Tensor: ...
def from_model_output(out, norm=PM1):
    """float NCHW model values -> uint8 NHWC RGB, rounded to the nearest grey level."""
    y = torch.from_numpy(out) if isinstance(out, np.ndarray) else out
    pixels = ((y.float() + norm.shift) * norm.scale + 0.5).clamp(0, 255).to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).contiguous()
    return pixels.numpy() if isinstance(out, np.ndarray) else pixels


TORCH_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
COMPILE_MODES = {"none": None, "compile": "default", "cudagraphs": "reduce-overhead"}


def check_device(device: str) -> None:
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for but no CUDA GPU is available; use --device cpu"
        )


class LearnedSwapper(CropSwapper):
    """What both backends share: the crop checks (CropSwapper), the empty batch and the
    descriptor."""

    def _swap(
        self, crops: np.ndarray, identity: SourceIdentity, target_landmarks: np.ndarray | None
    ) -> np.ndarray:
        """A warp-guided model (`guided`) also needs the target landmarks, to warp the source
        crop onto each target (slimswap.face.warp); the pipeline always passes them."""
        res = self.resolution
        if len(crops) == 0:
            return crops.copy()
        if self.guided:
            if target_landmarks is None or np.shape(target_landmarks) != (len(crops), 68, 2):
                raise ValueError(f"{self.name} needs target_landmarks (N, 68, 2) in crop pixels")
            if np.shape(identity.crop) != (res, res, 3):
                raise ValueError(f"{self.name} needs the source crop at {res} px")
        return self._run(crops, identity, target_landmarks)

    guided = False
    openings = False  # the model keeps the target's mouth and eye openings (its guide says so)

    def _run(
        self, crops: np.ndarray, identity: SourceIdentity, landmarks: np.ndarray | None
    ) -> np.ndarray:
        raise NotImplementedError

    def _guide(
        self,
        target: torch.Tensor,
        identity: SourceIdentity,
        landmarks: np.ndarray,
        region: torch.Tensor | None = None,
    ) -> torch.Tensor:
        from slimswap.face.warp import guide_for_crops

        source = to_model_input(
            torch.from_numpy(np.ascontiguousarray(identity.crop[None])).to(target.device),
            self.norm,
        )
        return guide_for_crops(target, landmarks, source, identity.landmarks, self.openings, region)


class TorchSwapper(LearnedSwapper):
    """A generator module run by PyTorch.

    precision: fp32, or fp16/bf16 autocast. compile: "none", "compile" (torch.compile) or
    "cudagraphs" (torch.compile mode "reduce-overhead"); a compiled model sees batches padded
    to a power of two, so it is compiled for a handful of shapes rather than one per size.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        device: str = "cpu",
        precision: str = "fp32",
        compile: str = "none",
        batch_size: int = 64,
        norm: Normalisation = PM1,
    ) -> None:
        check_device(device)
        if precision not in TORCH_DTYPES:
            raise UserError(
                f"precision must be one of {', '.join(TORCH_DTYPES)}, got {precision!r}"
            )
        if compile not in COMPILE_MODES:
            raise UserError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
        self.name = name
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = TORCH_DTYPES[precision]
        self.norm = norm
        self.model = model.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.resolution = int(model.config.resolution)
        self.guided = bool(getattr(model, "guided", False))
        self.openings = bool(getattr(model.config, "target_openings", False))
        self.batch_size = batch_size
        self.pad = compile != "none"
        mode = COMPILE_MODES[compile]
        self.forward = (
            self.model if mode is None else torch.compile(self.model, mode=mode, dynamic=False)
        )

    @torch.inference_mode()
    def _run(
        self, crops: np.ndarray, identity: SourceIdentity, landmarks: np.ndarray | None
    ) -> np.ndarray:
        emb = torch.as_tensor(np.asarray(identity.embedding, np.float32), device=self.device)
        outs = []
        for i in range(0, len(crops), self.batch_size):
            lm = None if landmarks is None else landmarks[i : i + self.batch_size]
            outs.append(self._swap_batch(crops[i : i + self.batch_size], emb, identity, lm))
        return np.concatenate(outs)

    @torch.inference_mode()
    def swap_tensor(
        self,
        x: torch.Tensor,
        identity: SourceIdentity,
        landmarks: np.ndarray,
        region: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The device path (`frame_engine`): model-space crops (N, 3, S, S) on this swapper's
        device in, swaps in [-1, 1] out, nothing copied to the host. region: the guide's
        region drawn on the device (`face/raster.guide_region`)."""
        emb = torch.as_tensor(np.asarray(identity.embedding, np.float32), device=self.device)
        outs = []
        for i in range(0, len(x), self.batch_size):
            part, lm = x[i : i + self.batch_size], landmarks[i : i + self.batch_size]
            reg = None if region is None else region[i : i + self.batch_size]
            inputs = [part, self._guide(part, identity, lm, reg)] if self.guided else [part]
            outs.append(self._forward(inputs, emb, len(part)).float())
        return torch.cat(outs)

    def _forward(self, inputs: list[torch.Tensor], emb: torch.Tensor, n: int) -> torch.Tensor:
        m = 1 << (n - 1).bit_length() if self.pad else n
        if m > n:  # repeat the last crop so a compiled graph sees one of a few batch sizes
            inputs = [torch.cat([t, t[-1:].expand(m - n, -1, -1, -1)]) for t in inputs]
        autocast = (
            nullcontext() if self.dtype is None else torch.autocast(self.device.type, self.dtype)
        )
        with autocast:
            y = self.forward(*inputs, emb.expand(m, -1))
        return y[:n]

    def _swap_batch(
        self,
        crops: np.ndarray,
        emb: torch.Tensor,
        identity: SourceIdentity,
        landmarks: np.ndarray | None,
    ) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        x = to_model_input(x, self.norm)
        inputs = [x, self._guide(x, identity, landmarks)] if self.guided else [x]
        y = self._forward(inputs, emb, len(crops))
        return from_model_output(y, self.norm).cpu().numpy()


class OnnxSwapper(LearnedSwapper):
    """A generator exported to ONNX (inputs `target`, [`guide`,] `identity`; output `swap`)."""

    def __init__(
        self,
        path: str | Path,
        name: str,
        device: str = "cpu",
        threads: int | None = None,
        norm: Normalisation = PM1,
    ) -> None:
        import onnxruntime as ort

        if device not in ("cpu", "cuda"):
            raise UserError(f"--device must be cpu or cuda, got {device!r}")
        path = Path(path)
        if not path.is_file():
            raise UserError(f"model file not found: {path}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between ops: the pipeline's decode/detect threads share the cores,
        # and on a loaded 2-core machine spinning made the lite model 1.5x slower
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError(
                    "onnxruntime here has no CUDA provider; use --device cpu or the torch backend"
                )
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own types for a bad file)
            raise UserError(f"cannot load ONNX model {path}: {exc}") from None
        self.name = name
        self.norm = norm
        self.resolution = int(self.session.get_inputs()[0].shape[-1])
        self.guided = "guide" in {i.name for i in self.session.get_inputs()}
        meta = self.session.get_modelmeta().custom_metadata_map
        self.openings = meta.get("target_openings") == "true"

    def _run(
        self, crops: np.ndarray, identity: SourceIdentity, landmarks: np.ndarray | None
    ) -> np.ndarray:
        e = np.repeat(np.asarray(identity.embedding, np.float32)[None], len(crops), axis=0)
        x = to_model_input(crops, self.norm)
        feed = {"target": x, "identity": e}
        if self.guided:
            feed["guide"] = self._guide(torch.from_numpy(x), identity, landmarks).numpy()
        (y,) = self.session.run(None, feed)
        return from_model_output(y, self.norm)
