"""Composed config -> build plan: one walk over the graph the pipeline's YAML declares.

Nothing here knows a pipeline or a component by name: components come from the registry by the
`component:` their config node names, tensors from their signatures, the wiring from
`pipeline.ensemble`. Every check runs here, before anything heavy; nothing is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from modelrepo_gen.components import COMPONENTS, register_builtin_components
from modelrepo_gen.components.base import NetworkComponent, PythonComponent
from modelrepo_gen.core.build_plan import (
    BuildPlan,
    Ensemble,
    EnsembleStep,
    ExportSpec,
    ModelUnit,
)
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.validation import plain, require, resolver_errors, typed
from modelrepo_gen.exporters import EXPORTERS, register_builtin_exporters
from modelrepo_gen.plan.checks import (
    check_build_settings,
    check_parity_batches,
    check_parity_tokens,
    check_recipe_fits,
)
from modelrepo_gen.plan.example_inputs import ExampleInputs
from modelrepo_gen.plan.exported_units import exported_unit
from modelrepo_gen.plan.graph import check_graph, read_graph
from modelrepo_gen.plan.in_process import in_process_entry
from modelrepo_gen.plan.merged_steps import merge_steps, runs_in_parallel
from modelrepo_gen.plan.parts import Part
from modelrepo_gen.plan.serving import check_roles, serving_for

register_builtin_exporters()
register_builtin_components()

# Triton model names become folder names: letters, digits, '_', '-', '.'.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def _read_parts(cfg: DictConfig) -> dict[str, Part]:
    models = cfg.pipeline.get("models")
    require(
        isinstance(models, DictConfig) and len(models) > 0,
        "pipeline.models must declare the repository's models (role: {component: NAME, ...})",
    )
    declared = OmegaConf.to_container(models, resolve=False)
    parts = {}
    for role in models:
        role = str(role)
        require(
            NAME.fullmatch(role) is not None,
            f"pipeline.models: role '{role}' must hold only letters, digits, '_', '-' and '.'",
        )
        source = INTERPOLATION.fullmatch(str(declared[role]))
        where = source.group(1) if source else f"pipeline.models.{role}"
        with resolver_errors():  # e.g. a part read from a file
            node = plain(models[role])
        require(
            isinstance(node, dict) and "component" in node,
            f"{where} must name the component that makes model '{role}' (component: NAME)",
        )
        try:
            component = COMPONENTS.get(str(node["component"]))
        except UserError as error:
            raise UserError(f"{where}.component: {error}") from None
        raw = declared[role] if isinstance(declared[role], dict) else {}
        user_keys = {
            f"{where}.{key}": found.group(1)
            for key, value in raw.items()
            if (found := INTERPOLATION.fullmatch(str(value)))
        }
        part = Part(role, component, None, where, None, user_keys)
        try:
            settings = typed(
                component.settings_schema,
                {k: v for k, v in node.items() if k != "component"},
                where,
            )
            component.check(settings, where)
            signature = component.signature(settings)
        except UserError as error:
            raise UserError(part.in_user_terms(str(error))) from None
        parts[role] = replace(part, settings=settings, signature=signature)
    return parts


def _pipeline_name(cfg: DictConfig) -> str:
    name = str(cfg.pipeline.get("name") or "")
    require(
        NAME.fullmatch(name) is not None,
        f"pipeline.name must start with a letter or digit and hold only letters, digits, "
        f"'_', '-' and '.' (it names the Triton models and their folders), got '{name}'",
    )
    return name


def _parameter(value: Any) -> str:
    """A config value as the string a Triton parameter holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _unit(
    cfg: DictConfig,
    name: str,
    part: Part,
    bounds: dict[str, int],
    examples: ExampleInputs,
    calls: dict[str, ModelUnit],
) -> ModelUnit:
    component, settings = part.component, part.settings
    if isinstance(component, PythonComponent):
        parameters = component.parameters(settings)
        if calls:
            # The code calls models by name; it sends each at most its max_batch_size items.
            parameters["calls"] = _parameter(
                {
                    slot: _call_entry(unit, bool(cfg.target.calls_in_process))
                    for slot, unit in calls.items()
                }
            )
        return ModelUnit(
            name=name,
            role=part.role,
            inputs=part.signature.inputs,
            outputs=part.signature.outputs,
            serving=serving_for(cfg, part.role, cfg.target.device_kind),
            platform="python",
            component=component.code,
            parameters=parameters,
            files=component.files(settings),
            calls={slot: unit.name for slot, unit in calls.items()},
        )
    assert isinstance(component, NetworkComponent)
    seed = int(cfg.seed)
    imported = component.imported(settings)
    if imported is not None:
        require(
            cfg.backend == "onnx" and cfg.precision.name == "fp32",
            f"model '{part.role}' is an imported ONNX file ({part.where}.onnx), served as it "
            f"is: build it with backend=onnx precision=fp32 (got backend={cfg.backend} "
            f"precision={cfg.precision.name})",
        )
    return exported_unit(
        cfg,
        name,
        part.role,
        inputs=part.signature.inputs,
        outputs=part.signature.outputs,
        export=ExportSpec(
            exporter=_exporter(component, settings, str(cfg.backend)),
            precision="fp32" if component.keeps_fp32 else cfg.precision.name,
            make_module=lambda: component.make_module(settings, seed),
            make_inputs=examples.maker(part.role),
            tolerance=float(cfg.precision.parity_tolerance),
            length_of=dict(component.length_of),
            sized_like={
                name: rule
                for name, rule in component.sized_like.items()
                if name in {s.name for s in part.signature.outputs}
            },
            imported=imported,
            mask_input=component.mask_input,
            length_unit=component.example_length,
        ),
        checks=component.request_checks(settings, bounds),
    )


