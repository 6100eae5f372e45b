"""The build command behind `python -m modelrepo_gen`.

Run through __main__.py, which imports this module (and with it torch and Hydra) only once its
signal handling is in place.
"""

from __future__ import annotations

import sys
from pathlib import Path
from signal import SIGINT
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from modelrepo_gen.assembly.sweep import SweepReport, run_variant
from modelrepo_gen.config.hydra_errors import (
    CONFIG_ERRORS,
    describe_config_error,
    errors_reach_caller,
    full_error_requested,
)
from modelrepo_gen.config.schema import register_schema
from modelrepo_gen.config.variant_names import register_resolver
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.resources import project_folder
from modelrepo_gen.repository.interrupts import (
    BuildInterrupted,
    Interrupted,
    raise_on_signals,
)

CONF = project_folder("conf")
EXIT_CONFIG_ERROR = 1  # Hydra's own checks (composition, override syntax), as Hydra exits
EXIT_BUILD_ERROR = 2

register_schema()
register_resolver()

# The variants of a multirun sweep run one after another in this process (basic launcher).
SWEEP = SweepReport()


def repository_path(cfg: DictConfig) -> Path:
    """output_dir; in a multirun sweep, each variant's own folder under it."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.runtime.output_dir).resolve()
    return Path(cfg.output_dir).expanduser().resolve()


def build_or_describe(cfg: DictConfig, repository: Path) -> None:
    # Imported here so `--help` and `--cfg job` stay fast.
    from modelrepo_gen.assembly.describe import describe_plan
    from modelrepo_gen.assembly.run import build_repository
    from modelrepo_gen.plan.resolver import resolve

    if cfg.archive and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise UserError(
            "archive= names one file, and a sweep builds several variants: build each variant "
            "with its own archive=PATH"
        )
    if cfg.dry_run:
        print(describe_plan(resolve(cfg), repository))
        return
    build_repository(cfg, repository)


# Set once Hydra hands a composed config to `run`: an exception escaping before that is Hydra's
# own refusal of the command line, after it a bug in the build.
_task_started = False


# An absolute path: from a module other than __main__, Hydra reads "../conf" as a package.
@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
def run(cfg: DictConfig) -> None:
    global _task_started
    _task_started = True
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        # Hydra writes each variant's folder: a signal must reach run_variant, which removes it
        # and stops the sweep with its summary.
        raise_on_signals()
        run_variant(SWEEP, cfg, build_or_describe)
        return
    # Ended here, not raised: Hydra would add a line of its own before the error.
    try:
        build_or_describe(cfg, repository_path(cfg))
    except UserError as exc:
        _fail(str(exc), exc.exit_code)  # 2, or 128 + N after signal N
    except CONFIG_ERRORS as exc:  # e.g. an interpolation that only resolves at build time
        _fail(describe_config_error(exc), EXIT_BUILD_ERROR)


def _fail(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    global _task_started, SWEEP
    # main() may run again in one process (tests/helpers/cli_runs.py): nothing carries over.
    _task_started, SWEEP = False, SweepReport()
    try:
        with errors_reach_caller():
            run()
    except (KeyboardInterrupt, BuildInterrupted) as exc:
        # In a sweep (see raise_on_signals); a plain KeyboardInterrupt when called in-process.
        code = getattr(exc, "exit_code", 128 + SIGINT)
        if not SWEEP.results:
            _fail(str(exc) or str(BuildInterrupted(code - 128)), code)
        if not SWEEP.interrupted or isinstance(exc, Interrupted):  # e.g. between variants
            SWEEP.interrupted, SWEEP.interrupted_exit_code = True, code
    except Exception as exc:
        if full_error_requested() or (_task_started and not isinstance(exc, CONFIG_ERRORS)):
            raise
        _fail(describe_config_error(exc), EXIT_CONFIG_ERROR)
    if SWEEP.results or SWEEP.interrupted:
        print(SWEEP.summary(), end="")
        sys.exit(SWEEP.exit_code())
