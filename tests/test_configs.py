"""Every config in conf/ and recipes/ composes, validates and resolves to a build plan."""

from __future__ import annotations

import pytest
from helpers.cli_runs import run_cli
from helpers.project import CONF, ROOT, compose_config

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))
# The CTC pipelines take any CTC acoustic model (asr_whisper is tested in test_pipeline_calls).
CTC_PIPELINES = ["asr_jasper", "asr_quartznet"]
# (a *_mini file takes its component from the full-size file it extends)
CTC_MODELS = [
    m
    for m in options("model")
    if compose_config([f"model={m}"]).model.get("component") == "conv_asr"
]


def test_groups_are_not_empty() -> None:
    for group in ("pipeline", "model", "precision", "target", "dynamic_batching"):
        assert options(group), group
    assert RECIPES
    assert set(CTC_PIPELINES) < set(options("pipeline")) and len(CTC_MODELS) == 4


@pytest.mark.parametrize("pipeline", CTC_PIPELINES)
@pytest.mark.parametrize("model", CTC_MODELS)
def test_every_pipeline_and_model_resolves(pipeline: str, model: str) -> None:
    cfg = compose_config([f"pipeline={pipeline}", f"model={model}"])
    plan = resolve(cfg)
    assert plan.pipeline == pipeline
    assert [u.role for u in plan.units] == ["feature_extractor", "acoustic_model", "ctc_decoder"]
    assert plan.ensemble.name == pipeline


@pytest.mark.parametrize("group", ["precision", "target", "dynamic_batching"])
def test_every_option_of_every_group_resolves(group: str) -> None:
    for option in options(group):
        cfg = compose_config(["model=quartznet_mini", f"{group}={option}"])
        resolve(cfg)


NEMO_FILE = ROOT / "tests" / "fixtures" / "nemo" / "quartznet_like.nemo"
NEMO_TTS = {  # pipeline=tts_nemo's two files
    "model.acoustic": ROOT / "tests" / "fixtures" / "nemo" / "fastpitch_chars.nemo",
    "model.vocoder": ROOT / "tests" / "fixtures" / "nemo" / "hifigan_small.nemo",
}


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("pipeline", options("pipeline"))
def test_every_recipe_resolves_or_says_which_pipelines_it_fits(recipe: str, pipeline: str) -> None:
    extra = [f"model.checkpoint={NEMO_FILE}"] if pipeline == "asr_nemo" else []
    if pipeline == "tts_nemo":
        extra = [f"{key}={path}" for key, path in NEMO_TTS.items()]
    cfg = compose_config([f"pipeline={pipeline}", f"+recipe={recipe}", *extra])
    assert cfg.recipe.name == recipe
    if not cfg.recipe.fits or cfg.pipeline.family in cfg.recipe.fits:
        resolve(cfg)
    else:
        with pytest.raises(UserError, match=rf"^recipe {recipe} is made for .+; pipeline="):
            resolve(cfg)


def test_recipe_changes_what_is_built() -> None:
    plan = resolve(compose_config(["+recipe=low_latency"]))
    acoustic = next(u for u in plan.units if u.role == "acoustic_model")
    assert acoustic.serving.instance_count == 2
    assert acoustic.serving.dynamic_batching is None


def test_pipeline_picks_its_model_and_cli_overrides_it() -> None:
    assert compose_config(["pipeline=asr_jasper"]).model.name == "jasper_10x5"
    assert compose_config(["pipeline=asr_quartznet"]).model.name == "quartznet_15x5"
    assert compose_config(["pipeline=asr_jasper", "model=jasper_mini"]).model.name == "jasper_mini"


def test_overrides_reach_the_plan() -> None:
    cfg = compose_config(
        [
            "model=quartznet_mini",
            "dynamic_batching.max_queue_delay_us=5000",
            "max_batch_size=16",
            "+per_model.acoustic_model.max_batch_size=32",
            "+per_model.acoustic_model.instance_group.count=3",
            "+per_model.ctc_decoder.dynamic_batching.enabled=false",
        ]
    )
    units = {u.role: u for u in resolve(cfg).units}
    assert units["feature_extractor"].serving.max_batch_size == 16
    assert units["feature_extractor"].serving.dynamic_batching.max_queue_delay_us == 5000
    assert units["acoustic_model"].serving.max_batch_size == 32
    assert units["acoustic_model"].serving.instance_count == 3
    assert units["ctc_decoder"].serving.dynamic_batching is None


def test_gpu_target_uses_native_platforms() -> None:
    plan = resolve(compose_config(["model=quartznet_mini", "target=gpu"]))
    platforms = {u.role: (u.platform, u.serving.instance_kind) for u in plan.units}
    assert platforms["acoustic_model"] == ("onnxruntime_onnx", "KIND_GPU")
    assert platforms["ctc_decoder"] == ("python", "KIND_CPU")
    torchscript = resolve(
        compose_config(["model=quartznet_mini", "target=gpu", "backend=torchscript"])
    )
    acoustic = next(u for u in torchscript.units if u.role == "acoustic_model")
    assert acoustic.platform == "pytorch_libtorch"
    assert [t.name for t in acoustic.outputs] == ["LOGPROBS__0", "ENCODED_LENGTHS__1"]


def test_cfg_job_prints_everything_that_will_be_built() -> None:
    result = run_cli("pipeline=asr_quartznet", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    for key in ("pipeline:", "model:", "blocks:", "precision:", "dynamic_batching:", "vocabulary:"):
        assert key in result.stdout


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "repo"
    result = run_cli("model=quartznet_mini", f"output_dir={out}", "dry_run=true")
    assert result.returncode == 0, result.stderr
    assert "asr_quartznet_acoustic_model" in result.stdout
    assert "AUDIO_SIGNAL, NUM_SAMPLES -> asr_quartznet_feature_extractor" in result.stdout
    assert not out.exists()