def _call_entry(unit: ModelUnit, in_process: bool) -> dict[str, Any]:
    """What a caller knows of a model it calls (triton_python/model_calls.py); to run it in
    its own process, the config Triton would give that model."""
    entry: dict[str, Any] = {"model": unit.name, "max_batch_size": unit.serving.max_batch_size}
    if in_process and unit.platform == "python":
        # Without the runner's request checks: a caller checks what it passes on itself (its
        # model's refusal would reach the client as a fault), and they would repeat at every
        # call, over large state the pipeline made itself (a decoder's caches, per token).
        parameters = dict(unit.parameters)
        if "input_checks" in parameters:
            parameters["input_checks"] = "{}"
        entry["in_process"] = in_process_entry(unit, parameters)
    return entry


def _exporter(component: NetworkComponent, settings: Any, backend: str) -> str:
    formats = component.export_formats(settings)
    return backend if formats is None or backend in formats else formats[0]


def _step(unit: ModelUnit, part: Part, step_inputs: dict, step_outputs: dict) -> EnsembleStep:
    """The step in the model's own tensor order, with the names its unit serves them under."""
    inputs = zip(part.signature.inputs, unit.inputs, strict=True)
    outputs = zip(part.signature.outputs, unit.outputs, strict=True)
    return EnsembleStep(
        model_name=unit.name,
        input_map=tuple((served.name, step_inputs[d.name]) for d, served in inputs),
        output_map=tuple(
            (served.name, step_outputs[d.name]) for d, served in outputs if d.name in step_outputs
        ),
    )


