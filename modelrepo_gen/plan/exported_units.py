"""A Triton model that serves an exported PyTorch module, in the form the target needs.

Shared by every pipeline kind: on the CPU target it is a python-backend model running the
artifact (exported_model_runner); on a GPU target it uses the exporter's native platform.
"""

from __future__ import annotations

import json
from dataclasses import replace

from omegaconf import DictConfig

from modelrepo_gen.core.build_plan import ExportSpec, ModelUnit, TensorSpec
from modelrepo_gen.exporters import EXPORTERS
from modelrepo_gen.plan.serving import serving_for


def exported_unit(
    cfg: DictConfig,
    name: str,
    role: str,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    export: ExportSpec,
    checks: dict,
) -> ModelUnit:
    """`checks`: request checks the python-backend runner applies (see exported_model_runner)."""
    exporter = EXPORTERS.get(export.exporter)
    export = replace(
        export, inputs=inputs, outputs=outputs, max_lengths=dict(checks.get("max_length", {}))
    )
    serving = serving_for(cfg, role, cfg.target.device_kind)
    if cfg.target.python_backend_only:
        # Written only where used, so the configs of networks without it stay as they were.
        sized_like = (
            {"sized_like": json.dumps(export.sized_like, sort_keys=True)}
            if export.sized_like
            else {}
        )
        return ModelUnit(
            name=name,
            role=role,
            inputs=inputs,
            outputs=outputs,
            serving=serving,
            platform="python",
            export=export,
            component="exported_model_runner",
            artifact=exporter.artifact_filename,
            parameters={
                "format": export.exporter,
                "artifact": exporter.artifact_filename,
                "length_of": json.dumps(export.length_of, sort_keys=True),
                "input_checks": json.dumps(checks, sort_keys=True),
                **sized_like,
            },
        )

    # Native backends bind tensors by their own naming rules; requests must share shapes.
    def native(specs: tuple[TensorSpec, ...], is_input: bool) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(exporter.native_tensor_name(s, i, is_input), s.data_type, s.dims)
            for i, s in enumerate(specs)
        )

    return ModelUnit(
        name=name,
        role=role,
        inputs=native(inputs, True),
        outputs=native(outputs, False),
        serving=serving,
        platform=exporter.native_platform,
        export=export,
        artifact=exporter.artifact_filename,
    )
