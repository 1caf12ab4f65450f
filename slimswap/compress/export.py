"""Export a generator to ONNX (fp32 and fp16) and check it against torch.

Model inputs travel as a dict of named arrays everywhere in `slimswap.compress` (export,
validation, calibration, the report), named after the generator's `forward` arguments: the
warp-guided generator takes `target` (N,3,S,S in [-1,1]), `guide` (N,4,S,S: the source warped
onto the target's landmarks and colour-matched, plus the face region; built outside the net
by `slimswap.face.warp`) and `identity` (N,128 dlib descriptor); the output is `swap`
(N,3,S,S). The ONNX inputs carry the same names, which is how `OnnxSwapper` knows to build the
guide. Batch is dynamic. The fp16 file comes from ONNX Runtime's own float16 converter,
keeping inputs/outputs in fp32 so callers never change.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import torch

from slimswap.files import atomic_write

Inputs = dict[str, np.ndarray]  # model inputs by name, float32, batch first
INPUT_CHANNELS = {"target": 3, "guide": 4}  # image inputs; `identity` is (N, id_dim)
CHUNK = 8  # faces per inference call when checking many: bounds the teacher's activations


def input_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The generator's input names, in call order: its forward's arguments without defaults.

    Read from the signature so nothing here hard-codes how many inputs a generator has.
    """
    params = inspect.signature(model.forward).parameters.values()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params if p.kind in positional and p.default is p.empty)


def example_inputs(
    model: torch.nn.Module, batch: int = 1, resolution: int | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random inputs of the generator's shapes, for tracing and for counting MACs.

    resolution: override the model's own (a small one makes torch-pruning's graph tracing
    cheap; the graph of a fully convolutional net does not depend on it). The guide's last
    channel is a region in [0, 1]; real faces for anything measured come from compress.data.
    """
    size = int(resolution or model.config.resolution)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in input_names(model):
        if name == "identity":
            out[name] = torch.randn(batch, int(model.config.id_dim), generator=gen)
        elif name in INPUT_CHANNELS:
            x = torch.rand(batch, INPUT_CHANNELS[name], size, size, generator=gen) * 2 - 1
            if name == "guide":
                x[:, 3:] = (x[:, 3:] + 1) / 2
            out[name] = x
        else:
            raise ValueError(f"no example for generator input {name!r}")
    return out


def to_onnx(model: torch.nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Trace the generator to ONNX at its own resolution (inputs named as in forward);
    written atomically."""
    path = Path(path)
    model = model.float().eval().cpu()
    names = input_names(model)
    example = example_inputs(model)
    with atomic_write(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(example[n] for n in names),
            str(tmp),
            input_names=list(names),
            output_names=["swap"],
            dynamic_axes={n: {0: "n"} for n in (*names, "swap")},
            opset_version=opset,
            dynamo=False,
        )
    return stamp(path, guide_metadata(model))


def guide_metadata(model: torch.nn.Module) -> dict[str, str]:
    """What an ONNX runtime must know to build the model's inputs, as ONNX metadata: whether
    its guide keeps the target's openings (`SwapGeneratorConfig.target_openings`)."""
    openings = bool(getattr(getattr(model, "config", None), "target_openings", False))
    return {"target_openings": "true" if openings else "false"}


