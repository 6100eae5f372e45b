"""Exporters turn a PyTorch module into a served artifact: each is one file plus a registration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.registry import Registry

# Runs an exported artifact: inputs in order of the unit's inputs, outputs in order of its outputs.
Runner = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


class Exporter(Protocol):
    name: str
    artifact_filename: str  # file name inside the model's version folder
    native_platform: str  # Triton platform that serves the artifact natively (GPU servers)
    precisions: tuple[str, ...]

    def check_available(self, target_device: str, precision: str) -> None:
        """Raise UserError if this machine cannot produce the artifact (before any work)."""

    def export(
        self,
        module: torch.nn.Module,
        example_inputs: list[torch.Tensor],
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        precision: str,
        path: Path,
    ) -> None: ...

    def load(self, path: Path, inputs: Sequence[TensorSpec]) -> Runner: ...

    def native_tensor_name(self, spec: TensorSpec, index: int, is_input: bool) -> str:
        """The tensor name the native Triton backend expects for this artifact."""


EXPORTERS: Registry[Exporter] = Registry("backend")


def register_builtin_exporters() -> None:
    # Importing the modules registers them; kept explicit so the registry is easy to follow.
    from modelrepo_gen.exporters import onnx_exporter, tensorrt_exporter, torchscript_exporter  # noqa: F401
