"""TensorRT engines made by deploy on the GPU that serves them, from the archive's ONNX networks.

Each engine gets the optimisation profile the build worked out (batch up to the model's
max_batch_size, lengths up to what requests may send) and must answer as the ONNX network it
was made from (itself checked against PyTorch by the build) on the inputs of the build's parity
shapes, within the export's tolerance, before anything is written. Its parity figures go into
the repository's manifest.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from modelrepo_gen.archive.container import damaged
from modelrepo_gen.assembly.parity import output_errors
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters.onnx_exporter import OnnxExporter
from modelrepo_gen.exporters.tensorrt_exporter import (
    TensorRTExporter,
    build_engine,
    missing_requirement,
)
from modelrepo_gen.repository.manifest import MANIFEST, with_manifest


def check_engines_can_be_made(where: str) -> None:
    """Before anything is written: this machine can make TensorRT engines."""
    reason = missing_requirement()
    if reason:
        raise UserError(
            f"cannot make the TensorRT engines of {where} on this machine: {reason}; deploy it "
            "with --backend tensorrt on the GPU machine that will serve it, or without "
            "--backend tensorrt for Triton's onnxruntime backend"
        )


def with_engines(
    files: dict[str, bytes],
    engines: dict[str, dict[str, Any]],
    networks: dict[str, bytes],
    members: dict[str, bytes],
    where: str,
) -> dict[str, bytes]:
    """`files` with every engine made from its ONNX network in `networks` (the built
    repository) and checked against the answers kept in `members`; the manifest says so."""
    manifest = json.loads(files[MANIFEST])
    made = dict(files)
    for path, recipe in sorted(engines.items()):
        try:
            onnx = networks[recipe["onnx"]]
            profile = {
                name: tuple(tuple(int(n) for n in shape) for shape in shapes)
                for name, shapes in recipe["profile"].items()
            }
            entry = manifest["models"][recipe["model"]]
        except (KeyError, TypeError, AttributeError, ValueError):
            raise damaged(where, f"how to make its engine {path} cannot be read") from None
        engine = build_engine(onnx, profile, str(recipe["precision"]))
        entry["parity_on_target"] = _check(engine, onnx, path, recipe, members, where)
        made[path] = engine
    return with_manifest(made, manifest)


def _check(
    engine: bytes,
    onnx: bytes,
    path: str,
    recipe: dict[str, Any],
    members: dict[str, bytes],
    where: str,
) -> list[dict[str, Any]]:
    """Run the engine and its ONNX network on the kept inputs; their answers must match."""
    inputs = [TensorSpec(str(name), "", ()) for name in recipe["inputs"]]
    outputs = [str(name) for name in recipe["outputs"]]
    tolerance = float(recipe["tolerance"])
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "model.plan").write_bytes(engine)
        (Path(folder) / "model.onnx").write_bytes(onnx)
        run = TensorRTExporter().load(Path(folder) / "model.plan", inputs)
        reference = OnnxExporter().load(Path(folder) / "model.onnx", inputs)
        results = []
        for shape in range(int(recipe["shapes"])):
            given = [
                _array(members, recipe, shape, k, where).astype(recipe["input_dtypes"][k])
                for k in range(len(inputs))
            ]
            expected = reference(given)
            answered = run(given)
            errors = output_errors(outputs, expected, answered, dict(recipe["length_of"]))
            for name, error, relative in errors:
                results.append(
                    {
                        "batch": int(given[0].shape[0]),
                        "output": name,
                        "max_abs_error": float(f"{error:.3e}"),
                        "relative_error": float(f"{relative:.3e}"),
                    }
                )
                if not relative <= tolerance:
                    raise UserError(
                        f"the TensorRT engine {path} made here differs from its ONNX network by "
                        f"{relative:.3g} (relative) on output {name} at batch "
                        f"{given[0].shape[0]}, tolerance {tolerance:g}; nothing was written"
                    )
    return results


def _array(
    members: dict[str, bytes], recipe: dict[str, Any], shape: int, k: int, where: str
) -> np.ndarray:
    name = f"{recipe['checks']}/{shape}/input_{k}.npy"
    if name not in members:
        raise damaged(where, f"it lacks {name}")
    return np.load(io.BytesIO(members[name]), allow_pickle=False)
