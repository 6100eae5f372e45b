"""The CPU target's lowering of an ensemble: all its steps in one python model.

On the CPU server every model is a python model, so each ensemble step costs an inter-process
round trip with copies of every tensor. Where the target says so (target.merge_python_steps),
one more model, `<pipeline>_all_steps`, runs the steps inside its own process by their own
model.py (triton_python/merged_steps.py), in the ensemble's order and wiring; the ensemble
keeps its name and tensors and has that one step. The step models stay in the repository as
they were (a client may call them), and the README still draws the declared graph.
"""

from __future__ import annotations

import json
from dataclasses import replace

from modelrepo_gen.core.build_plan import Ensemble, EnsembleStep, ModelUnit
from modelrepo_gen.plan.in_process import in_process_entry

ROLE = "all_steps"


def runs_in_parallel(ensemble: Ensemble) -> bool:
    """Whether two steps of the ensemble may run at once (neither reads, even through others,
    what the other makes). Triton's scheduler leaves such a request in flight when one branch
    refuses it while another still runs, and the server later crashed on one (Signal 11 in
    TRITONSERVER_ServerInferAsync): on the CPU target such a graph always runs merged."""
    made_by = {
        tensor: index for index, step in enumerate(ensemble.steps) for _, tensor in step.output_map
    }
    after: list[set[int]] = []  # the steps each step waits for, transitively
    for step in ensemble.steps:
        direct = {made_by[tensor] for _, tensor in step.input_map if tensor in made_by}
        after.append(set().union(direct, *(after[i] for i in direct)))
    return any(
        i not in after[j] and j not in after[i]
        for j in range(len(ensemble.steps))
        for i in range(j)
    )


def merge_steps(ensemble: Ensemble, units: list[ModelUnit]) -> tuple[ModelUnit, Ensemble] | None:
    """The model running every step and the ensemble as served, or None where there is
    nothing to merge (one step, or a step that is not a python model)."""
    by_name = {unit.name: unit for unit in units}
    steps = [(step, by_name[step.model_name]) for step in ensemble.steps]
    if len(steps) < 2 or any(unit.platform != "python" for _, unit in steps):
        return None
    # An input may differ in shape between the requests of a batch where a step taking it may.
    ragged = {
        tensor
        for step, unit in steps
        for own, tensor in step.input_map
        if next(spec for spec in unit.inputs if spec.name == own).ragged
    }
    inputs = tuple(replace(spec, ragged=spec.name in ragged) for spec in ensemble.inputs)
    first = steps[0][1]
    described = [
        {
            "model": unit.name,
            "in_process": in_process_entry(unit, unit.parameters),
            "inputs": dict(step.input_map),
            "outputs": dict(step.output_map),
        }
        for step, unit in steps
    ]
    merged = ModelUnit(
        name=f"{ensemble.name}_{ROLE}",
        role=ROLE,
        inputs=inputs,
        outputs=ensemble.outputs,
        # The first step's batching; no more rows than every step takes.
        serving=replace(first.serving, max_batch_size=ensemble.max_batch_size),
        platform="python",
        component="merged_steps",
        parameters={"steps": json.dumps(described, sort_keys=True)},
    )
    served = replace(
        ensemble,
        steps=(
            EnsembleStep(
                model_name=merged.name,
                input_map=tuple((spec.name, spec.name) for spec in inputs),
                output_map=tuple((spec.name, spec.name) for spec in ensemble.outputs),
            ),
        ),
    )
    return merged, served
