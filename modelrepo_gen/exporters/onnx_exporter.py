"""ONNX export (legacy TorchScript-based exporter: 5-10x faster than dynamo, same parity)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch

from modelrepo_gen.exporters import EXPORTERS, Runner
from modelrepo_gen.plan import TensorSpec

OPSET = 17


def dynamic_axes(specs: Sequence[TensorSpec]) -> dict[str, dict[int, str]]:
    """Batch axis plus every variable dim, named after the tensor."""
    axes = {}
    for spec in specs:
        named = {0: "batch"}
        for i, dim in enumerate(spec.dims):
            if dim == -1:
                named[i + 1] = f"{spec.name.lower()}_{i + 1}"
        axes[spec.name] = named
    return axes


class OnnxExporter:
    name = "onnx"
    artifact_filename = "model.onnx"
    native_platform = "onnxruntime_onnx"
    precisions = ("fp32", "fp16")

    def check_available(self, target_device: str, precision: str) -> None:
        return None

    def export(
        self,
        module: torch.nn.Module,
        example_inputs: list[torch.Tensor],
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        precision: str,
        path: Path,
    ) -> None:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            # The exporter's constant-folding notes are about its internals, not the user's model.
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(
                module,
                tuple(example_inputs),
                buffer,
                input_names=[s.name for s in inputs],
                output_names=[s.name for s in outputs],
                dynamic_axes=dynamic_axes([*inputs, *outputs]),
                opset_version=OPSET,
                dynamo=False,
            )
        model = onnx.load_from_string(buffer.getvalue())
        if precision == "fp16":
            # Weights and compute in fp16, inputs and outputs kept fp32 so the wiring is unchanged.
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(model, keep_io_types=True)
        onnx.checker.check_model(model)
        path.write_bytes(model.SerializeToString())

    def load(self, path: Path, inputs: Sequence[TensorSpec]) -> Runner:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [s.name for s in inputs]

        def run(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
            return session.run(None, dict(zip(names, arrays, strict=True)))

        return run

    def native_tensor_name(self, spec: TensorSpec, index: int, is_input: bool) -> str:
        return spec.name


EXPORTERS.register("onnx")(OnnxExporter())
