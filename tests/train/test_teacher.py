"""Teacher trainer mechanics on real face crops: resume, losses, DDP with gloo on CPU."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from slimswap.nets.generator import TeacherConfig
from slimswap.train.teacher import DeviceDataset, TeacherTrainer, TrainConfig

TINY = TeacherConfig(base=8, deep=16, n_blocks=1)


@pytest.fixture(scope="module")
def real_faces():
    """Aligned 128px crops of the bundled faces (two photos + clip frames) with dlib data."""
    from slimswap import media
    from slimswap.face.align import align, transform_points
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.paths import EXAMPLES_DIR

    fa = FaceAnalyser()
    frames = [media.read_image(EXAMPLES_DIR / "grace_hopper.jpg"), media.read_image(EXAMPLES_DIR / "astronaut.png")]
    frames += [f for batch in media.read_frames(EXAMPLES_DIR / "clip.mp4", 8) for f in batch][::20]
    crops, embs, lms = [], [], []
    for frame in frames:
        face = fa.embed(frame, max(fa.detect(frame), key=lambda f: f.area))
        crop, affine = align(frame, face.kps, 128)
        crops.append(crop)
        embs.append(face.embedding)
        lms.append(transform_points(face.landmarks, affine))
    labels = np.array([0, 1] + [2] * (len(frames) - 2))
    return np.stack(crops), np.stack(embs).astype(np.float32), np.stack(lms).astype(np.float32), labels


def make_trainer(real_faces, out, steps, **kw) -> TeacherTrainer:
    crops, embs, lms, labels = real_faces
    ds = DeviceDataset(crops, embs, lms, labels, torch.device("cpu"))
    cfg = TrainConfig(out=str(out), batch=2, max_steps=steps, landmark_pretrain_steps=2, log_every=1, device="cpu",
                      model=TINY, checkpoint_every_s=1e9, **kw)
    return TeacherTrainer(cfg, dataset=ds)


def test_dataset_flip_mirrors_landmarks(real_faces):
    crops, embs, lms, labels = real_faces
    ds = DeviceDataset(crops, embs, lms, labels, torch.device("cpu"))
    idx = torch.tensor([0])
    img, lmk = ds.batch(idx, torch.tensor([False]), jitter=False)
    img_f, lmk_f = ds.batch(idx, torch.tensor([True]), jitter=False)
    assert torch.allclose(img_f, img.flip(-1))
    # the mirrored left eye centre lands where the right eye was, mirrored
    left, right = lmk[0, 36:42].mean(0), lmk[0, 42:48].mean(0)
    left_f = lmk_f[0, 36:42].mean(0)
    assert abs(float(left_f[0]) - (1 - float(right[0]) - 1 / 128)) < 1e-4
    assert left[0] < right[0] and left_f[0] < lmk_f[0, 42:48].mean(0)[0]


def test_resume_reproduces_steps_and_losses(real_faces, tmp_path):
    """4 straight steps == 2 steps, checkpoint, a new process-like trainer, 2 more steps."""
    torch.use_deterministic_algorithms(True)
    try:
        straight = make_trainer(real_faces, tmp_path / "a", 4)
        straight.fit()
        first = make_trainer(real_faces, tmp_path / "b", 2)
        first.fit()
        resumed = make_trainer(real_faces, tmp_path / "b", 4)
        assert resumed.step == 2
        resumed.fit()
    finally:
        torch.use_deterministic_algorithms(False)
    assert resumed.step == straight.step == 4
    assert [r["step"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(straight.history, resumed.history):
        assert a["g"] == pytest.approx(b["g"], rel=1e-4, abs=1e-5)
        assert a["id"] == pytest.approx(b["id"], rel=1e-4, abs=1e-5)
    assert (tmp_path / "b" / "train_log.csv").read_text().count("\n") == 5
    assert (tmp_path / "b" / "train_log.png").stat().st_size > 1000


def test_compact_checkpoint_continues_training(real_faces, tmp_path):
    t = make_trainer(real_faces, tmp_path / "a", 2)
    t.fit()
    files = t.export_compact(tmp_path / "ck")
    assert all(p.stat().st_size < 16 * 2**20 for p in files)
    cont = make_trainer(real_faces, tmp_path / "c", 3, init_from=str(tmp_path / "ck"))
    assert cont.step == 2
    for a, b in zip(cont.G_ema.state_dict().values(), t.G_ema.state_dict().values()):
        assert torch.allclose(a, b.float(), atol=1e-2)
    cont.fit()
    assert cont.step == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, data) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    t = make_trainer(data, out, 2)
    t.fit()
    import torch.distributed as dist

    # parameters stay identical across ranks: DDP averaged the gradients
    flat = torch.cat([p.detach().flatten() for p in t.G.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    assert torch.allclose(gathered[0], gathered[1])
    assert t.samples_seen == 2 * 2 * world
    dist.destroy_process_group()


def test_ddp_two_gloo_processes(real_faces, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), real_faces), nprocs=2, join=True)
    assert (tmp_path / "ddp" / "checkpoint.pt").exists()  # written by rank 0 only
    state = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2
