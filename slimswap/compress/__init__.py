"""Compression: sensitivity analysis, structured pruning, distillation, quantization, export."""
