"""Built CTC ASR repositories, served by the real Triton server, agree with PyTorch on real speech.

Every build of asr_fixtures.BUILDS (QuartzNet-mini and Jasper-mini, ONNX and TorchScript, fp16,
no dynamic batching, a 2 s audio limit) lives in one repository that one server loads for the
whole module. The acoustic models carry a checkpoint with a large random classifier, so the
transcripts change from frame to frame and any disagreement shows up as different text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelrepo_gen.asr_reference import AsrReference
from modelrepo_gen.audio import load_audio
from modelrepo_gen.parity import compare
from modelrepo_gen.transcribe import transcribe_arrays, word_errors
from modelrepo_gen.triton_server import TritonServer

# The session fixtures (builds, combined repository, LibriVox audio) come from asr_fixtures.
pytest_plugins = ["asr_fixtures"]
pytestmark = pytest.mark.server

SAMPLE_RATE = 16000
NUM_CLASSES = 29
# ONNX and TorchScript acoustic models (both run on target=cpu), Jasper and QuartzNet.
FORMAT_MATRIX = ["asr_quartznet", "asr_quartznet_ts", "asr_jasper", "asr_jasper_onnx"]


@pytest.fixture(scope="module")
def server(asr_combined_repository: Path) -> Iterator[TritonServer]:
    with TritonServer(asr_combined_repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        yield triton


@pytest.fixture(scope="module")
def references(asr_builds: dict[str, Path]) -> dict[str, AsrReference]:
    return {name: AsrReference.from_repository(path) for name, path in asr_builds.items()}


@pytest.fixture(scope="module")
def clip(librivox: list) -> np.ndarray:
    """1.5 s of real speech: short enough for the 2 s repository."""
    return librivox[1][1][: int(1.5 * SAMPLE_RATE)]


# -- raw requests --------------------------------------------------------------------------------
def _connect(server: TritonServer, protocol: str) -> tuple[Any, Any]:
    if protocol == "http":
        import tritonclient.http as module

        return module, module.InferenceServerClient(server.http_url)
    import tritonclient.grpc as module

    return module, module.InferenceServerClient(server.grpc_url)


def _infer(
    module: Any,
    client: Any,
    model: str,
    tensors: dict[str, tuple[np.ndarray, str]],
    outputs: list[str],
) -> dict[str, np.ndarray]:
    inputs = []
    for name, (array, datatype) in tensors.items():
        tensor = module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    requested = [module.InferRequestedOutput(name) for name in outputs]
    result = client.infer(model, inputs, outputs=requested)
    return {name: result.as_numpy(name) for name in outputs}


def _transcripts(
    module: Any,
    client: Any,
    model: str,
    audio: np.ndarray,
    lengths: np.ndarray,
    audio_type: str = "FP32",
    length_type: str = "INT32",
) -> list[str]:
    tensors = {"AUDIO_SIGNAL": (audio, audio_type), "NUM_SAMPLES": (lengths, length_type)}
    texts = _infer(module, client, model, tensors, ["TRANSCRIPT"])["TRANSCRIPT"].reshape(-1)
    return [t.decode("utf-8") for t in texts]


def _one(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return audio.reshape(1, -1), np.array([[audio.size]], dtype=np.int32)


def _batch_counts(server: TritonServer, model: str) -> dict[int, int]:
    """Triton's executions of ``model`` so far, per batch size."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    try:
        (stats,) = client.get_inference_statistics(model)["model_stats"]
    finally:
        client.close()
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["batch_stats"]}


def _varied_lengths(librivox: list) -> list[np.ndarray]:
    """Each utterance whole and cut to 30 % and 65 % of it: 15 different lengths."""
    audios = []
    for _, audio, _ in librivox:
        audios += [audio, audio[: int(0.3 * audio.size)], audio[: int(0.65 * audio.size)]]
    assert len({a.size for a in audios}) == len(audios)
    return audios