def resolve(cfg: DictConfig, on_this_machine: bool = True) -> BuildPlan:
    """Validate the config and return the plan; nothing heavy runs and nothing is written.

    on_this_machine=False: a plan rendered here and made on the serving machine (an archive's
    other targets), so what this machine lacks to export (TensorRT, a GPU) is not asked for."""
    check_recipe_fits(cfg)
    check_build_settings(cfg)
    name = _pipeline_name(cfg)
    parts = _read_parts(cfg)
    ensemble_node = plain(cfg.pipeline.get("ensemble"))
    require(isinstance(ensemble_node, dict), "pipeline.ensemble must declare the endpoint")
    graph = check_graph(read_graph(ensemble_node), {r: p.signature for r, p in parts.items()})
    check_roles(cfg, list(parts))
    parameters = ensemble_node.get("parameters") or {}
    require(
        isinstance(parameters, dict),
        f"pipeline.ensemble.parameters must map names to values, got {parameters!r}",
    )
    exporter = EXPORTERS.get(cfg.backend)
    require(
        cfg.precision.name in exporter.precisions,
        f"precision={cfg.precision.name} is not supported by backend={cfg.backend}",
    )
    check_parity_tokens(
        cfg,
        [
            role
            for role, part in parts.items()
            if isinstance(part.component, NetworkComponent)
            and part.component.example_length == "tokens"
        ],
    )
    examples = ExampleInputs(parts, graph, int(cfg.seed))
    units: list[ModelUnit] = []
    steps, notes, sources = [], [], {}
    made: dict[str, ModelUnit] = {}  # role -> unit

    def add(role: str, bounds: dict[str, int], calls: dict[str, ModelUnit]) -> ModelUnit:
        part = parts[role]
        unit = _unit(cfg, f"{name}_{role}", part, bounds, examples, calls)
        units.append(unit)
        made[role] = unit
        if isinstance(part.component, NetworkComponent):
            weights = part.component.weights(part.settings, part.where, int(cfg.seed))
            if weights is not None:
                sources[unit.name] = weights.record
                notes.extend([part.in_user_terms(weights.note)] if weights.note else [])
            exporter = unit.export.exporter if unit.export else cfg.backend
            if exporter != cfg.backend:
                notes.append(
                    f"note: model '{unit.name}' is exported with {exporter} whatever "
                    f"backend={cfg.backend} says: its network exports only to "
                    f"{', '.join(part.component.export_formats(part.settings) or ())}"
                )
        return unit

    for step in graph.steps:
        # A called model comes just before its first caller (in the plan, README, dry_run).
        for _, role in step.calls:
            if role in graph.called and role not in made:
                add(role, {}, {})
        part = parts[step.role]
        bounds = {m: graph.bounds[t] for m, t in step.inputs if t in graph.bounds}
        calls = {slot: made[role] for slot, role in step.calls}
        unit = add(step.role, bounds, calls)
        steps.append(_step(unit, part, dict(step.inputs), dict(step.outputs)))
    ensemble = Ensemble(
        name=name,
        max_batch_size=min(u.serving.max_batch_size for u in units),
        inputs=graph.inputs,
        outputs=graph.outputs,
        steps=tuple(steps),
        parameters={str(k): _parameter(v) for k, v in parameters.items()},
    )
    plan = BuildPlan(pipeline=name, units=units, ensemble=ensemble, notes=notes, weights=sources)
    if cfg.target.merge_python_steps or runs_in_parallel(ensemble):
        merged = merge_steps(ensemble, units)  # None where a step is not a python model
        if merged is not None:
            units.append(merged[0])
            plan.served_ensemble = merged[1]
    _check_targets(cfg, plan, on_this_machine)
    return plan


def _check_targets(cfg: DictConfig, plan: BuildPlan, on_this_machine: bool) -> None:
    check_parity_batches(cfg, plan)
    for unit in plan.units:
        if unit.export and on_this_machine:
            EXPORTERS.get(unit.export.exporter).check_available(
                cfg.target.device_kind, unit.export.precision
            )
        require(
            unit.serving.instance_kind == "KIND_CPU" or cfg.target.device_kind == "KIND_GPU",
            f"model '{unit.name}' asks for instance_group.kind=KIND_GPU, but target="
            f"{cfg.target.name} serves on the CPU; use target=gpu",
        )
