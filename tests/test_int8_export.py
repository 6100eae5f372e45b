"""precision=int8: onnxruntime's dynamic quantization of the networks' matrix products."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers.project import compose_config

from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters import EXPORTERS, register_builtin_exporters
from modelrepo_gen.plan.resolver import resolve

register_builtin_exporters()


def test_matrix_products_get_int8_weights_and_stay_close(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
    inputs = [TensorSpec("X", "TYPE_FP32", (64,))]
    outputs = [TensorSpec("Y", "TYPE_FP32", (8,))]
    example = torch.randn(4, 64)
    exporter = EXPORTERS.get("onnx")
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    exporter.export(module.eval(), [example], inputs, outputs, "fp32", fp32)
    exporter.export(module.eval(), [example], inputs, outputs, "int8", int8)
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "DynamicQuantizeLinear" in ops and "Gemm" not in ops and "MatMul" not in ops
    weights = [  # the weight matrices (the zero points are int8 too, one per channel)
        t
        for t in onnx.load(str(int8)).graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2
    ]
    assert sum(int(np.prod(t.dims)) for t in weights) == 64 * 256 + 256 * 8  # every weight
    assert int8.stat().st_size < fp32.stat().st_size / 2
    batch = torch.randn(16, 64)
    with torch.no_grad():
        reference = module(batch).numpy()
    (got,) = exporter.load(int8, inputs)([batch.numpy()])
    error = np.abs(got - reference).max() / max(1.0, np.abs(reference).max())
    assert 0 < error < 0.05  # quantized (not equal), and close


def test_int8_needs_the_onnx_backend() -> None:
    with pytest.raises(UserError, match="precision=int8 is not supported by backend=torchscript"):
        resolve(compose_config(["model=quartznet_mini", "backend=torchscript", "precision=int8"]))
