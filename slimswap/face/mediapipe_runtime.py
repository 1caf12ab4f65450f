"""The MediaPipe nets and where they run: the hash-checked model files of models/MANIFEST, ONNX
Runtime on the CPU (cv2 resampling) and PyTorch on CUDA (frames uploaded once as uint8,
resampled with grid_sample)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.face.align import warp_batch
from slimswap.face.mediapipe_geometry import DETECTORS, _to3
from slimswap.paths import models_dir


def analysis_model_path(kind: str, backend: str) -> Path:
    """The hash-checked file of an analysis model listed in models/MANIFEST.

    The MANIFEST is read here, not through the swap registry: its analysis entries (mode
    "analysis", keyed by "kind" and "backend") are none of the registry's business. Raises
    UserError (one line, exit 2 in the CLI) when the manifest, the entry or the file is
    missing, or the file's sha256 differs from the manifest's.
    """
    from slimswap.files import sha256_file

    folder = models_dir()
    manifest = folder / "MANIFEST"
    restore = f"restore it with `git checkout -- {folder}` or use --detector dlib"
    try:
        entries = json.loads(manifest.read_text()).get("models", [])
    except FileNotFoundError:
        raise UserError(f"{manifest} is missing; {restore}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{manifest} is not valid JSON ({exc}); {restore}") from None
    found = [
        e
        for e in entries
        if e.get("mode") == "analysis" and e.get("kind") == kind and e.get("backend") == backend
    ]
    if not found:
        raise UserError(
            f"no {kind} ({backend}) face-analysis model is listed in {manifest}; {restore}"
        )
    path = folder / found[0]["file"]
    if not path.is_file():
        raise UserError(f"face-analysis model file missing: {path}; {restore}")
    if sha256_file(path) != found[0]["sha256"]:
        raise UserError(
            f"face-analysis model file {path} is corrupted (sha256 mismatch); {restore}"
        )
    return path


def load_torch_net(kind: str, device: str = "cpu", dtype=None):
    """A ported MediaPipe net with its hash-checked safetensors weights, in eval mode."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from slimswap.nets.mediapipe import NETS

    path = analysis_model_path(kind, "torch")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read face-analysis model {path}: {exc}") from None
    net = NETS[kind]()
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.to(device=device, dtype=dtype or torch.float32).eval()


# ----------------------------------------------------------------------------- runtimes


def _shrink_factor(affine: np.ndarray) -> int:
    """Integer pre-shrink so the warp itself never minifies by more than 2 (no aliasing)."""
    scale = math.sqrt(abs(np.linalg.det(affine[:, :2])))
    return max(1, int(1.0 / scale)) if scale < 0.5 else 1


