"""Triton python-backend model that runs an exported network (ONNX or TorchScript) on the CPU.

Requests of different lengths arrive together (allow_ragged_batch): they are checked, padded with
zeros to a common shape, run as one batch, and each request gets its outputs back trimmed to its
own valid length. Settings come from the `parameters` of config.pbtxt:
  format        onnx | torchscript
  artifact      file name of the exported network in the version folder
  length_of     JSON {output: [length output, axis]}: trim `output` along `axis` per request
  sized_like    JSON {output: [input, axis]}: trim `output` along `axis` to the request's own
                size of `input` along that axis (optional)
  input_checks  JSON {"finite": [input...], "max_length": {input: [n, axis]},
                      "lengths": {input: [of, axis]}, "same_shape": {input: other},
                      "value_range": {input: [low, high]},
                      "covers": {input: [length input, per length, axis]}}
"""

import json
from pathlib import Path

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_kernel import fault, model_settings, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import fault, model_settings, refusal


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def find_problem(named: dict, checks: dict) -> str | None:
    """The first reason this request's inputs cannot be run, or None."""
    for name in checks.get("finite", []):
        array = named[name]
        if array.size == 0:
            return f"{name} is empty"
        if not np.all(np.isfinite(array)):
            return f"{name} contains NaN or infinite values"
    for name, (limit, axis) in checks.get("max_length", {}).items():
        if named[name].shape[axis] > limit:
            return f"{name} is {named[name].shape[axis]} long, more than the maximum of {limit}"
    for name, other in checks.get("same_shape", {}).items():
        if named[name].shape != named[other].shape:
            return (
                f"{name} has shape {list(named[name].shape)} but {other} has "
                f"{list(named[other].shape)}; they must match"
            )
    for name, (low, high) in checks.get("value_range", {}).items():
        array = named[name]
        if array.size and (array.min() < low or array.max() > high):
            return (
                f"{name} must hold values from {_number(low)} to {_number(high)}, got "
                f"{_number(array.min().item())}..{_number(array.max().item())}"
            )
    for name, (of, axis) in checks.get("lengths", {}).items():
        values = named[name].reshape(-1)
        size = named[of].shape[axis]
        if values.size != named[of].shape[0]:
            return f"{name} must hold one length per item of {of}"
        if np.any(values < 1) or np.any(values > size):
            return (
                f"{name} must be between 1 and {size} (the length of {of}), got {values.tolist()}"
            )
    for name, (length_name, per, axis) in checks.get("covers", {}).items():
        needed = int(named[length_name].max()) * per if named[length_name].size else 0
        if named[name].shape[axis] < needed:
            return (
                f"{name} holds {named[name].shape[axis]} values per item, fewer than "
                f"{length_name} x {per} = {needed}"
            )
    return None


def pad_and_stack(arrays: list) -> np.ndarray:
    """Concatenate along the batch axis, zero-padding every other axis to the largest size."""
    shape = np.max([a.shape for a in arrays], axis=0)
    padded = []
    for array in arrays:
        widths = [(0, 0)] + [(0, int(n - s)) for n, s in zip(shape[1:], array.shape[1:])]
        padded.append(np.pad(array, widths))
    return np.concatenate(padded, axis=0)


def first_along(array: np.ndarray, count: int, axis: int) -> np.ndarray:
    """The first `count` entries of `array` along `axis`: a view, nothing copied."""
    index = [slice(None)] * array.ndim
    index[axis] = slice(0, count)
    return array[tuple(index)]


def split_outputs(
    outputs: dict, batch_sizes: list, length_of: dict, sized_like=None, requests=()
) -> list:
    """Per request: its rows of every output, trimmed to its own longest valid length, or to its
    own size of an input (`sized_like`; `requests`: each request's named inputs); views of the
    outputs."""
    per_request = []
    start = 0
    for index, size in enumerate(batch_sizes):
        rows = {name: array[start : start + size] for name, array in outputs.items()}
        for name, (length_name, axis) in length_of.items():
            keep = int(rows[length_name].max()) if size else 0
            rows[name] = first_along(rows[name], keep, axis)
        for name, (input_name, axis) in (sized_like or {}).items():
            keep = requests[index][input_name].shape[axis]
            rows[name] = first_along(rows[name], keep, axis)
        per_request.append(rows)
        start += size
    return per_request


def load_runner(fmt: str, path: Path, input_names: list, output_names: list):
    """A function: list of input arrays -> dict of output arrays."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run_onnx(arrays):
            results = session.run(output_names, dict(zip(input_names, arrays)))
            return dict(zip(output_names, results))

        return run_onnx
    if fmt == "torchscript":
        import torch

        model = torch.jit.load(str(path), map_location="cpu").eval()

        def run_torchscript(arrays):
            with torch.inference_mode():
                results = model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
            return {name: r.numpy() for name, r in zip(output_names, results)}

        return run_torchscript
    raise ValueError(f"unknown format {fmt!r}")


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        self.model_name = config["name"]
        self.input_names = [t["name"] for t in config["input"]]
        self.outputs = [(t["name"], t["data_type"]) for t in config["output"]]
        self.length_of = json.loads(params.get("length_of", "{}"))
        self.sized_like = json.loads(params.get("sized_like", "{}"))
        self.checks = json.loads(params.get("input_checks", "{}"))
        artifact = Path(args["model_repository"]) / args["model_version"] / params["artifact"]
        output_names = [name for name, _ in self.outputs]
        self.run = load_runner(params["format"], artifact, self.input_names, output_names)

    def execute(self, requests):
        responses = [None] * len(requests)
        accepted = []
        for index, request in enumerate(requests):
            named = {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                for name in self.input_names
            }
            problem = find_problem(named, self.checks)
            if problem:
                responses[index] = refusal(self.model_name, problem)
            else:
                accepted.append((index, named))
        if not accepted:
            return responses
        try:
            if len(accepted) == 1:  # one request (as every call from a caller): as it came
                stacked = [accepted[0][1][n] for n in self.input_names]
            else:
                stacked = [
                    pad_and_stack([named[n] for _, named in accepted]) for n in self.input_names
                ]
            outputs = self.run(stacked)
            sizes = [named[self.input_names[0]].shape[0] for _, named in accepted]
            per_request = split_outputs(
                outputs, sizes, self.length_of, self.sized_like, [named for _, named in accepted]
            )
        except Exception as exc:  # a failed run must answer every request, not crash the stub
            for index, _ in accepted:
                responses[index] = fault(self.model_name, f"inference failed: {exc}")
            return responses
        for (index, _), rows in zip(accepted, per_request):
            tensors = [
                pb_utils.Tensor(
                    name,
                    np.ascontiguousarray(rows[name], dtype=pb_utils.triton_string_to_numpy(dtype)),
                )
                for name, dtype in self.outputs
            ]
            responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses
