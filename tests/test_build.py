"""Building repositories: exports, parity, Triton-schema configs, wiring, manifest, determinism."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from google.protobuf import text_format
from helpers.cli_runs import run_cli
from helpers.project import compose_config
from tritonclient.grpc import model_config_pb2

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.assembly.wiring import check_ensemble
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """One small repository per (pipeline, backend, precision) variant, built once."""
    root = tmp_path_factory.mktemp("repos")
    variants = {
        "jasper_onnx": ["pipeline=asr_jasper", "model=jasper_mini"],
        "quartznet_torchscript": ["model=quartznet_mini", "backend=torchscript"],
        "quartznet_fp16": ["model=quartznet_mini", "precision=fp16"],
    }
    repos = {}
    for name, overrides in variants.items():
        repos[name] = root / name
        build_repository(compose_config(overrides), repos[name])
    return repos


@pytest.mark.parametrize("variant", ["jasper_onnx", "quartznet_torchscript", "quartznet_fp16"])
def test_repository_layout_and_configs_parse(built, variant: str) -> None:
    repo = built[variant]
    pipeline = json.loads((repo / "manifest.json").read_text())["config"]["pipeline"]["name"]
    configs = {p.parent.name: parse(p) for p in repo.glob("*/config.pbtxt")}
    assert set(configs) == {
        pipeline,
        f"{pipeline}_feature_extractor",
        f"{pipeline}_acoustic_model",
        f"{pipeline}_ctc_decoder",
    }
    for name, config in configs.items():
        assert config.name == name
        assert (repo / name / "1").is_dir()
    ensemble = configs.pop(pipeline)
    assert ensemble.platform == "ensemble"
    assert [t.name for t in ensemble.input] == ["AUDIO_SIGNAL", "NUM_SAMPLES"]
    assert [t.name for t in ensemble.output] == ["TRANSCRIPT"]
    check_ensemble(ensemble, configs)
    for name in (f"{pipeline}_feature_extractor", f"{pipeline}_acoustic_model"):
        assert configs[name].backend == "python"
        assert configs[name].instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert (repo / name / "1" / "model.py").is_file()
    logprobs = configs[f"{pipeline}_acoustic_model"].output[0]
    assert list(logprobs.dims) == [-1, 29]
    assert configs[f"{pipeline}_acoustic_model"].input[0].allow_ragged_batch


def test_manifest_records_config_versions_hashes_and_parity(built) -> None:
    repo = built["jasper_onnx"]
    manifest = json.loads((repo / "manifest.json").read_text())
    assert manifest["config"]["model"]["name"] == "jasper_mini"
    assert "output_dir" not in manifest["config"]
    assert manifest["packages"]["torch"].startswith("2.13")
    assert manifest["weights"]["asr_jasper_acoustic_model"] == {"source": "random", "seed": 0}
    assert any("random weights" in note for note in manifest["notes"])
    files = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"manifest.json"}
    parity = manifest["models"]["asr_jasper_acoustic_model"]["parity"]
    assert {(p["batch"], p["seconds"]) for p in parity} == {(1, 1.3), (3, 2.7)}
    assert all(p["relative_error"] <= 1e-4 for p in parity)


def test_exported_onnx_matches_pytorch_at_a_new_shape(built) -> None:
    """Beyond the build's own check: a batch and length it never saw."""
    repo = built["jasper_onnx"]
    cfg = compose_config(["pipeline=asr_jasper", "model=jasper_mini"])
    units = {u.role: u for u in resolve(cfg).units}
    export = units["acoustic_model"].export
    features, lengths = export.make_inputs(5, 4.1, 123)
    with torch.no_grad():
        reference, ref_lengths = export.make_module()(features, lengths)
    session = onnxruntime.InferenceSession(str(repo / "asr_jasper_acoustic_model/1/model.onnx"))
    out, out_lengths = session.run(
        None, {"FEATURES": features.numpy(), "FEATURE_LENGTHS": lengths.numpy()}
    )
    np.testing.assert_array_equal(out_lengths, ref_lengths.numpy())
    for i, n in enumerate(ref_lengths.view(-1).tolist()):
        np.testing.assert_allclose(out[i, :n], reference[i, :n].numpy(), atol=1e-4)


