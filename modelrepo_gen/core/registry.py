"""Name -> implementation registries, so the resolver never branches on a backend or pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from modelrepo_gen.core.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of implementations; unknown names fail with the list of known ones."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} '{name}' is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise UserError(f"unknown {self.what} '{name}' (known: {known})")
        return self._items[name]