# -- transcripts ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "protocol"),
    [(name, "http") for name in FORMAT_MATRIX] + [("asr_jasper", "grpc")],
)
def test_served_transcripts_equal_pytorch(
    name: str,
    protocol: str,
    server: TritonServer,
    references: dict[str, AsrReference],
    librivox: list,
) -> None:
    audios = [audio for _, audio, _ in librivox]
    expected = [references[name].transcribe(audio) for audio in audios]
    # The fake classifier makes every utterance's text long and distinct: a real comparison.
    assert len(set(expected)) == len(expected)
    assert min(len(text) for text in expected) > 20
    url = server.http_url if protocol == "http" else server.grpc_url
    assert transcribe_arrays(audios, url, protocol, model_name=name) == expected


def test_one_padded_batch_request_honours_each_num_samples(
    server: TritonServer,
    references: dict[str, AsrReference],
    librivox: list,
) -> None:
    audios = _varied_lengths(librivox)[:8]  # max_batch_size
    width = max(a.size for a in audios)
    batch = np.stack([np.pad(a, (0, width - a.size)) for a in audios])
    lengths = np.array([[a.size] for a in audios], dtype=np.int32)
    module, client = _connect(server, "http")
    try:
        texts = _transcripts(module, client, "asr_quartznet", batch, lengths)
    finally:
        client.close()
    assert texts == [references["asr_quartznet"].transcribe(a) for a in audios]


# -- acoustic-model logits -----------------------------------------------------------------------
@pytest.mark.parametrize("name", [*FORMAT_MATRIX, "asr_quartznet_fp16"])
def test_served_acoustic_logits_match_pytorch(
    name: str,
    server: TritonServer,
    asr_builds: dict[str, Path],
    references: dict[str, AsrReference],
    librivox: list,
) -> None:
    manifest = json.loads((asr_builds[name] / "manifest.json").read_text())
    unit = manifest["models"][f"{name}_acoustic_model"]
    tolerance = unit["tolerance"]
    assert tolerance == {"fp32": 1e-4, "fp16": 2e-2}[unit["precision"]]
    reference = references[name]
    features, feature_lengths, logprobs, encoded = [], [], [], []
    with torch.inference_mode():
        for _, audio, _ in librivox:
            signal = torch.from_numpy(audio).view(1, -1)
            feats, frames = reference.features(signal, torch.tensor([[audio.size]]).int())
            out, out_lengths = reference.acoustic(feats, frames)
            features.append(feats.numpy())
            feature_lengths.append(frames.numpy())
            logprobs.append(out.numpy())
            encoded.append(out_lengths.numpy())

    model = f"{name}_acoustic_model"
    module, client = _connect(server, "http")
    alone, together = [], []
    try:
        for feats, frames, ref, ref_lengths in zip(features, feature_lengths, logprobs, encoded):
            tensors = {"FEATURES": (feats, "FP32"), "FEATURE_LENGTHS": (frames, "INT32")}
            served = _infer(module, client, model, tensors, ["LOGPROBS", "ENCODED_LENGTHS"])
            np.testing.assert_array_equal(served["ENCODED_LENGTHS"], ref_lengths)
            n = int(ref_lengths[0, 0])
            assert served["LOGPROBS"].shape == (1, n, NUM_CLASSES)
            alone.append(compare(ref[0, :n], served["LOGPROBS"][0], "LOGPROBS")[1])
        # All five in one request, zero-padded to the longest: each item as alone.
        width = max(f.shape[2] for f in features)
        padded = np.concatenate(
            [np.pad(f, ((0, 0), (0, 0), (0, width - f.shape[2]))) for f in features]
        )
        tensors = {
            "FEATURES": (padded, "FP32"),
            "FEATURE_LENGTHS": (np.concatenate(feature_lengths), "INT32"),
        }
        served = _infer(module, client, model, tensors, ["LOGPROBS", "ENCODED_LENGTHS"])
    finally:
        client.close()
    np.testing.assert_array_equal(served["ENCODED_LENGTHS"], np.concatenate(encoded))
    assert served["LOGPROBS"].shape == (5, max(int(e[0, 0]) for e in encoded), NUM_CLASSES)
    for item, (ref, ref_lengths) in zip(served["LOGPROBS"], zip(logprobs, encoded)):
        n = int(ref_lengths[0, 0])
        together.append(compare(ref[0, :n], item[:n], "LOGPROBS")[1])
    print(
        f"{name}: served LOGPROBS relative error {max(alone):.3e} one by one, "
        f"{max(together):.3e} in one padded batch (tolerance {tolerance:g})"
    )
    assert max(alone) <= tolerance and max(together) <= tolerance


