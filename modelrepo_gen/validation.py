"""Turns config sections into typed dataclasses, with one clear line for what does not fit."""

from __future__ import annotations

from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from modelrepo_gen.errors import UserError

T = TypeVar("T")


def typed(schema: type[T], node: Any, where: str) -> T:
    """Merge `node` over `schema`'s defaults and return the dataclass instance."""
    try:
        # Resolve first: interpolations point into the whole config, which a merge would lose.
        merged = OmegaConf.merge(OmegaConf.structured(schema), plain(node))
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        reason = str(exc).splitlines()[0]
        label = ".".join(part for part in (where, key) if part) or "config"
        raise UserError(f"{label}: {reason}") from None


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def plain(node: DictConfig | Any) -> Any:
    """The resolved plain-Python form of a config node."""
    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node
