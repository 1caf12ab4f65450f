"""Teacher trainer mechanics on real face crops: pairs, resume, compact export, DDP with gloo."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch

from slimswap.nets.warp_generator import SwapGeneratorConfig
from slimswap.train.swap_data import SwapDataset, upload
from slimswap.train.teacher import TeacherTrainer, TrainConfig

TINY = SwapGeneratorConfig(resolution=64, widths=(8, 8, 16, 16, 16), n_blocks=1)


@pytest.fixture(scope="module")
def real_faces():
    """Aligned 128px crops of the bundled faces (two photos + clip frames) with dlib data."""
    from helpers import aligned_bundled_faces

    from slimswap.face.analyser import FaceAnalyser

    crops, embs, lms, labels = aligned_bundled_faces(FaceAnalyser(), 128)
    return crops, embs, ((lms + 0.5) / 128).astype(np.float32), labels


@pytest.fixture(scope="module")
def identity_weights(tmp_path_factory) -> str:
    """dlib's ResNet as safetensors, parsed from the .dat once for every trainer here."""
    from slimswap.nets.identity import DlibResNet, save_safetensors

    path = tmp_path_factory.mktemp("idnet") / "identity.safetensors"
    return str(save_safetensors(DlibResNet.from_dat(), path, dtype=torch.float32))


def dataset(real_faces, size: int = 64) -> SwapDataset:
    crops, embs, lms, labels = real_faces
    native = np.zeros(len(labels), bool)
    return SwapDataset(upload(crops, size, torch.device("cpu")), lms, embs, labels, native)


def make_trainer(real_faces, out, steps, identity_weights="", **kw) -> TeacherTrainer:
    kw.setdefault("checkpoint_every_s", 1e9)
    cfg = TrainConfig(
        out=str(out),
        identity_weights=identity_weights,
        batch=2,
        max_steps=steps,
        log_every=1,
        device="cpu",
        model=TINY,
        d_scales=2,
        **kw,
    )
    return TeacherTrainer(cfg, dataset=dataset(real_faces))


def test_dataset_flip_mirrors_landmarks_and_region(real_faces):
    ds = dataset(real_faces)
    idx = torch.tensor([0])
    img, lmk, region = ds.batch(idx, torch.tensor([False]))
    img_f, lmk_f, region_f = ds.batch(idx, torch.tensor([True]))
    assert torch.allclose(img_f, img.flip(-1))
    assert torch.allclose(region_f, region.flip(-1))
    # the mirrored image-left eye centre lands where the image-right eye was, mirrored
    right = lmk[0, 42:48].mean(0)
    left_f = lmk_f[0, 36:42].mean(0)
    assert abs(float(left_f[0]) - (1 - float(right[0]))) < 1e-4
    assert left_f[0] < lmk_f[0, 42:48].mean(0)[0]


def test_mesh_pairs_warp_and_mask_by_the_mesh_and_fall_back_to_dlib(real_faces):
    """A pair drawn by the mesh takes MediaPipe's points and their masks; a face the mesh
    missed (NaN) keeps dlib's, so no pair ever gets undefined landmarks."""
    crops, embs, lms, labels = real_faces
    mesh = lms.copy()
    mesh[:, 6:11, 1] += 0.03  # a lower chin, as the mesh puts it on some faces
    mesh[1] = np.nan
    ds = SwapDataset(
        upload(crops, 64, torch.device("cpu")),
        lms,
        embs,
        labels,
        np.zeros(len(labels), bool),
        mesh_landmarks=mesh,
    )
    idx, no_flip = torch.tensor([0, 1]), torch.tensor([False, False])
    _, lmk_dlib, region_dlib = ds.batch(idx, no_flip)
    _, lmk_mesh, region_mesh = ds.batch(idx, no_flip, mesh=torch.tensor([True, True]))
    assert torch.allclose(lmk_mesh[0], torch.from_numpy(mesh[0]))
    assert torch.allclose(lmk_mesh[1], lmk_dlib[1])  # NaN row: dlib's points
    assert torch.isfinite(lmk_mesh).all()
    assert region_mesh[0].sum() > region_dlib[0].sum()  # the lower chin widens the region
    assert torch.equal(region_mesh[1], region_dlib[1])
    _, lmk_mixed, _ = ds.batch(idx, no_flip, mesh=torch.tensor([False, True]))
    assert torch.allclose(lmk_mixed[0], lmk_dlib[0])


@pytest.mark.parametrize("hide", [True, False])
def test_hidden_target_face_cannot_reach_the_swap(real_faces, identity_weights, tmp_path, hide):
    """With the target's face hidden, repainting it changes nothing in the swap (no copy path).

    The output layer is randomised (it starts at zero, which would hide any dependence);
    the same change to a generator that sees the whole target must change its output.
    """
    from dataclasses import replace

    from slimswap.nets.warp_generator import WarpSwapGenerator

    t = make_trainer(real_faces, tmp_path / "a", 1, identity_weights)
    b = t.sample_batch(4)
    torch.manual_seed(0)
    g = WarpSwapGenerator(replace(TINY, hide_target_face=hide)).eval()
    torch.nn.init.normal_(g.out.weight, std=0.1)
    inside = b["guide"][:, 3:4] >= 1.0  # where the region is fully face
    assert float(inside.float().mean()) > 0.1
    repainted = torch.where(inside, torch.rand_like(b["target"]) * 2 - 1, b["target"])
    with torch.no_grad():
        a = g(b["target"], b["guide"], b["source_embedding"])
        c = g(repainted, b["guide"], b["source_embedding"])
    change = float((a - c).abs().max())
    if hide:
        assert change == 0.0
    else:
        assert change > 0.01


