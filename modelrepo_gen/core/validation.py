"""Turns config sections into typed dataclasses, with one clear line for what does not fit."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from modelrepo_gen.core.errors import UserError

T = TypeVar("T")


def typed(schema: type[T], node: Any, where: str) -> T:
    """Merge `node` over `schema`'s defaults and return the dataclass instance."""
    try:
        # Resolve first: interpolations point into the whole config, which a merge would lose.
        merged = OmegaConf.merge(OmegaConf.structured(schema), plain(node))
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        reason = str(exc).splitlines()[0]
        key = _locate(plain(node), getattr(exc, "key", None), reason) or getattr(
            exc, "full_key", None
        )
        label = ".".join(part for part in (where, key) if part) or "config"
        raise UserError(f"{label}: {reason}") from None


def _paths(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, leaf) pairs of a plain container; list items as name.0, name.1, ..."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else None
    )
    if items is None:
        return [(prefix, value)]
    return [pair for k, v in items for pair in _paths(v, f"{prefix}.{k}" if prefix else str(k))]


def _locate(container: Any, key: Any, reason: str) -> str | None:
    """The full path of the offending value: OmegaConf loses list indices when it merges."""
    match = re.match(r"Value '(.*)' (of type|is not)", reason)
    candidates = [
        path
        for path, leaf in _paths(container)
        if key is not None
        and path.split(".")[-1] == str(key)
        and (match is None or str(leaf) == match.group(1))
    ]
    return candidates[0] if candidates else None


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def user_error_within(error: BaseException) -> UserError | None:
    """The UserError a resolver raised, which OmegaConf and Hydra wrap in their own errors."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def resolver_errors() -> Iterator[None]:
    """Within: a resolver's UserError surfaces as itself, one clear line."""
    try:
        yield
    except InterpolationResolutionError as exc:
        if found := user_error_within(exc):
            raise found from None
        raise


def plain(node: DictConfig | Any) -> Any:
    """The resolved plain-Python form of a config node."""
    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        with resolver_errors():
            return OmegaConf.to_container(node, resolve=True)
    return node


def check_number(
    label: str,
    value: float,
    *,
    at_least: float | None = None,
    above: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
    unit: str = "",
) -> None:
    """Refuse NaN, infinities and values outside the bounds, saying what is allowed."""
    bounds = [
        (at_least, ">=", lambda v, b: v >= b),
        (above, ">", lambda v, b: v > b),
        (below, "<", lambda v, b: v < b),
        (at_most, "<=", lambda v, b: v <= b),
    ]
    wanted = [(b, op, ok) for b, op, ok in bounds if b is not None]
    allowed = " and ".join(f"{op} {_number(b)}" for b, op, _ in wanted) or "a finite number"
    suffix = f" {unit}" if unit else ""
    if not math.isfinite(value) or not all(ok(value, b) for b, _, ok in wanted):
        raise UserError(f"{label} must be {allowed}{suffix}, got {_number(value)}")


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_range(label: str, value: Any, *, at_least: float = -math.inf) -> tuple[float, float]:
    """A [low, high] pair of finite numbers with at_least <= low <= high, or UserError."""
    pair = list(value) if isinstance(value, list | tuple) else None
    numbers = pair is not None and len(pair) == 2
    numbers = numbers and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pair
    )
    if not numbers or not at_least <= pair[0] <= pair[1]:
        floor = f" with {_number(at_least)} <= low" if math.isfinite(at_least) else ""
        raise UserError(f"{label} must be [low, high]{floor} and low <= high, got {value}")
    return float(pair[0]), float(pair[1])
