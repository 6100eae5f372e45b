"""The project's folders, its config composed as the CLI composes it, and repositories combined
for one server."""

from __future__ import annotations

import shutil
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from modelrepo_gen.config.schema import register_schema

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"

register_schema()


def compose_config(overrides: list[str], team_conf: Path | None = None) -> DictConfig:
    """The config the CLI composes from these overrides; with `team_conf`, a team's own config
    folder searched too (as --config-dir or hydra.searchpath add it)."""
    searched = [f"hydra.searchpath=[file://{team_conf}]"] if team_conf else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[*searched, *overrides])


def add_models(repository: Path, combined: Path) -> None:
    """Copy a built repository's model folders into `combined`: several builds, each named by
    its own ensemble, served by one server."""
    combined.mkdir(parents=True, exist_ok=True)
    for folder in repository.iterdir():
        if folder.is_dir():
            shutil.copytree(folder, combined / folder.name)
