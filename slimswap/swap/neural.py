"""Learned swappers behind the Swapper protocol: a torch backend and an ONNX Runtime backend.

Both take uint8 crops and the source's dlib descriptor, so the pipeline cannot tell them (or
the classic swapper) apart. The torch backend runs fp16 on CUDA; ONNX Runtime runs the INT8
lite model on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from slimswap.errors import UserError
from slimswap.swap.base import SourceIdentity


def to_model_input(crops: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW in [-1, 1]."""
    return (crops.astype(np.float32).transpose(0, 3, 1, 2) / 127.5) - 1.0


def from_model_output(out: np.ndarray) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC RGB."""
    return np.clip((out.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def _check_crops(crops: np.ndarray, resolution: int) -> None:
    if crops.ndim != 4 or crops.shape[1:] != (resolution, resolution, 3) or crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 crops (N, {resolution}, {resolution}, 3), got {crops.dtype} {crops.shape}")


class TorchSwapper:
    """A generator module run by PyTorch; fp16 autocast on CUDA, fp32 on CPU."""

    def __init__(self, model: torch.nn.Module, name: str, device: str = "cpu", batch_size: int = 64) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.resolution = int(model.config.resolution)
        self.batch_size = batch_size

    @torch.inference_mode()
    def swap(self, crops: np.ndarray, identity: SourceIdentity, target_landmarks: np.ndarray | None = None) -> np.ndarray:
        _check_crops(crops, self.resolution)
        outs = []
        emb = torch.from_numpy(np.asarray(identity.embedding, np.float32)).to(self.device)
        for i in range(0, len(crops), self.batch_size):
            x = torch.from_numpy(to_model_input(crops[i : i + self.batch_size])).to(self.device)
            e = emb.expand(len(x), -1)
            with torch.autocast(self.device.type, torch.float16, enabled=self.device.type == "cuda"):
                y = self.model(x, e)
            outs.append(y.float().cpu().numpy())
        return from_model_output(np.concatenate(outs)) if outs else crops.copy()


class OnnxSwapper:
    """A generator exported to ONNX (inputs `target`, `identity`; output `swap`)."""

    def __init__(self, path: str | Path, name: str, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise UserError(f"model file not found: {path}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("onnxruntime here has no CUDA provider; use --device cpu or the torch backend")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:
            raise UserError(f"cannot load ONNX model {path}: {exc}") from None
        self.name = name
        shape = self.session.get_inputs()[0].shape
        self.resolution = int(shape[-1])

    def swap(self, crops: np.ndarray, identity: SourceIdentity, target_landmarks: np.ndarray | None = None) -> np.ndarray:
        _check_crops(crops, self.resolution)
        if len(crops) == 0:
            return crops.copy()
        x = to_model_input(crops)
        e = np.repeat(np.asarray(identity.embedding, np.float32)[None], len(crops), axis=0)
        (y,) = self.session.run(None, {"target": x, "identity": e})
        return from_model_output(y)
