"""First minute on a GPU machine: does everything run, and how fast?

Checks the identity port against dlib's descriptors (carried in .carry/identity_check.npz)
in fp32 and bf16, times it at batch 256, and runs a few teacher training steps (eager and,
optionally, torch.compile) on synthetic data. Prints a summary table last.
"""

import json
import sys
import time

import numpy as np
import torch

from slimswap.nets.identity import DlibResNet


def identity_check(results: dict) -> None:
    z = np.load(".carry/identity_check.npz")
    chips = torch.from_numpy(z["chips"]).permute(0, 3, 1, 2).float().cuda()
    ref = torch.from_numpy(z["descriptors"]).cuda()
    net = DlibResNet.from_safetensors(".carry/identity_fp32.safetensors").cuda().eval()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        d32 = (net.forward_chip(chips) - ref).norm(dim=1)
        with torch.autocast("cuda", torch.bfloat16):
            d16 = (net.forward_chip(chips).float() - ref).norm(dim=1)
    results["identity_gpu_fp32_vs_dlib"] = {
        "n": len(ref),
        "max": d32.max().item(),
        "mean": d32.mean().item(),
    }
    results["identity_gpu_bf16_vs_dlib"] = {
        "n": len(ref),
        "max": d16.max().item(),
        "mean": d16.mean().item(),
    }
    torch.backends.cudnn.allow_tf32 = True
    net = net.to(memory_format=torch.channels_last)
    x = torch.rand(256, 3, 128, 128, device="cuda").contiguous(memory_format=torch.channels_last)
    for name, fn in (("eager", net), ("compiled", torch.compile(net))):
        with torch.no_grad(), torch.autocast("cuda", torch.bfloat16):
            for _ in range(5):
                fn(x)
            torch.cuda.synchronize()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            times = []
            for _ in range(20):
                s.record()
                fn(x)
                e.record()
                torch.cuda.synchronize()
                times.append(s.elapsed_time(e))
        results[f"identity_bf16_b256_{name}_emb_per_s"] = 256 / (np.median(times) / 1000)


def teacher_smoke(results: dict, compile_: bool) -> None:
    from slimswap.train.teacher import DeviceDataset, TeacherTrainer, TrainConfig

    rng = np.random.default_rng(0)
    n = 2048
    ds = DeviceDataset(
        rng.integers(0, 255, (n, 128, 128, 3), dtype=np.uint8),
        rng.normal(size=(n, 128)).astype(np.float32) * 0.1,
        (rng.random((n, 68, 2)) * 100 + 14).astype(np.float32),
        np.arange(n) % 50,
        torch.device("cuda"),
    )
    cfg = TrainConfig(
        out=f"runs/smoke_{int(compile_)}",
        batch=64,
        max_steps=120,
        landmark_pretrain_steps=20,
        log_every=40,
        identity_weights=".carry/identity_fp16.safetensors",
        compile=compile_,
        checkpoint_every_s=1e9,
    )
    t = time.time()
    tr = TeacherTrainer(cfg, dataset=ds)
    last = tr.fit()
    results[f"teacher_smoke_compile{int(compile_)}"] = {
        "img_per_s_last_window": last.get("images_per_s"),
        "wall_s": time.time() - t,
        "peak_mem_GiB": torch.cuda.max_memory_allocated() / 2**30,
    }


if __name__ == "__main__":
    results: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    identity_check(results)
    teacher_smoke(results, compile_=False)
    if "--compile" in sys.argv:
        teacher_smoke(results, compile_=True)
    print(json.dumps(results, indent=1))
