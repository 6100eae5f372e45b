"""Hydra's own errors (config composition, override syntax) as one line.

Hydra reports these itself, in `run_and_report` (hydra/_internal/utils.py): several lines of
search paths and object types, then exit 1. Its one documented switch is HYDRA_FULL_ERROR=1,
under which it re-raises the exception instead of printing it. The command line sets that
switch around `hydra.main` (`errors_reach_caller`), so every error reaches it as an exception
it can print as one line; the full traceback is shown only when the user set the variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import yaml
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from modelrepo_gen.core.validation import user_error_within

FULL_ERROR = "HYDRA_FULL_ERROR"

# Errors of the config itself: composition, override syntax, interpolation.
CONFIG_ERRORS = (HydraException, OmegaConfBaseException, yaml.YAMLError)


def full_error_requested() -> bool:
    """The user asked Hydra for complete tracebacks (as Hydra itself reads the variable)."""
    return os.environ.get(FULL_ERROR) == "1"


@contextmanager
def errors_reach_caller() -> Iterator[None]:
    """Within: Hydra raises its errors instead of printing them and exiting."""
    previous = os.environ.get(FULL_ERROR)
    os.environ[FULL_ERROR] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[FULL_ERROR]
        else:
            os.environ[FULL_ERROR] = previous


def _first_line(text: str) -> str:
    """The first line, with the next one when it only announces it ('... composing config:')."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


def _known_keys(error: OmegaConfBaseException) -> list[str]:
    parent = getattr(error, "parent_node", None)
    if not isinstance(parent, DictConfig):
        return []
    return sorted(str(k) for k in parent.keys() if k != "hydra")  # hydra: Hydra's own node


def describe_config_error(error: BaseException) -> str:
    """One line: what Hydra or OmegaConf refused, and the valid choices where they are known."""
    if isinstance(error, yaml.YAMLError):  # a config file that is not valid YAML: say where
        return "invalid YAML: " + " ".join(str(error).split())
    if isinstance(error, OverrideParseException):
        return f"cannot parse override '{error.override}': {_first_line(error.message)}"
    line = _first_line(str(error)).rstrip(".")
    if isinstance(error, MissingConfigException) and error.options:
        return f"{line} (known options: {', '.join(error.options)})"
    if found := user_error_within(error):  # a resolver's (e.g. a .nemo file it cannot read)
        return str(found)
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        line = f"{line}: {_first_line(str(cause))}"
        error = cause
    if isinstance(error, (ConfigAttributeError, ConfigKeyError)) and (keys := _known_keys(error)):
        line = f"{line} (known keys: {', '.join(keys)})"
    full_key = getattr(error, "full_key", None)
    if full_key and full_key not in line:  # name the config key, e.g. a broken interpolation
        line = f"{full_key}: {line}"
    return line
