"""The pipeline graph a `conf/pipeline/` file declares, read and checked before any work.

A pipeline lists its models (role -> component + settings) and its ensemble: inputs, outputs
and steps, each step mapping a model's tensors to ensemble tensors. A step's model may call
other declared models itself (`calls: {slot: role}`, e.g. a generation loop calling its
decoder): those are built and served too, outside the ensemble's steps. Components declare their
tensors (`Signature`), so the YAML names tensors but never repeats their types or dims; this
module joins the two and stops at the first mistake with one line naming the model and tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.signature import Signature

WHERE = "pipeline.ensemble"


@dataclass(frozen=True)
class Step:
    role: str
    inputs: tuple[tuple[str, str], ...]  # (model tensor, ensemble tensor)
    outputs: tuple[tuple[str, str], ...]
    calls: tuple[tuple[str, str], ...] = ()  # (the model's call slot, role of the called model)


@dataclass(frozen=True)
class Graph:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    steps: tuple[Step, ...]  # in declaration order until `check_graph` orders them


def _mapping(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """A step's `inputs:`/`outputs:`: {model tensor: ensemble tensor}, or a list of names
    that keep the same name on both sides."""
    if isinstance(value, Mapping):
        return tuple((str(k), str(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple((str(name), str(name)) for name in value)
    raise UserError(f"{where} must map model tensors to ensemble tensors, got {value!r}")


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise UserError(f"{where} must list at least one tensor name, got {value!r}")
    return tuple(str(name) for name in value)


def read_graph(ensemble: Mapping[str, Any]) -> Graph:
    """The ensemble section of a pipeline, as plain data (from `pipeline.ensemble`)."""
    declared = ensemble.get("steps")
    if not isinstance(declared, list | tuple) or not declared:
        raise UserError(
            f"{WHERE}.steps must list the steps (model, inputs, outputs), got {declared!r}"
        )
    steps = []
    for i, step in enumerate(declared):
        where = f"{WHERE}.steps.{i}"
        if not isinstance(step, Mapping) or not isinstance(step.get("model"), str):
            raise UserError(f"{where} must name its model (model: ROLE), got {step!r}")
        steps.append(
            Step(
                role=step["model"],
                inputs=_mapping(step.get("inputs", {}), f"{where}.inputs"),
                outputs=_mapping(step.get("outputs", {}), f"{where}.outputs"),
                calls=_mapping(step.get("calls", {}), f"{where}.calls"),
            )
        )
    return Graph(
        inputs=_names(ensemble.get("inputs"), f"{WHERE}.inputs"),
        outputs=_names(ensemble.get("outputs"), f"{WHERE}.outputs"),
        steps=tuple(steps),
    )


def _describe(spec: TensorSpec) -> str:
    return f"{spec.data_type} {list(spec.dims)}"


def _same(a: TensorSpec, b: TensorSpec) -> bool:
    return a.data_type == b.data_type and tuple(a.dims) == tuple(b.dims)


@dataclass
class CheckedGraph:
    steps: tuple[Step, ...]  # ordered: every step after the steps it reads from
    inputs: tuple[TensorSpec, ...]  # the ensemble's, typed by the models that read them
    outputs: tuple[TensorSpec, ...]
    # ensemble tensor -> largest size of its variable axis, where its producer declares one
    bounds: dict[str, int] = field(default_factory=dict)
    called: tuple[str, ...] = ()  # roles only other models call, in order of first call


def check_graph(graph: Graph, signatures: Mapping[str, Signature]) -> CheckedGraph:
    """Join the declared wiring with the components' signatures; UserError at the first fault."""
    producers: dict[str, tuple[str, TensorSpec]] = {}  # ensemble tensor -> (role, spec)
    for step in graph.steps:
        if step.role not in signatures:
            raise UserError(
                f"{WHERE}: step uses model '{step.role}', which pipeline.models does not declare "
                f"(declared: {', '.join(signatures) or 'none'})"
            )
        signature = signatures[step.role]
        _check_names(step, signature)
        outputs = {s.name: s for s in signature.outputs}
        for model_tensor, tensor in step.outputs:
            if tensor in producers or tensor in graph.inputs:
                first = (
                    f"{producers[tensor][0]}.{producers[tensor][1].name}"
                    if tensor in producers
                    else "the ensemble input"
                )
                raise UserError(
                    f"{WHERE}: tensor '{tensor}' is produced twice ({first} and "
                    f"{step.role}.{model_tensor})"
                )
            producers[tensor] = (step.role, outputs[model_tensor])
    used = [s.role for s in graph.steps]
    called = _check_calls(graph, signatures, used)
    for role in signatures:
        if role not in used and role not in called:
            raise UserError(
                f"{WHERE}: model '{role}' is declared in pipeline.models but no step uses it"
            )
    twice = sorted({r for r in used if used.count(r) > 1})
    if twice:
        raise UserError(f"{WHERE}: model '{twice[0]}' is used by more than one step")
    inputs = _ensemble_inputs(graph, signatures)
    _check_edges(graph, signatures, producers, inputs)
    ordered = _ordered(graph, producers)
    outputs = []
    for name in graph.outputs:
        if name not in producers:
            raise UserError(f"{WHERE}: output '{name}' is produced by no step")
        role, spec = producers[name]
        outputs.append(TensorSpec(name, spec.data_type, spec.dims))
    bounds = {
        tensor: signatures[role].bounds[spec.name]
        for tensor, (role, spec) in producers.items()
        if spec.name in signatures[role].bounds
    }
    return CheckedGraph(ordered, tuple(inputs.values()), tuple(outputs), bounds, called)


