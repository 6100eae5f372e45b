"""Loads a PyTorch state dict into a module, naming every tensor that does not fit."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.checkpoint_file import check_checkpoint_file, describe_load_failure

SHOWN = 6  # names listed per kind of mismatch before "and N more"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The tensors of a checkpoint file (a state dict, or a dict holding one under 'state_dict')."""
    check_checkpoint_file(path)
    try:
        with warnings.catch_warnings():  # torch warns about legacy formats: one line, not three
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise UserError(
            f"model.checkpoint {path} is not a readable PyTorch checkpoint: "
            f"{describe_load_failure(exc)}"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise UserError(
            f"model.checkpoint {path} holds no state dict (expected a mapping of names to tensors, "
            "or a dict with a 'state_dict' key)"
        )
    return loaded


def load_checkpoint(module: torch.nn.Module, path: Path, what: str) -> None:
    """Load `path` into `module` or fail naming the missing, unexpected and mis-shaped tensors."""
    state = read_state_dict(path)
    check_fits(state, module, path, what)
    module.load_state_dict(state)


def check_fits(
    state: Mapping[str, torch.Tensor], module: torch.nn.Module, path: Path, what: str
) -> None:
    """Raise UserError unless `state` has exactly `module`'s tensors (`module` may be on meta)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{name} (checkpoint {list(state[name].shape)}, model {list(expected[name].shape)})"
        for name in set(state) & set(expected)
        if state[name].shape != expected[name].shape
    )
    problems = [
        f"{label}: {_listed(names)}"
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        )
        if names
    ]
    if problems:
        raise UserError(f"model.checkpoint {path} does not fit {what}: " + "; ".join(problems))