def test_same_person_never_returns_itself_when_others_exist(real_faces):
    ds = dataset(real_faces)
    g = torch.Generator().manual_seed(0)
    idx = torch.arange(len(ds)).repeat(20)
    other = ds.same_person(idx, g)
    labels = ds.labels
    assert torch.equal(labels[other], labels[idx])  # same identity
    many = ds.group_size[idx] > 1
    assert bool((other[many] != idx[many]).all())  # another photo when there is one
    assert torch.equal(other[~many], idx[~many])  # a one-photo identity pairs with itself
    # every other frame of the clip identity is reachable
    clip = torch.nonzero(labels == 2).flatten()
    assert set(other[idx == clip[0]].tolist()) == set(clip[1:].tolist())


def test_resume_reproduces_steps_and_losses(real_faces, identity_weights, tmp_path):
    """4 straight steps == 2 steps, checkpoint, a new process-like trainer, 2 more steps."""
    torch.use_deterministic_algorithms(True)
    try:
        straight = make_trainer(real_faces, tmp_path / "a", 4, identity_weights)
        straight.fit()
        first = make_trainer(real_faces, tmp_path / "b", 2, identity_weights)
        first.fit()
        resumed = make_trainer(real_faces, tmp_path / "b", 4, identity_weights)
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


def test_compact_checkpoint_continues_training(real_faces, identity_weights, tmp_path):
    """The compact checkpoint is written at every checkpoint of the run (`compact_dir`: a
    lent machine taken back mid-run leaves the last one for a watch call to bring back), each
    file small enough to come back from a GPU machine, and training continues from it."""
    t = make_trainer(
        real_faces, tmp_path / "a", 2, identity_weights,
        checkpoint_every_s=0.0, compact_dir=str(tmp_path / "ck"),
    )  # fmt: skip
    t.fit()  # the run itself writes it, no export at the end
    files = sorted((tmp_path / "ck").iterdir())
    assert [p.name for p in files] == [
        "D.safetensors",
        "G.safetensors",
        "G_ema.safetensors",
        "state.json",
    ]
    assert all(p.stat().st_size < 16 * 2**20 for p in files)
    assert json.loads((tmp_path / "ck" / "state.json").read_text())["step"] >= 1
    cont = make_trainer(
        real_faces, tmp_path / "c", 3, identity_weights, init_from=str(tmp_path / "ck")
    )
    assert cont.step == 2
    for a, b in zip(cont.G_ema.state_dict().values(), t.G_ema.state_dict().values()):
        assert torch.allclose(a, b.float(), atol=1e-2)
    cont.fit()
    assert cont.step == 3


def test_sample_grid_shows_source_target_guide_swap(real_faces, identity_weights, tmp_path):
    import cv2

    t = make_trainer(real_faces, tmp_path / "a", 1, identity_weights)
    path = t.sample_grid(n=3)
    img = cv2.imread(str(path))
    assert img.shape == (3 * 64, 4 * 64, 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, data, weights: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    t = make_trainer(data, out, 2, weights)
    t.fit()
    import torch.distributed as dist

    # parameters stay identical across ranks: DDP averaged the gradients
    flat = torch.cat([p.detach().flatten() for p in t.G.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    assert torch.allclose(gathered[0], gathered[1])
    assert t.samples_seen == 2 * 2 * world
    # both ranks leave together, and without running gloo's C++ destructors: on the loaded
    # 2-core CPU a rank aborted twice in full runs ("terminate called without an active
    # exception", inside destroy_process_group or at interpreter exit while a gloo thread
    # still ran). The checks above are done; os._exit ends the process with code 0 at once.
    dist.barrier()
    os._exit(0)


def test_ddp_two_gloo_processes(real_faces, identity_weights, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(
        _ddp_worker,
        args=(2, _free_port(), str(tmp_path / "ddp"), real_faces, identity_weights),
        nprocs=2,
        join=True,
    )
    assert (tmp_path / "ddp" / "checkpoint.pt").exists()  # written by rank 0 only
    state = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2


def test_glasses_share_draws_on_the_sources_only(real_faces, identity_weights, tmp_path):
    """With every source wearing synthetic glasses the step still trains, and the glasses are
    on the source (what the guide warps), never on the target (the answer)."""
    tr = make_trainer(real_faces, tmp_path, 1, identity_weights, glasses_share=1.0)
    plain = make_trainer(real_faces, tmp_path / "plain", 1, identity_weights)
    b, p = tr.sample_batch(2), plain.sample_batch(2)
    assert torch.equal(b["target"], p["target"])  # the targets' draws come before the glasses'
    assert not torch.allclose(b["source"], p["source"])
    row = tr.fit()
    assert tr.step == 1 and np.isfinite(row["g"])
