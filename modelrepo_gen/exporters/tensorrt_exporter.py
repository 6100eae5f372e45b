"""TensorRT engines: built from the ONNX export, on the GPU that will serve them.

An engine is specific to the GPU and TensorRT version it was built with, so (as in Riva's deploy
phase) it can only be built where tensorrt and an NVIDIA GPU are present. Elsewhere the build
stops before any work with one line saying so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch

from modelrepo_gen.errors import UserError
from modelrepo_gen.exporters import EXPORTERS, Runner
from modelrepo_gen.exporters.onnx_exporter import OnnxExporter
from modelrepo_gen.plan import TensorSpec

# Optimisation profile: variable axes run from 1 to these bounds (the example is the typical size).
PROFILE_MAX_BATCH = 16
PROFILE_MAX_LENGTH_FACTOR = 16


def missing_requirement() -> str | None:
    """Why a TensorRT engine cannot be built here, or None when it can."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the 'tensorrt' Python package is not installed"
    if not torch.cuda.is_available():
        return "no NVIDIA GPU is visible to PyTorch (torch.cuda.is_available() is False)"
    return None


class TensorRTExporter:
    name = "tensorrt"
    artifact_filename = "model.plan"
    native_platform = "tensorrt_plan"
    precisions = ("fp32", "fp16")

    def check_available(self, target_device: str, precision: str) -> None:
        if target_device != "KIND_GPU":
            raise UserError(
                "backend=tensorrt needs target=gpu: TensorRT engines run only on GPU Triton servers"
            )
        reason = missing_requirement()
        if reason:
            raise UserError(
                f"backend=tensorrt cannot build an engine on this machine: {reason}; build on the "
                "GPU machine that will serve it, or use backend=onnx"
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
        import tensorrt as trt

        onnx_path = path.with_suffix(".onnx")
        OnnxExporter().export(module, example_inputs, inputs, outputs, "fp32", onnx_path)
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise UserError(f"TensorRT could not parse the ONNX export: {errors}")
        onnx_path.unlink()
        config = builder.create_builder_config()
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for spec, example in zip(inputs, example_inputs, strict=True):
            typical = tuple(example.shape)
            variable = [True] + [dim == -1 for dim in spec.dims]  # the batch axis varies too
            low = tuple(1 if v else n for v, n in zip(variable, typical))
            high = tuple(
                (PROFILE_MAX_BATCH if i == 0 else n * PROFILE_MAX_LENGTH_FACTOR) if v else n
                for i, (v, n) in enumerate(zip(variable, typical))
            )
            profile.set_shape(spec.name, low, typical, high)
        config.add_optimization_profile(profile)
        engine = builder.build_serialized_network(network, config)
        if engine is None:
            raise UserError("TensorRT failed to build the engine (see the TensorRT log above)")
        path.write_bytes(bytes(engine))

    def load(self, path: Path, inputs: Sequence[TensorSpec]) -> Runner:
        raise UserError(
            "parity checks of TensorRT engines run on the serving GPU with Triton's perf tools; "
            "check the ONNX export with backend=onnx first"
        )

    def native_tensor_name(self, spec: TensorSpec, index: int, is_input: bool) -> str:
        return spec.name


EXPORTERS.register("tensorrt")(TensorRTExporter())
