"""Mixed-precision INT8: ONNX Runtime static QDQ quantization of the convolutions only.

Only `Conv` nodes are quantized (per-channel weights, uint8 activations calibrated on real
aligned faces with real warp guides and identities, `compress.data`). Normalisation
(InstanceNormalization), identity injection (the AdaIN Gemm layers) and attention
(MatMul/Softmax) are never quantized, and the convolutions named by `SENSITIVE_CONV_PARTS`
stay float too. That list is measured, not guessed: `node_sensitivity` quantizes one Conv at
a time against the fp32 graph on real faces, `choose_float_nodes` keeps the worst ones float
until the whole graph meets a PSNR target, and `compress int8-sensitivity` writes both tables
(benchmarks/compress/int8_sensitivity.md), from which the constant below was copied.

Weights are quantized to 7 bits (`reduce_range`, levels -64..64) so one file holds on every
x86 CPU: without VNNI (AVX2, AVX-512 on AMD Zen 2/3 and older Intel), ONNX Runtime multiplies
uint8 activations by int8 weights with VPMADDUBSW, which adds two products into a saturating
int16. 255 x 127 x 2 overflows it, and on such a CPU the v1 lite model lost 6-18 dB of PSNR
against its fp32 twin; 255 x 64 x 2 = 32640 cannot overflow. VNNI CPUs accumulate in int32
and never saturated; on them the seventh bit costs a little precision, not correctness.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimswap.compress.export import Inputs, face_weight, psnr_pm1, run_onnx, session
from slimswap.files import atomic_write

# Name fragments of the Conv nodes kept in float in the v2 generator (torch export names
# nodes after module paths), from `compress int8-sensitivity` on the lite student
# (benchmarks/compress/int8_sensitivity.md): with every Conv INT8 the face region is 40.6 dB
# from fp32; keeping the five costliest Convs float (the RGB + mask head, the guide encoder at
# full and half resolution, which carries the warped source's texture to the decoder skips,
# and the decoder's S/2 fusion where that skip enters) reaches 45.2 dB, past the 45 dB target
# (about 1.4 grey levels RMS inside the face); the next nine would add 3.5 dB together. The
# attention convs (`fusion`) and the bottleneck were the least sensitive (66-77 dB alone).
SENSITIVE_CONV_PARTS: tuple[str, ...] = ("/g_stem/", "/g_down.0/", "/up2/fuse/", "/out/")
FLOAT_OP_TYPES = ("MatMul", "Softmax", "InstanceNormalization", "Gemm")
# largest |int8 weight| whose pairwise products with uint8 activations fit a saturating int16
NO_SATURATION_WEIGHT = 32767 // (2 * 255)  # 64
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
CALIBRATION_STRIDE = 8  # faces whose intermediate tensors ONNX Runtime holds at once


def sensitive_nodes(
    model_path: str | Path, conv_parts: Sequence[str] = SENSITIVE_CONV_PARTS
) -> list[str]:
    """Names of the nodes that must stay float in the quantized graph."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    keep = []
    for node in graph.node:
        if (
            node.op_type in FLOAT_OP_TYPES
            or node.op_type == "Conv"
            and any(part in node.name + "/" for part in conv_parts)
        ):
            keep.append(node.name)
    return keep


def conv_part(node_name: str) -> str:
    """The fragment that names one Conv node: its module path, e.g. '/up4/fuse/'."""
    return node_name.rsplit("/", 1)[0] + "/"


class FaceCalibration:
    """onnxruntime CalibrationDataReader over real model inputs, one face per call.

    `set_range` lets ONNX Runtime calibrate in strides (CALIBRATION_STRIDE faces at a time):
    its histogram calibrators keep every intermediate tensor of the faces they are given, about
    200 MB a face for the teacher at 256 px, which for 128 faces exhausted the machine.
    """

    def __init__(self, inputs: Inputs, names: Sequence[str]) -> None:
        self.inputs = {n: inputs[n] for n in names}
        self.n = len(next(iter(self.inputs.values())))
        self.start, self.end = 0, self.n
        self._it: Iterator | None = None

    def __len__(self) -> int:
        return self.n

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, min(end_index, self.n)
        self._it = None

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self.start, self.end):
            yield {
                k: np.ascontiguousarray(v[i : i + 1], np.float32) for k, v in self.inputs.items()
            }

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._gen()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def calibration_stride(n: int) -> int:
    """Faces per calibration stride: CALIBRATION_STRIDE when it divides n (ONNX Runtime wants
    equal strides), else all of them in one."""
    return CALIBRATION_STRIDE if n % CALIBRATION_STRIDE == 0 else n


