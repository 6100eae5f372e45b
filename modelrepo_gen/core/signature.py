"""What a component declares about itself: its tensors, bounds and the models it calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelrepo_gen.core.build_plan import TensorSpec


@dataclass(frozen=True)
class Signature:
    """A component's tensors. `bounds`: the largest size of an output's variable axis;
    `calls`: the models it calls itself, slot -> the tensors it exchanges with that model."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    bounds: Mapping[str, int] = field(default_factory=dict)
    calls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
