"""Compression: sensitivity analysis, structured pruning, INT8 quantization, ONNX export, the
compression report and releases (distillation lives with training: slimswap.train.distill)."""
