"""A built repository run in this process, as Triton runs it, for any pipeline.

The ensemble's steps run in the order their inputs become ready; python-backend models run
through their own model.py (with python_backend_stand_in.py as Triton's utils, and a model's
calls to other models coming back here); networks served by Triton's own backends run in
onnxruntime or torch.jit. What the served repository answers, this answers too, without a
server: a new pipeline gets its in-process reference for free.

It also answers as a tritonclient client does (`infer` with this module's InferInput and
InferRequestedOutput, errors with Triton's status), so the served clients' request and answer
code runs on it unchanged: `client_module("in_process")` is this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from google.protobuf.json_format import MessageToDict
from tritonclient.grpc import model_config_pb2

from modelrepo_gen.assembly.render import parse_model_config
from modelrepo_gen.components.triton_python.model_calls import load_model_code
from modelrepo_gen.components.triton_python.python_backend_stand_in import (
    NUMPY_TYPES,
    InferenceRequest,
    InferenceResponse,
    Tensor,
    TritonError,
    stand_in_module,
)
from modelrepo_gen.core.errors import UserError

Runner = Callable[[InferenceRequest], InferenceResponse]
SEQUENCE_START, SEQUENCE_END = 1, 2  # Triton's request flags


class InProcessError(Exception):
    """A model's error answer; `invalid_argument`: a refused request (Triton's HTTP 400)."""

    def __init__(self, message: str, invalid_argument: bool) -> None:
        super().__init__(message)
        self.invalid_argument = invalid_argument

    # As tritonclient's InferenceServerException: the status Triton's HTTP front end gives.
    def status(self) -> str:
        return "400" if self.invalid_argument else "500"

    def message(self) -> str:
        return str(self)


class InferInput:
    """One input of a request, as tritonclient's InferInput builds it."""

    def __init__(self, name: str, shape: Sequence[int], datatype: str) -> None:
        self._name = name
        self.array: np.ndarray | None = None  # set_data_from_numpy gives it

    def name(self) -> str:
        return self._name

    def set_data_from_numpy(self, array: np.ndarray) -> None:
        self.array = array


class InferRequestedOutput:
    def __init__(self, name: str, **_: object) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


class InferResult:
    def __init__(self, outputs: dict[str, np.ndarray]) -> None:
        self._outputs = outputs

    def as_numpy(self, name: str) -> np.ndarray | None:
        return self._outputs.get(name)


def _error(message: str, code: int = TritonError.INTERNAL) -> InferenceResponse:
    return InferenceResponse(error=TritonError(message, code))


