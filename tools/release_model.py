"""Turn a compact checkpoint returned from the GPU machine into a released model in models/.

    python tools/release_model.py teacher CK_DIR          # -> models/teacher_128.safetensors (quality)
    python tools/release_model.py student CK_DIR          # -> models/lite_128.safetensors (+ ONNX, lite)
The EMA generator is released; the manifest records the training command, steps and samples.
"""

import json
import sys
from pathlib import Path

from safetensors.torch import load_file

from slimswap.compress.release import release_torch
from slimswap.swap.weights import build_generator


def load_ema(ck: Path):
    state = json.loads((ck / "state.json").read_text())
    gen = state["generator"]
    model = build_generator(gen["arch"], json.dumps(gen["config"]))
    weights = load_file(str(ck / "G_ema.safetensors"))
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.eval(), state


def main() -> None:
    kind, ck = sys.argv[1], Path(sys.argv[2])
    model, state = load_ema(ck)
    provenance = {
        "trained_by": "slimswap " + ("train teacher" if kind == "teacher" else "compress distill"),
        "steps": state["step"],
        "samples_seen": state["samples_seen"],
        "data": "data/shards/train_128.npz (LFW + CelebA subset, train split only)",
        "device": "NVIDIA H100 80GB (lent), bf16 autocast",
        "commands": sys.argv[3:] or [],
    }
    name = "teacher_128" if kind == "teacher" else "lite_128"
    mode = "quality" if kind == "teacher" else "lite"
    entry = release_torch(model, name, mode, provenance)
    print(json.dumps({k: v for k, v in entry.items() if k != "provenance"}, indent=1))


if __name__ == "__main__":
    main()
