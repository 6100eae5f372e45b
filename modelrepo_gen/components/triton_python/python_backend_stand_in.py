"""A stand-in for Triton's `triton_python_backend_utils`, so that a repository's python-backend
models run in a process of their caller's choosing as written: the same model.py, the same
helpers beside it. An in-process repository runs every model with it; inside Triton, a python
model runs the models it calls with it (model_calls.py): plain objects, nothing copied.

It has what those models use: Tensor, InferenceRequest (whose exec() is a call back into
whoever made the module), InferenceResponse, TritonError and the lookups by name. Each
repository gets its own module, so a model's calls reach the models of its own repository.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Sequence

import numpy as np

MODULE = "triton_python_backend_utils"

# Triton's data types as numpy types (what triton_string_to_numpy answers).
NUMPY_TYPES = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name = name
        self._array = np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class TritonError:
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED = range(6)
    NAMES = ("UNKNOWN", "INTERNAL", "NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "UNSUPPORTED")

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        self._message = message
        self._code = code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class InferenceResponse:
    def __init__(
        self, output_tensors: Sequence[Tensor] = (), error: TritonError | None = None
    ) -> None:
        self._outputs = list(output_tensors)
        self._error = error

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


class InferenceRequest:
    """A request: one a client sends, or one a model makes of another (exec)."""

    # Set per repository (stand_in_module): runs a request on a model, returns its response.
    call: Callable[[InferenceRequest], InferenceResponse]

    def __init__(
        self,
        model_name: str,
        requested_output_names: Sequence[str],
        inputs: Sequence[Tensor],
        parameters: dict | str | None = None,
        correlation_id: int | str = 0,
        flags: int = 0,
    ) -> None:
        self.model_name = model_name
        self._correlation_id = correlation_id  # a sequence's id; 0: none
        self._flags = flags  # 1: the sequence's start, 2: its end (Triton's request flags)
        self._outputs = list(requested_output_names)
        self._inputs = list(inputs)
        # Triton gives a model the request's parameters as JSON text.
        text = parameters if isinstance(parameters, str) else json.dumps(parameters or {})
        self._parameters = text

    def inputs(self) -> list[Tensor]:
        return self._inputs

    def requested_output_names(self) -> list[str]:
        return self._outputs

    def parameters(self) -> str:
        return self._parameters

    def correlation_id(self) -> int | str:
        return self._correlation_id

    def flags(self) -> int:
        return self._flags

    def exec(self) -> InferenceResponse:
        return type(self).call(self)


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    return next((t for t in request.inputs() if t.name() == name), None)


def get_output_tensor_by_name(response: InferenceResponse, name: str) -> Tensor | None:
    return next((t for t in response.output_tensors() if t.name() == name), None)


def triton_string_to_numpy(data_type: str) -> type:
    return NUMPY_TYPES[data_type]


def stand_in_module(call: Callable[[InferenceRequest], InferenceResponse]) -> types.ModuleType:
    """A `triton_python_backend_utils` whose requests made by models are run by `call`."""
    module = types.ModuleType(MODULE, __doc__)
    request_type = type("InferenceRequest", (InferenceRequest,), {"call": staticmethod(call)})
    module.__dict__.update(
        Tensor=Tensor,
        TritonError=TritonError,
        InferenceResponse=InferenceResponse,
        InferenceRequest=request_type,
        get_input_tensor_by_name=get_input_tensor_by_name,
        get_output_tensor_by_name=get_output_tensor_by_name,
        triton_string_to_numpy=triton_string_to_numpy,
    )
    return module