def stamp(path: str | Path, metadata: dict[str, str]) -> Path:
    """Write `metadata` into an ONNX file's metadata_props (replacing equal keys), atomically.

    Done after every conversion: the converters (fp16, INT8 quantization) do not promise to
    keep a model's metadata, and `OnnxSwapper` reads it to build the guide.
    """
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    with atomic_write(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights and activations; fp32 at the boundary (for GPU runtimes)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    dst = Path(dst)
    with atomic_write(dst) as tmp:
        onnx.save(model, str(tmp))
    return dst


def to_fp16_storage(src: str | Path, dst: str | Path) -> Path:
    """fp32 compute with weights stored as fp16: every fp32 initializer becomes fp16 plus a
    Cast back to fp32, which ONNX Runtime folds into an fp32 constant when the session loads.

    Why: the teacher's fp32 file (25 MB) is over the 16 MiB a committed weight file may be,
    and an fp16-compute graph runs 4x slower on a CPU (benchmarks/RESULTS.md). Stored this way
    it is half the size and computes exactly what the fp16 safetensors loaded as fp32 compute.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name.startswith("fp16_storage/"):
            continue
        half = numpy_helper.to_array(init).astype(np.float16)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"fp16_storage/{name}"))
        casts.append(helper.make_node("Cast", [init.name], [name], to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)  # casts first: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    dst = Path(dst)
    with atomic_write(dst) as tmp:
        onnx.save(model, str(tmp))
    return dst


def session(path: str | Path, threads: int | None = None):
    """A CPU ONNX Runtime session as the swapper runs it (threads: intra-op threads; None:
    ONNX Runtime's default), with no busy-waiting between ops: on the loaded 2-core machine
    spinning threads made the lite model 1.5x slower (36.9 vs 25.1 ms median, 2 threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feed_for(sess, inputs: Inputs, rows: slice = slice(None)) -> dict[str, np.ndarray]:
    """The session's own inputs taken from `inputs` (extra names are ignored, missing ones
    are an error naming them)."""
    names = [i.name for i in sess.get_inputs()]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise ValueError(f"model inputs {missing} not given (have {sorted(inputs)})")
    return {n: np.ascontiguousarray(inputs[n][rows], np.float32) for n in names}


def run_onnx(path_or_session, inputs: Inputs, threads: int | None = None) -> np.ndarray:
    """The ONNX model's swaps of `inputs`, run CHUNK faces at a time."""
    sess = (
        session(path_or_session, threads)
        if isinstance(path_or_session, str | Path)
        else path_or_session
    )
    n = len(next(iter(inputs.values())))
    outs = [
        sess.run(None, feed_for(sess, inputs, slice(i, i + CHUNK)))[0] for i in range(0, n, CHUNK)
    ]
    return np.concatenate(outs)


@torch.no_grad()
def run_torch(model: torch.nn.Module, inputs: Inputs) -> np.ndarray:
    """The torch model's fp32 swaps of `inputs`, CHUNK faces at a time."""
    model = model.float().eval()
    names = input_names(model)
    n = len(next(iter(inputs.values())))
    outs = []
    for i in range(0, n, CHUNK):
        args = {k: torch.from_numpy(np.ascontiguousarray(inputs[k][i : i + CHUNK])) for k in names}
        outs.append(model(**args).numpy())
    return np.concatenate(outs)


def psnr_pm1(a: np.ndarray, b: np.ndarray, weight: np.ndarray | None = None) -> float:
    """PSNR of two images in [-1, 1] (peak-to-peak 2); weight (N,1,H,W) restricts the mean
    squared error to a region (see `face_weight`)."""
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if weight is None:
        mse = float(err.mean())
    else:
        w = np.broadcast_to(weight.astype(np.float64), err.shape)
        mse = float((err * w).sum() / max(w.sum(), 1e-12))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def face_weight(inputs: Inputs) -> np.ndarray | None:
    """The face region of each input (the guide's last channel), or None without a guide.

    A warp-guided swap copies the target outside the face, so a whole-crop PSNR mixes the
    errors with a background that is right by construction; inside the region is where a
    compressed model can go wrong.
    """
    guide = inputs.get("guide")
    return None if guide is None else guide[:, -1:]


def validate(model: torch.nn.Module, onnx_path: str | Path, inputs: Inputs) -> dict:
    """Max abs error and PSNR (whole crop and face region) of the ONNX output against torch
    fp32 on the same inputs."""
    ref = run_torch(model, inputs)
    out = run_onnx(onnx_path, inputs)
    return {
        "max_abs_error": float(np.abs(out - ref).max()),
        "psnr_db": psnr_pm1(out, ref),
        "face_psnr_db": psnr_pm1(out, ref, face_weight(inputs)),
    }
