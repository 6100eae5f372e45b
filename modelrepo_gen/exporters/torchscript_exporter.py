"""TorchScript export by scripting (tracing would bake in one input's shapes).

A module that cannot be scripted (transformers' models) and whose trace stays shape-generic
says so with `export_by_tracing = True`; it is traced, and parity at several shapes checks it.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters import EXPORTERS, Runner


class HalfPrecision(torch.nn.Module):
    """Runs the wrapped module in fp16 while taking and giving fp32, like ONNX keep_io_types."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module.half()

    def forward(self, x: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, out_length = self.module(x.half(), length)
        return out.float(), out_length


class TracedHalfPrecision(torch.nn.Module):
    """fp16 for a traced module: floating inputs and outputs cast, integer ones (ids) kept."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module.half()

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cast = [x.half() if x.is_floating_point() else x for x in inputs]
        return tuple(out.float() for out in self.module(*cast))


class TorchScriptExporter:
    name = "torchscript"
    artifact_filename = "model.pt"
    native_platform = "pytorch_libtorch"
    precisions = ("fp32", "fp16")

    def check_available(self, target_device: str, precision: str) -> None:
        # PyTorch's CPU fp16 convolutions are orders of magnitude slower than fp32 (a tiny
        # QuartzNet took minutes per call), so fp16 TorchScript is built and checked on a GPU.
        if precision == "fp16" and not torch.cuda.is_available():
            raise UserError(
                "backend=torchscript precision=fp16 needs an NVIDIA GPU (PyTorch has no fast fp16 "
                "convolutions on the CPU); use backend=onnx for fp16 here"
            )

    def export(
        self,
        module: torch.nn.Module,
        example_inputs: list[torch.Tensor],
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        precision: str,
        path: Path,
    ) -> None:
        if getattr(module, "export_by_tracing", False):
            if precision == "fp16":
                module = TracedHalfPrecision(module)
            with warnings.catch_warnings():
                # "might not generalize": parity at several shapes answers that.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                # transformers' notes about its own internals, met while tracing.
                warnings.simplefilter("ignore", FutureWarning)
                scripted = torch.jit.trace(module.eval(), tuple(example_inputs), check_trace=False)
        else:
            if precision == "fp16":
                module = HalfPrecision(module)
            scripted = torch.jit.script(module.eval())
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        path.write_bytes(buffer.getvalue())

    def load(self, path: Path, inputs: Sequence[TensorSpec]) -> Runner:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = torch.jit.load(str(path), map_location=device).eval()

        def run(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
            tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]
            with torch.inference_mode():
                results = model(*tensors)
            return [r.cpu().numpy() for r in results]

        return run

    def native_tensor_name(self, spec: TensorSpec, index: int, is_input: bool) -> str:
        # Triton's libtorch backend binds outputs by position: NAME__<index>.
        return spec.name if is_input else f"{spec.name}__{index}"


EXPORTERS.register("torchscript")(TorchScriptExporter())
