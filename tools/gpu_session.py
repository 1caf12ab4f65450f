"""Steps of a GPU session (run on the lent machine; see tools/gpu_session.sh and RESULTS.md).

  python tools/gpu_session.py smoke                 # every code path for a few steps
  python tools/gpu_session.py teacher SECONDS       # train / continue the teacher
  python tools/gpu_session.py recognizer SECONDS    # train the evaluation-only recognizer
  python tools/gpu_session.py ablate NAME SECONDS   # one A/B variant, then its crop scores
  python tools/gpu_session.py distill SECONDS       # the lite student from the teacher's EMA
  python tools/gpu_session.py campaign NAME SECONDS # continue campaign run NAME (issue 20)
  python tools/gpu_session.py score NAME=FILE ...   # crop scores of released generators

Paths: shards and the identity net in $STAGE (default runs/stage), runs under runs/.
Written for a machine with torch, numpy, opencv and safetensors but no dlib.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap.nets.warp_generator import SwapGeneratorConfig
from slimswap.train.teacher import LossWeights, TrainConfig

STAGE = Path(os.environ.get("STAGE", "runs/stage"))
TRAIN = tuple(str(STAGE / f) for f in ("train_128.npz", "train_256.npz"))
TEST = tuple(str(STAGE / f) for f in ("test_128.npz", "test_256.npz"))
IDNET = str(STAGE / "identity_fp16.safetensors")
log = logging.getLogger("gpu_session")


def teacher_config(out: str, seconds: float, **kw) -> TrainConfig:
    kw.setdefault("batch", int(os.environ.get("BATCH", "32")))
    return TrainConfig(
        data=TRAIN,
        out=out,
        identity_weights=IDNET,
        max_seconds=seconds,
        compile=os.environ.get("COMPILE", "1") == "1",
        **kw,
    )


def run_teacher(seconds: float, out: str = "runs/teacher", **kw) -> dict:
    from slimswap.train.teacher import train_teacher

    compact = Path(out) / "compact"  # also at every checkpoint: `gpu_campaign.sh watch` takes it
    config = teacher_config(out, seconds, compact_dir=str(compact), **kw)
    return train_teacher(config, export_compact=compact)


# A/B variants of equal GPU time: what each lever is worth (benchmarks/RESULTS.md ablation table)
HIDDEN = SwapGeneratorConfig(target_channels=0, hide_target_face=True)
SESSION1 = SwapGeneratorConfig(target_channels=0, hide_target_face=False)  # saw the whole target
ABLATIONS = {
    # session 2 (2026-11-28): the target's face hidden from the generator (no copy path)
    "hidden": {"model": HIDDEN, "weights": LossWeights(identity=15.0)},
    "hidden_pairs60": {"model": HIDDEN, "pair_share": 0.6, "weights": LossWeights(identity=15.0)},
    "hidden_id30": {"model": HIDDEN, "weights": LossWeights(identity=30.0)},  # released
    "hidden_student": {
        "model": replace(SwapGeneratorConfig.student(), target_channels=0),
        "weights": LossWeights(identity=15.0),
    },
    # session 1 (the copy trap; benchmarks/RESULTS.md)
    "full": {"model": SESSION1, "weights": LossWeights(identity=15.0)},
    "no_warp": {"model": SESSION1, "warp": False, "weights": LossWeights(identity=15.0)},
    "no_pairs": {"model": SESSION1, "pair_share": 0.0, "weights": LossWeights(identity=15.0)},
    "identity_5": {"model": SESSION1, "weights": LossWeights(identity=5.0)},
}


# The training campaign (issue 20): every run continues the released model (or the last
# checkpoint of the campaign) and is scored the same way, so the curve shows whether more time
# pays. `control` is the released recipe continued (the A/B's reference at equal GPU time);
# `expr` keeps the target's mouth and eye openings and draws a quarter of its targets from clip
# frames, most of them paired with another frame of the same clip (expression differs, the
# answer is known); `expr_mp` is `expr` with 70 % of its pairs warped and masked by MediaPipe's
# mapped landmarks (the product's default analyser) instead of dlib's (session 5's A/B).
def _released(name: str) -> SwapGeneratorConfig:
    """The network config of released model NAME (for teacher_256 also from the campaign's
    EMA, the same network: `device_tree.sh lean` leaves the released file behind then)."""
    from slimswap.swap.weights import read_metadata

    path = Path(f"models/{name}.safetensors")
    if not path.is_file() and name == "teacher_256":
        path = CHECKPOINT / "G_ema.safetensors"
    return SwapGeneratorConfig.from_json(json.dumps(read_metadata(path)["config"]))


def campaign_runs() -> dict[str, dict]:
    teacher, lite = _released("teacher_256"), _released("lite_256")
    expr = {"video_share": 0.25, "video_pair_share": 0.8}
    expr_mp = {"model": replace(teacher, target_openings=True), **expr, "mesh_share": 0.7}
    glasses = {**expr_mp, "glasses_share": 0.3}
    return {
        "control": {"model": replace(teacher, target_openings=False)},
        "expr": {"model": replace(teacher, target_openings=True), **expr},
        "expr_mp": expr_mp,
        # session 6's curve: expr_mp keeps gaining expression and losing identity (recognizer
        # cosine to the source 0.363 -> 0.336 -> 0.324): the A/B for the next continuation
        "expr_mp_id45": {**expr_mp, "weights": LossWeights(identity=45.0)},
        # a source's glasses ghost over targets without them (the demo's Hopper): expr_mp
        # with synthetic glasses on 30 % of its sources (slimswap/train/glasses.py)
        "expr_mp_glasses": glasses,
        # session 10: expr_mp_glasses won its A/B on the glasses leak and is the checkpoint;
        # the identity-weight A/B (session 9's, lost) on top of it is the next continuation
        "expr_mp_glasses_id45": {**glasses, "weights": LossWeights(identity=45.0)},
        "expr_lite": {"model": replace(lite, target_openings=True), **expr},
    }


RELEASED_FROM = {
    "control": "teacher_256",
    "expr": "teacher_256",
    "expr_mp": "teacher_256",
    "expr_mp_id45": "teacher_256",
    "expr_mp_glasses": "teacher_256",
    "expr_mp_glasses_id45": "teacher_256",
    "expr_lite": "lite_256",
}
# runs that start from the campaign's checkpoint
CONTINUES_CHECKPOINT = (
    "expr",
    "expr_mp",
    "expr_mp_id45",
    "expr_mp_glasses",
    "expr_mp_glasses_id45",
)


def release_init(name: str, folder: Path) -> Path:
    """A compact-checkpoint folder that continues a released model: G = G_ema = its EMA
    weights, a fresh discriminator, the step and sample counts of its MANIFEST entry."""
    import shutil

    model = RELEASED_FROM[name]
    entry = next(
        e for e in json.loads(Path("models/MANIFEST").read_text())["models"] if e["name"] == model
    )
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f"models/{entry['file']}", folder / "G_ema.safetensors")
    prov = entry.get("provenance", {})
    state = {"step": int(prov.get("steps", 0)), "samples_seen": int(prov.get("samples_seen", 0))}
    (folder / "state.json").write_text(json.dumps({**state, "history": []}))
    return folder


CHECKPOINT = Path("models/teacher_campaign")  # the committed resume point of `expr`


def campaign_init(name: str, folder: Path) -> Path:
    """Where run NAME starts on a fresh machine: the committed campaign checkpoint (G, D, its
    EMA, step and history) for `expr` and its variants, else the released model. A checkpoint without its own
    G_ema.safetensors (session 3's) continued the released teacher, which was its EMA."""
    import shutil

    if name not in CONTINUES_CHECKPOINT or not (CHECKPOINT / "state.json").is_file():
        return release_init(name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    for f in ("G.safetensors", "D.safetensors", "state.json"):
        shutil.copyfile(CHECKPOINT / f, folder / f)
    ema = CHECKPOINT / "G_ema.safetensors"
    shutil.copyfile(ema if ema.is_file() else "models/teacher_256.safetensors", folder / ema.name)
    return folder


def load_test_set(device: torch.device):
    from slimswap.train.swap_data import load_swap_dataset

    return load_swap_dataset(list(TEST), 256, device)


def recognizer_and_idnet(device: torch.device):
    from slimswap.nets.recognizer import load_recognizer
    from slimswap.train.teacher import load_identity_net

    rec_path = Path(os.environ.get("RECOGNIZER", "runs/recognizer/eval_recognizer.safetensors"))
    rec = load_recognizer(rec_path, device) if rec_path.is_file() else None
    return rec, load_identity_net(IDNET, device)


def score(generators: dict[str, Path], out: Path, n_cross: int = 300, n_same: int = 100) -> dict:
    from slimswap.evaluate.crop_eval import score_generator
    from slimswap.swap.weights import load_generator

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ds = load_test_set(dev)
    rec, idnet = recognizer_and_idnet(dev)
    if rec is None:
        raise SystemExit("no recognizer weights yet")
    results = {}
    for name, path in generators.items():
        g = load_generator(path, device=dev) if str(path) not in ("", ".", "none") else None
        s = score_generator(g, ds, rec, idnet, n_cross, n_same)
        results.update({f"{name}:{k}": asdict(v) for k, v in s.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    for k, v in results.items():
        log.info("%-28s %s", k, "  ".join(f"{a} {b:.3f}" for a, b in v.items()))
    return results


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cmd = argv[0]
    if cmd == "smoke":
        t = time.time()
        cfg = teacher_config("runs/smoke", 40, batch=16, log_every=10, checkpoint_every_s=20)
        from slimswap.train.teacher import TeacherTrainer

        tr = TeacherTrainer(replace(cfg, max_steps=30))
        tr.fit()
        tr.sample_grid()
        tr.export_compact(Path("runs/smoke/compact"))
        log.info("teacher smoke ok in %.0f s", time.time() - t)
        from slimswap.train.recognizer import RecognizerTrainConfig, train_recognizer

        train_recognizer(
            RecognizerTrainConfig(
                data=TRAIN[0], eval_data=TEST[:1], out="runs/smoke_rec", max_steps=30, log_every=10
            )
        )
        os.environ["RECOGNIZER"] = "runs/smoke_rec/eval_recognizer.safetensors"
        score(
            {"smoke": Path("runs/smoke/teacher_ema_fp16.safetensors")},
            Path("runs/smoke/scores.json"),
            20,
            10,
        )
        from slimswap.train.distill import DistillConfig, distill_student

        distill_student(
            replace(cfg, out="runs/smoke_distill", max_steps=20, model=SwapGeneratorConfig()),
            DistillConfig(
                teacher="runs/smoke/teacher_ema_fp16.safetensors", critic_from="runs/smoke/compact"
            ),
        )
        log.info("all smoke steps ok in %.0f s", time.time() - t)
    elif cmd == "teacher":
        run_teacher(float(argv[1]), init_from=os.environ.get("INIT_FROM", ""))
    elif cmd == "student":  # the lite network trained with the teacher's objective directly
        run_teacher(float(argv[1]), out="runs/student", model=SwapGeneratorConfig.student())
    elif cmd == "recognizer":
        from slimswap.train.recognizer import RecognizerTrainConfig, train_recognizer

        train_recognizer(
            RecognizerTrainConfig(data=TRAIN[0], eval_data=TEST[:1], max_seconds=float(argv[1]))
        )
    elif cmd == "ablate":
        name, seconds = argv[1], float(argv[2])
        out = f"runs/ablate_{name}"
        run_teacher(seconds, out=out, init_from=os.environ.get("INIT_FROM", ""), **ABLATIONS[name])
        if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 scores
            return
        score({name: Path(out) / "teacher_ema_fp16.safetensors"}, Path(out) / "scores.json")
    elif cmd == "campaign":  # NAME SECONDS: continue the campaign run NAME (resumable)
        name, seconds = argv[1], float(argv[2])
        out = Path(f"runs/campaign_{name}")
        init = os.environ.get("INIT_FROM", "")
        if not (out / "checkpoint.pt").exists() and not init:
            init = str(campaign_init(name, out / "init"))
        run_teacher(seconds, out=str(out), init_from=init, **campaign_runs()[name])
        if os.environ.get("RANK", "0") != "0":
            return
        score({name: out / "teacher_ema_fp16.safetensors"}, out / "scores.json")
    elif cmd == "distill":
        from slimswap.train.distill import DistillConfig, distill_student

        teacher = os.environ.get("TEACHER", "runs/teacher/teacher_ema_fp16.safetensors")
        cfg = teacher_config("runs/student", float(argv[1]), batch=32)
        distill_student(
            cfg,
            DistillConfig(teacher=teacher, critic_from="runs/teacher/compact"),
            export_compact=Path("runs/student/compact"),
        )
    elif cmd == "score":
        gens = {a.split("=", 1)[0]: Path(a.split("=", 1)[1]) for a in argv[1:]}
        score(gens, Path("runs/scores.json"))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
