"""Bad input gets one clear line, a non-zero exit, no traceback, and nothing written or lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import torch
from helpers.cli_runs import run_cli, run_many
from helpers.project import CONF, ROOT, compose_config

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve

PIPELINES = sorted(path.stem for path in (CONF / "pipeline").glob("*.yaml"))  # Hydra's order
SMALL = ["model=quartznet_mini"]


def assert_clean_failure(result, *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    for text in expected:
        assert text in result.stderr + result.stdout, result.stderr


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("existing") / "repo"
    build_repository(compose_config(SMALL), repo)
    return repo


BAD_CONFIGS = [
    (["pipeline=asr_nonexistent"], "asr_nonexistent"),
    (["max_batch_size=abc"], "max_batch_size"),
    (["max_batch_siz=4"], "max_batch_siz"),
    (["dynamic_batching.max_queue_delay_us=soon"], "max_queue_delay_us"),
    (["precision=fp8"], "fp8"),
    (["backend=openvino"], "unknown backend 'openvino'"),
    (["max_batch_size=-2"], "max_batch_size must be >= 1"),
    (["instance_group.count=0"], "instance_group.count must be >= 1"),
    (["dynamic_batching.max_queue_delay_us=-5"], "max_queue_delay_us must be >= 0"),
    (["dynamic_batching.preferred_batch_size=[16]"], "preferred_batch_size 16"),
    (["+per_model.acoustic_modle.max_batch_size=4"], "unknown model role"),
    (["+per_model.acoustic_model.max_batch_size=x"], "per_model.acoustic_model.max_batch_size"),
    (["model.blocks.0.kernel=big"], "model.blocks"),
    (["model.feat_in=80"], "but acoustic_model.FEATURES expects TYPE_FP32 [80, -1]"),
    (["backend=tensorrt"], "backend=tensorrt needs target=gpu"),
    (["instance_group.kind=KIND_GPU"], "KIND_GPU, but target=cpu serves on the CPU"),
    (["instance_group.kind=KIND_TPU"], "instance_group.kind must be one of"),
    (["backend=tensorrt", "target=gpu"], "cannot build an engine on this machine"),
    (["backend=torchscript", "precision=fp16"], "needs an NVIDIA GPU"),
]

# Hydra's own refusals of the command line: exit 1, one line, as the CLI rewords them.
HYDRA_REFUSALS = [
    (
        ["pipeline=asr_nonexistent"],
        "In 'config': Could not find 'pipeline/asr_nonexistent'"
        f" (known options: {', '.join(PIPELINES)})",
    ),
    (["+recipe=nope"], "(known options: low_latency, smoke, throughput_fp16)"),
    (["precision=fp8"], "Could not find 'precision/fp8' (known options: fp16, fp32, int8)"),
    (["hydra/launcher=nope"], "Could not find 'hydra/launcher/nope' (known options: basic)"),
    (
        ["max_batch_siz=4"],
        "Could not override 'max_batch_siz': Key 'max_batch_siz' not in 'BuildConfig'"
        " (known keys: archive, archive_key_env, archive_key_file, archive_python, backend,",
    ),
    (
        ["dynamic_batching.max_queue_dela=5"],
        "(known keys: enabled, max_queue_delay_us, preferred_batch_size)",
    ),
    (
        ["max_batch_size=abc"],
        "Error merging override max_batch_size=abc:"
        " Value 'abc' of type 'str' could not be converted to Integer",
    ),
    (["precision.parity_tolerance=tight"], "could not be converted to Float"),
    (["max_batch_size=[1"], "cannot parse override 'max_batch_size=[1': no viable alternative"),
    (["=5"], "Config group override must be a string or a list"),
    (["--config-dir", "/nonexistent/conf"], "config directory '/nonexistent/conf' not found"),
    (["--config-name", "nope"], "Cannot find primary config 'nope'"),
    (["--cfg", "job", "max_batch_siz=4"], "Could not override 'max_batch_siz'"),
]


@pytest.fixture(scope="module")
def refusals(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, list[tuple[CompletedProcess, Path]]]:
    """Every row of both tables run once through the command line's entry point, all in one
    interpreter (tests/helpers/cli_runs.py); each row builds into its own folder, which must
    stay empty."""
    root = tmp_path_factory.mktemp("refusals")
    rows = {
        "config": [[*SMALL, *overrides] for overrides, _ in BAD_CONFIGS],
        "hydra": [[*args, *SMALL] for args, _ in HYDRA_REFUSALS],
    }
    runs, folders = [], []
    for table, argument_lists in rows.items():
        for i, args in enumerate(argument_lists):
            folder = root / f"{table}{i}"
            folder.mkdir()
            folders.append(folder)
            runs.append([*args, f"output_dir={folder / 'repo'}"])
    outcomes = list(zip(run_many(runs, ROOT), folders, strict=True))
    return {"config": outcomes[: len(BAD_CONFIGS)], "hydra": outcomes[len(BAD_CONFIGS) :]}


@pytest.mark.parametrize("row", range(len(BAD_CONFIGS)), ids=[e for _, e in BAD_CONFIGS])
def test_bad_config_is_refused_before_any_work(refusals, row: int) -> None:
    result, folder = refusals["config"][row]
    assert_clean_failure(result, BAD_CONFIGS[row][1])
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("row", range(len(HYDRA_REFUSALS)), ids=[e for _, e in HYDRA_REFUSALS])
def test_hydra_refusal_is_one_line_with_exit_code_1(refusals, row: int) -> None:
    result, folder = refusals["hydra"][row]
    assert result.returncode == 1
    assert result.stdout == ""
    stderr = result.stderr
    assert stderr.splitlines() == [stderr.strip()]  # exactly one line
    assert stderr.startswith("error: ") and HYDRA_REFUSALS[row][1] in stderr, stderr
    assert list(folder.iterdir()) == []


def test_hydra_full_error_shows_the_whole_story(tmp_path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "modelrepo_gen", "pipeline=asr_nonexistent"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "Available options in 'pipeline'" in result.stderr


def test_help_still_works() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and f"pipeline: {', '.join(PIPELINES)}" in result.stdout


def test_existing_output_dir_needs_force_and_is_left_untouched(existing: Path) -> None:
    before = snapshot(existing)
    result = run_cli(*SMALL, "seed=3", f"output_dir={existing}")
    assert_clean_failure(result, "already exists", "force=true")
    assert snapshot(existing) == before


def test_force_replaces_a_repository(tmp_path) -> None:
    repo = tmp_path / "repo"
    build_repository(compose_config(SMALL), repo)
    before = snapshot(repo)
    build_repository(compose_config([*SMALL, "seed=5", "force=true"]), repo)
    assert snapshot(repo) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging leftovers


def test_force_refuses_a_folder_that_is_not_a_repository(tmp_path) -> None:
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a repository built by modelrepo_gen"):
        build_repository(compose_config([*SMALL, "force=true"]), precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_parity_failure_names_the_model_and_keeps_the_previous_repository(existing: Path) -> None:
    before = snapshot(existing)
    result = run_cli(
        *SMALL, "precision.parity_tolerance=0.0", "force=true", f"output_dir={existing}"
    )
    assert_clean_failure(result, "parity check failed for model 'asr_quartznet_feature_extractor'")
    assert snapshot(existing) == before
    assert sorted(p.name for p in existing.parent.iterdir()) == ["repo"]


def test_missing_checkpoint(tmp_path) -> None:
    result = run_cli(
        *SMALL, f"model.checkpoint={tmp_path / 'nope.pt'}", f"output_dir={tmp_path / 'r'}"
    )
    assert_clean_failure(result, "model.checkpoint: no such file")


def test_corrupt_checkpoint(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    result = run_cli(*SMALL, f"model.checkpoint={bad}", f"output_dir={tmp_path / 'r'}")
    assert_clean_failure(result, "is not a PyTorch checkpoint (it looks like a text file)")
    assert not (tmp_path / "r").exists()


def acoustic_state(overrides: list[str]) -> dict[str, torch.Tensor]:
    plan = resolve(compose_config(overrides))
    unit = next(u for u in plan.units if u.role == "acoustic_model")
    return unit.export.make_module().state_dict()


def test_mismatched_checkpoint_lists_missing_unexpected_and_misshaped(tmp_path) -> None:
    state = acoustic_state(SMALL)
    state["extra.weight"] = torch.zeros(1)
    del state["classifier.bias"]
    state["classifier.weight"] = torch.zeros(7, 64, 1)
    path = tmp_path / "mismatch.pt"
    torch.save(state, path)
    result = run_cli(*SMALL, f"model.checkpoint={path}", f"output_dir={tmp_path / 'r'}")
    assert_clean_failure(
        result,
        "does not fit model 'quartznet_mini'",
        "missing: classifier.bias",
        "unexpected: extra.weight",
        "mis-shaped: classifier.weight (checkpoint [7, 64, 1], model [29, 64, 1])",
    )


def test_checkpoint_weights_are_used_and_recorded(tmp_path) -> None:
    state = acoustic_state(SMALL)
    state["classifier.bias"] = torch.arange(29, dtype=torch.float32)
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    repo = tmp_path / "repo"
    build_repository(compose_config([*SMALL, f"model.checkpoint={path}"]), repo)
    import json

    manifest = json.loads((repo / "manifest.json").read_text())
    weights = manifest["weights"]["asr_quartznet_acoustic_model"]
    assert weights["source"] == "checkpoint" and len(weights["sha256"]) == 64
    assert not manifest["notes"]
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(repo / "asr_quartznet_acoustic_model/1/model.onnx"))
    biases = [
        numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "classifier.bias"
    ]
    assert biases and biases[0].tolist() == list(range(29))
