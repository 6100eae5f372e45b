"""Runs a build plan: export, verify, render, check the wiring, write the repository."""

from __future__ import annotations

import copy
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from modelrepo_gen.archive.write import (
    REPOSITORY,
    archive_request,
    check_archive_path,
    publish_archive,
    stage_archive,
)
from modelrepo_gen.assembly.export_cache import export_key, reuse_previous
from modelrepo_gen.assembly.imported_checks import check_imported
from modelrepo_gen.assembly.parity import check_parity
from modelrepo_gen.assembly.render import (
    parse_model_config,
    render_ensemble_config,
    render_model_config,
)
from modelrepo_gen.assembly.renderings import render_others
from modelrepo_gen.assembly.repository_readme import README, render_repository_readme
from modelrepo_gen.assembly.wiring import check_ensemble
from modelrepo_gen.components.triton_python import model_code
from modelrepo_gen.core.build_plan import MODEL_VERSION, BuildPlan, ModelUnit
from modelrepo_gen.exporters import EXPORTERS
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.repository.manifest import file_sha256, write_manifest
from modelrepo_gen.repository.publish import (
    check_output_dir,
    check_output_location,
    publish,
    staging_folder,
    written_all_or_nothing,
)

log = logging.getLogger("modelrepo_gen")


@dataclass
class BuildReport:
    repository: Path
    plan: BuildPlan
    seconds: dict[str, float] = field(default_factory=dict)  # step -> wall time


def _export_unit(unit: ModelUnit, version_dir: Path, cfg: DictConfig, report: BuildReport) -> dict:
    export = unit.export
    assert export is not None and unit.artifact is not None
    exporter = EXPORTERS.get(export.exporter)
    shapes = [
        (int(s.batch), float(s.seconds), None if s.get("tokens") is None else int(s.tokens))
        for s in cfg.parity_shapes
    ]
    artifact = version_dir / unit.artifact
    if export.imported is not None:
        return _import_unit(unit, artifact, shapes, cfg, report)
    module = export.make_module()
    key = export_key(export, module, {"parity_shapes": shapes, "seed": int(cfg.seed)})
    if cfg.force and (
        previous := reuse_previous(report.repository, unit.name, unit.artifact, key, artifact)
    ):
        log.info(
            "%s: unchanged, reusing its %s export and parity figures", unit.name, export.exporter
        )
        return previous
    started = time.perf_counter()
    # Export from a copy: an exporter must not be able to change the module parity runs on.
    batch, seconds, tokens = shapes[0]
    example = export.make_inputs(batch, seconds, int(cfg.seed), tokens)
    exporter.export(
        copy.deepcopy(module), example, export.inputs, export.outputs, export.precision, artifact
    )
    report.seconds[f"export {unit.name}"] = time.perf_counter() - started
    started = time.perf_counter()
    results = check_parity(unit, module, exporter, artifact, shapes, int(cfg.seed))
    report.seconds[f"parity {unit.name}"] = time.perf_counter() - started
    worst = max(r.relative_error for r in results)
    log.info(
        "%s: %s %s export, parity %.2e (tolerance %g)",
        unit.name,
        export.exporter,
        export.precision,
        worst,
        export.tolerance,
    )
    return {
        "export_key": key,
        "format": export.exporter,
        "precision": export.precision,
        "tolerance": export.tolerance,
        "parity": [r.as_dict() for r in results],
    }


def _import_unit(
    unit: ModelUnit, artifact: Path, shapes: list, cfg: DictConfig, report: BuildReport
) -> dict:
    """A network exported elsewhere: written as served, then checked without PyTorch."""
    export = unit.export
    assert export is not None and export.imported is not None
    started = time.perf_counter()
    export.imported(artifact)
    results = check_imported(unit, artifact, shapes, int(cfg.seed))
    report.seconds[f"import {unit.name}"] = time.perf_counter() - started
    worst = max(r.relative_error for r in results)
    log.info("%s: imported %s, batch invariance %.2e", unit.name, export.exporter, worst)
    return {
        "format": export.exporter,
        "imported": True,
        "tolerance": export.tolerance,
        "batch_invariance": [r.as_dict() for r in results],
    }