class InProcessRepository:
    def __init__(self, repository: Path | str) -> None:
        self.root = Path(repository)
        folders = sorted(p.parent for p in self.root.glob("*/config.pbtxt"))
        if not folders:
            raise UserError(f"{self.root} holds no models (no <model>/config.pbtxt)")
        self.configs = {
            folder.name: parse_model_config((folder / "config.pbtxt").read_text(), str(folder))
            for folder in folders
        }
        self.utils = stand_in_module(self._call)
        self._runners: dict[str, Runner] = {}
        self._python_models: dict[str, object] = {}  # name -> its TritonPythonModel

    def infer(
        self,
        model_name: str,
        inputs: Sequence[InferInput],
        outputs: Sequence[InferRequestedOutput] | None = None,
        parameters: dict | None = None,
        sequence_id: int | str = 0,
        sequence_start: bool = False,
        sequence_end: bool = False,
        **_: object,  # a client's timeouts and the like
    ) -> InferResult:
        """One request as tritonclient's `infer` makes it (a stream's chunk too)."""
        arrays = {tensor.name(): tensor.array for tensor in inputs}
        names = [output.name() for output in outputs or ()]
        flags = (SEQUENCE_START if sequence_start else 0) | (SEQUENCE_END if sequence_end else 0)
        return InferResult(
            self.run(model_name, arrays, names, parameters, sequence=(sequence_id, flags))
        )

    def run(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] = (),
        parameters: dict | None = None,
        sequence: tuple[int | str, int] = (0, 0),
    ) -> dict[str, np.ndarray]:
        """One request: input arrays (with the batch axis where the model has one) -> the
        outputs asked for (all when none are named); a model's error raises InProcessError.
        `sequence`: a stream's (id, flags), as Triton passes them to the models."""
        arrays = {name: np.asarray(array) for name, array in inputs.items()}
        problem = self._input_problem(model, arrays)
        if problem:
            raise InProcessError(problem, True)
        tensors = [Tensor(name, array) for name, array in arrays.items()]
        request = self.utils.InferenceRequest(model, outputs, tensors, parameters, *sequence)
        response = self._call(request)
        if response.has_error():
            error = response.error()
            raise InProcessError(error.message(), error.code() == TritonError.INVALID_ARG)
        return {tensor.name(): tensor.as_numpy() for tensor in response.output_tensors()}

    def _input_problem(self, model: str, arrays: dict[str, np.ndarray]) -> str | None:
        """What Triton refuses before a model sees the request: a missing, unknown or
        wrongly typed input."""
        if model not in self.configs:
            return None  # answered as an unknown model
        declared = {tensor.name: tensor for tensor in self.configs[model].input}
        for name in declared.keys() - arrays.keys():
            if not declared[name].optional:
                return f"{model}: expected the input '{name}'"
        for name, array in arrays.items():
            if name not in declared:
                return f"{model}: unexpected input '{name}'"
            data_type = model_config_pb2.DataType.Name(declared[name].data_type)
            wanted = NUMPY_TYPES[data_type]
            if wanted is np.object_:
                if array.dtype != object and array.dtype.kind != "S":
                    return f"{model}: input '{name}' expects bytes, got {array.dtype}"
            elif array.dtype != wanted:
                return f"{model}: input '{name}' expects {np.dtype(wanted)}, got {array.dtype}"
        return None

    # The metadata calls the clients make, as tritonclient.http answers them.
    def python_model(self, name: str) -> object:
        """A python model's TritonPythonModel, initialized as the server would (its state, such
        as a streaming model's streams, can be read)."""
        if name not in self._runners:
            self._runners[name] = self._runner(name)
        return self._python_models[name]

    def is_server_live(self) -> bool:
        return True

    def is_model_ready(self, name: str) -> bool:
        return name in self.configs

    def get_model_config(self, name: str) -> dict:
        if name not in self.configs:
            raise InProcessError(f"unknown model '{name}' in {self.root}", False)
        # As Triton gives it: empty values too (a parameter may be set to "").
        return MessageToDict(
            self.configs[name],
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )

    def get_model_repository_index(self) -> list[dict]:
        return [{"name": name, "version": "1", "state": "READY"} for name in self.configs]

    def close(self) -> None:
        """Finalizes the python-backend models that were loaded, as Triton does at unload."""
        for model in self._python_models.values():
            if hasattr(model, "finalize"):
                model.finalize()
        self._python_models.clear()
        self._runners.clear()

    def __enter__(self) -> InProcessRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, request: InferenceRequest) -> InferenceResponse:
        name = request.model_name
        if name not in self.configs:
            return _error(f"unknown model '{name}' in {self.root}", TritonError.NOT_FOUND)
        if name not in self._runners:
            self._runners[name] = self._runner(name)
        response = self._runners[name](request)
        wanted = request.requested_output_names()
        if response.has_error() or not wanted:
            return response
        return InferenceResponse([t for t in response.output_tensors() if t.name() in wanted])

    def _runner(self, name: str) -> Runner:
        config = self.configs[name]
        kind = config.platform or config.backend
        if kind == "ensemble":
            return self._ensemble_runner(config)
        if kind == "python":
            return self._python_runner(name)
        if kind in ("onnxruntime_onnx", "onnxruntime"):
            return self._onnx_runner(name)
        if kind in ("pytorch_libtorch", "pytorch"):
            return self._torchscript_runner(name)
        raise UserError(
            f"model '{name}' is served by Triton's {kind} backend, which does not run in "
            "process (TensorRT engines need a GPU and Triton)"
        )

    def _version_folder(self, name: str) -> Path:
        versions = [p for p in (self.root / name).iterdir() if p.is_dir() and p.name.isdigit()]
        return max(versions, key=lambda p: int(p.name))

    def _ensemble_runner(self, config) -> Runner:
        steps = list(config.ensemble_scheduling.step)

        def run(request: InferenceRequest) -> InferenceResponse:
            ready = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
            pending = list(steps)
            while pending:
                step = next(s for s in pending if set(s.input_map.values()) <= set(ready))
                pending.remove(step)
                inputs = [Tensor(own, ready[mine]) for own, mine in step.input_map.items()]
                called = self.utils.InferenceRequest(  # the stream's id and flags go along
                    step.model_name,
                    list(step.output_map),
                    inputs,
                    request.parameters(),
                    request.correlation_id(),
                    request.flags(),
                )
                response = self._call(called)
                if response.has_error():
                    return response
                for tensor in response.output_tensors():
                    ready[step.output_map[tensor.name()]] = tensor.as_numpy()
            return InferenceResponse([Tensor(o.name, ready[o.name]) for o in config.output])

        return run

    def _python_runner(self, name: str) -> Runner:
        version = self._version_folder(name)
        model = self._load_model_py(name, version).TritonPythonModel()
        model.initialize(
            {
                "model_config": json.dumps(self.get_model_config(name)),
                "model_instance_kind": "CPU",
                "model_instance_name": f"{name}_0",
                "model_instance_device_id": "0",
                "model_repository": str(self.root / name),
                "model_version": version.name,
                "model_name": name,
            }
        )
        self._python_models[name] = model

        def run(request: InferenceRequest) -> InferenceResponse:
            try:
                (response,) = model.execute([request])
            except Exception as exc:  # Triton answers every request of the batch with it
                return _error(f"{name}: {exc}")
            return response

        return run

    def _load_model_py(self, name: str, version: Path):
        """model.py imported with this repository's stand-in, and with its own copies of the
        helpers beside it (not ones another repository's models imported)."""
        return load_model_code(version, f"in_process.{name}", self.utils)

    def _artifact(self, name: str, default: str) -> Path:
        return self._version_folder(name) / (self.configs[name].default_model_filename or default)

    def _onnx_runner(self, name: str) -> Runner:
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(self._artifact(name, "model.onnx")), providers=["CPUExecutionProvider"]
        )
        outputs = [output.name for output in self.configs[name].output]

        def run(request: InferenceRequest) -> InferenceResponse:
            feed = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
            try:
                results = session.run(outputs, feed)
            except Exception as exc:
                return _error(f"{name}: {exc}")
            return InferenceResponse([Tensor(n, a) for n, a in zip(outputs, results)])

        return run

    def _torchscript_runner(self, name: str) -> Runner:
        import torch

        module = torch.jit.load(str(self._artifact(name, "model.pt")), map_location="cpu")
        inputs = [tensor.name for tensor in self.configs[name].input]
        outputs = [tensor.name for tensor in self.configs[name].output]

        def run(request: InferenceRequest) -> InferenceResponse:
            given = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
            try:
                with torch.inference_mode():
                    results = module(*[torch.from_numpy(given[n]) for n in inputs])
            except Exception as exc:
                return _error(f"{name}: {exc}")
            results = (results,) if isinstance(results, torch.Tensor) else results
            return InferenceResponse([Tensor(n, r.numpy()) for n, r in zip(outputs, results)])

        return run
