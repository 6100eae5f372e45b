"""What every python-backend model shares: its settings and how it refuses a request (as
Triton's own checks do); model_calls.py is how it calls another model of the repository.

A bad request (an input or parameter out of its bounds, text that cannot be used) is answered
with Triton's invalid-argument code: the client gets HTTP 400 / gRPC INVALID_ARGUMENT and knows
that sending it again will not help. Anything else (a network run that fails, a called model
that is down) is a server fault: HTTP 500 / gRPC INTERNAL, worth a retry. The code does not
survive a model-to-model call (the caller sees INTERNAL), so a model that calls others checks
what it passes on itself and treats a callee's error as a fault.

Copied beside every python-backend model's model.py; it imports only the standard library,
numpy and Triton's utils.
"""

import json
import math

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None


def model_settings(args: dict) -> tuple:
    """The model's config (as Triton's JSON) and its config.pbtxt `parameters` (name ->
    text), from the `args` Triton passes to initialize."""
    config = json.loads(args["model_config"])
    return config, {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


class BadRequest(ValueError):
    """A request the model refuses; the message goes back to the client."""


def refusal(model_name: str, message: str):
    """The answer to a bad request: the model's name, the problem, the invalid-argument code."""
    error = pb_utils.TritonError(f"{model_name}: {message}", pb_utils.TritonError.INVALID_ARG)
    return pb_utils.InferenceResponse(error=error)


def fault(model_name: str, message: str):
    """The answer when the model failed on a request it accepted: a server fault."""
    error = pb_utils.TritonError(f"{model_name}: {message}", pb_utils.TritonError.INTERNAL)
    return pb_utils.InferenceResponse(error=error)


def number_text(value: float) -> str:
    return f"{value:g}"


def numeric_parameters(raw: str, ranges: dict) -> dict:
    """A request's parameters (Triton's JSON of them) as numbers, each within its
    `ranges[name]` = [low, high]; BadRequest names the first unknown or out-of-range one."""
    values = {}
    for name, value in sorted(json.loads(raw or "{}").items()):
        if name not in ranges:
            known = ", ".join(sorted(ranges)) or "none"
            raise BadRequest(f"unknown request parameter '{name}' (this model takes: {known})")
        low, high = ranges[name]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not low <= number <= high:  # also refuses NaN
            raise BadRequest(
                f"request parameter '{name}' must be a number from {number_text(low)} to "
                f"{number_text(high)}, got {value!r}"
            )
        values[name] = number
    return values
