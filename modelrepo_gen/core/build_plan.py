"""The build plan: plain data made from the composed config before any heavy work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the plan is plain data: importing it loads no torch
    import torch

MODEL_VERSION = "1"  # the one version folder of every model the build writes


@dataclass(frozen=True)
class TensorSpec:
    """One Triton tensor; dims exclude the batch dimension (-1 = variable)."""

    name: str
    data_type: str  # Triton enum name, e.g. TYPE_FP32
    dims: tuple[int, ...]
    ragged: bool = False  # requests of different lengths may share a batch


@dataclass(frozen=True)
class DynamicBatching:
    preferred_batch_size: tuple[int, ...]
    max_queue_delay_us: int


@dataclass(frozen=True)
class Serving:
    max_batch_size: int
    dynamic_batching: DynamicBatching | None
    instance_count: int
    instance_kind: str  # KIND_CPU | KIND_GPU


@dataclass
class ExportSpec:
    """How a unit's PyTorch module is made, exported and checked."""

    exporter: str  # registered exporter name: onnx | torchscript | tensorrt
    precision: str  # fp32 | fp16
    make_module: Callable[[], torch.nn.Module]
    # (batch, seconds, seed[, tokens]) -> example inputs, used for export and for parity checks.
    make_inputs: Callable[..., list[torch.Tensor]]
    tolerance: float
    # Output name -> [length output, axis]: the valid frames of `output` along `axis`.
    length_of: dict[str, list] = field(default_factory=dict)
    # Output name -> [input, axis]: the output is as long along `axis` as that input.
    sized_like: dict[str, list] = field(default_factory=dict)
    # An artifact made elsewhere: writes the served file (no PyTorch module is made); it is
    # checked for finite, batch-invariant outputs instead of parity with PyTorch.
    imported: Callable[[Path], None] | None = None
    # The length a parity shape gives this network: "seconds" or "tokens" (what is recorded).
    length_unit: str = "seconds"
    # The 0/1 input marking each row's valid positions, for the batch-invariance check.
    mask_input: str | None = None
    # Input name -> [longest length, axis (0: batch)]: what requests may send; TensorRT's
    # optimisation profiles reach that far.
    max_lengths: dict[str, list] = field(default_factory=dict)
    # Tensors as the exported graph names them (native backends may rename them in config).
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()


@dataclass
class ModelUnit:
    """One Triton model of the repository."""

    name: str
    role: str  # stable key for per_model overrides, e.g. acoustic_model
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    serving: Serving
    platform: str  # Triton backend/platform written in config.pbtxt, e.g. python
    export: ExportSpec | None = None
    component: str | None = None  # python-backend component copied as model.py
    artifact: str | None = None  # file in the version folder holding the exported model
    parameters: dict[str, str] = field(default_factory=dict)
    # Files copied beside model.py into the version folder: name -> source.
    files: dict[str, Path] = field(default_factory=dict)
    calls: dict[str, str] = field(default_factory=dict)  # call slot -> name of the called model


@dataclass(frozen=True)
class EnsembleStep:
    model_name: str
    input_map: tuple[tuple[str, str], ...]  # (model input, ensemble tensor)
    output_map: tuple[tuple[str, str], ...]  # (model output, ensemble tensor)


@dataclass
class Ensemble:
    name: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    steps: tuple[EnsembleStep, ...]
    # Facts a client needs, readable from the served config (e.g. the expected sample rate).
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildPlan:
    pipeline: str
    units: list[ModelUnit]
    ensemble: Ensemble
    notes: list[str] = field(default_factory=list)  # loud facts for output and manifest
    weights: dict[str, Any] = field(default_factory=dict)  # where each unit's weights came from
    # The ensemble as served where the target runs its steps in one model (plan/merged_steps);
    # None: as declared.
    served_ensemble: Ensemble | None = None

    @property
    def endpoint(self) -> Ensemble:
        """The ensemble clients call, as the repository serves it."""
        return self.served_ensemble or self.ensemble
