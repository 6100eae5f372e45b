"""The Jinja environment every generated text is rendered with (the files under templates/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


def template_environment(folder: Path, filters: dict[str, Callable[[object], str]]) -> Environment:
    """Templates under `folder`: a missing value fails, text is kept as written (no escaping,
    the trailing newline kept)."""
    env = Environment(
        loader=FileSystemLoader(folder),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(filters)
    return env
