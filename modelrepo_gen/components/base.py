"""What a component is: the maker of one model of a repository, named in a pipeline's YAML.

A network component makes a PyTorch module that the build exports and checks against
PyTorch; a python component names the Triton python-backend code copied as `model.py`. Both
declare their tensors, so the pipeline's YAML only wires names. Settings are a dataclass the
YAML node is checked against (the node's `component:` key names the component itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelrepo_gen.core.registry import Registry
from modelrepo_gen.core.signature import Signature


@dataclass(frozen=True)
class Weights:
    """Where a network's weights come from, for the manifest; `note` is said loudly."""

    record: dict[str, Any]
    note: str | None = None


class Component:
    settings_schema: type = object

    def check(self, settings: Any, where: str) -> None:
        """Raise UserError naming the first setting (under `where`) that cannot work."""

    def signature(self, settings: Any) -> Signature:
        raise NotImplementedError


class NetworkComponent(Component):
    """A PyTorch module, exported by the configured backend and served as its artifact."""

    # True where fp16 cannot hold the values (e.g. a power spectrum beyond 65504).
    keeps_fp32: bool = False
    # Output name -> [length output, axis]: the valid frames of `output` along `axis`.
    length_of: dict[str, list] = {}
    # Output name -> [input, axis]: `output` is as long along `axis` as that input, so each
    # request of a ragged batch gets back its own length (outputs a model lacks are skipped).
    sized_like: dict[str, list] = {}
    # The length example_inputs takes: "seconds" (of audio) or "tokens" (parity_shapes' fields).
    example_length: str = "seconds"
    # The 0/1 input marking each row's valid positions (checks an imported model's padding).
    mask_input: str | None = None

    def make_module(self, settings: Any, seed: int) -> torch.nn.Module:
        raise NotImplementedError

    def export_formats(self, settings: Any) -> tuple[str, ...] | None:
        """The exporters this network works with (e.g. a loop only scripting captures): where
        `backend=` is not one of them, the first is used. None: any."""
        return None

    def example_inputs(
        self, settings: Any, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor] | None:
        """Inputs for export and parity checks; None: made by running the upstream models.
        `seconds` is a token count where `example_length` is "tokens"."""
        return None

    def request_checks(self, settings: Any, bounds: dict[str, int]) -> dict:
        """Checks the CPU runner applies to each request (see exported_model_runner);
        `bounds`: the largest size of each input's variable axis, where its producer says."""
        return {}

    def imported(self, settings: Any) -> Callable[[Path], None] | None:
        """An artifact exported elsewhere, served as it is: a function writing the served file
        to a path; None: the module from make_module is exported."""
        return None

    def weights(self, settings: Any, where: str, seed: int) -> Weights | None:
        """None: the module has no trained weights to speak of (a fixed transform)."""
        return None


class PythonComponent(Component):
    """Python-backend code from components/, configured through config.pbtxt parameters."""

    code: str = ""  # module name under modelrepo_gen/components/, copied as model.py

    def parameters(self, settings: Any) -> dict[str, str]:
        return {}

    def files(self, settings: Any) -> dict[str, Path]:
        """Files the code reads, copied beside model.py (name -> source) so the repository
        is self-contained; the manifest hashes them like every other file."""
        return {}


COMPONENTS: Registry[Component] = Registry("component")
