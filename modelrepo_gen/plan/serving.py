"""Per-model Triton knobs: the top-level defaults with per_model.<role> overrides on top."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from modelrepo_gen.config.schema import ServingConfig
from modelrepo_gen.core.build_plan import DynamicBatching, Serving
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.validation import check_number, require, typed

INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU")
INT32_MAX = 2**31 - 1  # Triton's max_batch_size and instance count are int32
MAX_QUEUE_DELAY_US = 60_000_000  # a minute: longer is surely a unit mistake (microseconds)


def check_roles(cfg: DictConfig, roles: list[str]) -> None:
    """per_model and pipeline.serving may only name models the pipeline declares."""
    for where, node in (
        ("per_model", cfg.per_model),
        ("pipeline.serving", cfg.pipeline.get("serving")),
    ):
        if node is None:
            continue
        if not isinstance(node, DictConfig):
            raise UserError(f"{where} must map model roles to Triton knobs, got {node!r}")
        unknown = sorted(set(node) - set(roles))
        if unknown:
            raise UserError(f"{where}: unknown model role(s) {unknown}; this pipeline has {roles}")


def serving_for(cfg: DictConfig, role: str, default_kind: str) -> Serving:
    """The Serving of one model role, validated: the top-level knobs, then what the pipeline
    declares for the role (pipeline.serving.<role>), then per_model.<role> from the user."""
    defaults = {
        "max_batch_size": cfg.max_batch_size,
        "dynamic_batching": cfg.dynamic_batching,
        "instance_group": cfg.instance_group,
    }
    declared = (cfg.pipeline.get("serving") or {}).get(role) or {}
    node = OmegaConf.merge(OmegaConf.create(defaults), declared, cfg.per_model.get(role) or {})
    where = (
        f"per_model.{role}"
        if role in cfg.per_model
        else f"pipeline.serving.{role}"
        if declared
        else ""
    )
    settings = typed(ServingConfig, node, where)
    where = f"{where}." if where else ""
    check_number(f"{where}max_batch_size", settings.max_batch_size, at_least=1, at_most=INT32_MAX)
    batching = settings.dynamic_batching
    check_number(
        f"{where}dynamic_batching.max_queue_delay_us",
        batching.max_queue_delay_us,
        at_least=0,
        at_most=MAX_QUEUE_DELAY_US,
        unit="microseconds",
    )
    for size in batching.preferred_batch_size:
        require(
            1 <= size <= settings.max_batch_size,
            f"{where}dynamic_batching.preferred_batch_size {size} must be between 1 and "
            f"max_batch_size ({settings.max_batch_size})",
        )
    group = settings.instance_group
    check_number(f"{where}instance_group.count", group.count, at_least=1, at_most=INT32_MAX)
    kind = group.kind or default_kind
    require(kind in INSTANCE_KINDS, f"{where}instance_group.kind must be one of {INSTANCE_KINDS}")
    return Serving(
        max_batch_size=settings.max_batch_size,
        dynamic_batching=DynamicBatching(
            tuple(batching.preferred_batch_size), batching.max_queue_delay_us
        )
        if batching.enabled
        else None,
        instance_count=group.count,
        instance_kind=kind,
    )
