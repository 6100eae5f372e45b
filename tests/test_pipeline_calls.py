"""A step's model that calls other models itself (asr_whisper's generator): the called models
are planned, served and named to the caller; binding mistakes stop with one line."""

from __future__ import annotations

import json

import pytest
from helpers.project import compose_config
from omegaconf import DictConfig, open_dict

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve

BOUND = {"features": "features", "encoder": "encoder", "decoder": "decoder"}


@pytest.fixture(scope="module")
def whisper_cfg(tiny_en) -> DictConfig:
    return compose_config(["pipeline=asr_whisper"])


def with_calls(cfg: DictConfig, calls: dict) -> DictConfig:
    cfg = cfg.copy()
    cfg.pipeline.ensemble.steps[0]["calls"] = calls
    return cfg


def test_called_models_are_planned_before_their_caller_and_named_to_it(whisper_cfg) -> None:
    plan = resolve(whisper_cfg)
    names = [unit.name for unit in plan.units]
    roles = ("features", "encoder", "decoder", "generator", "detokenizer")
    assert names == [f"asr_whisper_{r}" for r in roles]
    # Only the caller and the detokenizer are ensemble steps; the others are served beside them.
    assert [step.model_name for step in plan.ensemble.steps] == [
        "asr_whisper_generator",
        "asr_whisper_detokenizer",
    ]
    generator, detokenizer = plan.units[-2:]
    calls = json.loads(generator.parameters["calls"])
    decoder = plan.units[2]
    hosted = calls["decoder"].pop("in_process")  # the CPU target: the generator runs it itself
    assert calls["decoder"] == {"model": "asr_whisper_decoder", "max_batch_size": 8}
    # The config Triton would give the decoder, as the generator hands it to the decoder's code,
    # without the request checks (the generator checks what it sends).
    assert hosted["version"] == "1"
    config = hosted["config"]
    assert config["name"] == decoder.name and config["max_batch_size"] == 8
    assert [t["name"] for t in config["input"]] == [t.name for t in decoder.inputs]
    assert [(t["name"], t["data_type"]) for t in config["output"]] == [
        (t.name, t.data_type) for t in decoder.outputs
    ]
    parameters = {k: v["string_value"] for k, v in config["parameters"].items()}
    assert json.loads(decoder.parameters["input_checks"])["finite"] == ["CROSS_KV"]
    assert parameters == {**decoder.parameters, "input_checks": "{}"}
    assert generator.calls == {slot: f"asr_whisper_{role}" for slot, role in BOUND.items()}
    assert detokenizer.files["tokenizer.json"].name == "tokenizer.json"


def test_on_a_gpu_the_called_models_run_on_the_server(whisper_cfg) -> None:
    cfg = compose_config(["pipeline=asr_whisper", "target=gpu"])
    generator = next(u for u in resolve(cfg, on_this_machine=False).units if u.role == "generator")
    calls = json.loads(generator.parameters["calls"])
    assert calls["decoder"] == {"model": "asr_whisper_decoder", "max_batch_size": 8}


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        (
            {**BOUND, "vocoder": "decoder"},
            "model 'generator' makes no call 'vocoder' (its calls: features, encoder, decoder)",
        ),
        (
            {"features": "features", "encoder": "encoder"},
            "model 'generator' calls a 'decoder' model; bind it in its step",
        ),
        (
            {**BOUND, "decoder": "dec"},
            "model 'generator' calls model 'dec' as 'decoder', which pipeline.models does not "
            "declare",
        ),
        (
            {**BOUND, "encoder": "features"},
            "model 'generator' calls 'encoder' with tensor 'CROSS_KV', which model 'features' "
            "does not have",
        ),
    ],
    ids=["unknown slot", "unbound slot", "undeclared model", "model without the tensors"],
)
def test_call_binding_mistake_is_one_line(whisper_cfg, calls: dict, message: str) -> None:
    cfg = with_calls(whisper_cfg, calls)
    with pytest.raises(UserError) as raised:
        resolve(cfg)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_model_neither_used_nor_called_is_named(whisper_cfg) -> None:
    cfg = with_calls(whisper_cfg, {**BOUND, "features": "features"})
    with open_dict(cfg):
        cfg.pipeline.models.spare = cfg.pipeline.models.encoder
    with pytest.raises(UserError, match="model 'spare' is declared in pipeline.models but no"):
        resolve(cfg)
