"""Per-model Triton knobs: the top-level defaults with per_model.<role> overrides on top."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from modelrepo_gen.config_schema import ServingConfig
from modelrepo_gen.errors import UserError
from modelrepo_gen.plan import DynamicBatching, Serving
from modelrepo_gen.validation import require, typed

INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU")


def check_roles(cfg: DictConfig, roles: list[str]) -> None:
    unknown = sorted(set(cfg.per_model) - set(roles))
    if unknown:
        raise UserError(f"per_model: unknown model role(s) {unknown}; this pipeline has {roles}")


def serving_for(cfg: DictConfig, role: str, default_kind: str) -> Serving:
    """The Serving of one model role, validated."""
    defaults = {
        "max_batch_size": cfg.max_batch_size,
        "dynamic_batching": cfg.dynamic_batching,
        "instance_group": cfg.instance_group,
    }
    node = OmegaConf.merge(OmegaConf.create(defaults), cfg.per_model.get(role) or {})
    settings = typed(ServingConfig, node, f"per_model.{role}" if role in cfg.per_model else "")
    where = f"per_model.{role}." if role in cfg.per_model else ""
    require(settings.max_batch_size >= 1, f"{where}max_batch_size must be >= 1")
    batching = settings.dynamic_batching
    require(
        batching.max_queue_delay_us >= 0, f"{where}dynamic_batching.max_queue_delay_us must be >= 0"
    )
    for size in batching.preferred_batch_size:
        require(
            1 <= size <= settings.max_batch_size,
            f"{where}dynamic_batching.preferred_batch_size {size} must be between 1 and "
            f"max_batch_size ({settings.max_batch_size})",
        )
    group = settings.instance_group
    require(group.count >= 1, f"{where}instance_group.count must be >= 1")
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
