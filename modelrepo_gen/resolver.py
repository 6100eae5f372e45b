"""Composed config -> build plan, through the registries (no branching on names here)."""

from __future__ import annotations

from omegaconf import DictConfig

from modelrepo_gen.config_checks import check_build_settings, check_parity_batches
from modelrepo_gen.exporters import EXPORTERS, register_builtin_exporters
from modelrepo_gen.pipelines import PLAN_BUILDERS, register_builtin_pipelines
from modelrepo_gen.plan import BuildPlan
from modelrepo_gen.validation import require

register_builtin_exporters()
register_builtin_pipelines()


def resolve(cfg: DictConfig) -> BuildPlan:
    """Validate the config and return the plan; nothing heavy runs and nothing is written."""
    check_build_settings(cfg)
    plan = PLAN_BUILDERS.get(cfg.pipeline.kind)(cfg)
    check_parity_batches(cfg, plan)
    for unit in plan.units:
        if unit.export:
            EXPORTERS.get(unit.export.exporter).check_available(
                cfg.target.device_kind, unit.export.precision
            )
    for unit in plan.units:
        require(
            unit.serving.instance_kind == "KIND_CPU" or cfg.target.device_kind == "KIND_GPU",
            f"model '{unit.name}' asks for instance_group.kind=KIND_GPU, but target="
            f"{cfg.target.name} serves on the CPU; use target=gpu",
        )
    require(
        all(plan.ensemble.max_batch_size <= u.serving.max_batch_size for u in plan.units),
        "the ensemble's max_batch_size exceeds a model's max_batch_size",
    )
    return plan
