"""Malformed requests to a served ASR ensemble get a clear Triton error, and serving goes on."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers.asr_fixtures import Transcriber
from helpers.served_requests import (
    BAD_REQUEST,
    connect,
    infer,
    one_utterance,
    status_of,
    transcripts,
    varied_lengths,
)

from modelrepo_gen.serve.server import TritonServer

# The session fixtures (builds, combined repository, LibriVox audio) come from asr_fixtures.
pytestmark = pytest.mark.server

SAMPLE_RATE = 16000
NUM_CLASSES = 29
# ONNX and TorchScript acoustic models (both run on target=cpu), Jasper and QuartzNet.
FORMAT_MATRIX = ["asr_quartznet", "asr_quartznet_ts", "asr_jasper", "asr_jasper_onnx"]


# -- bad requests --------------------------------------------------------------------------------
def _bad_requests(clip: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, str, str, str]]:
    """name -> (audio, NUM_SAMPLES, audio type, length type, the error it must name)."""
    n = clip.size
    audio, length = one_utterance(clip)

    def with_sample(value: float) -> np.ndarray:
        bad = audio.copy()
        bad[0, n // 2] = value
        return bad

    between = rf"NUM_SAMPLES must be between 1 and {n} \(the length of AUDIO_SIGNAL\)"
    data_type = r"input '{}' data-type is '{}', but model 'asr_quartznet' expects '{}'"
    return {
        "empty audio": (
            np.zeros((1, 0), np.float32),
            np.array([[0]], np.int32),
            "FP32",
            "INT32",
            "AUDIO_SIGNAL is empty",
        ),
        "NUM_SAMPLES beyond the audio": (
            audio,
            length + 1,
            "FP32",
            "INT32",
            rf"{between}, got \[{n + 1}\]",
        ),
        "negative NUM_SAMPLES": (audio, -length, "FP32", "INT32", rf"{between}, got \[-{n}\]"),
        "zero NUM_SAMPLES": (audio, 0 * length, "FP32", "INT32", rf"{between}, got \[0\]"),
        "NaN sample": (
            with_sample(np.nan),
            length,
            "FP32",
            "INT32",
            "AUDIO_SIGNAL contains NaN or infinite values",
        ),
        "inf sample": (
            with_sample(np.inf),
            length,
            "FP32",
            "INT32",
            "AUDIO_SIGNAL contains NaN or infinite values",
        ),
        "huge sample": (  # its power overflows float32: NaN features
            with_sample(1e30),
            length,
            "FP32",
            "INT32",
            r"AUDIO_SIGNAL must hold values from -1e\+06 to 1e\+06, got .*\.\.1e\+30",
        ),
        "-inf sample": (
            with_sample(-np.inf),
            length,
            "FP32",
            "INT32",
            "AUDIO_SIGNAL contains NaN or infinite values",
        ),
        "FP64 audio": (
            audio.astype(np.float64),
            length,
            "FP64",
            "INT32",
            data_type.format("AUDIO_SIGNAL", "FP64", "FP32"),
        ),
        "INT16 audio": (
            (audio * 32767).astype(np.int16),
            length,
            "INT16",
            "INT32",
            data_type.format("AUDIO_SIGNAL", "INT16", "FP32"),
        ),
        "INT64 NUM_SAMPLES": (
            audio,
            length.astype(np.int64),
            "FP32",
            "INT64",
            data_type.format("NUM_SAMPLES", "INT64", "INT32"),
        ),
        "3-D audio": (
            audio.reshape(1, 1, n),
            length,
            "FP32",
            "INT32",
            rf"unexpected shape for input 'AUDIO_SIGNAL' for model 'asr_quartznet'\. "
            rf"Expected \[-1,-1\], got \[1,1,{n}\]",
        ),
        "two lengths for one audio": (
            audio,
            np.concatenate([length, length]),
            "FP32",
            "INT32",
            "input 'AUDIO_SIGNAL' batch size does not match other inputs for 'asr_quartznet'",
        ),
    }


BAD_REQUESTS = list(_bad_requests(np.zeros(16, np.float32)))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_is_refused_clearly_and_the_server_keeps_serving(
    case: str,
    protocol: str,
    server: TritonServer,
    in_process: dict[str, Transcriber],
    clip: np.ndarray,
) -> None:
    from tritonclient.utils import InferenceServerException

    audio, lengths, audio_type, length_type, message = _bad_requests(clip)[case]
    module, client = connect(server, protocol)
    try:
        with pytest.raises(InferenceServerException, match=message) as refused:
            transcripts(module, client, "asr_quartznet", audio, lengths, audio_type, length_type)
        # Triton's own checks and the models' checks alike: a bad request, not a server fault.
        assert status_of(refused.value) == BAD_REQUEST[protocol]
        valid = transcripts(module, client, "asr_quartznet", *one_utterance(clip))
    finally:
        client.close()
    assert valid == [in_process["asr_quartznet"](clip)]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_audio_longer_than_max_audio_seconds_is_refused(
    protocol: str,
    server: TritonServer,
    asr_builds: dict[str, Path],
    in_process: dict[str, Transcriber],
    librivox: list,
    clip: np.ndarray,
) -> None:
    from tritonclient.utils import InferenceServerException

    name = "asr_quartznet_short"
    config = json.loads((asr_builds[name] / "manifest.json").read_text())["config"]
    assert config["pipeline"]["max_audio_seconds"] == 2.0
    limit = 2 * SAMPLE_RATE
    too_long = librivox[1][1][: limit + 1]
    module, client = connect(server, protocol)
    try:
        with pytest.raises(
            InferenceServerException,
            match=rf"AUDIO_SIGNAL is {limit + 1} long, more than the maximum of {limit}",
        ) as caught:
            transcripts(module, client, name, *one_utterance(too_long))
        assert status_of(caught.value) == BAD_REQUEST[protocol]
        at_limit = librivox[1][1][:limit]
        valid = transcripts(module, client, name, *one_utterance(at_limit))
        valid += transcripts(module, client, name, *one_utterance(clip))
    finally:
        client.close()
    assert valid == [in_process[name](at_limit), in_process[name](clip)]


def test_bad_requests_among_concurrent_good_ones_fail_alone(
    server: TritonServer,
    in_process: dict[str, Transcriber],
    librivox: list,
) -> None:
    from tritonclient.utils import InferenceServerException

    good = varied_lengths(librivox)[:12]
    bad = [a.copy() for a in good[:4]]
    for audio in bad:
        audio[audio.size // 3] = np.nan
    requests = [("good", a) for a in good] + [("bad", a) for a in bad]
    order = np.random.default_rng(0).permutation(len(requests))
    requests = [requests[i] for i in order]

    def send(audio: np.ndarray) -> str:
        module, client = connect(server, "http")
        try:
            (text,) = transcripts(module, client, "asr_quartznet", *one_utterance(audio))
            return text
        except InferenceServerException as error:
            return f"refused: {error.message()}"
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, [audio for _, audio in requests]))
    for (kind, audio), answer in zip(requests, answers):
        if kind == "good":
            assert answer == in_process["asr_quartznet"](audio)
        else:
            assert answer.startswith("refused: ") and "NaN or infinite" in answer


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_ctc_decoder_refuses_nan_log_probabilities(
    protocol: str, server: TritonServer, in_process: dict[str, Transcriber], clip: np.ndarray
) -> None:
    """Greedy decoding of NaN picks class 0 everywhere: a made-up transcript, not an answer."""
    from tritonclient.utils import InferenceServerException

    decoder = "asr_quartznet_ctc_decoder"
    logprobs = np.log(np.full((1, 20, NUM_CLASSES), 1 / NUM_CLASSES, dtype=np.float32))
    lengths = np.array([[20]], dtype=np.int32)
    module, client = connect(server, protocol)
    try:
        for value in (np.nan, np.inf):
            bad = logprobs.copy()
            bad[0, 7, 3] = value
            tensors = {"LOGPROBS": (bad, "FP32"), "ENCODED_LENGTHS": (lengths, "INT32")}
            with pytest.raises(InferenceServerException) as refused:
                infer(module, client, decoder, tensors, ["TRANSCRIPT"])
            assert refused.value.message().endswith(
                f"{decoder}: LOGPROBS contains NaN or +inf values"
            )
            assert status_of(refused.value) == BAD_REQUEST[protocol]
        # -inf is a probability of 0: a valid input.
        fine = logprobs.copy()
        fine[0, :, :-1] = -np.inf  # every frame the blank
        tensors = {"LOGPROBS": (fine, "FP32"), "ENCODED_LENGTHS": (lengths, "INT32")}
        assert infer(module, client, decoder, tensors, ["TRANSCRIPT"])["TRANSCRIPT"][0, 0] == b""
        valid = transcripts(module, client, "asr_quartznet", *one_utterance(clip))
    finally:
        client.close()
    assert valid == [in_process["asr_quartznet"](clip)]
