"""The PyTorch port of dlib's face ResNet against dlib itself, on real faces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from slimswap.errors import UserError
from slimswap.evaluate.metrics import roc_auc
from slimswap.face.align import align
from slimswap.face.analyser import Face, FaceAnalyser
from slimswap.nets.identity import (
    DAT_NAME,
    NUM_FLOATS,
    DlibResNet,
    export_onnx,
    load_dlib_dat,
    save_safetensors,
)
from slimswap.paths import dlib_model_path, shared_data_dir

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(
    DATA is None, reason="real faces need ../shared/data (or SLIMSWAP_SHARED); not found"
)
MAX_SIDE = 800  # big deepface photos are shrunk first: HOG on 4000 px frames takes seconds
LFW_EVERY = 27  # every 27th LFW identity (sorted) -> ~213 identities, one photo each


@dataclass
class Sample:
    source: str
    frame: np.ndarray
    face: Face
    chip: np.ndarray  # dlib's own 150px chip
    dlib_desc: np.ndarray  # dlib's descriptor of that chip


def _read_rgb(path: Path) -> np.ndarray:
    bgr_frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    frame = cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2RGB)
    scale = MAX_SIDE / max(frame.shape[:2])
    if scale < 1:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return frame


def _central_face(analyser: FaceAnalyser, frame: np.ndarray) -> Face | None:
    """The face nearest the image centre (LFW photos are centred on their subject)."""
    faces = analyser.detect(frame)
    if not faces:
        return None
    centre = np.array(frame.shape[1::-1], np.float32) / 2
    return min(faces, key=lambda f: np.linalg.norm(f.kps.mean(0) - centre))


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def _crops(samples: list[Sample], size: int = 128) -> torch.Tensor:
    """Project crops as the swapper will see them: float RGB in [0, 1]."""
    return _to_tensor([align(s.frame, s.face.kps, size)[0] for s in samples]) / 255.0


def _embed(fn, x: torch.Tensor, batch: int = 64) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)]).float().numpy()


@pytest.fixture(scope="module")
def model() -> DlibResNet:
    return DlibResNet.from_dat()


@pytest.fixture(scope="module")
def analyser() -> FaceAnalyser:
    return FaceAnalyser()


@pytest.fixture(scope="module")
def samples(analyser: FaceAnalyser) -> list[Sample]:
    """All deepface_testset faces plus one photo of every 27th LFW identity, with dlib's chip
    and descriptor (dlib takes ~0.1 s a face; held in memory only)."""
    if DATA is None:
        pytest.skip("real faces need ../shared/data (or SLIMSWAP_SHARED); not found")
    out: list[Sample] = []
    for path in sorted((DATA / "deepface_testset").glob("*/*.jpg")):
        frame = _read_rgb(path)
        for face in analyser.detect(frame):
            chip = analyser.chip(frame, face)
            out.append(Sample("deepface", frame, face, chip, analyser.embed_chip(chip)))
    names = sorted(p.name for p in (DATA / "lfw_deepfunneled").iterdir() if p.is_dir())
    for name in names[::LFW_EVERY]:
        path = min((DATA / "lfw_deepfunneled" / name).glob("*.jpg"))
        frame = _read_rgb(path)
        if (face := _central_face(analyser, frame)) is not None:
            chip = analyser.chip(frame, face)
            out.append(Sample("lfw", frame, face, chip, analyser.embed_chip(chip)))
    return out


# ------------------------------------------------------------------------------------------


def test_parser_reads_every_byte_into_the_port_topology(tmp_path: Path) -> None:
    state = load_dlib_dat()
    expected = DlibResNet().state_dict()
    assert list(state) == list(expected)
    assert all(state[k].shape == tuple(v.shape) for k, v in expected.items())
    assert sum(v.size for k, v in state.items() if k != "input_mean") == NUM_FLOATS
    np.testing.assert_allclose(state["input_mean"], [122.782, 117.001, 104.298], atol=1e-4)
    assert all(np.isfinite(v).all() for v in state.values())

    # One byte missing or one byte extra must be refused, not silently half-read.
    data = dlib_model_path(DAT_NAME).read_bytes()
    for name, blob in (("short.dat", data[:-1]), ("long.dat", data + b"\x00")):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(UserError):
            load_dlib_dat(tmp_path / name)


@needs_data
def test_port_matches_dlib_on_dlib_chips(model: DlibResNet, samples: list[Sample]) -> None:
    assert len(samples) >= 200, f"only {len(samples)} faces detected"
    port = _embed(model.forward_chip, _to_tensor([s.chip for s in samples]))
    dist = np.linalg.norm(port - np.stack([s.dlib_desc for s in samples]), axis=1)
    n_df = sum(s.source == "deepface" for s in samples)
    print(
        f"\nport vs dlib on {len(samples)} faces ({n_df} deepface, {len(samples) - n_df} LFW): "
        f"max {dist.max():.3g}, mean {dist.mean():.3g}"
    )
    assert dist.max() < 0.01


@needs_data
def test_forward_on_project_crops_is_close_to_dlib(
    model: DlibResNet, samples: list[Sample]
) -> None:
    """Our 128px crops, resampled to 150 inside the net, vs dlib's own chip and descriptor.

    Measured: mean 0.108, max 0.205 on these 72 faces. Almost all of it is alignment (our
    5-point template fit vs dlib's 68-point chip fit: per-face scale sd 3%, angle sd 1.4 deg);
    crops warped straight to 150 px give the same mean, so the 128 -> 150 resample adds little.
    """
    subset = samples[::4]
    port = _embed(model, _crops(subset))
    dist = np.linalg.norm(port - np.stack([s.dlib_desc for s in subset]), axis=1)
    print(
        f"\nproject 128 crops vs dlib on {len(subset)} faces: "
        f"max {dist.max():.3f}, mean {dist.mean():.3f}, median {np.median(dist):.3f}"
    )
    assert dist.mean() < 0.12
    assert dist.max() < 0.3


@needs_data
def test_onnx_matches_torch_with_dynamic_batch(
    model: DlibResNet, samples: list[Sample], tmp_path: Path
) -> None:
    import onnxruntime as ort

    path = export_onnx(model, tmp_path / "identity.onnx", size=128)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    crops = _crops(samples[:: len(samples) // 6][:6])
    for x in (crops[:1], crops):
        (onnx_out,) = session.run(None, {"crops": x.numpy()})
        torch_out = _embed(model, x)
        assert onnx_out.shape == (len(x), 128)
        assert np.abs(onnx_out - torch_out).max() < 1e-4


@needs_data
def test_fp16_safetensors_round_trip(
    model: DlibResNet, samples: list[Sample], tmp_path: Path
) -> None:
    path = save_safetensors(model, tmp_path / "identity.safetensors")
    assert 10.5e6 < path.stat().st_size < 12e6
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = DlibResNet.from_safetensors(path)
    assert list(loaded.state_dict()) == list(model.state_dict())
    chips = _to_tensor([s.chip for s in samples[::3]])
    dist = np.linalg.norm(
        _embed(loaded.forward_chip, chips) - _embed(model.forward_chip, chips), axis=1
    )
    print(f"\nfp16 weights vs fp32 on {len(chips)} faces: max {dist.max():.2g}")
    assert dist.max() < 0.01


@needs_data
def test_channels_last_bf16_and_gradients(model: DlibResNet, samples: list[Sample]) -> None:
    crops = _crops(samples[:16])
    reference = _embed(model, crops)

    net = DlibResNet.from_dat().to(memory_format=torch.channels_last)
    x = crops.contiguous(memory_format=torch.channels_last)
    assert np.abs(_embed(net, x) - reference).max() < 1e-4
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = _embed(net, x)
    dist = np.linalg.norm(bf16 - reference, axis=1)
    print(f"\nbf16 autocast vs fp32 on {len(x)} crops: max {dist.max():.3f}")
    assert dist.max() < 0.05

    # Identity loss needs gradients to reach the pixels through the 128 -> 150 resample.
    x = crops[:4].clone().requires_grad_(True)
    target = torch.from_numpy(reference[[1, 2, 3, 0]])
    (model(x) - target).norm(dim=1).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@needs_data
def test_lfw_same_identity_is_closer_than_different(
    model: DlibResNet, analyser: FaceAnalyser
) -> None:
    """Verification on LFW with the port on project crops: ROC AUC of -distance.

    Identities with >= 5 photos, every 6th by sorted name, first 5 photos of each.
    """
    root = DATA / "lfw_deepfunneled"
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 5)
    crops, labels = [], []
    for person_id, person in enumerate(people[::6]):
        for path in sorted(person.glob("*.jpg"))[:5]:
            frame = _read_rgb(path)
            if (face := _central_face(analyser, frame)) is not None:
                crops.append(align(frame, face.kps, 128)[0])
                labels.append(person_id)
    emb = _embed(model, _to_tensor(crops) / 255.0)
    labels = np.array(labels)
    dist = np.linalg.norm(emb[:, None] - emb[None, :], axis=-1)
    i, j = np.triu_indices(len(emb), k=1)
    same = labels[i] == labels[j]
    # All same-identity pairs; a deterministic sample of four times as many different ones.
    diff_idx = np.flatnonzero(~same)[:: max(1, (~same).sum() // (4 * same.sum()))]
    pos, neg = -dist[i[same], j[same]], -dist[i[diff_idx], j[diff_idx]]
    auc = roc_auc(np.concatenate([pos, neg]), np.arange(len(pos) + len(neg)) < len(pos))
    acc = ((-pos < 0.6).sum() + (-neg >= 0.6).sum()) / (len(pos) + len(neg))
    print(
        f"\nLFW port on 128 crops: {labels.max() + 1} people, {len(emb)} faces, "
        f"{len(pos)} same / {len(neg)} different pairs, AUC {auc:.4f}, acc@0.6 {acc:.3f}"
    )
    assert len(pos) >= 200 and len(neg) >= 200
    assert auc >= 0.98
