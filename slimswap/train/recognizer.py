"""Training the evaluation-only recognizer (`slimswap.nets.recognizer`) with a CosFace head.

Runs on one GPU in minutes: the training shard lives on the device as uint8 and is augmented
there (scale/shift/rotation jitter, flips, colour, greyscale, down-and-up sampling so that
soft swaps are judged by who they show, not by how sharp they are). The learning rate follows
a cosine over the *time* budget, so a run cut to fit a 10-minute device call still anneals.
Resumable: one checkpoint holds the net, head, optimiser, step and elapsed time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from slimswap.nets.recognizer import CosFaceHead, FaceRecognizer, RecognizerConfig, save_recognizer

log = logging.getLogger(__name__)


@dataclass
class RecognizerTrainConfig:
    data: str = "data/shards/train_128.npz"
    eval_data: tuple[str, ...] = ("data/shards/test_128.npz",)
    out: str = "runs/recognizer"
    batch: int = 512
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_s: float = 20.0
    max_seconds: float = 420.0
    max_steps: int = 10_000_000
    checkpoint_every_s: float = 60.0
    log_every: int = 100
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    model: RecognizerConfig = field(default_factory=RecognizerConfig)


def _augment(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """uint8 (N,3,S,S) -> float [-1,1] (N,3,112,112) with geometric and photometric jitter."""
    n, dev = img.shape[0], img.device
    x = img.float().div_(127.5).sub_(1)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=dev, generator=gen)

    angle = (rand(n) - 0.5) * math.radians(20)
    scale = 1 + (rand(n) - 0.5) * 0.2
    shift = (rand(n, 2) - 0.5) * 0.08
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift[:, 0]], 1),
            torch.stack([sin * flip, cos, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, (n, 3, 112, 112), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # down-and-up sampling for 40 % of the batch: 28..112 px effective resolution
    soft = rand(n) < 0.4
    if soft.any():
        side = int(28 + rand(1).item() * 84)
        low = F.interpolate(
            x[soft], size=(side, side), mode="bilinear", antialias=True, align_corners=False
        )
        x[soft] = F.interpolate(low, size=(112, 112), mode="bilinear", align_corners=False)
    gain = 1 + (rand(n, 1, 1, 1) - 0.5) * 0.5
    bias = (rand(n, 1, 1, 1) - 0.5) * 0.3
    grey = x.mean(1, keepdim=True)
    sat = torch.where(
        rand(n, 1, 1, 1) < 0.1, torch.zeros_like(gain), 1 + (rand(n, 1, 1, 1) - 0.5) * 0.6
    )
    x = grey + (x - grey) * sat
    return (x * gain + bias).clamp_(-1, 1)


@torch.no_grad()
def embed_crops(
    net: FaceRecognizer, images: np.ndarray | torch.Tensor, device: torch.device, batch: int = 512
) -> np.ndarray:
    """Embeddings of uint8 (N,S,S,3) aligned crops (or a (N,3,S,S) uint8 tensor on the device)."""
    net.eval()
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    out = []
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch].to(device).float().div(127.5).sub(1)
        out.append(net(x).cpu())
    return torch.cat(out).numpy()


def verification_auc(
    embeddings: np.ndarray, labels: np.ndarray, max_negatives: int = 200_000, seed: int = 0
) -> dict:
    """LFW-style verification on held-out identities: AUC over all same-person pairs and
    up to `max_negatives` random different-person pairs, plus the best pair accuracy."""
    from slimswap.evaluate.metrics import roc_auc

    rng = np.random.default_rng(seed)
    same_i, same_j = [], []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                same_i.append(idx[a])
                same_j.append(idx[b])
    ni = rng.integers(0, len(labels), max_negatives * 2)
    nj = rng.integers(0, len(labels), max_negatives * 2)
    keep = labels[ni] != labels[nj]
    ni, nj = ni[keep][:max_negatives], nj[keep][:max_negatives]
    i = np.concatenate([same_i, ni]).astype(int)
    j = np.concatenate([same_j, nj]).astype(int)
    positives = np.concatenate([np.ones(len(same_i), bool), np.zeros(len(ni), bool)])
    scores = (embeddings[i] * embeddings[j]).sum(1)
    thresholds = np.sort(scores)[:: max(1, len(scores) // 400)]
    # balanced accuracy (mean of the same- and different-person hit rates): negatives outnumber
    # positives a hundredfold, so plain accuracy would reward calling everyone a stranger
    accs = [
        ((scores[positives] >= t).mean() + (scores[~positives] < t).mean()) / 2 for t in thresholds
    ]
    return {
        "auc": float(roc_auc(scores, positives)),
        "best_balanced_accuracy": float(max(accs)),
        "positive_pairs": int(positives.sum()),
        "negative_pairs": int((~positives).sum()),
        "mean_cos_same": float(scores[positives].mean()),
        "mean_cos_different": float(scores[~positives].mean()),
    }


def train_recognizer(cfg: RecognizerTrainConfig) -> dict:
    """Train (or continue) the recognizer; writes weights, config and verification metrics."""
    from slimswap.train.shards import load_shard

    dev = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    )
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    amp = cfg.bf16 and dev.type == "cuda"
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    shard = load_shard(cfg.data)
    images = torch.from_numpy(shard.decode()).permute(0, 3, 1, 2).contiguous().to(dev)
    labels = torch.from_numpy(shard.labels.astype(np.int64)).to(dev)
    classes = int(shard.labels.max()) + 1
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    net = FaceRecognizer(cfg.model).to(dev, memory_format=torch.channels_last)
    head = CosFaceHead(cfg.model.embed_dim, classes).to(dev)
    params = [{"params": net.parameters()}, {"params": head.parameters()}]
    opt = torch.optim.SGD(
        params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True
    )
    step, elapsed, history = 0, 0.0, []
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        net.load_state_dict(state["net"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        gen.manual_seed(cfg.seed + step)
        log.info("resumed recognizer at step %d (%.0f s trained)", step, elapsed)

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {
                "net": net.state_dict(),
                "head": head.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "history": history,
            },
            tmp,
        )
        os.replace(tmp, ckpt)

    log.info(
        "recognizer: %d images, %d classes, %.2f M params",
        len(labels),
        classes,
        sum(p.numel() for p in net.parameters()) / 1e6,
    )
    t0, last_save, acc, acc_n = time.time() - elapsed, time.time(), 0.0, 0
    while step < cfg.max_steps and elapsed < cfg.max_seconds:
        frac = elapsed / cfg.max_seconds
        lr = cfg.lr * min(1.0, (elapsed + 1) / cfg.warmup_s) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(labels), (cfg.batch,), device=dev, generator=gen)
        x = _augment(images[idx], gen).contiguous(memory_format=torch.channels_last)
        net.train()
        with torch.autocast(dev.type, torch.bfloat16, enabled=amp):
            loss = head(net(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc += loss.detach()
        acc_n += 1
        elapsed = time.time() - t0
        if step % cfg.log_every == 0:
            row = {
                "step": step,
                "loss": float(acc) / acc_n,
                "lr": lr,
                "wall": elapsed,
                "images_per_s": cfg.batch
                * acc_n
                / max(1e-9, elapsed - (history[-1]["wall"] if history else 0)),
            }
            history.append(row)
            acc, acc_n = 0.0, 0
            log.info(
                "recognizer step %d  loss %.3f  lr %.4f  %.0f img/s",
                step,
                row["loss"],
                lr,
                row["images_per_s"],
            )
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"recognizer loss is not finite at step {step}")
        if time.time() - last_save > cfg.checkpoint_every_s:
            save()
            last_save = time.time()
    save()
    metrics = {
        "step": step,
        "seconds": elapsed,
        "classes": classes,
        "train_images": int(len(labels)),
    }
    for path in cfg.eval_data:
        if Path(path).is_file():
            s = load_shard(path)
            emb = embed_crops(net, s.decode(), dev)
            metrics[Path(path).stem] = verification_auc(emb, s.labels)
            log.info("verification on %s: %s", path, metrics[Path(path).stem])
    save_recognizer(net, out / "eval_recognizer.safetensors", metrics)
    (out / "metrics.json").write_text(
        json.dumps({"config": asdict(cfg), "metrics": metrics, "history": history}, indent=1)
    )
    return metrics
