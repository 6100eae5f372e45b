"""A .nemo file built with pipeline=asr_nemo computes what NeMo computes.

Three NeMo-made models (QuartzNet-like separable, Jasper-like dense residual, Citrinet-like
separable + squeeze-excite with a SentencePiece BPE tokenizer) against NeMo's own outputs on
real LibriVox speech, alone and in a zero-padded batch: the featurizer, the imported PyTorch
network, the exported artifacts (onnxruntime / torch.jit) and the served repository (one real
Triton server for the three), down to the greedy transcript.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.largest_requests import send_largest
from helpers.nemo_fixtures import NEMO_FIXTURES, TAGS, TOLERANCE, Reference, relative_error
from helpers.served_requests import connect, infer, transcripts
from helpers.worker_faults import assert_healed, kill_a_worker_under_load

from modelrepo_gen.core.build_plan import BuildPlan, ModelUnit
from modelrepo_gen.exporters import EXPORTERS
from modelrepo_gen.serve.server import TritonServer

NAMES = list(NEMO_FIXTURES)


def _units(plan: BuildPlan) -> tuple[ModelUnit, ModelUnit]:
    units = {unit.role: unit for unit in plan.units}
    return units["feature_extractor"], units["acoustic_model"]


def _check_against_nemo(
    label: str, reference: Reference, features, feature_lengths, logprobs, encoded
) -> tuple[float, float]:
    """Lengths equal, features and log-probabilities within TOLERANCE on the valid frames."""
    np.testing.assert_array_equal(np.reshape(feature_lengths, -1), reference.feature_lengths)
    np.testing.assert_array_equal(np.reshape(encoded, -1), reference.encoded_lengths)
    feature_error = relative_error(
        reference.features.transpose(0, 2, 1),
        np.asarray(features).transpose(0, 2, 1),
        reference.feature_lengths,
    )
    logprob_error = relative_error(reference.logprobs, logprobs, reference.encoded_lengths)
    print(f"{label}: features {feature_error:.2e}, log-probabilities {logprob_error:.2e}")
    assert feature_error <= TOLERANCE and logprob_error <= TOLERANCE
    return feature_error, logprob_error


@pytest.mark.parametrize("name", NAMES)
def test_imported_pytorch_modules_match_nemo(
    name: str, nemo_builds: dict[str, tuple[Path, BuildPlan]], nemo_references: dict
) -> None:
    featurizer_unit, acoustic_unit = _units(nemo_builds[name][1])
    featurizer = featurizer_unit.export.make_module()
    network = acoustic_unit.export.make_module()
    for tag in TAGS:
        reference = nemo_references[name][tag]
        with torch.inference_mode():
            audio = torch.from_numpy(reference.audio)
            features, frames = featurizer(
                audio, torch.from_numpy(reference.num_samples).view(-1, 1)
            )
            logprobs, encoded = network(features, frames)
        # NeMo pads the time axis to a multiple of pad_to: the same shape, not only the values.
        assert features.shape == reference.features.shape
        _check_against_nemo(
            f"{name} {tag} PyTorch", reference, features, frames, logprobs.numpy(), encoded
        )


@pytest.mark.parametrize("name", NAMES)
def test_exported_artifacts_match_nemo(
    name: str, nemo_builds: dict[str, tuple[Path, BuildPlan]], nemo_references: dict
) -> None:
    repository, plan = nemo_builds[name]
    runners = []
    for unit in _units(plan):
        exporter = EXPORTERS.get(unit.export.exporter)
        assert exporter.name == NEMO_FIXTURES[name].backend
        runners.append(
            exporter.load(repository / unit.name / "1" / unit.artifact, unit.export.inputs)
        )
    run_features, run_network = runners
    for tag in TAGS:
        reference = nemo_references[name][tag]
        features, frames = run_features([reference.audio, reference.num_samples.reshape(-1, 1)])
        logprobs, encoded = run_network([features, frames])
        _check_against_nemo(
            f"{name} {tag} {plan.units[0].export.exporter}",
            reference,
            features,
            frames,
            logprobs,
            encoded,
        )


@pytest.mark.server
@pytest.mark.parametrize("name", NAMES)
def test_served_repository_matches_nemo(
    name: str, nemo_server: TritonServer, nemo_references: dict
) -> None:
    ensemble = NEMO_FIXTURES[name].ensemble
    module, client = connect(nemo_server, "http")
    try:
        for tag in TAGS:
            reference = nemo_references[name][tag]
            lengths = reference.num_samples.reshape(-1, 1)
            # The endpoint: NeMo's greedy transcript, alone and inside a padded batch.
            texts = transcripts(module, client, ensemble, reference.audio, lengths)
            assert texts == reference.transcripts
            assert min(len(t) for t in texts) > 20  # a real comparison, not a blank
            # Its models one by one: the served features and log-probabilities.
            served = infer(
                module,
                client,
                f"{ensemble}_feature_extractor",
                {"AUDIO_SIGNAL": (reference.audio, "FP32"), "NUM_SAMPLES": (lengths, "INT32")},
                ["FEATURES", "FEATURE_LENGTHS"],
            )
            features, frames = served["FEATURES"], served["FEATURE_LENGTHS"]
            served = infer(
                module,
                client,
                f"{ensemble}_acoustic_model",
                {"FEATURES": (features, "FP32"), "FEATURE_LENGTHS": (frames, "INT32")},
                ["LOGPROBS", "ENCODED_LENGTHS"],
            )
            _check_against_nemo(
                f"{name} {tag} served",
                reference,
                features,
                frames,
                served["LOGPROBS"],
                served["ENCODED_LENGTHS"],
            )
    finally:
        client.close()


@pytest.mark.server
def test_a_killed_decoder_worker_is_reloaded_under_load(
    nemo_server: TritonServer, nemo_references: dict
) -> None:
    """The SentencePiece CTC decoder of the Citrinet-like import dies under load."""
    name = "citrinet_like"
    ensemble = NEMO_FIXTURES[name].ensemble
    reference = nemo_references[name][TAGS[0]]
    lengths = reference.num_samples.reshape(-1, 1)

    def request() -> list[str]:
        module, client = connect(nemo_server, "http")
        try:
            return transcripts(module, client, ensemble, reference.audio, lengths)
        finally:
            client.close()

    model = f"{ensemble}_ctc_decoder"
    outcome = kill_a_worker_under_load(
        nemo_server, model, request, lambda texts: texts == reference.transcripts
    )
    assert_healed(outcome, model)


@pytest.mark.server
def test_the_largest_allowed_request_is_answered_within_the_memory_budget(
    nemo_server: TritonServer, nemo_references: dict
) -> None:
    """max_batch_size (8) rows of max_audio_seconds (60 s) to the Citrinet-like import."""
    name = "citrinet_like"
    ensemble = NEMO_FIXTURES[name].ensemble
    reference = nemo_references[name][TAGS[0]]
    speech = reference.audio[0, : int(reference.num_samples[0])]
    batch = np.stack([np.roll(np.resize(speech, 60 * 16000), shift * 4000) for shift in range(8)])
    lengths = np.full((8, 1), batch.shape[1], dtype=np.int32)
    module, client = connect(nemo_server, "http")
    try:
        texts, _ = send_largest(
            nemo_server,
            ensemble,
            "8 x 60 s of audio",
            lambda: transcripts(module, client, ensemble, batch, lengths),
        )
        alone = transcripts(module, client, ensemble, batch[:1], lengths[:1])
    finally:
        client.close()
    assert len(texts) == 8 and min(len(t) for t in texts) > 100
    assert texts[0] == alone[0]
