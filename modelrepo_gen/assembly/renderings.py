"""An archive's other renderings: the built repository as it serves on the other target, and
with TensorRT engines, so one archive deploys on any machine (as Riva's RMIR does).

Each is the plan resolved again for that target and backend and written as the build writes it,
with the built networks copied instead of exported again. TensorRT engines are specific to the
GPU that builds them: deploy makes them from the ONNX networks, and checks them against what
the ONNX networks answered here (kept in the archive) before it publishes anything.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from modelrepo_gen.archive.write import ENGINE_CHECKS, RENDERINGS, Rendering, rendering_name
from modelrepo_gen.core.build_plan import BuildPlan, ModelUnit
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.resources import project_folder
from modelrepo_gen.exporters.tensorrt_exporter import engine_profile
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.repository.manifest import MANIFEST

TENSORRT = "tensorrt"
# What a model's engine check may add to the archive beyond its first parity shape's inputs.
ENGINE_CHECKS_BYTES = 8 * 2**20
FLOAT16_RANGE = 60000.0
# Writes a resolved plan as the build does: (folder, config, plan, how networks are written).
WriteModels = Callable[[Path, DictConfig, BuildPlan, "BuiltNetworks"], None]


class NotRenderable(UserError):
    """This rendering cannot be made from the built networks (recorded, not raised to users)."""


def other_renderings(cfg: DictConfig) -> list[tuple[str, str]]:
    """(target, backend) of every rendering besides the built one. An archive of TensorRT
    engines has none: engines serve only on a GPU like the one that built them."""
    built = (str(cfg.target.name), str(cfg.backend))
    if built[1] == TENSORRT:
        return []
    wanted = [("cpu", built[1]), ("gpu", built[1]), ("gpu", TENSORRT)]
    return [option for option in wanted if option != built]


def render_others(
    cfg: DictConfig, built: Path, plan: BuildPlan, staging: Path, write_models: WriteModels
) -> list[Rendering]:
    """The other renderings of the repository built at `built` from `plan`, written under
    `staging`/renderings; one that cannot be made is kept with the reason."""
    models = json.loads((built / MANIFEST).read_text())["models"]
    renderings = []
    for target, backend in other_renderings(cfg):
        other = _config(cfg, target, backend)
        name = rendering_name(target, backend)
        folder = staging / RENDERINGS / name
        networks = BuiltNetworks(built, plan, models, name, cfg)
        try:
            write_models(folder, other, resolve(other, on_this_machine=False), networks)
        except UserError as error:
            shutil.rmtree(folder, ignore_errors=True)
            renderings.append(Rendering(target, backend, None, str(error)))
            continue
        renderings.append(
            Rendering(target, backend, folder, engines=networks.engines, members=networks.members)
        )
    return renderings


def _config(cfg: DictConfig, target: str, backend: str) -> DictConfig:
    other = copy.deepcopy(cfg)
    with open_dict(other):
        for key, value in OmegaConf.load(
            project_folder("conf") / "target" / f"{target}.yaml"
        ).items():
            other.target[key] = value
        other.backend = backend
    return other


class BuiltNetworks:
    """Writes a rendering's networks: the built ones copied, or an engine deploy will make."""

    def __init__(
        self, built: Path, plan: BuildPlan, models: dict, rendering: str, cfg: DictConfig
    ) -> None:
        self.built, self.models, self.rendering, self.cfg = built, models, rendering, cfg
        self.units = {unit.name: unit for unit in plan.units}
        self.engines: dict[str, dict] = {}  # engine path in the repository -> how it is made
        self.members: dict[str, bytes] = {}  # archive member -> the checks' inputs and outputs

    def __call__(self, unit: ModelUnit, version_dir: Path) -> dict:
        """Writes `unit`'s network into `version_dir`; returns its manifest entry."""
        export, built_unit = unit.export, self.units.get(unit.name)
        assert export is not None and unit.artifact is not None
        if built_unit is None or built_unit.export is None or built_unit.artifact is None:
            raise NotRenderable(f"model {unit.name} is not a network of the built repository")
        built_export = built_unit.export
        source = self.built / unit.name / version_dir.name / built_unit.artifact
        if export.exporter == built_export.exporter:
            if (export.precision, export.inputs, export.outputs) != (
                built_export.precision,
                built_export.inputs,
                built_export.outputs,
            ):
                raise NotRenderable(f"model {unit.name} would be exported differently")
            shutil.copyfile(source, version_dir / unit.artifact)
            entry = dict(self.models[unit.name])
            entry.pop("platform"), entry.pop("role")
            return entry
        if export.exporter == TENSORRT and built_export.exporter == "onnx":
            self._plan_engine(unit, source, f"{unit.name}/{version_dir.name}")
            return {
                "format": TENSORRT,
                "precision": export.precision,
                "tolerance": export.tolerance,
                "made_by_deploy_from": built_unit.artifact,
            }
        raise NotRenderable(
            f"TensorRT engines are made from ONNX networks and model {unit.name} is "
            f"{built_export.exporter}: build the archive with backend=onnx"
        )

    def _plan_engine(self, unit: ModelUnit, onnx: Path, folder: str) -> None:
        """Record how deploy makes `unit`'s engine, and the inputs at the parity shapes on
        which the engine must answer as the ONNX network does, within the export's tolerance."""
        export = unit.export
        assert export is not None and unit.artifact is not None
        seed = int(self.cfg.seed)
        checks = f"{ENGINE_CHECKS}/{self.rendering}/{unit.name}"
        typical: list[tuple[int, ...]] = []
        shapes = list(self.cfg.parity_shapes)
        kept, used, dtypes = 0, 0, []
        for i, shape in enumerate(shapes):
            tokens = None if shape.get("tokens") is None else int(shape.tokens)
            inputs = [
                tensor.numpy()
                for tensor in export.make_inputs(
                    int(shape.batch), float(shape.seconds), seed + 1000 + i, tokens
                )
            ]
            typical = typical or [array.shape for array in inputs]
            dtypes = dtypes or [str(array.dtype) for array in inputs]
            stored = [_npy(_compact(array)) for array in inputs]
            size = sum(len(data) for data in stored)
            if i and used + size > ENGINE_CHECKS_BYTES:
                break  # e.g. Whisper's decoder: its cross-attention caches are large
            for k, data in enumerate(stored):
                self.members[f"{checks}/{i}/input_{k}.npy"] = data
            kept, used = kept + 1, used + size
        profile = engine_profile(
            export.inputs, typical, unit.serving.max_batch_size, export.max_lengths
        )
        self.engines[f"{folder}/{unit.artifact}"] = {
            "model": unit.name,
            "onnx": f"{folder}/{onnx.name}",
            "precision": export.precision,
            "tolerance": export.tolerance,
            "inputs": [spec.name for spec in export.inputs],
            "outputs": [spec.name for spec in export.outputs],
            "length_of": export.length_of,
            "profile": {
                name: [list(shape) for shape in shapes] for name, shapes in profile.items()
            },
            "checks": checks,
            "shapes": kept,
            "input_dtypes": dtypes,
        }


def _compact(array: np.ndarray) -> np.ndarray:
    """Float inputs kept as float16 where that loses no range: engine and ONNX network both
    get the same (rounded) values, so the check is as strict and the archive smaller."""
    if array.dtype == np.float32 and np.all(np.abs(array) < FLOAT16_RANGE):
        return array.astype(np.float16)
    return array


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
