"""Runs every exported artifact at several shapes and compares it with its PyTorch module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelrepo_gen.core.build_plan import ExportSpec, ModelUnit
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters import Exporter
from modelrepo_gen.plan.example_inputs import as_outputs


@dataclass(frozen=True)
class ParityResult:
    batch: int
    seconds: float
    output: str
    max_abs_error: float
    relative_error: float  # max_abs_error / max(1, max |pytorch|)
    tokens: int | None = None  # the row length, for networks that take token ids

    def as_dict(self) -> dict:
        length = {"seconds": self.seconds} if self.tokens is None else {"tokens": self.tokens}
        return {
            "batch": self.batch,
            **length,
            "output": self.output,
            "max_abs_error": float(f"{self.max_abs_error:.3e}"),
            "relative_error": float(f"{self.relative_error:.3e}"),
        }


def valid_region(array: np.ndarray, lengths: np.ndarray, axis: int) -> list[np.ndarray]:
    return [
        np.take(item, np.arange(int(n)), axis=axis - 1)
        for item, n in zip(array, lengths.reshape(-1))
    ]


def compare(reference: np.ndarray, exported: np.ndarray, name: str) -> tuple[float, float]:
    if reference.shape != exported.shape:
        raise UserError(
            f"parity: output {name} has shape {exported.shape}, PyTorch gives {reference.shape}"
        )
    if reference.dtype.kind in "iu":
        error = float(
            np.max(np.abs(reference.astype(np.int64) - exported.astype(np.int64)), initial=0)
        )
        return error, error
    diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    error = float(np.max(diff, initial=0.0)) if np.all(np.isfinite(diff)) else float("inf")
    scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    return error, error / scale


def output_errors(
    names: Sequence[str],
    reference: Sequence[np.ndarray],
    exported: Sequence[np.ndarray],
    length_of: dict[str, list],
) -> list[tuple[str, float, float]]:
    """(output, max abs error, relative error) of each output; an output with a length output
    (`length_of`) is compared over each row's valid frames only."""
    by_name = dict(zip(names, zip(reference, exported, strict=True), strict=True))
    errors = []
    for name, (ref, out) in by_name.items():
        if name in length_of:
            length_name, axis = length_of[name]
            lengths = by_name[length_name][0]
            pairs = zip(valid_region(ref, lengths, axis), valid_region(out, lengths, axis))
            rows = [compare(r, o, name) for r, o in pairs]
            errors.append((name, max(e[0] for e in rows), max(e[1] for e in rows)))
        else:
            errors.append((name, *compare(ref, out, name)))
    return errors


def check_parity(
    unit: ModelUnit,
    module: torch.nn.Module,
    exporter: Exporter,
    artifact: Path,
    shapes: Sequence[tuple[int, float, int | None]],
    seed: int,
) -> list[ParityResult]:
    """Compare artifact and module on every shape; raise UserError if beyond tolerance."""
    export: ExportSpec = unit.export  # type: ignore[assignment]
    run = exporter.load(artifact, export.inputs)
    names = [spec.name for spec in export.outputs]
    results = []
    for i, (batch, seconds, given_tokens) in enumerate(shapes):
        inputs = export.make_inputs(batch, seconds, seed + 1000 + i, given_tokens)
        tokens = given_tokens if export.length_unit == "tokens" else None  # what is recorded
        with torch.no_grad():
            reference = [t.numpy() for t in as_outputs(module(*inputs))]
        exported = run([t.numpy() for t in inputs])
        for name, error, relative in output_errors(names, reference, exported, export.length_of):
            results.append(ParityResult(batch, seconds, name, error, relative, tokens))
            if not relative <= export.tolerance:
                length = f"{seconds} s" if tokens is None else f"{tokens} tokens"
                raise UserError(
                    f"parity check failed for model '{unit.name}' ({export.exporter}, "
                    f"{export.precision}): output {name} at batch {batch}, {length} differs "
                    f"from PyTorch by {relative:.3g} (relative), tolerance {export.tolerance:g}"
                )
    return results