def preprocess(fp32_path: str | Path, out_path: str | Path) -> Path:
    """ONNX Runtime's quantization pre-processing (shape inference + graph optimisation)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)
    return Path(out_path)


def _quantize(
    pre_path: Path,
    out_path: Path,
    calib: Inputs,
    method: str,
    exclude: list[str] | None = None,
    only: list[str] | None = None,
    cache: Path | None = None,
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, not {method}")
    reader = FaceCalibration(calib, [i.name for i in session(pre_path).get_inputs()])
    # "CalibStridedMinMax" is ONNX Runtime's name for strided collection with any calibrator
    extra = {"CalibStridedMinMax": calibration_stride(len(reader))}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    cached = {}
    if (
        cache is not None
        and "calibration_cache_path" in inspect.signature(quantize_static).parameters
    ):
        cached["calibration_cache_path"] = str(cache)  # ranges computed once, reused per call
    quantize_static(
        str(pre_path),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=only,
        nodes_to_exclude=exclude,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[method],
        extra_options=extra,
        **cached,
    )


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calib: Inputs,
    method: str = "percentile",
    conv_parts: Sequence[str] = SENSITIVE_CONV_PARTS,
) -> tuple[Path, list[str]]:
    """Static QDQ INT8 (per-channel) of the Conv layers; returns (path, float node names).

    calib: real model inputs by name (the model's own input names are taken from it).
    """
    out_path = Path(out_path)
    pre_file = atomic_write(out_path.with_name(out_path.stem + ".pre.onnx"))
    try:
        with atomic_write(out_path) as tmp:
            preprocess(fp32_path, pre_file.path)
            excluded = sensitive_nodes(pre_file.path, conv_parts)
            _quantize(pre_file.path, tmp, calib, method, exclude=excluded)
    finally:
        pre_file.discard()
    return out_path, excluded


# ------------------------------------------------------------ measuring what must stay float


@dataclass
class NodeCost:
    node: str
    psnr_db: float  # INT8-vs-fp32 PSNR inside the face when this Conv alone is quantized


@dataclass
class FloatStep:
    float_nodes: list[str]
    psnr_db: float  # INT8-vs-fp32 PSNR inside the face with every other Conv quantized
    crop_psnr_db: float = float("nan")  # the same over the whole crop


def node_sensitivity(
    fp32_path: str | Path,
    calib: Inputs,
    check: Inputs,
    method: str = "percentile",
    target_db: float = 36.0,
    max_float: int = 12,
    progress: bool = True,
) -> tuple[list[NodeCost], list[FloatStep]]:
    """Measure which Convs must stay float: each Conv quantized alone, then a greedy sweep.

    1. For every Conv node: quantize only it (same calibration ranges for all) and record the
       PSNR of the swaps against the fp32 graph's inside the face region of the `check`
       faces (`export.face_weight`: outside it the swap is the target by construction).
    2. Starting from "every Conv quantized", keep the costliest nodes of step 1 float one at a
       time (worst first) until the full graph reaches `target_db` (or `max_float` nodes).
    Returns (per-node costs, worst first; the sweep's steps).
    """
    import onnx
    from rich.progress import track

    with tempfile.TemporaryDirectory(prefix="slimswap-int8-") as tmp_dir:
        tmp = Path(tmp_dir)
        pre = preprocess(fp32_path, tmp / "pre.onnx")
        cache = tmp / "calibration.json"
        ref = run_onnx(pre, check)
        face = face_weight(check)
        convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]

        def psnr_of(**kw) -> tuple[float, float]:
            out = tmp / "q.onnx"
            _quantize(pre, out, calib, method, cache=cache, **kw)
            swaps = run_onnx(out, check)
            return psnr_pm1(swaps, ref, face), psnr_pm1(swaps, ref)

        costs = [
            NodeCost(c, psnr_of(only=[c])[0])
            for c in track(convs, description="int8 per node", disable=not progress)
        ]
        costs.sort(key=lambda c: c.psnr_db)
        steps = [FloatStep([], *psnr_of(exclude=[]))]
        for cost in costs[:max_float]:
            if steps[-1].psnr_db >= target_db:
                break
            kept = [*steps[-1].float_nodes, cost.node]
            steps.append(FloatStep(kept, *psnr_of(exclude=kept)))
    return costs, steps


def sensitivity_markdown(costs: list[NodeCost], steps: list[FloatStep], header: str = "") -> str:
    lines = [
        "# INT8 sensitivity per Conv node\n",
        header,
        "## Each Conv quantized alone (worst first)\n",
        "| node | module fragment | face PSNR vs fp32 dB |",
        "|---|---|---|",
    ]
    lines += [f"| {c.node} | `{conv_part(c.node)}` | {c.psnr_db:.1f} |" for c in costs]
    lines += [
        "\n## Every Conv quantized except the float ones (greedy, worst first)\n",
        "| float Convs | last one kept float | face PSNR vs fp32 dB | crop PSNR vs fp32 dB |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {len(s.float_nodes)} | {s.float_nodes[-1] if s.float_nodes else '-'} | "
        f"{s.psnr_db:.1f} | {s.crop_psnr_db:.1f} |"
        for s in steps
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ checks on a quantized graph


def int8_weight_range(model_path: str | Path) -> int:
    """Largest |value| among the int8 weight initializers (the Conv weights of a QDQ graph)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    values = [
        numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8
    ]
    return max((int(np.abs(v.astype(np.int32)).max()) for v in values if v.size), default=0)


def float_nodes_in_qdq(model_path: str | Path, names: list[str]) -> dict[str, bool]:
    """For each node name: True if the node exists and none of its weights are quantized.

    In a QDQ graph a quantized node reads its weights through DequantizeLinear from an int8
    initializer; a float node reads float initializers directly (activations reaching it
    through a DequantizeLinear are just the previous layer's output, dequantized).
    """
    import onnx

    graph = onnx.load(str(model_path)).graph
    inits = {i.name for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    by_name = {n.name: n for n in graph.node}
    result = {}
    for name in names:
        node = by_name.get(name)
        if node is None:
            result[name] = False
            continue
        int8_weights = [
            i
            for i in node.input
            if i in producers
            and producers[i].op_type == "DequantizeLinear"
            and producers[i].input[0] in inits
        ]
        result[name] = not int8_weights
    return result
