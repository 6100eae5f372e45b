"""mode=streaming run in this process (InProcessRepository: the repository's own models, the
streamer calling the exported feature extractor, acoustic model and decoder): with context at
least the network's receptive field, the streamed log-probabilities equal the offline ones
within the parity tolerance and the final transcript is the same, for QuartzNet, Jasper and a
.nemo fixture; how a client cuts the audio into requests changes nothing.

The features are not normalized over the utterance here (`normalize=none`): per-utterance
normalization needs the whole recording, which a stream does not have (the README gives the
difference it makes). Receptive fields, each side: QuartzNet-mini 4.28 s, Jasper-mini 0.77 s,
the .nemo QuartzNet-like fixture 4.28 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.asr_fixtures import write_fake_checkpoint
from helpers.nemo_fixtures import FIXTURES
from helpers.project import compose_config

from modelrepo_gen.clients.asr_client import find_ensemble_model, infer_transcript
from modelrepo_gen.clients.in_process_repository import InProcessRepository
from modelrepo_gen.clients.stream_client import stream_audio
from modelrepo_gen.components.triton_python.ctc_streaming_recognizer import Stream

TOLERANCE = 1e-4  # relative, as the exports' parity checks
RATE = 16000
STREAMS = {  # name -> the build's overrides (streamed, and as offline with mode=offline)
    "quartznet": [
        "pipeline=asr_quartznet",
        "model=quartznet_mini",
        "featurizer.normalize=none",
        "mode.left_context_seconds=4.5",
        "mode.right_context_seconds=4.5",
    ],
    "jasper": [
        "pipeline=asr_jasper",
        "model=jasper_mini",
        "featurizer.normalize=none",
        "mode.left_context_seconds=1",
        "mode.right_context_seconds=1",
        "mode.chunk_seconds=0.32",
    ],
    "nemo": [
        "pipeline=asr_nemo",
        f"model.checkpoint={FIXTURES / 'quartznet_like.nemo'}",
        "+model.featurizer.normalize=none",
        "mode.left_context_seconds=6",
        "mode.right_context_seconds=6",
    ],
}


@pytest.fixture(scope="module")
def repositories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (streaming repository, offline repository) of the same network."""
    from modelrepo_gen.assembly.run import build_repository

    root = tmp_path_factory.mktemp("streaming")
    built = {}
    for name, overrides in STREAMS.items():
        if name != "nemo":  # a large random classifier: the text changes from frame to frame
            pipeline, model = (o.split("=")[1] for o in overrides[:2])
            checkpoint = write_fake_checkpoint(pipeline, model, root / f"{name}.pt")
            overrides = [*overrides, f"model.checkpoint={checkpoint}"]
        streamed, offline = root / f"{name}_stream", root / f"{name}_offline"
        build_repository(compose_config([*overrides, "mode=streaming"]), streamed)
        common = [o for o in overrides if not o.startswith("mode.")]
        build_repository(compose_config([*common, "mode=offline"]), offline)
        built[name] = (streamed, offline)
    return built


@pytest.fixture(scope="module")
def recording(librivox: list) -> np.ndarray:
    """Three LibriVox utterances one after the other: 13 s, several chunks and contexts."""
    return np.concatenate([audio for _, audio, _ in librivox[:3]]).astype(np.float32)


def ensemble(repository: Path) -> str:
    return find_ensemble_model(str(repository), "in_process")


def streamed_logprobs(streamer, audio: np.ndarray, pieces: list[int]) -> np.ndarray:
    """The stream's decided log-probabilities, the audio arriving in pieces of these sizes."""
    stream = Stream(0.0)
    position = 0
    for size in pieces:
        chunk = audio[position : position + size]
        position += size
        stream.audio = np.concatenate([stream.audio, chunk])
        stream.received += len(chunk)
        if streamer.frame is None:
            streamer._learn_frames()
        streamer._advance(stream, final=position >= len(audio))
    return np.concatenate(stream.logprobs)


@pytest.mark.parametrize("name", list(STREAMS))
def test_streamed_logprobs_equal_offline_with_context_beyond_the_receptive_field(
    name: str, repositories: dict, recording: np.ndarray
) -> None:
    streaming, offline = repositories[name]
    with InProcessRepository(streaming) as models:
        model = ensemble(streaming)
        streamer = models.python_model(f"{model}_streamer")
        whole = streamer._logprobs(recording)  # the acoustic model on the whole recording
        in_one = streamed_logprobs(streamer, recording, [len(recording)])
        assert in_one.shape == whole.shape and len(whole) > 300
        error = np.abs(in_one - whole).max() / max(1.0, np.abs(whole).max())
        assert error <= TOLERANCE, error
        rng = np.random.default_rng(0)
        sizes = list(rng.integers(1, RATE // 2, size=30))  # pieces of a sample to half a second
        sizes.append(len(recording) - sum(sizes))
        assert sum(sizes[:-1]) < len(recording)
        np.testing.assert_array_equal(streamed_logprobs(streamer, recording, sizes), in_one)
        chunk = int(0.8 * RATE)
        streamed = stream_audio(models, "in_process", model, recording, chunk, RATE, False)
    with InProcessRepository(offline) as models:
        expected = infer_transcript(models, "in_process", ensemble(offline), recording)
    assert streamed.transcript == expected and len(expected) > 10
    # each answer is what was decided so far: the transcript grows to the final one
    assert all(expected.startswith(partial) for partial in streamed.partials)
    assert len(set(streamed.partials)) > 3
