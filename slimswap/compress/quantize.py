"""Mixed-precision INT8: ONNX Runtime static QDQ quantization of the convolutions only.

Only `Conv` nodes are quantized (per-channel weights, activations calibrated on real aligned
faces with their own identities). Everything that carries fine, global or identity
information stays float: attention (MatMul/Softmax), normalisation (InstanceNormalization),
identity injection (the AdaIN Gemm/MatMul layers), and the convolutions on the skip path,
the stem and the output, which the sensitivity analysis and the PSNR budget single out.

Weights are quantized to 7 bits (`reduce_range`, levels -64..64) so one file holds on every
x86 CPU: without VNNI (AVX2, AVX-512 on AMD Zen 2/3 and older Intel), ONNX Runtime multiplies
uint8 activations by int8 weights with VPMADDUBSW, which adds two products into a saturating
int16. 255 x 127 x 2 overflows it, and on such a CPU the lite model lost 6-18 dB of PSNR
against its fp32 twin; 255 x 64 x 2 = 32640 cannot overflow. VNNI CPUs accumulate in int32
and never saturated; on them the seventh bit costs a little precision, not correctness.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from slimswap.files import atomic_write

# name fragments of Conv nodes kept in float (torch export names nodes after module paths)
SENSITIVE_CONV_PARTS = ("/stem/", "/fuse32/", "/out/", "/fusion/")
FLOAT_OP_TYPES = ("MatMul", "Softmax", "InstanceNormalization", "Gemm")
# largest |int8 weight| whose pairwise products with uint8 activations fit a saturating int16
NO_SATURATION_WEIGHT = 32767 // (2 * 255)  # 64


def sensitive_nodes(model_path: str | Path) -> list[str]:
    """Names of the nodes that must stay float in the quantized graph."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    keep = []
    for node in graph.node:
        if (
            node.op_type in FLOAT_OP_TYPES
            or node.op_type == "Conv"
            and any(part in node.name + "/" for part in SENSITIVE_CONV_PARTS)
        ):
            keep.append(node.name)
    return keep


class FaceCalibration:
    """onnxruntime CalibrationDataReader over real aligned crops and their dlib descriptors."""

    def __init__(self, crops: np.ndarray, identities: np.ndarray) -> None:
        self.crops = crops
        self.identities = identities
        self._it: Iterator | None = None

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        from slimswap.swap.neural import to_model_input

        for c, e in zip(self.crops, self.identities):
            yield {"target": to_model_input(c[None]), "identity": e[None].astype(np.float32)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._gen()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    crops: np.ndarray,
    identities: np.ndarray,
    method: str = "percentile",
) -> tuple[Path, list[str]]:
    """Static QDQ INT8 (per-channel) of the Conv layers; returns (path, excluded node names)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    calib = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]
    extra = {"CalibPercentile": 99.999} if method == "percentile" else {}
    pre_file = atomic_write(out_path.with_name(out_path.stem + ".pre.onnx"))
    try:
        with atomic_write(out_path) as tmp:
            quant_pre_process(str(fp32_path), str(pre_file.path), skip_symbolic_shape=True)
            excluded = sensitive_nodes(pre_file.path)
            quantize_static(
                str(pre_file.path),
                str(tmp),
                FaceCalibration(crops, identities),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
                calibrate_method=calib,
                extra_options=extra,
            )
    finally:
        pre_file.discard()
    return out_path, excluded


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
