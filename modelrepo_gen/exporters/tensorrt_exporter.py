"""TensorRT engines: built from the ONNX export, on the GPU that will serve them.

An engine is specific to the GPU and TensorRT version it was built with, so (as in Riva's deploy
phase) it can only be built where tensorrt and an NVIDIA GPU are present. Elsewhere the build
stops before any work with one line saying so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters import EXPORTERS, Runner
from modelrepo_gen.exporters.onnx_exporter import OnnxExporter

# Optimisation profile: variable axes run from 1 to these bounds (the example is the typical size).
PROFILE_MAX_BATCH = 16
PROFILE_MAX_LENGTH_FACTOR = 16


def missing_requirement() -> str | None:
    """Why a TensorRT engine cannot be built here, or None when it can."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the 'tensorrt' Python package is not installed (pip install 'modelrepo_gen[gpu]')"
    if not torch.cuda.is_available():
        return "no NVIDIA GPU is visible to PyTorch (torch.cuda.is_available() is False)"
    return None


# An input's (smallest, typical, largest) shape, batch axis first.
Profile = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def engine_profile(
    inputs: Sequence[TensorSpec],
    typical: Sequence[tuple[int, ...]],
    max_batch: int = PROFILE_MAX_BATCH,
    max_lengths: dict[str, list] | None = None,
) -> Profile:
    """The shapes an engine serves: each variable axis from 1 to its bound (the batch axis to
    `max_batch`, a length to its `max_lengths` entry, else PROFILE_MAX_LENGTH_FACTOR times the
    typical size), tuned for the `typical` shapes."""
    profile: Profile = {}
    for spec, shape in zip(inputs, typical, strict=True):
        bound = dict(max_lengths or {}).get(spec.name)
        variable = [True] + [dim == -1 for dim in spec.dims]
        low = tuple(1 if v else n for v, n in zip(variable, shape))
        high = []
        for axis, (v, n) in enumerate(zip(variable, shape)):
            if not v:
                high.append(n)
            elif axis == 0:
                high.append(max(max_batch, n))
            elif bound is not None and int(bound[1]) == axis:
                high.append(max(int(bound[0]), n))
            else:
                high.append(n * PROFILE_MAX_LENGTH_FACTOR)
        profile[spec.name] = (low, tuple(shape), tuple(high))
    return profile


def build_engine(onnx: bytes, profile: Profile, precision: str) -> bytes:
    """A serialized TensorRT engine of the ONNX network `onnx`, for this machine's GPU."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT could not parse the ONNX network: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation = builder.create_optimization_profile()
    for name, (low, typical, high) in profile.items():
        optimisation.set_shape(name, low, typical, high)
    config.add_optimization_profile(optimisation)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise UserError("TensorRT failed to build the engine (see the TensorRT log above)")
    return bytes(engine)


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
        onnx_path = path.with_suffix(".onnx")
        OnnxExporter().export(module, example_inputs, inputs, outputs, "fp32", onnx_path)
        onnx = onnx_path.read_bytes()
        onnx_path.unlink()
        shapes = [tuple(example.shape) for example in example_inputs]
        path.write_bytes(build_engine(onnx, engine_profile(inputs, shapes), precision))

    def load(self, path: Path, inputs: Sequence[TensorSpec]) -> Runner:
        """Runs the engine on the GPU with TensorRT's runtime, tensors held by PyTorch."""
        import tensorrt as trt

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        output_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

        def run(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
            held = []
            for spec, array in zip(inputs, arrays, strict=True):
                tensor = torch.from_numpy(np.ascontiguousarray(array)).cuda()
                context.set_input_shape(spec.name, tuple(array.shape))
                context.set_tensor_address(spec.name, tensor.data_ptr())
                held.append(tensor)
            outputs = []
            for name in output_names:
                dtype = torch.from_numpy(
                    np.empty(0, trt.nptype(engine.get_tensor_dtype(name)))
                ).dtype
                tensor = torch.empty(
                    tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda"
                )
                context.set_tensor_address(name, tensor.data_ptr())
                outputs.append(tensor)
            context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
            torch.cuda.synchronize()
            return [t.cpu().numpy() for t in outputs]

        return run

    def native_tensor_name(self, spec: TensorSpec, index: int, is_input: bool) -> str:
        return spec.name


EXPORTERS.register("tensorrt")(TensorRTExporter())
