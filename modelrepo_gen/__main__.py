"""Command line: python -m modelrepo_gen [pipeline=NAME] [group=option ...] [key=value ...]"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from modelrepo_gen.config_schema import register_schema
from modelrepo_gen.errors import UserError

register_schema()


def repository_path(cfg: DictConfig) -> Path:
    """output_dir; in a multirun sweep, each variant's own folder under it."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.runtime.output_dir).resolve()
    return Path(cfg.output_dir).expanduser().resolve()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def run(cfg: DictConfig) -> None:
    # Imported here so `--help` and `--cfg job` stay fast.
    from modelrepo_gen.build import build_repository
    from modelrepo_gen.describe import describe_plan
    from modelrepo_gen.resolver import resolve

    try:
        if cfg.dry_run:
            print(describe_plan(resolve(cfg), repository_path(cfg)))
            return
        build_repository(cfg, repository_path(cfg))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def main() -> None:
    run()


if __name__ == "__main__":
    main()
