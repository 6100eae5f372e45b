"""Graph mistakes in a pipeline's YAML stop before any work, one line naming model and tensor.

Each case edits the composed asr_quartznet config the way a user's pipeline file would differ,
then resolves it; one case goes through the command line with a pipeline in --config-dir.
"""

from __future__ import annotations

from collections.abc import Callable
from subprocess import CompletedProcess

import pytest
from helpers.cli_runs import run_cli, run_many
from helpers.project import ROOT, compose_config
from omegaconf import DictConfig, OmegaConf, open_dict

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve

SMALL = ["model=quartznet_mini"]


def steps(cfg: DictConfig) -> list:
    return cfg.pipeline.ensemble.steps


def set_step(index: int, **fields: object) -> Callable[[DictConfig], None]:
    def edit(cfg: DictConfig) -> None:
        for key, value in fields.items():
            steps(cfg)[index][key] = value

    return edit


def add_model(cfg: DictConfig) -> None:
    cfg.pipeline.models.punctuation = "${decoder}"


def cycle(cfg: DictConfig) -> None:
    # The feature extractor reads its length from the acoustic model: fe -> am -> fe.
    steps(cfg)[0]["inputs"] = {"AUDIO_SIGNAL": "AUDIO_SIGNAL", "NUM_SAMPLES": "ENCODED_LENGTHS"}
    cfg.pipeline.ensemble.inputs = ["AUDIO_SIGNAL"]


def twice(cfg: DictConfig) -> None:
    steps(cfg)[1]["outputs"] = {"LOGPROBS": "LOGPROBS", "ENCODED_LENGTHS": "FEATURES"}


GRAPH_MISTAKES = {
    "unknown model": (
        set_step(1, model="acoustic"),
        "step uses model 'acoustic', which pipeline.models does not declare "
        "(declared: feature_extractor, acoustic_model, ctc_decoder)",
    ),
    "tensor the model lacks": (
        set_step(1, inputs={"FEATS": "FEATURES", "FEATURE_LENGTHS": "FEATURE_LENGTHS"}),
        "model 'acoustic_model' has no input 'FEATS' (its inputs: FEATURES, FEATURE_LENGTHS)",
    ),
    "input not fed": (
        set_step(0, inputs=["AUDIO_SIGNAL"]),
        "input 'NUM_SAMPLES' of model 'feature_extractor' is not fed",
    ),
    "dims mismatch": (
        lambda cfg: OmegaConf.update(cfg, "model.feat_in", 80),
        "tensor 'FEATURES' is TYPE_FP32 [64, -1] from feature_extractor.FEATURES, but "
        "acoustic_model.FEATURES expects TYPE_FP32 [80, -1]",
    ),
    "type mismatch": (
        set_step(2, inputs={"LOGPROBS": "ENCODED_LENGTHS", "ENCODED_LENGTHS": "ENCODED_LENGTHS"}),
        "tensor 'ENCODED_LENGTHS' is TYPE_INT32 [1] from acoustic_model.ENCODED_LENGTHS, but "
        "ctc_decoder.LOGPROBS expects TYPE_FP32 [-1, 29]",
    ),
    "consumed, never produced": (
        set_step(2, inputs={"LOGPROBS": "LOGITS", "ENCODED_LENGTHS": "ENCODED_LENGTHS"}),
        "ctc_decoder.LOGPROBS reads tensor 'LOGITS', which no step produces and which is not "
        "an ensemble input",
    ),
    "output never produced": (
        lambda cfg: OmegaConf.update(cfg, "pipeline.ensemble.outputs", ["TEXT"]),
        "output 'TEXT' is produced by no step",
    ),
    "produced twice": (
        twice,
        "tensor 'FEATURES' is produced twice (feature_extractor.FEATURES and "
        "acoustic_model.ENCODED_LENGTHS)",
    ),
    "cycle": (cycle, "the steps form a cycle: feature_extractor -> acoustic_model -> "),
    "declared, unused": (
        add_model,
        "model 'punctuation' is declared in pipeline.models but no step uses it",
    ),
    "unknown component": (
        lambda cfg: OmegaConf.update(cfg, "model.component", "conv_asrr"),
        # The known components follow, in name order (their list grows with the project).
        "model.component: unknown component 'conv_asrr' (known: acoustic_vocoder_synthesizer, "
        "bert, conv_asr, ",
    ),
}


