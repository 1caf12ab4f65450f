"""Teacher training: one loop for CPU tests, one H100, or several GPUs under torchrun.

The whole training shard lives on the device as uint8 and is augmented there, so the GPU never
waits for a data loader. Everything needed to continue (models, EMA, optimisers, step, RNG,
loss history) is in one checkpoint, so a run survives being cut into 10-minute device calls.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from slimswap.nets.discriminator import MultiScaleDiscriminator
from slimswap.nets.generator import TeacherConfig, TeacherGenerator
from slimswap.nets.landmarks import LandmarkNet
from slimswap.train import losses

log = logging.getLogger(__name__)


@dataclass
class LossWeights:
    identity: float = 20.0
    reconstruction: float = 10.0
    perceptual: float = 2.0
    adversarial: float = 1.0
    feature_matching: float = 2.0
    landmark: float = 20.0
    lighting: float = 5.0


@dataclass
class TrainConfig:
    data: str = "data/shards/train_128.npz"
    out: str = "runs/teacher"
    identity_weights: str = ""  # safetensors of the identity net; empty: read dlib's .dat
    init_from: str = ""  # folder of a compact checkpoint (export_compact) to continue from
    batch: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    max_steps: int = 1_000_000
    max_seconds: float = 540.0
    self_swap: float = 0.25  # share of the batch where source == target (reconstruction)
    ema: float = 0.999
    landmark_pretrain_steps: int = 300
    log_every: int = 50
    checkpoint_every_s: float = 120.0
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    weights: LossWeights = field(default_factory=LossWeights)
    model: TeacherConfig = field(default_factory=TeacherConfig)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["weights"] = LossWeights(**d.get("weights", {}))
        d["model"] = TeacherConfig(**d.get("model", {}))
        return cls(**d)


# ---------------------------------------------------------------- distributed helpers

def _dist_setup(device_kind: str) -> tuple[int, int, int]:
    """(rank, world, local_rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _unwrap(m: nn.Module) -> nn.Module:
    m = getattr(m, "_orig_mod", m)
    return getattr(m, "module", m)


# ---------------------------------------------------------------- data on the device

class DeviceDataset:
    """A shard held on the device: uint8 images, dlib embeddings, crop-space landmarks."""

    def __init__(self, images: np.ndarray, embeddings: np.ndarray, landmarks: np.ndarray, labels: np.ndarray, device: torch.device) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)
        self.embeddings = torch.from_numpy(embeddings.astype(np.float32)).to(device)
        size = images.shape[1]
        self.landmarks = torch.from_numpy((landmarks.astype(np.float32) + 0.5) / size).to(device)
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.size = size
        self.mirror = losses.mirror_permutation(self.landmarks.mean(0))

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(
        self, idx: torch.Tensor, flip: torch.Tensor, jitter: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1,1] and landmarks (0..1) for `idx`, mirrored where `flip`."""
        img = self.images[idx].float().div_(127.5).sub_(1)
        lmk = self.landmarks[idx].clone()
        if flip.any():
            img[flip] = img[flip].flip(-1)
            fl = lmk[flip][:, self.mirror]
            fl[..., 0] = 1 - fl[..., 0] - 1.0 / self.size
            lmk[flip] = fl
        if jitter:  # mild brightness/contrast jitter, per sample
            n = img.shape[0]
            gain = 1 + 0.1 * (torch.rand(n, 1, 1, 1, device=img.device, generator=generator) - 0.5)
            bias = 0.1 * (torch.rand(n, 1, 1, 1, device=img.device, generator=generator) - 0.5)
            img = (img * gain + bias).clamp_(-1, 1)
        return img, lmk


def load_device_dataset(path: str | Path, device: torch.device) -> DeviceDataset:
    from slimswap.train.data import load_shard

    shard = load_shard(path)
    return DeviceDataset(shard.decode(), shard.embeddings, shard.landmarks, shard.labels, device)


# ---------------------------------------------------------------- the trainer

def _pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _load_identity_net(path: str, device: torch.device) -> nn.Module:
    from slimswap.nets.identity import DlibResNet

    net = DlibResNet.from_safetensors(path) if path else DlibResNet.from_dat()
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class TeacherTrainer:
    def __init__(self, config: TrainConfig, dataset: DeviceDataset | None = None) -> None:
        self.cfg = config
        dev = _pick_device(config.device)
        self.rank, self.world, local = _dist_setup(dev.type)
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.device = dev
        self.amp = config.bf16 and dev.type == "cuda"
        self.memory_format = torch.channels_last if (config.channels_last and dev.type == "cuda") else torch.contiguous_format
        torch.manual_seed(config.seed)
        self.gen_rng = torch.Generator(device=dev).manual_seed(config.seed * 1000 + self.rank)
        self.cpu_rng = torch.Generator().manual_seed(config.seed * 1000 + self.rank)

        self.data = dataset or load_device_dataset(config.data, dev)
        self.G = self.build_generator().to(dev, memory_format=self.memory_format)
        self.D = MultiScaleDiscriminator().to(dev, memory_format=self.memory_format)
        self.L = LandmarkNet().to(dev, memory_format=self.memory_format)
        self.G_ema = copy.deepcopy(self.G).eval()
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        self.idnet = _load_identity_net(config.identity_weights, dev).to(memory_format=self.memory_format)

        betas = (0.0, 0.999)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas)
        self.opt_l = torch.optim.Adam(self.L.parameters(), lr=1e-3)
        self.step = 0
        self.samples_seen = 0
        self._landmarks_untrained = False
        self.history: list[dict] = []
        self.out = Path(config.out)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self._maybe_resume()

        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [dev.index] if dev.type == "cuda" else None
            self.G_train = DDP(self.G, device_ids=ids)
            self.D_train = DDP(self.D, device_ids=ids)
            self.L_train = DDP(self.L, device_ids=ids)
        else:
            self.G_train, self.D_train, self.L_train = self.G, self.D, self.L
        if config.compile:
            self.G_train = torch.compile(self.G_train)
            self.D_train = torch.compile(self.D_train)
            self.idnet_fwd = torch.compile(self.idnet)
        else:
            self.idnet_fwd = self.idnet

    release_name = "teacher_ema_fp16.safetensors"

    def build_generator(self) -> nn.Module:
        return TeacherGenerator(self.cfg.model)

    # ------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def _state(self) -> dict:
        return {
            "config": asdict(self.cfg),
            "step": self.step,
            "samples_seen": self.samples_seen,
            "G": self.G.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "D": self.D.state_dict(),
            "L": self.L.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "opt_l": self.opt_l.state_dict(),
            "history": self.history,
            "rng": self.gen_rng.get_state(),
            "cpu_rng": self.cpu_rng.get_state(),
        }

    def save_checkpoint(self) -> None:
        """Atomic save (temp + rename) on rank 0 only, plus the EMA weights as fp16 safetensors."""
        if self.rank != 0:
            return
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(self._state(), tmp)
        os.replace(tmp, self.checkpoint_path)
        from slimswap.swap.weights import save_generator

        save_generator(self.G_ema, self.out / self.release_name, dtype=torch.float16)

    def export_compact(self, folder: Path) -> list[Path]:
        """Models in fp16 (one file each, under 16 MiB) + step/history JSON, without optimisers.

        The full checkpoint (~200 MB with Adam state) cannot leave a GPU machine whose returns
        are capped at 16 MiB a file; this is what travels instead. Continuing from it restarts
        the optimisers (Adam with beta1 = 0 re-estimates its second moment in a few hundred
        steps).
        """
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D), ("L", self.L)):
            path = folder / f"{name}.safetensors"
            tensors = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.cpu()).contiguous() for k, v in module.state_dict().items()}
            save_file(tensors, str(path))
            paths.append(path)
        state = {
            "step": self.step, "samples_seen": self.samples_seen, "history": self.history, "config": asdict(self.cfg),
            "generator": {"arch": type(self.G).__name__, "config": json.loads(self.G.config.to_json())},
        }
        (folder / "state.json").write_text(json.dumps(state))
        return paths + [folder / "state.json"]

    def _init_from_compact(self, folder: Path) -> None:
        from safetensors.torch import load_file

        # G may be left out to fit a carry limit (it starts from the EMA), and L too (re-trained)
        sources = {"G": "G" if (folder / "G.safetensors").exists() else "G_ema", "G_ema": "G_ema", "D": "D", "L": "L"}
        for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D), ("L", self.L)):
            path = folder / f"{sources[name]}.safetensors"
            if name == "L" and not path.exists():
                self._landmarks_untrained = True
                continue
            if name == "D" and not path.exists():  # e.g. continuing from a released generator alone
                log.info("no discriminator in %s: starting a fresh one", folder)
                continue
            state = load_file(str(path))
            module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        meta = json.loads((folder / "state.json").read_text())
        self.step, self.samples_seen, self.history = meta["step"], meta["samples_seen"], meta["history"]
        self.gen_rng.manual_seed(self.cfg.seed * 1000 + self.rank + self.step)
        if self.rank == 0:
            log.info("continuing from compact checkpoint %s at step %d (fresh optimisers)", folder, self.step)

    def _maybe_resume(self) -> None:
        if not self.checkpoint_path.exists():
            if self.cfg.init_from:
                self._init_from_compact(Path(self.cfg.init_from))
            return
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.D.load_state_dict(state["D"])
        self.L.load_state_dict(state["L"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_l.load_state_dict(state["opt_l"])
        self.step = state["step"]
        self.samples_seen = state["samples_seen"]
        self.history = state["history"]
        if "cpu_rng" in state:
            self.cpu_rng.set_state(state["cpu_rng"])
        if state["rng"].device.type == "cpu" and self.device.type == "cpu":
            self.gen_rng.set_state(state["rng"])
        else:
            self.gen_rng.manual_seed(self.cfg.seed * 1000 + self.rank + self.step)
        if self.rank == 0:
            log.info("resumed from %s at step %d", self.checkpoint_path, self.step)

    # ------------------------------------------------------------ one step

    def _sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        N = len(self.data)
        tgt = torch.randint(0, N, (n,), device=self.device, generator=self.gen_rng)
        src = torch.randint(0, N, (n,), device=self.device, generator=self.gen_rng)
        self_mask = torch.rand(n, device=self.device, generator=self.gen_rng) < self.cfg.self_swap
        src = torch.where(self_mask, tgt, src)
        return tgt, src, self_mask

    ID_VIEW_SIZES = (80, 96, 112, 128)

    def _id_view(self, img: torch.Tensor) -> torch.Tensor:
        """The swap at a random lower resolution, as the identity net will judge it.

        The identity net is dlib's own network, so a generator can lower the loss with
        pixel-level adversarial texture instead of a face (seen on the first H100 run:
        coloured speckle around the eyes). Re-sampling the image at a random scale each step
        destroys such texture while keeping what a face looks like.
        """
        size = self.ID_VIEW_SIZES[int(torch.randint(0, len(self.ID_VIEW_SIZES), (1,), generator=self.cpu_rng))]
        if size == img.shape[-1]:
            return img
        return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def _identity(self, img: torch.Tensor) -> torch.Tensor:
        return self.idnet_fwd(((img + 1) * 0.5).contiguous(memory_format=self.memory_format))

    def landmark_step(self, img: torch.Tensor, lmk: torch.Tensor) -> torch.Tensor:
        self.L_train.train()
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            loss = losses.landmark_loss(self.L_train(img), lmk)
        self.opt_l.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_l.step()
        return loss.detach()

    def train_step(self) -> dict[str, torch.Tensor]:
        """One generator, discriminator and landmark-critic update; losses stay on the device.

        Nothing here calls .item(): a host sync per step would leave the GPU idle between
        kernels. The loop converts the accumulated losses only when it logs.
        """
        cfg, w = self.cfg, self.cfg.weights
        n = cfg.batch
        tgt_idx, src_idx, self_mask = self._sample(n)
        flip = torch.rand(n, device=self.device, generator=self.gen_rng) < 0.5
        target, lmk = self.data.batch(tgt_idx, flip, generator=self.gen_rng)
        target = target.contiguous(memory_format=self.memory_format)
        src_emb = self.data.embeddings[src_idx]
        metrics: dict[str, torch.Tensor] = {}

        # landmark critic keeps learning real landmarks (cheap; it is tiny)
        metrics["lmk_critic"] = self.landmark_step(target, lmk)

        # ---- generator
        D, L = _unwrap(self.D), _unwrap(self.L)
        D.requires_grad_(False)
        L.requires_grad_(False)
        L.eval()
        self.G_train.train()
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            swap, loss_g, g_metrics = self.generator_loss(target, lmk, src_emb, self_mask, D, L)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        D.requires_grad_(True)
        L.requires_grad_(True)

        # ---- discriminator
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            outs = self.D_train(torch.cat([target, swap.detach()]))
            real_logits = [o[0][:n] for o in outs]
            fake_logits = [o[0][n:] for o in outs]
            loss_d = losses.hinge_d_loss(real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        self._update_ema()
        self.step += 1
        self.samples_seen += n * self.world
        metrics.update(g=loss_g, d=loss_d, **g_metrics)
        return {k: v.detach().float() for k, v in metrics.items()}

    def generator_loss(
        self, target: torch.Tensor, lmk: torch.Tensor, src_emb: torch.Tensor, self_mask: torch.Tensor, D: nn.Module, L: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(swap, weighted total, named terms) for one batch; the distiller overrides this."""
        w = self.cfg.weights
        swap = self.G_train(target, src_emb)
        l_id = losses.identity_loss(self._identity(self._id_view(swap)), src_emb)
        fake_out = D(swap)
        with torch.no_grad():
            real_out = D(target)
        l_adv = losses.hinge_g_loss([o[0] for o in fake_out])
        l_fm = losses.feature_matching_loss([o[1] for o in fake_out], [o[1] for o in real_out])
        l_lmk = losses.landmark_loss(L(swap), lmk)
        l_light = losses.lighting_loss(swap, target)
        l1 = (swap.float() - target.float()).abs().mean(dim=(1, 2, 3))
        l_rec = losses.masked_mean(l1, self_mask)
        if self_mask.any():
            with torch.no_grad():
                feats_t = losses.identity_features(self.idnet, (target[self_mask] + 1) * 0.5)
            feats_s = losses.identity_features(self.idnet, (swap[self_mask] + 1) * 0.5)
            l_perc = sum(F.l1_loss(a.float(), b.float()) for a, b in zip(feats_s, feats_t)) / len(feats_t)
        else:
            l_perc = swap.sum() * 0
        total = (
            w.identity * l_id + w.adversarial * l_adv + w.feature_matching * l_fm + w.landmark * l_lmk
            + w.lighting * l_light + w.reconstruction * l_rec + w.perceptual * l_perc
        )
        terms = dict(id=l_id, adv=l_adv, fm=l_fm, lmk=l_lmk, light=l_light, rec=l_rec, perc=l_perc)
        return swap, total, terms

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        ema_p = list(self.G_ema.parameters())
        p = [q.detach() for q in self.G.parameters()]
        torch._foreach_mul_(ema_p, decay)
        torch._foreach_add_(ema_p, p, alpha=1 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------ the loop

    def pretrain_landmarks(self) -> None:
        """Give the landmark critic a head start so its verdicts mean something from step 0."""
        if self.step > 0 and not self._landmarks_untrained:
            return
        for i in range(self.cfg.landmark_pretrain_steps):
            idx = torch.randint(0, len(self.data), (max(self.cfg.batch, 128),), device=self.device, generator=self.gen_rng)
            flip = torch.rand(len(idx), device=self.device, generator=self.gen_rng) < 0.5
            img, lmk = self.data.batch(idx, flip, generator=self.gen_rng)
            loss = self.landmark_step(img.contiguous(memory_format=self.memory_format), lmk)
            if self.rank == 0 and (i + 1) % 100 == 0:
                log.info("landmark critic pretrain %d/%d  L1 %.4f", i + 1, self.cfg.landmark_pretrain_steps, float(loss))

    def fit(self, progress: bool = True) -> dict:
        cfg = self.cfg
        self.pretrain_landmarks()
        start = time.time()
        last_ckpt = start
        window_t, window_n = time.time(), 0
        acc: dict[str, torch.Tensor] = {}
        while self.step < cfg.max_steps and time.time() - start < cfg.max_seconds:
            m = self.train_step()
            window_n += cfg.batch * self.world
            for k, v in m.items():
                acc[k] = acc[k] + v if k in acc else v.clone()
            if self.step % cfg.log_every == 0:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.time() - window_t
                row = {k: float(v) / cfg.log_every for k, v in acc.items()}
                row.update(step=self.step, samples=self.samples_seen, images_per_s=window_n / dt, wall=time.time() - start)
                self.history.append(row)
                acc, window_t, window_n = {}, time.time(), 0
                if self.rank == 0:
                    shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("step", "samples", "wall", "images_per_s"))
                    log.info("step %d  %s  %.0f img/s", self.step, shown, row["images_per_s"])
                    if not all(math.isfinite(v) for v in row.values()):
                        raise FloatingPointError(f"non-finite loss at step {self.step}: {row}")
            if time.time() - last_ckpt > cfg.checkpoint_every_s:
                self.save_checkpoint()
                last_ckpt = time.time()
        self.save_checkpoint()
        if self.rank == 0:
            self.write_log()
        return self.history[-1] if self.history else {}

    def write_log(self) -> None:
        """Loss history as CSV and a PNG of the curves."""
        if not self.history:
            return
        keys = list(self.history[-1].keys())
        with open(self.out / "train_log.csv", "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=keys)
            wr.writeheader()
            for row in self.history:
                wr.writerow({k: row.get(k, "") for k in keys})
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [k for k in keys if k not in ("step", "samples", "wall")]
        cols = 3
        fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(12, 3 * ((len(names) + cols - 1) // cols)), squeeze=False)
        steps = [r["step"] for r in self.history]
        for ax, name in zip(axes.flat, names):
            ax.plot(steps, [r.get(name, float("nan")) for r in self.history])
            ax.set_title(name)
            ax.set_xlabel("step")
        fig.tight_layout()
        fig.savefig(self.out / "train_log.png", dpi=80)
        plt.close(fig)

    @torch.no_grad()
    def sample_grid(self, n: int = 8, path: Path | None = None) -> Path:
        """source | target | swap rows from fixed pairs, as a PNG."""
        import cv2

        g = torch.Generator(device=self.device).manual_seed(1234)
        N = len(self.data)
        tgt = torch.randint(0, N, (n,), device=self.device, generator=g)
        src = torch.randint(0, N, (n,), device=self.device, generator=g)
        no_flip = torch.zeros(n, dtype=torch.bool, device=self.device)
        target, _ = self.data.batch(tgt, no_flip, jitter=False)
        source, _ = self.data.batch(src, no_flip, jitter=False)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            swap = self.G_ema(target.contiguous(memory_format=self.memory_format), self.data.embeddings[src])
        rows = torch.cat([source, target, swap.float()], dim=3)  # N,3,S,3S
        grid = torch.cat(list(rows), dim=1)  # 3, N*S, 3S
        img = ((grid.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().cpu().numpy()
        path = path or self.out / f"samples_{self.step:07d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        return path


def train_teacher(config: TrainConfig, export_compact: Path | None = None) -> dict:
    """Train (or continue training) the teacher; returns the last log row."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    trainer = TeacherTrainer(config)
    if trainer.rank == 0:
        (Path(config.out) / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    last = trainer.fit()
    if trainer.rank == 0:
        trainer.sample_grid()
        if export_compact is not None:
            trainer.export_compact(Path(export_compact))
    if trainer.world > 1:
        dist.barrier()
    return last
