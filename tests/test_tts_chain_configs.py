"""The acoustic + vocoder speech synthesis pipelines' configs: each resolves at full size, a
smaller network is chosen by its group option, and settings reach the served models."""

from __future__ import annotations

import pytest
from helpers.project import compose_config

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve

PIPELINES = {
    "tts_tacotron2_waveglow": ("tacotron2", "waveglow_256ch"),
    "tts_fastpitch_hifigan": ("fastpitch", "hifigan_v1"),
}


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_pipeline_resolves_with_its_networks(pipeline: str) -> None:
    cfg = compose_config([f"pipeline={pipeline}"])
    models = cfg.pipeline.models
    assert (models.acoustic.name, models.vocoder.name) == PIPELINES[pipeline]
    plan = resolve(cfg)
    units = {u.role: u for u in plan.units}
    assert sorted(units) == ["acoustic", "frontend", "synthesizer", "vocoder"]
    assert units["synthesizer"].calls == {
        "acoustic": f"{pipeline}_acoustic",
        "vocoder": f"{pipeline}_vocoder",
    }
    synthesizer = units["synthesizer"].parameters
    assert synthesizer["chain"] == "acoustic_vocoder" and synthesizer["hop_length"] == "256"
    assert plan.ensemble.parameters["sample_rate"] == "22050"
    assert units["acoustic"].serving.max_batch_size >= units["vocoder"].serving.max_batch_size


def test_settings_of_each_chain_reach_the_synthesizer() -> None:
    tacotron2 = {
        u.role: u for u in resolve(compose_config(["pipeline=tts_tacotron2_waveglow"])).units
    }
    assert tacotron2["synthesizer"].parameters["noise_sigma"] == "0.6"
    assert tacotron2["synthesizer"].parameters["reports_stop"] == "true"
    assert [t.name for t in tacotron2["vocoder"].inputs] == ["MEL", "MEL_LENGTH", "NOISE"]
    fastpitch = {
        u.role: u for u in resolve(compose_config(["pipeline=tts_fastpitch_hifigan"])).units
    }
    assert fastpitch["synthesizer"].parameters["pace"] == "1.0"
    # A request's pace must lie within FastPitch's own [min_pace, max_pace].
    assert fastpitch["synthesizer"].parameters["request_parameters"] == '{"pace": [0.25, 4.0]}'
    assert fastpitch["synthesizer"].parameters["noise_sigma"] == ""


def test_group_option_picks_a_smaller_network_and_keys_override_it() -> None:
    cfg = compose_config(
        [
            "pipeline=tts_tacotron2_waveglow",
            "model@pipeline.models.acoustic=tacotron2_mini",
            "model@pipeline.models.vocoder=waveglow_mini",
            "pipeline.models.acoustic.max_decoder_steps=25",
        ]
    )
    models = cfg.pipeline.models
    assert (models.acoustic.name, models.vocoder.name) == ("tacotron2_mini", "waveglow_mini")
    assert models.acoustic.max_decoder_steps == 25
    assert models.acoustic.encoder_embedding_dim == 32  # the mini's own size, not the full one


def test_missing_checkpoint_is_refused(tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    cfg = compose_config(
        ["pipeline=tts_fastpitch_hifigan", f"pipeline.models.vocoder.checkpoint={missing}"]
    )
    with pytest.raises(UserError, match="pipeline.models.vocoder.checkpoint"):
        resolve(cfg)


@pytest.mark.parametrize(
    ("pipeline", "override", "message"),
    [
        (
            "tts_fastpitch_hifigan",
            "pipeline.models.acoustic.n_symbols=10",
            "the acoustic model takes 10 symbol ids (its n_symbols), fewer than the front-end's "
            "64 symbols (pipeline.models.acoustic.n_symbols)",
        ),
        (
            "tts_tacotron2_waveglow",
            "pipeline.models.synthesizer.noise_seed=-1",
            "pipeline.models.synthesizer.noise_seed must be >= 0, got -1",
        ),
    ],
)
def test_settings_that_would_fail_every_request_are_refused(
    pipeline: str, override: str, message: str
) -> None:
    """Both used to build, then fail every request (ids past the embedding; numpy refusing a
    negative seed)."""
    with pytest.raises(UserError) as refused:
        resolve(compose_config([f"pipeline={pipeline}", override]))
    assert str(refused.value) == message


def test_the_synthesizer_knows_what_the_acoustic_model_takes() -> None:
    units = {u.role: u for u in resolve(compose_config(["pipeline=tts_fastpitch_hifigan"])).units}
    assert units["synthesizer"].parameters["num_symbols"] == "148"
    assert units["synthesizer"].parameters["max_symbols"] == "300"
    assert units["frontend"].parameters["max_sentence_symbols"] == "300"
