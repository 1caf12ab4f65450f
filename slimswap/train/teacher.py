"""Training the warp-guided teacher: one loop for CPU tests, one GPU, or several under torchrun.

The whole training table lives on the device as uint8 (`swap_data.SwapDataset`) and every
step builds its pairs, augmentations and warps there, so the GPU never waits for a loader.
Everything needed to continue (models, EMA, optimisers, step, RNG, loss history) is in one
checkpoint, and a compact fp16 export (`export_compact`) small enough to leave a GPU machine
lets a later call continue on a fresh machine.

Losses (weights in `LossWeights`):
- every pair: identity (1 - cosine of dlib descriptors, judged on randomly rescaled views so
  pixel-level adversarial texture against the one network does not pay), hinge GAN on a
  multi-scale PatchGAN, feature matching on its last layer;
- swaps (different people): low-frequency colour against the target (no casts);
- same-person pairs: L1 to the true target photo and the identity net's mid-level features.
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

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from slimswap.face.warp import guide_inputs
from slimswap.files import atomic_write
from slimswap.nets.discriminator import MultiScaleDiscriminator
from slimswap.nets.warp_generator import SwapGeneratorConfig, WarpSwapGenerator
from slimswap.train import losses
from slimswap.train.glasses import draw_glasses
from slimswap.train.swap_data import SwapDataset, jitter_source, load_swap_dataset

log = logging.getLogger(__name__)


@dataclass
class LossWeights:
    # 30, not session 1's 15: the equal-time A/B of the released run (benchmarks/RESULTS.md)
    # moved recognizer top-1 as the source from 55 % to 67 % with it
    identity: float = 30.0
    reconstruction: float = 10.0
    perceptual: float = 2.0
    adversarial: float = 1.0
    feature_matching: float = 2.0
    lighting: float = 5.0


@dataclass
class TrainConfig:
    data: tuple[str, ...] = ("data/shards/train_128.npz", "data/shards/train_256.npz")
    out: str = "runs/teacher"
    identity_weights: str = ""  # safetensors of the identity net; empty: read dlib's .dat
    init_from: str = ""  # folder of a compact checkpoint (export_compact) to continue from
    batch: int = 32  # per process
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    max_steps: int = 1_000_000
    max_seconds: float = 540.0
    pair_share: float = 0.35  # same-person pairs (supervised) in each batch
    native_share: float = 0.35  # targets drawn from faces with a native crop at the resolution
    # targets drawn from talking-head clip frames, and the share of those paired with another
    # frame of the same clip: pose and expression differ and the answer is known, the main
    # supervised signal for mouths and eyes that follow the target (issue 20)
    video_share: float = 0.0
    video_pair_share: float = 0.35
    # pairs warped and masked by MediaPipe's mapped landmarks instead of dlib's (both faces):
    # the product's default analyser is MediaPipe, and a generator that only saw dlib's jaw
    # closed a quarter of the open mouths the mesh drove (benchmarks/RESULTS.md)
    mesh_share: float = 0.0
    # sources drawn with synthetic glasses (slimswap/train/glasses.py): a same-person pair's
    # answer has none, so the generator learns to leave a source's glasses out of the guide
    # instead of ghosting them over the target (issue 20)
    glasses_share: float = 0.0
    ema: float = 0.999
    log_every: int = 50
    checkpoint_every_s: float = 120.0
    # where the compact checkpoint (`export_compact`) is also written at every checkpoint: a
    # lent GPU machine can be taken back mid-run, and only what a call brings back survives
    # (session 7 lost two 9-minute runs so); empty: written once, at the end, by the caller
    compact_dir: str = ""
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    d_scales: int = 3
    warp: bool = True  # False: the guide carries only the face region (ablation: no warp guidance)
    weights: LossWeights = field(default_factory=LossWeights)
    model: SwapGeneratorConfig = field(default_factory=SwapGeneratorConfig)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["weights"] = LossWeights(**d.get("weights", {}))
        model = dict(d.get("model", {}))
        if "widths" in model:
            model["widths"] = tuple(model["widths"])
        d["model"] = SwapGeneratorConfig(**model)
        d["data"] = tuple(d.get("data", cls.data))
        return cls(**d)


# ---------------------------------------------------------------- distributed helpers


def dist_setup(device_kind: str) -> tuple[int, int, int]:
    """(rank, world, local_rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def unwrap(m: nn.Module) -> nn.Module:
    m = getattr(m, "_orig_mod", m)
    return getattr(m, "module", m)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def load_identity_net(path: str, device: torch.device) -> nn.Module:
    """dlib's ResNet, frozen: from compact safetensors (GPU machines) or dlib's own .dat."""
    from slimswap.nets.identity import DlibResNet

    net = DlibResNet.from_safetensors(path) if path else DlibResNet.from_dat()
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def save_module_fp16(module: nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    tensors = {
        k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.cpu()).contiguous()
        for k, v in module.state_dict().items()
    }
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return path


def load_module(module: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


class TeacherTrainer:
    """The generator, its EMA, the discriminator and both optimisers, stepped together."""

    release_name = "teacher_ema_fp16.safetensors"

    def __init__(self, config: TrainConfig, dataset: SwapDataset | None = None) -> None:
        self.cfg = config
        dev = pick_device(config.device)
        self.rank, self.world, local = dist_setup(dev.type)
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.device = dev
        self.amp = config.bf16 and dev.type == "cuda"
        cl = config.channels_last and dev.type == "cuda"
        self.memory_format = torch.channels_last if cl else torch.contiguous_format
        torch.manual_seed(config.seed)
        self.gen_rng = torch.Generator(device=dev).manual_seed(config.seed * 1000 + self.rank)
        self.cpu_rng = torch.Generator().manual_seed(config.seed * 1000 + self.rank)

        res = config.model.resolution
        self.data = dataset or load_swap_dataset(
            list(config.data),
            res,
            dev,
            openings=config.model.target_openings,
            mesh=config.mesh_share > 0,
        )
        self.G = self.build_generator().to(dev, memory_format=self.memory_format)
        self.D = MultiScaleDiscriminator(scales=config.d_scales).to(
            dev, memory_format=self.memory_format
        )
        self.G_ema = copy.deepcopy(self.G).eval()
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        self.idnet = load_identity_net(config.identity_weights, dev).to(
            memory_format=self.memory_format
        )

        betas = (0.0, 0.999)
        self.opt_g = torch.optim.Adam(self.generator_parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas)
        self.step = 0
        self.samples_seen = 0
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
        else:
            self.G_train, self.D_train = self.G, self.D
        self.idnet_fwd = self.idnet
        if config.compile:
            self.G_train = torch.compile(self.G_train)
            self.D_train = torch.compile(self.D_train)
            self.idnet_fwd = torch.compile(self.idnet)

    def build_generator(self) -> nn.Module:
        return WarpSwapGenerator(self.cfg.model)

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.G.parameters())

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
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
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

        save_generator(self.release_model(), self.out / self.release_name, dtype=torch.float16)

    def release_model(self) -> nn.Module:
        """The network users get: the EMA generator."""
        return self.G_ema

    def export_compact(self, folder: Path) -> list[Path]:
        """G, G_ema and D in fp16 (one file each, under 16 MiB) + step/history JSON.

        The full checkpoint (with Adam state) is too large to leave a GPU machine whose
        returns are capped at 16 MiB a file; this is what travels instead. Continuing from it
        restarts the optimisers (Adam with beta1 = 0 re-estimates its moments in a few hundred
        steps).
        """
        folder.mkdir(parents=True, exist_ok=True)
        paths = [
            save_module_fp16(m, folder / f"{n}.safetensors") for n, m in self._compact_modules()
        ]
        state = {
            "step": self.step,
            "samples_seen": self.samples_seen,
            "history": self.history,
            "config": asdict(self.cfg),
        }
        with atomic_write(folder / "state.json") as tmp:  # read mid-run by a watch call
            tmp.write_text(json.dumps(state))
        return paths + [folder / "state.json"]

    def _compact_modules(self) -> list[tuple[str, nn.Module]]:
        return [("G", self.G), ("G_ema", self.G_ema), ("D", self.D)]

    def _init_from_compact(self, folder: Path) -> None:
        for name, module in self._compact_modules():
            path = folder / f"{name}.safetensors"
            if name == "G" and not path.exists():  # may stay behind to fit a carry limit
                path = folder / "G_ema.safetensors"
            if not path.exists():
                log.info("no %s in %s: starting it fresh", name, folder)
                continue
            load_module(module, path)
        meta = json.loads((folder / "state.json").read_text())
        self.step, self.samples_seen, self.history = (
            meta["step"],
            meta["samples_seen"],
            meta["history"],
        )
        self.gen_rng.manual_seed(self.cfg.seed * 1000 + self.rank + self.step)
        if self.rank == 0:
            log.info(
                "continuing from compact checkpoint %s at step %d (fresh optimisers)",
                folder,
                self.step,
            )

    def _maybe_resume(self) -> None:
        if not self.checkpoint_path.exists():
            if self.cfg.init_from:
                self._init_from_compact(Path(self.cfg.init_from))
            return
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        for name in ("G", "G_ema", "D", "opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
        self.step, self.samples_seen, self.history = (
            state["step"],
            state["samples_seen"],
            state["history"],
        )
        self.cpu_rng.set_state(state["cpu_rng"].cpu())
        if state["rng"].device.type == "cpu" and self.device.type == "cpu":
            self.gen_rng.set_state(state["rng"])
        else:
            self.gen_rng.manual_seed(self.cfg.seed * 1000 + self.rank + self.step)
        if self.rank == 0:
            log.info("resumed from %s at step %d", self.checkpoint_path, self.step)

    # ------------------------------------------------------------ one step

    def sample_batch(self, n: int) -> dict[str, torch.Tensor]:
        """Targets, sources, their guides and flags for one step (all on the device)."""
        d, g = self.data, self.gen_rng
        tgt = d.sample_targets(n, self.cfg.native_share, g, self.cfg.video_share)
        share = torch.where(d.video[tgt], self.cfg.video_pair_share, self.cfg.pair_share)
        pair = torch.rand(n, device=self.device, generator=g) < share
        src = torch.where(
            pair,
            d.same_person(tgt, g),
            torch.randint(0, len(d), (n,), device=self.device, generator=g),
        )
        flip_t = torch.rand(n, device=self.device, generator=g) < 0.5
        # a one-photo identity is paired with its own mirror image
        flip_s = torch.where(
            src == tgt, ~flip_t, torch.rand(n, device=self.device, generator=g) < 0.5
        )
        mesh = None
        if self.cfg.mesh_share > 0:  # drawn only then: older recipes keep their random stream
            mesh = torch.rand(n, device=self.device, generator=g) < self.cfg.mesh_share
        target, lmk_t, region = d.batch(tgt, flip_t, mesh)
        source, lmk_s, _ = d.batch(src, flip_s, mesh)
        if self.cfg.glasses_share > 0:  # drawn only then: older recipes keep their random stream
            wear = torch.rand(n, device=self.device, generator=g) < self.cfg.glasses_share
            # drawn on every face and selected, not indexed: no host sync in the step
            source = torch.where(wear[:, None, None, None], draw_glasses(source, lmk_s, g), source)
        source = jitter_source(source, g)
        with torch.no_grad():
            guide = guide_inputs(source, lmk_s, target, lmk_t, region, d.openings)
            if not self.cfg.warp:
                guide[:, :3] = 0
        mf = self.memory_format
        return {
            "target": target.contiguous(memory_format=mf),
            "guide": guide.contiguous(memory_format=mf),
            "source_embedding": d.embeddings[src],
            "target_embedding": d.embeddings[tgt],
            "pair": pair | (d.labels[src] == d.labels[tgt]),
            "source": source,
        }

    ID_VIEW_SIZES = (96, 112, 128, 150, 192, 256)

    def id_view(self, img: torch.Tensor) -> torch.Tensor:
        """The swap at a random resolution, as the identity net will judge it.

        The identity net is dlib's own network, so a generator can lower the loss with
        pixel-level adversarial texture instead of a face; re-sampling at a random scale each
        step destroys such texture while keeping what a face looks like.
        """
        size = self.ID_VIEW_SIZES[
            int(torch.randint(0, len(self.ID_VIEW_SIZES), (1,), generator=self.cpu_rng))
        ]
        if size == img.shape[-1]:
            return img
        return F.interpolate(
            img, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )

    def identity(self, img: torch.Tensor) -> torch.Tensor:
        return self.idnet_fwd(((img + 1) * 0.5).contiguous(memory_format=self.memory_format))

    def train_step(self) -> dict[str, torch.Tensor]:
        """One generator and one discriminator update; losses stay on the device.

        Nothing here calls .item(): a host sync per step would leave the GPU idle between
        kernels. The loop converts the accumulated losses only when it logs.
        """
        n = self.cfg.batch
        b = self.sample_batch(n)
        D = unwrap(self.D)
        D.requires_grad_(False)
        self.G_train.train()
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            swap, loss_g, metrics = self.generator_loss(b, D)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        D.requires_grad_(True)

        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            outs = self.D_train(torch.cat([b["target"], swap.detach()]))
            loss_d = losses.hinge_d_loss([o[0][:n] for o in outs], [o[0][n:] for o in outs])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        self._update_ema()
        self.step += 1
        self.samples_seen += n * self.world
        metrics.update(g=loss_g, d=loss_d)
        return {k: v.detach().float() for k, v in metrics.items()}

    def generator_loss(
        self, b: dict[str, torch.Tensor], D: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(swap, weighted total, named terms) for one batch; the distiller overrides this."""
        w = self.cfg.weights
        target, pair, src_emb = b["target"], b["pair"], b["source_embedding"]
        swap = self.G_train(target, b["guide"], src_emb)
        swap_emb = self.identity(self.id_view(swap))
        l_id = losses.identity_loss(swap_emb, src_emb)
        copying = self.copy_alarm(swap_emb, src_emb, b["target_embedding"], pair)
        l_adv, l_fm = self.adversarial_terms(swap, target, D)
        per_light = (
            (F.adaptive_avg_pool2d(swap.float(), 8) - F.adaptive_avg_pool2d(target.float(), 8))
            .abs()
            .mean(dim=(1, 2, 3))
        )
        l_light = losses.masked_mean(per_light, ~pair)
        l_rec = losses.masked_mean((swap.float() - target.float()).abs().mean(dim=(1, 2, 3)), pair)
        l_perc = losses.masked_mean(self.perceptual(swap, target), pair)
        total = (
            w.identity * l_id
            + w.adversarial * l_adv
            + w.feature_matching * l_fm
            + w.lighting * l_light
            + w.reconstruction * l_rec
            + w.perceptual * l_perc
        )
        return (
            swap,
            total,
            {
                "id": l_id,
                "adv": l_adv,
                "fm": l_fm,
                "light": l_light,
                "rec": l_rec,
                "perc": l_perc,
                "closer_to_target": copying,
            },
        )

    @staticmethod
    def copy_alarm(
        swap_emb: torch.Tensor, src_emb: torch.Tensor, tgt_emb: torch.Tensor, pair: torch.Tensor
    ) -> torch.Tensor:
        """Share of the swaps (different people only) that dlib finds closer to the target.

        Logged, never trained on: it rises towards 1 when the generator learns to rebuild the
        target instead of swapping (the copy trap the first v2 runs fell into).
        """
        with torch.no_grad():
            to_src = F.cosine_similarity(swap_emb.float(), src_emb.float(), dim=1)
            to_tgt = F.cosine_similarity(swap_emb.float(), tgt_emb.float(), dim=1)
            return losses.masked_mean((to_tgt > to_src).float(), ~pair)

    def adversarial_terms(
        self, swap: torch.Tensor, target: torch.Tensor, D: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        fake_out = D(swap)
        with torch.no_grad():
            real_out = D(target)
        l_adv = losses.hinge_g_loss([o[0] for o in fake_out])
        l_fm = losses.feature_matching_loss([o[1] for o in fake_out], [o[1] for o in real_out])
        return l_adv, l_fm

    def perceptual(self, swap: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample L1 between the identity net's mid-level features of swap and target."""
        with torch.no_grad():
            feats_t = losses.identity_features(self.idnet, (target + 1) * 0.5)
        feats_s = losses.identity_features(self.idnet, (swap + 1) * 0.5)
        per = [(a.float() - b.float()).abs().mean(dim=(1, 2, 3)) for a, b in zip(feats_s, feats_t)]
        return sum(per) / len(per)

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        ema_p = list(self.G_ema.parameters())
        torch._foreach_mul_(ema_p, decay)
        torch._foreach_add_(ema_p, [q.detach() for q in self.G.parameters()], alpha=1 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------ the loop

    def fit(self) -> dict:
        cfg = self.cfg
        start = time.time()
        last_ckpt = start
        window_t, window_n = time.time(), 0
        acc: dict[str, torch.Tensor] = {}
        while self.step < cfg.max_steps and time.time() - start < cfg.max_seconds:
            if self.step % 100 == 0 and (self.out / "STOP").exists():
                log.info("STOP file found in %s: ending the run at step %d", self.out, self.step)
                break
            m = self.train_step()
            window_n += cfg.batch * self.world
            for k, v in m.items():
                acc[k] = acc[k] + v if k in acc else v.clone()
            if self.step % cfg.log_every == 0:
                self._log_row(acc, window_n / (time.time() - window_t), time.time() - start)
                acc, window_t, window_n = {}, time.time(), 0
            if time.time() - last_ckpt > cfg.checkpoint_every_s:
                self.save_checkpoint()
                if cfg.compact_dir and self.rank == 0:
                    self.export_compact(Path(cfg.compact_dir))
                last_ckpt = time.time()
        self.save_checkpoint()
        if self.rank == 0:
            self.write_log()
        return self.history[-1] if self.history else {}

    def _log_row(self, acc: dict[str, torch.Tensor], rate: float, wall: float) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        row = {k: float(v) / self.cfg.log_every for k, v in acc.items()}
        row.update(step=self.step, samples=self.samples_seen, images_per_s=rate, wall=wall)
        self.history.append(row)
        if self.rank == 0:
            skip = ("step", "samples", "wall", "images_per_s")
            shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in skip)
            log.info("step %d  %s  %.0f img/s", self.step, shown, rate)
        if not all(math.isfinite(v) for v in row.values()):
            raise FloatingPointError(f"non-finite loss at step {self.step}: {row}")

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
        rows = (len(names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(12, 3 * rows), squeeze=False)
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
        """source | target | warped guide | swap rows from fixed swaps, as a PNG."""
        import cv2

        state = self.gen_rng.get_state()
        self.gen_rng.manual_seed(1234)
        saved = self.cfg.pair_share
        self.cfg.pair_share = 0.0
        b = self.sample_batch(n)
        self.cfg.pair_share = saved
        self.gen_rng.set_state(state)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            swap = self.G_ema(b["target"], b["guide"], b["source_embedding"]).float()
        cells = [b["source"], b["target"].float(), b["guide"][:, :3].float(), swap]
        grid = torch.cat([torch.cat(list(c), dim=1) for c in cells], dim=2)  # 3, n*S, 4S
        img = ((grid.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().cpu().numpy()
        path = path or self.out / f"samples_{self.step:07d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        return path


def train_teacher(config: TrainConfig, export_compact: Path | None = None) -> dict:
    """Train (or continue training) the teacher; returns the last log row."""
    trainer = TeacherTrainer(config)
    if trainer.rank == 0:
        (Path(config.out) / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    last = trainer.fit()
    if trainer.world > 1:  # every rank leaves the loop before rank 0 writes the last files
        dist.barrier()
    if trainer.rank == 0:
        trainer.sample_grid()
        if export_compact is not None:
            trainer.export_compact(Path(export_compact))
    if trainer.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return last