# -- concurrency and dynamic batching ------------------------------------------------------------
@pytest.mark.parametrize("name", ["asr_quartznet", "asr_jasper"])
def test_concurrent_requests_give_their_one_by_one_transcripts(
    name: str,
    server: TritonServer,
    references: dict[str, AsrReference],
    librivox: list,
) -> None:
    audios = _varied_lengths(librivox)
    one_by_one = transcribe_arrays(audios, server.http_url, "http", name, concurrency=1)
    assert one_by_one == [references[name].transcribe(a) for a in audios]
    together = transcribe_arrays(audios * 2, server.http_url, "http", name, concurrency=8)
    assert together == one_by_one * 2


def test_dynamic_batching_runs_concurrent_requests_together(
    server: TritonServer,
    librivox: list,
) -> None:
    audios = _varied_lengths(librivox)
    model = "asr_quartznet_acoustic_model"
    expected = transcribe_arrays(audios, server.http_url, "http", "asr_quartznet")
    before = _batch_counts(server, model)
    batched, sent = False, 0
    for _ in range(3):  # batches form under load; a few rounds make that certain
        together = transcribe_arrays(audios, server.http_url, "http", "asr_quartznet", 8)
        assert together == expected
        sent += len(audios)
        after = _batch_counts(server, model)
        delta = {size: after[size] - before.get(size, 0) for size in after}
        if any(size > 1 and count > 0 for size, count in delta.items()):
            batched = True
            break
    assert batched, f"no execution ran more than one request: {delta}"
    print(f"{model}: executions per batch size under 8 concurrent clients: {delta}")
    # Every request was run exactly once, alone or inside a batch.
    assert sum(size * count for size, count in delta.items()) == sent


def test_without_dynamic_batching_every_execution_runs_one_request(
    server: TritonServer,
    references: dict[str, AsrReference],
    librivox: list,
) -> None:
    audios = _varied_lengths(librivox)
    name = "asr_quartznet_nobatch"
    before = _batch_counts(server, f"{name}_acoustic_model")
    together = transcribe_arrays(audios, server.http_url, "http", name, concurrency=8)
    assert together == [references[name].transcribe(a) for a in audios]
    after = _batch_counts(server, f"{name}_acoustic_model")
    delta = {size: after[size] - before.get(size, 0) for size in after}
    assert {size: count for size, count in delta.items() if count} == {1: len(audios)}


# -- bad requests --------------------------------------------------------------------------------
def _bad_requests(clip: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, str, str, str]]:
    """name -> (audio, NUM_SAMPLES, audio type, length type, the error it must name)."""
    n = clip.size
    audio, length = _one(clip)

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
    references: dict[str, AsrReference],
    clip: np.ndarray,
) -> None:
    from tritonclient.utils import InferenceServerException

    audio, lengths, audio_type, length_type, message = _bad_requests(clip)[case]
    module, client = _connect(server, protocol)
    try:
        with pytest.raises(InferenceServerException, match=message):
            _transcripts(module, client, "asr_quartznet", audio, lengths, audio_type, length_type)
        valid = _transcripts(module, client, "asr_quartznet", *_one(clip))
    finally:
        client.close()
    assert valid == [references["asr_quartznet"].transcribe(clip)]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_audio_longer_than_max_audio_seconds_is_refused(
    protocol: str,
    server: TritonServer,
    asr_builds: dict[str, Path],
    references: dict[str, AsrReference],
    librivox: list,
    clip: np.ndarray,
) -> None:
    from tritonclient.utils import InferenceServerException

    name = "asr_quartznet_short"
    config = json.loads((asr_builds[name] / "manifest.json").read_text())["config"]
    assert config["pipeline"]["max_audio_seconds"] == 2.0
    limit = 2 * SAMPLE_RATE
    too_long = librivox[1][1][: limit + 1]
    module, client = _connect(server, protocol)
    try:
        with pytest.raises(
            InferenceServerException,
            match=rf"AUDIO_SIGNAL is {limit + 1} long, more than the maximum of {limit}",
        ):
            _transcripts(module, client, name, *_one(too_long))
        at_limit = librivox[1][1][:limit]
        valid = _transcripts(module, client, name, *_one(at_limit))
        valid += _transcripts(module, client, name, *_one(clip))
    finally:
        client.close()
    assert valid == [references[name].transcribe(at_limit), references[name].transcribe(clip)]


