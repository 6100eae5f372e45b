"""Example inputs for exporting and parity-checking each network of a pipeline.

A network whose component makes no example inputs of its own (an acoustic model, say) gets
what the upstream networks produce from theirs, so it is exported and checked on realistic
tensors whatever the graph looks like. A network that only other models call (a streaming
model calls the feature extractor, then the acoustic model) is fed by the network whose output
has its input's name, as its caller passes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from modelrepo_gen.components.base import NetworkComponent
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.graph import CheckedGraph
from modelrepo_gen.plan.parts import Part

# The shortest token row (a [CLS], one token, a [SEP]): enough to ask whether a network makes
# example inputs of its own.
SMALLEST_TOKENS = 3


def as_outputs(result: torch.Tensor | Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    """A module's outputs in order: a module with one output may return the bare tensor."""
    return (result,) if isinstance(result, torch.Tensor) else result


class ExampleInputs:
    """Example inputs of each network: its component's own, or its upstream networks' outputs."""

    def __init__(self, parts: dict[str, Part], graph: CheckedGraph, seed: int) -> None:
        self.parts, self.seed = parts, seed
        self.steps = {step.role: step for step in graph.steps}
        self.producer = {t: (s.role, m) for s in graph.steps for m, t in s.outputs}
        self.called_inputs = self._called_inputs(parts)
        for role, part in parts.items():
            if isinstance(part.component, NetworkComponent):
                self._check_reachable(role)

    def _own(
        self, role: str, batch: int, seconds: float, seed: int, tokens: int | None
    ) -> list[torch.Tensor] | None:
        part = self.parts[role]
        assert isinstance(part.component, NetworkComponent)
        if part.component.example_length == "tokens":
            if tokens is None:
                raise UserError(f"parity_shapes: model '{role}' takes token ids; set tokens")
            return part.component.example_inputs(part.settings, batch, tokens, seed)
        return part.component.example_inputs(part.settings, batch, seconds, seed)

    def _called_inputs(self, parts: dict[str, Part]) -> dict[str, dict[str, tuple[str, str]]]:
        """For each network no step runs: its input name -> (network, output) of the one other
        network not run by a step whose output has that name."""
        called = {
            role: part
            for role, part in parts.items()
            if role not in self.steps and isinstance(part.component, NetworkComponent)
        }
        outputs: dict[str, list[tuple[str, str]]] = {}
        for role, part in called.items():
            for spec in part.signature.outputs:
                outputs.setdefault(spec.name, []).append((role, spec.name))
        return {
            role: {
                spec.name: outputs[spec.name][0]
                for spec in part.signature.inputs
                if len(outputs.get(spec.name, [])) == 1 and outputs[spec.name][0][0] != role
            }
            for role, part in called.items()
        }

    def _sources(self, role: str) -> list[tuple[str, tuple[str, str] | None]]:
        """(input name, (network, output) feeding it or None) of each input of `role`."""
        if role in self.steps:
            return [(m, self.producer.get(t)) for m, t in self.steps[role].inputs]
        fed = self.called_inputs.get(role, {})
        return [(spec.name, fed.get(spec.name)) for spec in self.parts[role].signature.inputs]

    def _check_reachable(self, role: str) -> None:
        if self._own(role, 1, 0.1, self.seed, SMALLEST_TOKENS) is not None:
            return
        if role not in self.steps and not self.called_inputs.get(role):
            raise UserError(
                f"model '{role}' cannot be exported: only other models call it, and its "
                "component makes no example inputs of its own"
            )
        for model_tensor, upstream in self._sources(role):
            if upstream is None or not isinstance(
                self.parts[upstream[0]].component, NetworkComponent
            ):
                raise UserError(
                    f"model '{role}' cannot be exported: its input '{model_tensor}' comes from "
                    f"{'the ensemble' if upstream is None else f'python model {upstream[0]!r}'}, "
                    "and its component makes no example inputs of its own"
                )
            self._check_reachable(upstream[0])

    def maker(self, role: str) -> Callable[..., list[torch.Tensor]]:
        return lambda batch, seconds, seed, tokens=None: self.inputs(
            role, batch, seconds, seed, tokens
        )

    def inputs(
        self, role: str, batch: int, seconds: float, seed: int, tokens: int | None = None
    ) -> list[torch.Tensor]:
        own = self._own(role, batch, seconds, seed, tokens)
        if own is not None:
            return own
        fed = dict(self._sources(role))
        sources = [fed[spec.name] for spec in self.parts[role].signature.inputs]
        # Each upstream network runs once, however many of this model's inputs it feeds.
        produced = {
            upstream: self._outputs(upstream, batch, seconds, seed, tokens)
            for upstream in dict.fromkeys(upstream for upstream, _ in sources)
        }
        return [produced[upstream][name] for upstream, name in sources]

    def _outputs(
        self, role: str, batch: int, seconds: float, seed: int, tokens: int | None
    ) -> dict[str, torch.Tensor]:
        part = self.parts[role]
        assert isinstance(part.component, NetworkComponent)
        module = part.component.make_module(part.settings, self.seed)
        with torch.no_grad():
            outputs = as_outputs(module(*self.inputs(role, batch, seconds, seed, tokens)))
        return {spec.name: out for spec, out in zip(part.signature.outputs, outputs, strict=True)}