@pytest.mark.parametrize("mistake", list(GRAPH_MISTAKES))
def test_graph_mistake_is_one_line_naming_model_and_tensor(mistake: str) -> None:
    edit, expected = GRAPH_MISTAKES[mistake]
    cfg = compose_config(SMALL)
    with open_dict(cfg):
        edit(cfg)
    with pytest.raises(UserError) as raised:
        resolve(cfg)
    message = str(raised.value)
    assert "\n" not in message
    assert expected in message, message


def test_steps_may_be_listed_in_any_order() -> None:
    cfg = compose_config(SMALL)
    in_order = [step.model_name for step in resolve(cfg).ensemble.steps]
    with open_dict(cfg):
        cfg.pipeline.ensemble.steps = list(reversed(list(steps(cfg))))
    assert [step.model_name for step in resolve(cfg).ensemble.steps] == in_order


def test_graph_mistake_from_the_command_line(tmp_path) -> None:
    conf = tmp_path / "conf" / "pipeline"
    conf.mkdir(parents=True)
    (conf / "looped.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - asr_quartznet\n  - _self_\n"
        "pipeline:\n  name: looped\n  ensemble:\n    outputs: [TEXT]\n"
    )
    out = tmp_path / "repo"
    result = run_cli(
        "--config-dir", str(tmp_path / "conf"), "pipeline=looped", *SMALL, f"output_dir={out}"
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: pipeline.ensemble: output 'TEXT' is produced by no step"
    ]
    assert not out.exists()


MALFORMED = {
    "steps not a list": (
        "pipeline: {ensemble: {steps: 5}}",
        "pipeline.ensemble.steps must list the steps (model, inputs, outputs), got 5",
    ),
    "step without a model": (
        "pipeline: {ensemble: {steps: [5]}}",
        "pipeline.ensemble.steps.0 must name its model (model: ROLE), got 5",
    ),
    "inputs not a list": (
        "pipeline: {ensemble: {inputs: AUDIO_SIGNAL}}",
        "pipeline.ensemble.inputs must list at least one tensor name, got 'AUDIO_SIGNAL'",
    ),
    "no outputs": (
        "pipeline: {ensemble: {outputs: []}}",
        "pipeline.ensemble.outputs must list at least one tensor name, got []",
    ),
    "model without a component": (
        "pipeline: {models: {feature_extractor: 5}}",
        "pipeline.models.feature_extractor must name the component that makes model "
        "'feature_extractor' (component: NAME)",
    ),
    "serving for an undeclared role": (
        "pipeline: {serving: {nope: {max_batch_size: 2}}}",
        "pipeline.serving: unknown model role(s) ['nope']",
    ),
    "models as a list": (
        "pipeline: {models: [a, b]}",
        "Cannot merge DictConfig with ListConfig",
    ),
    "not YAML": (
        "pipeline: {models: {a: {b}",
        "invalid YAML: while parsing a flow mapping",
    ),
}


@pytest.fixture(scope="module")
def malformed_runs(tmp_path_factory) -> dict[str, CompletedProcess]:
    """Each case as a team's pipeline file in its own config folder, all run in one
    interpreter (tests/helpers/cli_runs.py)."""
    runs = []
    for body, _ in MALFORMED.values():
        conf = tmp_path_factory.mktemp("team_conf")
        (conf / "pipeline").mkdir()
        (conf / "pipeline" / "team.yaml").write_text(
            f"# @package _global_\ndefaults:\n  - asr_quartznet\n  - _self_\n{body}\n"
        )
        runs.append(["--config-dir", str(conf), "pipeline=team", *SMALL, "dry_run=true"])
    return dict(zip(MALFORMED, run_many(runs, ROOT), strict=True))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_pipeline_file_is_one_line(case: str, malformed_runs) -> None:
    expected = MALFORMED[case][1]
    result = malformed_runs[case]
    lines = result.stderr.splitlines()
    assert result.returncode in (1, 2) and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert result.stdout == ""