def _check_calls(
    graph: Graph, signatures: Mapping[str, Signature], used: list[str]
) -> tuple[str, ...]:
    """Every call slot of a step's model is bound to a declared model that has the tensors the
    caller exchanges with it; returns the roles only called, in order of first call."""
    called: list[str] = []
    for step in graph.steps:
        slots = signatures[step.role].calls
        bound = dict(step.calls)
        for slot, role in step.calls:
            if slot not in slots:
                raise UserError(
                    f"{WHERE}: model '{step.role}' makes no call '{slot}' "
                    f"(its calls: {', '.join(slots) or 'none'})"
                )
            if role not in signatures:
                raise UserError(
                    f"{WHERE}: model '{step.role}' calls model '{role}' as '{slot}', which "
                    f"pipeline.models does not declare (declared: {', '.join(signatures)})"
                )
            if signatures[role].calls and role not in used:
                raise UserError(
                    f"{WHERE}: model '{role}' makes calls of its own, so it must be a step; "
                    f"model '{step.role}' cannot call it"
                )
            have = [s.name for s in (*signatures[role].inputs, *signatures[role].outputs)]
            for tensor in slots[slot]:
                if tensor not in have:
                    raise UserError(
                        f"{WHERE}: model '{step.role}' calls '{slot}' with tensor '{tensor}', "
                        f"which model '{role}' does not have (its tensors: {', '.join(have)})"
                    )
            if role not in used and role not in called:
                called.append(role)
        for slot in slots:
            if slot not in bound:
                raise UserError(
                    f"{WHERE}: model '{step.role}' calls a '{slot}' model; bind it in its step "
                    f"(calls: {{{slot}: ROLE}})"
                )
    return tuple(called)


def _check_names(step: Step, signature: Signature) -> None:
    """Every tensor a step maps exists on its model, and every model input is fed."""
    for direction, mapped, declared in (
        ("input", step.inputs, signature.inputs),
        ("output", step.outputs, signature.outputs),
    ):
        names = [s.name for s in declared]
        for model_tensor, _ in mapped:
            if model_tensor not in names:
                raise UserError(
                    f"{WHERE}: model '{step.role}' has no {direction} '{model_tensor}' "
                    f"(its {direction}s: {', '.join(names)})"
                )
    fed = {model_tensor for model_tensor, _ in step.inputs}
    for spec in signature.inputs:
        if spec.name not in fed:
            raise UserError(f"{WHERE}: input '{spec.name}' of model '{step.role}' is not fed")


def _ensemble_inputs(graph: Graph, signatures: Mapping[str, Signature]) -> dict[str, TensorSpec]:
    """Each ensemble input, typed by the first model that reads it."""
    typed: dict[str, TensorSpec] = {}
    for step in graph.steps:
        specs = {s.name: s for s in signatures[step.role].inputs}
        for model_tensor, tensor in step.inputs:
            if tensor in graph.inputs and tensor not in typed:
                spec = specs[model_tensor]
                typed[tensor] = TensorSpec(tensor, spec.data_type, spec.dims)
    for name in graph.inputs:
        if name not in typed:
            raise UserError(f"{WHERE}: input '{name}' is read by no step")
    return {name: typed[name] for name in graph.inputs}


def _check_edges(
    graph: Graph,
    signatures: Mapping[str, Signature],
    producers: Mapping[str, tuple[str, TensorSpec]],
    inputs: Mapping[str, TensorSpec],
) -> None:
    """Every tensor a step reads exists, with the type and dims the reading model expects."""
    for step in graph.steps:
        specs = {s.name: s for s in signatures[step.role].inputs}
        for model_tensor, tensor in step.inputs:
            wanted = specs[model_tensor]
            if tensor in producers:
                source, have = (
                    f"{producers[tensor][0]}.{producers[tensor][1].name}",
                    producers[tensor][1],
                )
            elif tensor in inputs:
                source, have = "the ensemble input", inputs[tensor]
            else:
                raise UserError(
                    f"{WHERE}: {step.role}.{model_tensor} reads tensor '{tensor}', which no step "
                    "produces and which is not an ensemble input"
                )
            if not _same(have, wanted):
                raise UserError(
                    f"{WHERE}: tensor '{tensor}' is {_describe(have)} from {source}, but "
                    f"{step.role}.{model_tensor} expects {_describe(wanted)}"
                )


def _ordered(graph: Graph, producers: Mapping[str, tuple[str, TensorSpec]]) -> tuple[Step, ...]:
    """Steps in an order where each runs after those it reads from (declaration order kept
    where the wiring allows it); a cycle is named."""
    by_role = {step.role: step for step in graph.steps}
    # A step runs after the steps it reads from and after the steps it calls.
    depends = {
        step.role: [producers[t][0] for _, t in step.inputs if t in producers]
        + [role for _, role in step.calls if role in by_role]
        for step in graph.steps
    }
    ordered: list[Step] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(role: str) -> None:
        if role in done:
            return
        if role in visiting:
            # visiting runs from reader to producer; printed in the direction data flows
            cycle = [*visiting[visiting.index(role) :], role][::-1]
            raise UserError(f"{WHERE}: the steps form a cycle: {' -> '.join(cycle)}")
        visiting.append(role)
        for upstream in depends[role]:
            visit(upstream)
        visiting.pop()
        done.add(role)
        ordered.append(by_role[role])

    for step in graph.steps:
        visit(step.role)
    return tuple(ordered)
