"""Multirun sweeps: every variant that can be built is built, failures are one line each,
a summary table ends the sweep, and variant folders have flat, safe, deterministic names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers.cli_runs import run_cli
from helpers.project import compose_config

from modelrepo_gen.config.variant_names import variant_dirname
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.repository.manifest import file_hashes

SMALL = "model=quartznet_mini"
EXCLUDED = ["output_dir", "force", "dry_run"]


def save_checkpoint(path: Path) -> Path:
    plan = resolve(compose_config([SMALL]))
    unit = next(u for u in plan.units if u.role == "acoustic_model")
    torch.save(unit.export.make_module().state_dict(), path)
    return path


def assert_complete_repository(repo: Path) -> None:
    manifest = json.loads((repo / "manifest.json").read_text())
    assert manifest["files"] == file_hashes(repo)  # every file there, none missing, none extra
    for name in manifest["models"]:
        assert (repo / name / "config.pbtxt").is_file()
        assert (repo / name / "1").is_dir()


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_failed_variant_does_not_stop_the_sweep(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    first = save_checkpoint(tmp_path / "data" / "first.pt")
    third = save_checkpoint(tmp_path / "data" / "third.pt")
    missing = tmp_path / "data" / "missing.pt"
    out = tmp_path / "out"
    result = run_cli(
        "-m", SMALL, f"model.checkpoint={first},{missing},{third}", f"output_dir={out}"
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert error_lines(result) == [
        f"error: variant #1 ({SMALL} model.checkpoint={missing}): "
        f"model.checkpoint: no such file: {missing}"
    ]
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2  # nothing for the failed variant, no staging leftovers
    for folder, checkpoint in zip(folders, (first, third), strict=True):
        assert re.fullmatch(rf"model.checkpoint={checkpoint.name}-[0-9a-f]{{8}},{SMALL}", folder)
        assert_complete_repository(out / folder)
        weights = json.loads((out / folder / "manifest.json").read_text())["weights"]
        assert weights["asr_quartznet_acoustic_model"]["path"] == str(checkpoint)

    summary = result.stdout[result.stdout.index("Sweep: 2 of 3 variants built") :].splitlines()
    rows = [line.split(maxsplit=3) for line in summary[2:]]
    assert [row[:3] for row in rows] == [
        ["0", f"model.checkpoint={first}", "built"],
        ["1", f"model.checkpoint={missing}", "failed"],
        ["2", f"model.checkpoint={third}", "built"],
    ]
    assert rows[0][3] == str(out / folders[0]) and rows[2][3] == str(out / folders[1])
    assert rows[1][3] == f"model.checkpoint: no such file: {missing}"


def test_failed_variant_keeps_a_folder_that_was_already_there(tmp_path) -> None:
    out = tmp_path / "out"
    taken = out / f"{SMALL},seed=1"
    taken.mkdir(parents=True)
    (taken / "notes.txt").write_text("keep me")
    result = run_cli("-m", SMALL, "seed=1,2", f"output_dir={out}")
    assert result.returncode == 2
    assert len(error_lines(result)) == 1 and "already exists" in error_lines(result)[0]
    assert (taken / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [taken.name, f"{SMALL},seed=2"]
    assert_complete_repository(out / f"{SMALL},seed=2")


def test_dry_run_sweep_plans_every_variant_and_leaves_no_folders(tmp_path) -> None:
    out = tmp_path / "out"
    result = run_cli("-m", SMALL, "precision=fp16,fp32", f"output_dir={out}", "dry_run=true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Build plan for pipeline asr_quartznet") == 2
    assert "Sweep: 2 of 2 variants planned" in result.stdout
    assert not [p for p in out.iterdir() if p.is_dir()]


def test_sweep_whose_variant_does_not_compose_stops_before_any_work(tmp_path) -> None:
    out = tmp_path / "out"
    result = run_cli("-m", SMALL, "precision=fp16,fp8", f"output_dir={out}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: In 'config': Could not find 'precision/fp8' (known options: fp16, fp32, int8)"
    ]
    assert not out.exists() or not [p for p in out.iterdir() if p.is_dir()]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["pipeline=asr_quartznet", "precision=fp16"], "pipeline=asr_quartznet,precision=fp16"),
        (["precision=fp16", "output_dir=/srv/x", "force=true"], "precision=fp16"),
        (
            ["+per_model.acoustic_model.max_batch_size=4"],
            "+per_model.acoustic_model.max_batch_size=4",
        ),
        ([], "default"),
    ],
)
def test_plain_values_keep_their_readable_names(overrides, expected) -> None:
    assert variant_dirname(overrides, EXCLUDED) == expected


@pytest.mark.parametrize(
    "value",
    [
        "/data/good.pt",
        "/data/good.pt/",
        "../up/good.pt",
        "'/a b/c d.pt'",
        "[2,4]",
        "..",
        "/",
        "x" * 300,
    ],
)
def test_any_value_gives_one_flat_safe_deterministic_name(value) -> None:
    name = variant_dirname([f"model.checkpoint={value}", SMALL], EXCLUDED)
    assert name == variant_dirname([SMALL, f"model.checkpoint={value}"], EXCLUDED)
    assert "/" not in name and "\\" not in name and len(name) <= 200
    assert re.fullmatch(r"[A-Za-z0-9_.+=,~@-]+", name)
    assert name.startswith("model.checkpoint=") and name.endswith(f",{SMALL}")
    other = variant_dirname([f"model.checkpoint={value}x", SMALL], EXCLUDED)
    assert other != name  # the hash tells apart values that read alike


def test_path_values_read_as_their_file_name() -> None:
    a = variant_dirname(["model.checkpoint=/data/a/good.pt"], EXCLUDED)
    b = variant_dirname(["model.checkpoint=/data/b/good.pt"], EXCLUDED)
    assert re.fullmatch(r"model.checkpoint=good.pt-[0-9a-f]{8}", a) and a != b
