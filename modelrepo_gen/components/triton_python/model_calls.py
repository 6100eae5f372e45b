"""The models a python-backend model calls, by slot: through Triton (business-logic scripting),
or, where the build says so, run inside the caller by their own model.py.

On the CPU target every model is a python-backend model, so a call through Triton costs an
inter-process round trip and copies of every tensor both ways, at every call (a generation
loop calls its decoder once per token). There the build marks each called model `in_process`
with the config Triton would give it: the caller loads that model's model.py from the
repository (beside its own folder), with python_backend_stand_in.py as its Triton utils, and
hands it requests of plain arrays: nothing is copied into shared memory and back. The called
model runs the same code on the same inputs, so its answers, checks and refusals are the same;
it stays in the repository as a model of its own too (clients may call it).

The `calls` parameter: JSON {slot: {"model": name, "max_batch_size": n,
"in_process": {"version": "1", "config": {name, max_batch_size, input, output, parameters}}}}
("in_process" only where the caller hosts it).
"""

import importlib.util
import json
import sys
import threading
from pathlib import Path

import numpy as np

try:  # beside model.py in a repository
    from python_backend_stand_in import MODULE, stand_in_module
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.python_backend_stand_in import (
        MODULE,
        stand_in_module,
    )

# model.py files are imported with their own helpers in sys.modules: one at a time.
LOADING = threading.Lock()


def load_model_code(version: Path, module_name: str, utils):
    """The model.py of a version folder, imported as `module_name` with `utils` as Triton's
    utils and with its own copies of the helpers beside it (as Triton's stub imports them),
    whatever this process imported before."""
    helpers = {path.stem for path in version.glob("*.py")} - {"model"}
    spec = importlib.util.spec_from_file_location(module_name, version / "model.py")
    module = importlib.util.module_from_spec(spec)
    with LOADING:
        saved_modules = {key: sys.modules.pop(key) for key in helpers if key in sys.modules}
        saved_utils = sys.modules.get(MODULE)
        saved_path = list(sys.path)
        sys.modules[MODULE] = utils
        sys.path.insert(0, str(version))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path[:] = saved_path
            for key in helpers:
                sys.modules.pop(key, None)
            sys.modules.update(saved_modules)
            if saved_utils is None:
                sys.modules.pop(MODULE, None)
            else:
                sys.modules[MODULE] = saved_utils
    return module


def no_calls(request):
    raise RuntimeError(f"a model run inside its caller cannot call '{request.model_name}'")


def host_model(repository: Path, name: str, hosting: dict, caller_args: dict):
    """The called model `name` of `repository`, initialized in this process as Triton would
    initialize it (its config from `hosting`), with the stand-in as its Triton utils."""
    version = repository / name / hosting["version"]
    utils = stand_in_module(no_calls)
    model = load_model_code(version, f"hosted_{name}", utils).TritonPythonModel()
    model.initialize(
        {
            **caller_args,
            "model_config": json.dumps(hosting["config"]),
            "model_instance_name": f"{name}_hosted",
            "model_repository": str(repository / name),
            "model_version": hosting["version"],
            "model_name": name,
        }
    )
    return model


class ModelCalls:
    """The called models of one caller; `call` runs one by its slot."""

    def __init__(self, calls: dict, caller_args: dict, utils) -> None:
        """`utils`: the caller's Triton utils, for the calls made through Triton."""
        self.calls = calls
        self.utils = utils
        self.local = stand_in_module(no_calls)  # the request type of hosted calls
        repository = Path(caller_args["model_repository"]).parent
        self.hosted = {
            called["model"]: host_model(
                repository, called["model"], called["in_process"], caller_args
            )
            for called in calls.values()
            if "in_process" in called
        }

    def max_batch_size(self, slot: str) -> int:
        return int(self.calls[slot]["max_batch_size"])

    def call(self, slot: str, inputs: dict, outputs: list, rows=None, parameters=None) -> dict:
        """Run the model bound to `slot` on row-aligned input arrays, at most `rows` rows per
        request (all at once when None); each output's arrays, one per request. Its error is a
        RuntimeError naming it: a fault for the caller."""
        model = self.calls[slot]["model"]
        hosted = self.hosted.get(model)
        total = len(next(iter(inputs.values())))
        step = rows or total
        extra = {"parameters": parameters} if parameters else {}
        utils = self.utils if hosted is None else self.local
        parts = {name: [] for name in outputs}
        for start in range(0, total, step):
            request = utils.InferenceRequest(
                model_name=model,
                requested_output_names=outputs,
                inputs=[
                    utils.Tensor(name, np.ascontiguousarray(array[start : start + step]))
                    for name, array in inputs.items()
                ],
                **extra,
            )
            if hosted is None:
                response = request.exec()
            else:
                (response,) = hosted.execute([request])
            if response.has_error():
                raise RuntimeError(f"{model}: {response.error().message()}")
            for name in outputs:
                array = utils.get_output_tensor_by_name(response, name).as_numpy()
                # A response from Triton lives in shared memory the next call reuses; one made
                # here is this process's own array.
                parts[name].append(np.array(array) if hosted is None else array)
        return parts

    def finalize(self) -> None:
        for model in self.hosted.values():
            if hasattr(model, "finalize"):
                model.finalize()