def test_fp16_build_holds_fp16_weights_with_fp32_io(built) -> None:
    import onnx

    model = onnx.load(str(built["quartznet_fp16"] / "asr_quartznet_acoustic_model/1/model.onnx"))
    fp16 = onnx.TensorProto.FLOAT16
    assert any(t.data_type == fp16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    features = onnx.load(
        str(built["quartznet_fp16"] / "asr_quartznet_feature_extractor/1/model.onnx")
    )
    assert not any(t.data_type == fp16 for t in features.graph.initializer)


def test_torchscript_export_loads_and_runs(built) -> None:
    model = torch.jit.load(
        str(built["quartznet_torchscript"] / "asr_quartznet_acoustic_model/1/model.pt")
    )
    logprobs, lengths = model(torch.randn(2, 64, 90), torch.tensor([[90], [60]], dtype=torch.int32))
    assert logprobs.shape == (2, 45, 29) and lengths.view(-1).tolist() == [45, 30]


def test_same_config_gives_byte_identical_repository(tmp_path) -> None:
    overrides = ["model=quartznet_mini", "backend=torchscript"]
    build_repository(compose_config(overrides), tmp_path / "a")
    build_repository(compose_config(overrides), tmp_path / "b")
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert first == second
    build_repository(compose_config([*overrides, "seed=1"]), tmp_path / "c")
    assert tree(tmp_path / "c") != first


def test_multirun_builds_each_variant_into_its_own_folder(tmp_path) -> None:
    result = run_cli(
        "-m", "model=quartznet_mini", "precision=fp16,fp32", f"output_dir={tmp_path}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    built = sorted(p.parent.name for p in tmp_path.glob("*/manifest.json"))
    assert built == ["model=quartznet_mini,precision=fp16", "model=quartznet_mini,precision=fp32"]
    fp16 = json.loads((tmp_path / built[0] / "manifest.json").read_text())
    assert fp16["config"]["precision"]["name"] == "fp16"


def test_team_recipe_folder_outside_the_project(tmp_path) -> None:
    team = tmp_path / "team_conf" / "recipe"
    team.mkdir(parents=True)
    (team / "ours.yaml").write_text(
        "# @package _global_\n"
        "max_batch_size: 4\n"
        "dynamic_batching:\n  preferred_batch_size: [2, 4]\n"
    )
    out = tmp_path / "repo"
    result = run_cli(
        "--config-dir",
        str(tmp_path / "team_conf"),
        "+recipe=ours",
        "model=quartznet_mini",
        f"output_dir={out}",
    )
    assert result.returncode == 0, result.stderr
    assert parse(out / "asr_quartznet_acoustic_model" / "config.pbtxt").max_batch_size == 4


TENSORRT_MISSING = __import__(
    "modelrepo_gen.exporters.tensorrt_exporter", fromlist=["missing_requirement"]
).missing_requirement()


@pytest.mark.gpu
@pytest.mark.skipif(
    TENSORRT_MISSING is not None,
    reason=f"building a TensorRT engine needs tensorrt and an NVIDIA GPU: {TENSORRT_MISSING}",
)
def test_tensorrt_engine_for_a_gpu_server(tmp_path) -> None:
    repo = tmp_path / "repo"
    build_repository(
        compose_config(["model=quartznet_mini", "target=gpu", "backend=tensorrt"]), repo
    )
    config = parse(repo / "asr_quartznet_acoustic_model" / "config.pbtxt")
    assert config.platform == "tensorrt_plan"
    assert (repo / "asr_quartznet_acoustic_model" / "1" / "model.plan").stat().st_size > 0


def test_gpu_target_repository_uses_native_backends(tmp_path) -> None:
    repo = tmp_path / "repo"
    overrides = ["model=quartznet_mini", "target=gpu", "backend=torchscript"]
    build_repository(compose_config(overrides), repo)
    acoustic = parse(repo / "asr_quartznet_acoustic_model" / "config.pbtxt")
    assert acoustic.platform == "pytorch_libtorch"
    assert acoustic.default_model_filename == "model.pt"
    assert acoustic.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert [t.name for t in acoustic.output] == ["LOGPROBS__0", "ENCODED_LENGTHS__1"]
    assert not (repo / "asr_quartznet_acoustic_model" / "1" / "model.py").exists()
    # The python decoder keeps its own tensor names; the ensemble maps libtorch's onto them.
    decoder = parse(repo / "asr_quartznet_ctc_decoder" / "config.pbtxt")
    assert decoder.backend == "python" and [t.name for t in decoder.input][0] == "LOGPROBS"
    ensemble = parse(repo / "asr_quartznet" / "config.pbtxt")
    acoustic_step = ensemble.ensemble_scheduling.step[1]
    assert dict(acoustic_step.output_map) == {
        "LOGPROBS__0": "LOGPROBS",
        "ENCODED_LENGTHS__1": "ENCODED_LENGTHS",
    }


def test_rebuild_reuses_unchanged_exports_and_redoes_changed_ones(tmp_path, caplog) -> None:
    small = ["model=quartznet_mini"]
    knobs = ["max_batch_size=4", "dynamic_batching.preferred_batch_size=[2]"]
    build_repository(compose_config([*small, *knobs]), tmp_path / "fresh")
    repo = tmp_path / "repo"
    build_repository(compose_config(small), repo)
    caplog.set_level(logging.INFO, logger="modelrepo_gen")
    caplog.clear()
    report = build_repository(compose_config([*small, *knobs, "force=true"]), repo)
    assert not any(step.startswith("export") for step in report.seconds)
    assert caplog.text.count("unchanged, reusing") == 2
    assert tree(repo) == tree(tmp_path / "fresh")  # reuse gives the bytes a fresh build gives

    # An artifact edited since the build is not ours to delete; once it is gone, it is rebuilt.
    acoustic = repo / "asr_quartznet_acoustic_model" / "1" / "model.onnx"
    acoustic.write_bytes(acoustic.read_bytes() + b"tampered")
    with pytest.raises(UserError, match="model.onnx \\(changed since the build\\)"):
        build_repository(compose_config([*small, *knobs, "force=true"]), repo)
    acoustic.unlink()
    report = build_repository(compose_config([*small, *knobs, "force=true"]), repo)
    assert "export asr_quartznet_acoustic_model" in report.seconds
    assert "export asr_quartznet_feature_extractor" not in report.seconds
    assert tree(repo) == tree(tmp_path / "fresh")

    report = build_repository(compose_config([*small, *knobs, "force=true", "seed=4"]), repo)
    assert "export asr_quartznet_acoustic_model" in report.seconds
