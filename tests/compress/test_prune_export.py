"""Compression tools on tiny v2 generators and real face crops (no trained weights needed).

Tiny configs at 64 px keep every test a few seconds on 2 cores; the layer structure (guide and
target encoders, concatenated skips, AdaIN Linear pairs, the student's depthwise-separable
convs and attention) is the released models'.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from slimswap.compress import export, quantize
from slimswap.compress.data import as_numpy
from slimswap.compress.prune import count, prune_iteratively
from slimswap.compress.sensitivity import analyse, coupled_layers, protected_layers
from slimswap.nets.warp_generator import SwapGeneratorConfig, WarpSwapGenerator

TINY = SwapGeneratorConfig(resolution=64, widths=(8, 8, 16, 16, 16), n_blocks=1)
TINY_STUDENT = SwapGeneratorConfig(
    resolution=64, widths=(8, 8, 16, 16, 16), n_blocks=1, separable=True, attention_dim=8
)


def tiny(config: SwapGeneratorConfig, seed: int = 0) -> WarpSwapGenerator:
    """A tiny generator with every weight random: the zero-initialised output head, AdaIN and
    attention gate of an untrained one would make whole paths invisible to every measurement."""
    torch.manual_seed(seed)
    model = WarpSwapGenerator(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.15)
    return model


def test_export_names_inputs_and_matches_torch(tiny_batches, tmp_path):
    model = tiny(TINY_STUDENT)
    assert export.input_names(model) == ("target", "guide", "identity")
    inputs = as_numpy(tiny_batches[0].swap)
    path = export.to_onnx(model, tmp_path / "s.onnx")
    sess = export.session(path)
    assert [i.name for i in sess.get_inputs()] == ["target", "guide", "identity"]
    check = export.validate(model, path, inputs)
    assert check["max_abs_error"] < 1e-4, check
    # dynamic batch: one face alone gives the same swap as in a batch of four
    one = export.run_onnx(sess, {k: v[:1] for k, v in inputs.items()})
    np.testing.assert_allclose(one, export.run_onnx(sess, inputs)[:1], atol=1e-5)
    fp16 = export.to_fp16(path, tmp_path / "s16.onnx")
    assert export.psnr_pm1(export.run_onnx(fp16, inputs), export.run_torch(model, inputs)) > 50
    with pytest.raises(ValueError, match="guide"):
        export.run_onnx(sess, {"target": inputs["target"], "identity": inputs["identity"]})


def test_face_psnr_ignores_the_background():
    a = np.zeros((1, 3, 8, 8), np.float32)
    b = a.copy()
    b[..., :4] = 0.5  # error only in the left half
    face = np.zeros((1, 1, 8, 8), np.float32)
    face[..., 4:] = 1
    assert export.psnr_pm1(a, b, face) == float("inf")
    assert export.psnr_pm1(a, b) < 30
    assert export.face_weight({"guide": np.ones((2, 4, 8, 8))}).shape == (2, 1, 8, 8)


def test_pruning_reaches_requested_macs_and_keeps_graph_valid(tiny_batches, tmp_path):
    model = tiny(TINY)
    result = prune_iteratively(model, tiny_batches, target_ratio=0.5, finetune_steps=1)
    assert result.macs / result.base_macs <= 0.5
    assert count(result.model) == (result.macs, result.params)
    pruned = result.model
    # every AdaIN's gamma/beta pair still matches the channels it modulates
    for block in pruned.blocks:
        for conv, norm in ((block.conv1, block.norm1), (block.conv2, block.norm2)):
            assert norm.gamma.out_features == norm.beta.out_features == conv.out_channels
    assert pruned.up4.norm.gamma.out_features == pruned.up4.fuse.out_channels
    # the guide and target skips concatenated into the decoder still add up
    assert (
        pruned.up8.fuse.in_channels
        == (pruned.fuse16.out_channels + pruned.g_down[2].conv.out_channels)
        + pruned.t_down[2].conv.out_channels
    )
    assert pruned.out.out_channels == 4
    inputs = as_numpy(tiny_batches[0].swap)
    path = export.to_onnx(pruned, tmp_path / "pruned.onnx")
    assert export.validate(pruned, path, inputs)["max_abs_error"] < 1e-4
    # each step removed at most ~10 % of the channels of any pruned layer
    ratios = [1.0] + [s.params_ratio for s in result.steps]
    assert all(a - b < 0.25 for a, b in itertools.pairwise(ratios))


def test_protected_layers_stay_whole(tiny_batches):
    model = tiny(TINY)
    result = prune_iteratively(
        model, tiny_batches, target_ratio=0.6, finetune_steps=0, protected=["g_stem.0", "up4.fuse"]
    )
    assert result.model.g_stem[0].out_channels == model.g_stem[0].out_channels
    assert result.model.up4.fuse.out_channels == model.up4.fuse.out_channels
    assert result.model.up2.fuse.out_channels < model.up2.fuse.out_channels


def test_student_keeps_attention_and_image_channels(tiny_batches):
    """The attention's channels cannot be mapped through bmm, and the first depthwise conv
    reads the image: pruning leaves both whole and the student still runs."""
    model = tiny(TINY_STUDENT)
    result = prune_iteratively(model, tiny_batches, target_ratio=0.7, finetune_steps=0)
    pruned = result.model
    assert result.macs < result.base_macs
    assert pruned.t_down[0].conv[0].in_channels == pruned.t_down[0].conv[0].out_channels == 3
    for name in ("q", "k", "v"):
        assert getattr(pruned.fusion, name).out_channels == getattr(model.fusion, name).out_channels
    assert pruned.fuse16.out_channels == model.fuse16.out_channels  # the stream attention joins
    out = pruned(**tiny_batches[0].swap)
    assert out.shape == tiny_batches[0].swap["target"].shape and torch.isfinite(out).all()


def test_sensitivity_table_covers_every_conv(tiny_batches):
    model = tiny(TINY)
    rows = analyse(model, tiny_batches[:1], progress=False)
    names = {r.name for r in rows}
    assert {"g_stem.0", "g_down.0.conv", "t_down.0.conv", "fuse16", "up1.refine"} <= names
    assert "out" not in names
    by_name = {r.name: r for r in rows}
    # torch-pruning couples the AdaIN Linear pair and the residual stream with the bottleneck
    assert {"blocks.0.conv2", "blocks.0.norm2.gamma", "blocks.0.norm2.beta", "up8.fuse"} <= set(
        by_name["fuse16"].coupled
    )
    assert "up1.fuse" in by_name["g_stem.0"].coupled  # the full-resolution guide skip
    assert coupled_layers(model, "up1.refine") == ["out"]
    for r in rows:
        assert 0 <= r.saliency <= 1
        assert r.psnr_db[0.1] >= r.psnr_db[0.5] - 0.5  # cutting more channels never helps
    assert max(r.saliency for r in rows) == 1.0
    assert set(protected_layers(rows, protect_below_db=1000)) == names
    assert protected_layers(rows, protect_below_db=0) == []


def test_int8_keeps_sensitive_nodes_float(tiny_batches, tmp_path):
    """Also: the INT8 file cannot saturate on CPUs without VNNI, and agrees with fp32 here.

    Which kernel ONNX Runtime runs depends on the CPU (VNNI: int32 accumulation; AVX2 alone:
    a saturating int16 pair sum), so every message names the CPU features it ran with.
    """
    import onnx

    from slimswap.evaluate.report import cpu_features, cpu_name

    cpu = f"{cpu_name()}, " + ", ".join(
        f"{k} {'yes' if v else 'no'}" for k, v in cpu_features().items()
    )
    calib = as_numpy(tiny_batches[0].swap)
    check = as_numpy(tiny_batches[1].swap)
    fp32 = export.to_onnx(tiny(TINY_STUDENT), tmp_path / "s.onnx")
    int8, excluded = quantize.quantize_int8(fp32, tmp_path / "s_int8.onnx", calib)
    ops = {n.name: n.op_type for n in onnx.load(str(int8)).graph.node}
    kinds = {ops.get(n) for n in excluded}
    assert {"MatMul", "Softmax", "InstanceNormalization", "Gemm"} <= kinds
    for part in quantize.SENSITIVE_CONV_PARTS:
        assert any(part in n and ops[n] == "Conv" for n in excluded), part
    floats = quantize.float_nodes_in_qdq(int8, excluded)
    assert floats and all(floats.values()), [n for n, ok in floats.items() if not ok]
    # and the other convolutions really were quantized
    quantized = [n for n, op in ops.items() if op == "Conv" and n not in excluded]
    assert len(quantized) >= 20 and not any(quantize.float_nodes_in_qdq(int8, quantized).values())
    # 7-bit weights: two uint8 x int8 products always fit VPMADDUBSW's saturating int16
    assert 0 < quantize.int8_weight_range(int8) <= quantize.NO_SATURATION_WEIGHT, cpu
    psnr = export.psnr_pm1(export.run_onnx(int8, check), export.run_onnx(fp32, check))
    print(f"\nINT8 vs fp32: {psnr:.1f} dB on {cpu}")
    assert psnr > 30, f"{psnr:.1f} dB on {cpu}"


def test_int8_node_sensitivity_measures_every_conv(tiny_batches, tmp_path):
    import onnx

    calib = as_numpy(tiny_batches[0].swap)
    check = as_numpy(tiny_batches[1].swap)
    fp32 = export.to_onnx(tiny(TINY), tmp_path / "t.onnx")
    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    costs, steps = quantize.node_sensitivity(
        fp32, calib, check, target_db=float("inf"), max_float=2, progress=False
    )
    assert sorted(c.node for c in costs) == sorted(convs)
    assert [c.psnr_db for c in costs] == sorted(c.psnr_db for c in costs)  # worst first
    assert [s.float_nodes for s in steps] == [[], [costs[0].node], [costs[0].node, costs[1].node]]
    # each Conv alone costs less than all of them together
    assert all(c.psnr_db >= steps[0].psnr_db - 0.5 for c in costs)
    text = quantize.sensitivity_markdown(costs, steps)
    assert quantize.conv_part(costs[0].node) in text


def test_report_rows_for_torch_and_onnx_files(tiny_batches, tmp_path):
    """The report times and scores every file against the teacher; an ONNX row takes its
    parameters and MACs from the torch model it was exported from."""
    from slimswap.compress.report import Candidate, build_rows, markdown, save
    from slimswap.swap.weights import save_generator

    teacher, student = tiny(TINY), tiny(TINY_STUDENT, seed=1)
    paths = {
        n: save_generator(m, tmp_path / f"{n}.safetensors")
        for n, m in (("teacher", teacher), ("student", student))
    }
    fp32 = export.to_onnx(student, tmp_path / "student_fp32.onnx")
    cands = [
        Candidate("teacher", paths["teacher"]),
        Candidate("student", paths["student"]),
        Candidate("student fp32", fp32, twin="student"),
    ]
    inputs = as_numpy(tiny_batches[0].swap)
    rows, context = build_rows(cands, inputs, "bundled faces", seconds_per_model=0.2)
    by_name = {r.name: r for r in rows}
    assert by_name["teacher"].psnr_vs_teacher_db == float("inf")
    assert np.isfinite(by_name["student"].psnr_vs_teacher_db)
    onnx_row = by_name["student fp32"]
    assert (onnx_row.params, onnx_row.macs) == (by_name["student"].params, by_name["student"].macs)
    assert onnx_row.params == sum(p.numel() for p in student.parameters())
    assert onnx_row.face_psnr_vs_torch_twin_db > 80  # the export is the torch model
    assert abs(onnx_row.psnr_vs_teacher_db - by_name["student"].psnr_vs_teacher_db) < 0.01
    assert all(r.cpu_ms > 0 and r.cpu_ms_1_thread > 0 and r.timed_calls >= 20 for r in rows)
    assert len(context["load_average_before"]) == 3 and context["faces"]["n"] == 4
    text = markdown(rows)
    assert all(f"| {r.name} |" in text for r in rows)
    md = save(rows, context, tmp_path / "report", "test")
    assert md.read_text().count("\n|") == len(rows) + 2
    assert (tmp_path / "report" / "compression.png").stat().st_size > 1000