class OnnxRuntime:
    """CPU: ONNX Runtime sessions, cv2 resampling."""

    def __init__(self, detector: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # no busy-waiting between ops: on a loaded 2-core machine spinning threads made the
        # mesh 3x slower (these nets run a few ms; a spinning pool steals the other stages' core)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {
            k: ort.InferenceSession(
                str(analysis_model_path(k, "onnx")), opts, providers=["CPUExecutionProvider"]
            )
            for k in (DETECTORS[detector], "face_mesh")
        }
        self.detector = DETECTORS[detector]

    def upload(self, frames: Sequence[np.ndarray]) -> list[dict]:
        return [{"frame": np.ascontiguousarray(f)} for f in frames]

    def warp(
        self, frames: list[dict], affines: Sequence[np.ndarray], index: Sequence[int], size: int
    ) -> np.ndarray:
        out = np.empty((len(affines), 3, size, size), np.float32)
        for j, (a, i) in enumerate(zip(affines, index)):
            k = _shrink_factor(a)
            src = frames[i]
            if k > 1:
                if k not in src:
                    f = src["frame"]
                    src[k] = cv2.resize(
                        f,
                        (max(1, f.shape[1] // k), max(1, f.shape[0] // k)),
                        interpolation=cv2.INTER_AREA,
                    )
                small = src[k]
                sx = small.shape[1] / src["frame"].shape[1]
                sy = small.shape[0] / src["frame"].shape[0]
                to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
                a = a @ np.linalg.inv(_to3(to_small))
                img = small
            else:
                img = src["frame"]
            crop = cv2.warpAffine(
                img, a[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
            )
            out[j] = crop.transpose(2, 0, 1) * np.float32(1 / 255)
        return out

    def _run(self, kind: str, x: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
        sess = self.sessions[kind]
        parts = [sess.run(None, {"image": x[i : i + chunk]}) for i in range(0, len(x), chunk)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def detect_candidates(
        self, x: np.ndarray, min_score: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per view: (boxes (n, 16), scores (n,)) of the anchors at or above min_score."""
        boxes, scores = self._run(self.detector, x)
        return [(b[s >= min_score], s[s >= min_score]) for b, s in zip(boxes, scores)]

    def run_mesh(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("face_mesh", x)


class TorchRuntime:
    """PyTorch (CUDA, or CPU for testing): frames go to the device once as uint8 (one copy per
    batch of same-sized frames), every warp of a batch is one batched grid_sample, and only
    detector candidates above the threshold come back to the host."""

    def __init__(self, detector: str, device: str = "cuda", precision: str = "fp16") -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(
                "--device cuda was asked for but no CUDA GPU is available; use --device cpu"
            )
        self.torch = torch
        self.device = torch.device(device)
        fp16 = precision == "fp16" and self.device.type == "cuda"
        self.dtype = torch.float16 if fp16 else torch.float32
        self.detector = DETECTORS[detector]
        self.nets = {
            k: load_torch_net(k, str(self.device), self.dtype) for k in (self.detector, "face_mesh")
        }
        if self.device.type == "cuda":
            self.nets = {k: n.to(memory_format=torch.channels_last) for k, n in self.nets.items()}
        # The two nets run on torch's own convolution kernels, not cuDNN's: inside the video
        # path each cuDNN call of these small nets cost ~8 ms of host time for ~11 us on the
        # GPU (torch.profiler, RESULTS session 6), and without cuDNN the H200 ran the clip at
        # 63.8 fps against 38.7 with it (same call); alone they cost 0.2 ms a frame more.
        # SLIMSWAP_ANALYSIS_CUDNN=1 puts cuDNN back (the A/B).
        self.cudnn = os.environ.get("SLIMSWAP_ANALYSIS_CUDNN", "0") == "1"

    def _net(self, name: str, x):
        with self.torch.inference_mode(), self.torch.backends.cudnn.flags(enabled=self.cudnn):
            return self.nets[name](x)

    def upload(self, frames: Sequence[np.ndarray]) -> dict:
        """{"groups": [(N,3,H,W) tensors in [0, 1]], "where": [(group, row) per frame], "pooled": {}}.

        Frames may also be uint8 (H, W, 3) tensors already on the device (a GPU decoder's)."""
        torch = self.torch
        shapes: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            shapes.setdefault(tuple(f.shape), []).append(i)
        groups, where = [], [None] * len(frames)
        for g, idx in enumerate(shapes.values()):
            if isinstance(frames[idx[0]], torch.Tensor):
                batch = torch.stack([frames[i] for i in idx]).to(self.device, non_blocking=True)
            else:
                host = torch.from_numpy(np.ascontiguousarray(np.stack([frames[i] for i in idx])))
                if self.device.type == "cuda":
                    host = host.pin_memory()
                batch = host.to(self.device, non_blocking=True)
            groups.append(batch.permute(0, 3, 1, 2).to(self.dtype).mul_(1 / 255))
            for row, i in enumerate(idx):
                where[i] = (g, row)
        return {"groups": groups, "where": where, "pooled": {}}

    def _source(self, uploaded: dict, g: int, k: int):
        """Frame group g shrunk k times by a box filter (cached): p' = (p + 0.5) / k - 0.5."""
        if k == 1:
            return uploaded["groups"][g]
        if (g, k) not in uploaded["pooled"]:
            uploaded["pooled"][g, k] = self.torch.nn.functional.avg_pool2d(
                uploaded["groups"][g], k, k
            )
        return uploaded["pooled"][g, k]

    def warp(self, uploaded: dict, affines: Sequence[np.ndarray], index: Sequence[int], size: int):
        """Bilinear warps (zeros outside) of frames through their affines, one grid_sample per
        (frame size, shrink factor) group."""
        torch = self.torch
        out = torch.empty(len(affines), 3, size, size, device=self.device, dtype=self.dtype)
        jobs: dict[tuple[int, int], list[tuple[int, int, np.ndarray]]] = {}
        for j, (a, i) in enumerate(zip(affines, index)):
            g, row = uploaded["where"][i]
            k = _shrink_factor(a)
            if k > 1:
                to_small = np.array([[1 / k, 0, 0.5 / k - 0.5], [0, 1 / k, 0.5 / k - 0.5]])
                a = a @ np.linalg.inv(_to3(to_small))
            jobs.setdefault((g, k), []).append((j, row, a))
        for (g, k), items in jobs.items():
            crops = warp_batch(
                self._source(uploaded, g, k),
                [r for _, r, _ in items],
                [a for _, _, a in items],
                size,
            )
            out[torch.tensor([j for j, _, _ in items], device=self.device)] = crops
        return (
            out.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else out
        )

    def detect_candidates(self, x, min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per view: (boxes (n, 16), scores (n,)) of the anchors at or above min_score."""
        boxes, scores = self._net(self.detector, x)
        with self.torch.inference_mode():
            keep = scores >= min_score
            view, anchor = keep.nonzero(as_tuple=True)
            kept_boxes = boxes[view, anchor].float().cpu().numpy()
            kept_scores = scores[view, anchor].float().cpu().numpy()
            view = view.cpu().numpy()
        return [(kept_boxes[view == v], kept_scores[view == v]) for v in range(len(x))]

    def run_mesh(self, x) -> tuple[np.ndarray, np.ndarray]:
        points, presence = self._net("face_mesh", x)
        return points.float().cpu().numpy(), presence.float().cpu().numpy()