def _write_models(
    staging: Path,
    cfg: DictConfig,
    plan: BuildPlan,
    write_network: Callable[[ModelUnit, Path], dict],
) -> None:
    """Configure every model of `plan` into `staging`, with its manifest; `write_network`
    writes a unit's network into its version folder and returns its manifest entry."""
    models, parsed = {}, {}
    for unit in plan.units:
        version_dir = staging / unit.name / MODEL_VERSION
        version_dir.mkdir(parents=True)
        entry = {"platform": unit.platform, "role": unit.role}
        if unit.export:
            entry.update(write_network(unit, version_dir))
        if unit.component:  # model.py and the modules it imports
            for file_name, source in model_code(unit.component).items():
                shutil.copyfile(source, version_dir / file_name)
        for file_name, source in sorted(unit.files.items()):
            shutil.copyfile(source, version_dir / file_name)
        text = render_model_config(unit, plan.pipeline)
        parsed[unit.name] = parse_model_config(text, unit.name)
        (staging / unit.name / "config.pbtxt").write_text(text)
        models[unit.name] = entry
    ensemble = plan.endpoint
    (staging / ensemble.name / MODEL_VERSION).mkdir(parents=True)  # Triton needs a version folder
    text = render_ensemble_config(ensemble, plan.pipeline)
    check_ensemble(parse_model_config(text, ensemble.name), parsed)
    (staging / ensemble.name / "config.pbtxt").write_text(text)
    models[ensemble.name] = {"platform": "ensemble", "role": "ensemble"}
    (staging / README).write_text(render_repository_readme(plan))
    weights = copy.deepcopy(plan.weights)
    for source in weights.values():
        if source.get("path"):
            source["sha256"] = file_sha256(Path(source["path"]))
    config = OmegaConf.to_container(cfg, resolve=True)
    write_manifest(staging, config, plan.notes, weights, models)


def build_repository(cfg: DictConfig, repository: Path) -> BuildReport:
    """Build the repository described by `cfg` at `repository`, all or nothing.

    With `archive=PATH` the repository goes into that one archive file instead, and
    `repository` is not touched. SIGINT, SIGTERM and SIGHUP end it with BuildInterrupted,
    nothing written; an OSError met writing becomes a UserError naming the path and the cause.
    """
    started = time.perf_counter()
    archive = archive_request(cfg)  # its key is read before any work
    plan = resolve(cfg)
    written = archive.path if archive else repository
    if archive is None:
        check_output_location(cfg.output_dir, repository)
    force = bool(cfg.force)
    with written_all_or_nothing(written) as interrupts:
        if archive:
            check_archive_path(archive.path, force)
        else:
            check_output_dir(repository, force)
        for note in plan.notes:
            log.warning(note)
        report = BuildReport(repository=written, plan=plan)
        with staging_folder(written) as staging:

            def export(unit: ModelUnit, version_dir: Path) -> dict:
                return _export_unit(unit, version_dir, cfg, report)

            if archive is None:
                _write_models(staging, cfg, plan, export)
                with interrupts.held(repository):
                    publish(staging, repository, force)
            else:
                (staging / REPOSITORY).mkdir()
                _write_models(staging / REPOSITORY, cfg, plan, export)
                started_others = time.perf_counter()
                others = render_others(cfg, staging / REPOSITORY, plan, staging, _write_models)
                report.seconds["other renderings"] = time.perf_counter() - started_others
                staged = stage_archive(staging / REPOSITORY, staging, archive, cfg, others)
                with interrupts.held(archive.path):
                    publish_archive(staged, archive.path, force)
    report.seconds["total"] = time.perf_counter() - started
    if archive is None:
        log.info("repository written to %s (%.1f s)", repository, report.seconds["total"])
    else:
        log.info(
            "%s archive written to %s (%.1f MiB, %.1f s)",
            "encrypted" if archive.key is not None else "plain",
            archive.path,
            archive.path.stat().st_size / 2**20,
            report.seconds["total"],
        )
    return report
