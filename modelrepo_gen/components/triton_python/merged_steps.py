"""Triton python-backend model: every step of a pipeline's ensemble, run in this process.

On the CPU target the ensemble has this one step (plan/merged_steps.py): it hosts each step's
model by its own model.py (model_calls.host_model) and runs them in the ensemble's order, each
on all the requests of this execution together (so a step batches across requests as it would
behind Triton's batcher), wiring tensors as the ensemble does. A step's refusal or fault
answers its request with the step's own message and code; the other requests go on.
Settings from config.pbtxt `parameters`:
  steps   JSON [{"model": name, "in_process": {"version", "config"}, "inputs": {model input:
          ensemble tensor}, "outputs": {model output: ensemble tensor}}], in order
"""

import json
from pathlib import Path

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_calls import host_model, no_calls
    from model_kernel import fault, model_settings
    from python_backend_stand_in import TritonError, stand_in_module
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_calls import host_model, no_calls
    from modelrepo_gen.components.triton_python.model_kernel import fault, model_settings
    from modelrepo_gen.components.triton_python.python_backend_stand_in import (
        TritonError,
        stand_in_module,
    )


def served_error(error):
    """A hosted step's error (the stand-in's) as this server's, with the same code."""
    known = 0 <= error.code() < len(TritonError.NAMES)
    name = TritonError.NAMES[error.code()] if known else "INTERNAL"
    code = getattr(pb_utils.TritonError, name, pb_utils.TritonError.INTERNAL)
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(error.message(), code))


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        self.model_name = config["name"]
        self.outputs = [(o["name"], o["data_type"]) for o in config["output"]]
        self.inputs = [i["name"] for i in config["input"]]
        repository = Path(args["model_repository"]).parent
        self.steps = [
            (step, host_model(repository, step["model"], step["in_process"], args))
            for step in json.loads(params["steps"])
        ]
        self.local = stand_in_module(no_calls)

    def execute(self, requests):
        tensors = []  # per request: ensemble tensor -> array
        for request in requests:
            given = {}
            for name in self.inputs:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:  # an optional input left out stays out
                    given[name] = tensor.as_numpy()
            tensors.append(given)
        parameters = [request.parameters() for request in requests]
        errors = [None] * len(requests)
        try:
            for step, model in self.steps:
                live = [i for i in range(len(requests)) if errors[i] is None]
                if not live:
                    break
                made = [
                    self.local.InferenceRequest(
                        step["model"],
                        list(step["outputs"]),
                        [
                            self.local.Tensor(own, tensors[i][mine])
                            for own, mine in step["inputs"].items()
                            if mine in tensors[i]
                        ],
                        parameters[i],
                    )
                    for i in live
                ]
                for i, response in zip(live, model.execute(made)):
                    if response.has_error():
                        errors[i] = response.error()
                        continue
                    for tensor in response.output_tensors():
                        if tensor.name() in step["outputs"]:
                            tensors[i][step["outputs"][tensor.name()]] = tensor.as_numpy()
        except Exception as exc:  # a step that raised must answer every request, not crash
            return [fault(self.model_name, str(exc)) for _ in requests]
        responses = []
        for given, error in zip(tensors, errors):
            if error is not None:
                responses.append(served_error(error))
                continue
            out = [
                pb_utils.Tensor(
                    name, np.ascontiguousarray(given[name], pb_utils.triton_string_to_numpy(kind))
                )
                for name, kind in self.outputs
            ]
            responses.append(pb_utils.InferenceResponse(out))
        return responses

    def finalize(self):
        for _, model in self.steps:
            if hasattr(model, "finalize"):
                model.finalize()
