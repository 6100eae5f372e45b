"""What a python model needs to run another model of the repository inside its own process: the
model's version folder and the config Triton would give it (the parts model code reads: name,
max_batch_size, inputs, outputs, parameters). See triton_python/model_calls.py."""

from __future__ import annotations

from typing import Any

from modelrepo_gen.core.build_plan import MODEL_VERSION, ModelUnit, TensorSpec


def _tensors(specs: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
    return [{"name": s.name, "data_type": s.data_type, "dims": list(s.dims)} for s in specs]


def in_process_entry(unit: ModelUnit, parameters: dict[str, str]) -> dict[str, Any]:
    """`unit` as another model hosts it, with these config.pbtxt `parameters`."""
    return {
        "version": MODEL_VERSION,
        "config": {
            "name": unit.name,
            "max_batch_size": unit.serving.max_batch_size,
            "input": _tensors(unit.inputs),
            "output": _tensors(unit.outputs),
            "parameters": {k: {"string_value": v} for k, v in parameters.items()},
        },
    }
