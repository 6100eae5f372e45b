"""Multirun sweeps: every variant that can be built is built, each failure is one line.

Hydra's basic launcher runs the variants one after another in this process. A variant's error
stays inside that variant (`run_variant` reports it and returns) so the later variants still
run, Hydra prints nothing of its own, and the command line ends with one summary table
(`SweepReport.summary`) and a non-zero exit if any variant failed.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from modelrepo_gen.config.hydra_errors import CONFIG_ERRORS, describe_config_error
from modelrepo_gen.config.variant_names import override_key
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.interrupts import BuildInterrupted

EXIT_USER_ERROR = 2  # as for a single build
EXIT_BUG = 1  # a variant raised something that is not the user's doing (traceback printed)
EXIT_INTERRUPTED = 130


@dataclass
class VariantResult:
    number: int
    overrides: list[str]  # all of them: the summary shows those that differ between variants
    named_by: list[str]  # those that name its folder (not output_dir, force, ...)
    folder: Path
    error: str | None = None  # None: built (or planned, in a dry run)
    bug: bool = False
    dry_run: bool = False

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "planned" if self.dry_run else "built"


@dataclass
class SweepReport:
    results: list[VariantResult] = field(default_factory=list)
    interrupted: bool = False
    interrupted_exit_code: int = EXIT_INTERRUPTED  # 128 + the signal's number

    def exit_code(self) -> int:
        if self.interrupted:
            return self.interrupted_exit_code
        if any(r.bug for r in self.results):
            return EXIT_BUG
        if any(r.error for r in self.results):
            return EXIT_USER_ERROR
        return 0

    def summary(self) -> str:
        from modelrepo_gen.assembly.render import (
            ENVIRONMENT,  # loads Triton's schema: only when needed
        )

        rows = [(str(r.number), _label(r, self.results), r) for r in self.results]
        headers = ("#", "variant")
        widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
        return ENVIRONMENT.get_template("sweep_summary.txt.j2").render(
            rows=rows,
            widths=widths,
            done=sum(r.error is None for r in self.results),
            dry_run=any(r.dry_run for r in self.results),
            interrupted=self.interrupted,
        )


def _label(result: VariantResult, results: list[VariantResult]) -> str:
    """The overrides that tell this variant apart from the others (all of them if none do)."""
    shared = set.intersection(*(set(r.overrides) for r in results)) if len(results) > 1 else set()
    own = [o for o in result.overrides if o not in shared]
    return " ".join(own or result.named_by or result.overrides)


def _remove_if_empty(folder: Path) -> None:
    """Hydra creates a variant's folder before the build runs; a failed build leaves it empty."""
    try:
        folder.rmdir()  # only ever removes an empty folder: nothing of the user's is lost
    except OSError:
        pass


def run_variant(
    report: SweepReport, cfg: DictConfig, build: Callable[[DictConfig, Path], None]
) -> bool:
    """Build one variant of a sweep into its own folder; True if it was built."""
    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir).resolve()
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    named_by = [o for o in overrides if override_key(o) not in excluded]
    result = VariantResult(int(hydra_cfg.job.num), overrides, named_by, folder)
    result.dry_run = bool(cfg.dry_run)
    try:
        build(cfg, folder)
    except BuildInterrupted as exc:  # SIGINT/SIGTERM/SIGHUP: the sweep stops, with a summary
        report.interrupted, report.interrupted_exit_code = True, exc.exit_code
        result.error = str(exc)
        report.results.append(result)
        # Raised as KeyboardInterrupt: Hydra passes it through without a line of its own.
        raise KeyboardInterrupt from None
    except UserError as exc:
        result.error = str(exc)
    except CONFIG_ERRORS as exc:  # e.g. an interpolation only this variant's values break
        result.error = describe_config_error(exc)
    except Exception as exc:  # a bug: show it, and still build the other variants
        traceback.print_exc()
        result.error, result.bug = f"{type(exc).__name__}: {exc}", True
    except KeyboardInterrupt:  # Ctrl-C: the sweep stops, with a summary of what was done
        report.interrupted = True
        result.error = "interrupted"
        report.results.append(result)
        raise
    finally:
        if result.error is not None or result.dry_run or report.interrupted:
            _remove_if_empty(folder)
    report.results.append(result)
    if result.error is not None:
        named_by = " ".join(result.named_by)
        print(f"error: variant #{result.number} ({named_by}): {result.error}", file=sys.stderr)
    return result.error is None
