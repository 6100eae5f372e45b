"""Loads a PyTorch state dict into a module, naming every tensor that does not fit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from modelrepo_gen.errors import UserError

SHOWN = 6  # names listed per kind of mismatch before "and N more"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The tensors of a checkpoint file (a state dict, or a dict holding one under 'state_dict')."""
    if not path.is_file():
        raise UserError(f"model.checkpoint: no such file: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"model.checkpoint {path} is not a readable PyTorch checkpoint: {reason}"
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
    module.load_state_dict(state)