def test_bad_requests_among_concurrent_good_ones_fail_alone(
    server: TritonServer,
    references: dict[str, AsrReference],
    librivox: list,
) -> None:
    from tritonclient.utils import InferenceServerException

    good = _varied_lengths(librivox)[:12]
    bad = [a.copy() for a in good[:4]]
    for audio in bad:
        audio[audio.size // 3] = np.nan
    requests = [("good", a) for a in good] + [("bad", a) for a in bad]
    order = np.random.default_rng(0).permutation(len(requests))
    requests = [requests[i] for i in order]

    def send(audio: np.ndarray) -> str:
        module, client = _connect(server, "http")
        try:
            (text,) = _transcripts(module, client, "asr_quartznet", *_one(audio))
            return text
        except InferenceServerException as error:
            return f"refused: {error.message()}"
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, [audio for _, audio in requests]))
    for (kind, audio), answer in zip(requests, answers):
        if kind == "good":
            assert answer == references["asr_quartznet"].transcribe(audio)
        else:
            assert answer.startswith("refused: ") and "NaN or infinite" in answer


# -- the transcribe command line -----------------------------------------------------------------
def test_transcribe_cli_prints_served_transcripts_and_wer(
    server: TritonServer,
    references: dict[str, AsrReference],
    librivox: list,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "librivox.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {
                    "audio_filepath": str(path),
                    "duration": audio.size / SAMPLE_RATE,
                    "text": text,
                }
            )
            + "\n"
            for path, audio, text in librivox
        )
    )
    command = [
        sys.executable,
        "-m",
        "modelrepo_gen.transcribe",
        "--manifest",
        str(manifest),
        "--url",
        server.http_url,
        "--model",
        "asr_quartznet",
        "--concurrency",
        "3",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(librivox) + 1, result.stdout
    hypotheses = [references["asr_quartznet"].transcribe(audio) for _, audio, _ in librivox]
    for line, (path, _, _), hypothesis in zip(lines, librivox, hypotheses):
        assert line == f"{path}\t{' '.join(hypothesis.split())}"
    errors = word_errors([text for _, _, text in librivox], hypotheses)
    assert errors.reference_words == sum(len(text.split()) for _, _, text in librivox)
    assert errors.rate is not None and errors.rate > 0.5  # random weights: not words
    assert lines[-1] == (
        f"WER: {100 * errors.rate:.2f}% ({errors.errors} errors / {errors.reference_words} "
        f"reference words, {len(librivox)} utterances)"
    )


@pytest.mark.server
def test_transcribe_cli_resamples_to_the_rate_the_model_declares(
    server: TritonServer, references: dict[str, AsrReference], librivox: list
) -> None:
    """A 16 kHz file sent to an 8 kHz pipeline is resampled to 8 kHz without being told."""
    path = librivox[0][0]
    expected = references["asr_quartznet_8k"].transcribe(load_audio(path, 8000))
    at_16k = references["asr_quartznet_8k"].transcribe(load_audio(path, 16000))
    assert expected != at_16k  # the rate matters, so the check below can fail
    command = [sys.executable, "-m", "modelrepo_gen.transcribe", "--url", server.http_url]
    result = subprocess.run(
        [*command, "--model", "asr_quartznet_8k", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{path}\t{' '.join(expected.split())}"]
