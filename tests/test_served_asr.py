"""Built CTC ASR repositories, served by the real Triton server, answer real speech as the same
repository run in this process does (InProcessRepository), and their acoustic models as PyTorch.

Every build of asr_fixtures.BUILDS (QuartzNet-mini and Jasper-mini, ONNX and TorchScript, fp16,
no dynamic batching, a 2 s audio limit, 8 kHz) lives in one repository that one server loads
for the whole test session. The acoustic models carry a checkpoint with a large random
classifier, so the transcripts change from frame to frame and any disagreement shows up as
different text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.asr_fixtures import Transcriber, pytorch_networks
from helpers.largest_requests import send_largest
from helpers.served_requests import (
    batch_counts,
    connect,
    infer,
    one_utterance,
    transcripts,
    varied_lengths,
)
from helpers.worker_faults import assert_healed, kill_a_worker_under_load

from modelrepo_gen.assembly.parity import compare
from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import transcribe_arrays, word_errors

# The session fixtures (builds, combined repository, LibriVox audio) come from asr_fixtures.
pytestmark = pytest.mark.server

SAMPLE_RATE = 16000
NUM_CLASSES = 29
# ONNX and TorchScript acoustic models (both run on target=cpu), Jasper and QuartzNet.
FORMAT_MATRIX = ["asr_quartznet", "asr_quartznet_ts", "asr_jasper", "asr_jasper_onnx"]


# -- transcripts ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "protocol"),
    [(name, "http") for name in FORMAT_MATRIX] + [("asr_jasper", "grpc")],
)
def test_served_transcripts_equal_in_process(
    name: str,
    protocol: str,
    server: TritonServer,
    in_process: dict[str, Transcriber],
    librivox: list,
) -> None:
    audios = [audio for _, audio, _ in librivox]
    expected = [in_process[name](audio) for audio in audios]
    # The fake classifier makes every utterance's text long and distinct: a real comparison.
    assert len(set(expected)) == len(expected)
    assert min(len(text) for text in expected) > 20
    url = server.http_url if protocol == "http" else server.grpc_url
    assert transcribe_arrays(audios, url, protocol, model_name=name) == expected


def test_one_padded_batch_request_honours_each_num_samples(
    server: TritonServer,
    in_process: dict[str, Transcriber],
    librivox: list,
) -> None:
    audios = varied_lengths(librivox)[:8]  # max_batch_size
    width = max(a.size for a in audios)
    batch = np.stack([np.pad(a, (0, width - a.size)) for a in audios])
    lengths = np.array([[a.size] for a in audios], dtype=np.int32)
    module, client = connect(server, "http")
    try:
        texts = transcripts(module, client, "asr_quartznet", batch, lengths)
    finally:
        client.close()
    assert texts == [in_process["asr_quartznet"](a) for a in audios]


# -- acoustic-model logits -----------------------------------------------------------------------
@pytest.mark.parametrize("name", [*FORMAT_MATRIX, "asr_quartznet_fp16"])
def test_served_acoustic_logits_match_pytorch(
    name: str,
    server: TritonServer,
    asr_builds: dict[str, Path],
    librivox: list,
) -> None:
    manifest = json.loads((asr_builds[name] / "manifest.json").read_text())
    unit = manifest["models"][f"{name}_acoustic_model"]
    tolerance = unit["tolerance"]
    assert tolerance == {"fp32": 1e-4, "fp16": 2e-2}[unit["precision"]]
    features_module, acoustic_module = pytorch_networks(asr_builds[name])
    features, feature_lengths, logprobs, encoded = [], [], [], []
    with torch.inference_mode():
        for _, audio, _ in librivox:
            signal = torch.from_numpy(audio).view(1, -1)
            feats, frames = features_module(signal, torch.tensor([[audio.size]]).int())
            out, out_lengths = acoustic_module(feats, frames)
            features.append(feats.numpy())
            feature_lengths.append(frames.numpy())
            logprobs.append(out.numpy())
            encoded.append(out_lengths.numpy())

    model = f"{name}_acoustic_model"
    module, client = connect(server, "http")
    alone, together = [], []
    try:
        for feats, frames, ref, ref_lengths in zip(features, feature_lengths, logprobs, encoded):
            tensors = {"FEATURES": (feats, "FP32"), "FEATURE_LENGTHS": (frames, "INT32")}
            served = infer(module, client, model, tensors, ["LOGPROBS", "ENCODED_LENGTHS"])
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
        served = infer(module, client, model, tensors, ["LOGPROBS", "ENCODED_LENGTHS"])
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
    in_process: dict[str, Transcriber],
    librivox: list,
) -> None:
    audios = varied_lengths(librivox)
    one_by_one = transcribe_arrays(audios, server.http_url, "http", name, concurrency=1)
    assert one_by_one == [in_process[name](a) for a in audios]
    together = transcribe_arrays(audios * 2, server.http_url, "http", name, concurrency=8)
    assert together == one_by_one * 2


def test_dynamic_batching_runs_concurrent_requests_together(
    server: TritonServer,
    librivox: list,
) -> None:
    audios = varied_lengths(librivox)
    model = "asr_quartznet_acoustic_model"
    expected = transcribe_arrays(audios, server.http_url, "http", "asr_quartznet")
    before = batch_counts(server, model)
    batched, sent = False, 0
    # Batches form when requests wait while the model is busy: on a loaded CI machine three
    # rounds of 8 clients once gave none, so up to ten (it stops at the first batch).
    for _ in range(10):
        together = transcribe_arrays(audios, server.http_url, "http", "asr_quartznet", 8)
        assert together == expected
        sent += len(audios)
        after = batch_counts(server, model)
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
    in_process: dict[str, Transcriber],
    librivox: list,
) -> None:
    audios = varied_lengths(librivox)
    name = "asr_quartznet_nobatch"
    before = batch_counts(server, f"{name}_acoustic_model")
    together = transcribe_arrays(audios, server.http_url, "http", name, concurrency=8)
    assert together == [in_process[name](a) for a in audios]
    after = batch_counts(server, f"{name}_acoustic_model")
    delta = {size: after[size] - before.get(size, 0) for size in after}
    assert {size: count for size, count in delta.items() if count} == {1: len(audios)}


# -- the transcribe command line -----------------------------------------------------------------
def test_transcribe_cli_prints_served_transcripts_and_wer(
    server: TritonServer,
    in_process: dict[str, Transcriber],
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
    hypotheses = [in_process["asr_quartznet"](audio) for _, audio, _ in librivox]
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
    server: TritonServer, in_process: dict[str, Transcriber], librivox: list
) -> None:
    """A 16 kHz file sent to an 8 kHz pipeline is resampled to 8 kHz without being told."""
    path = librivox[0][0]
    expected = in_process["asr_quartznet_8k"](load_audio(path, 8000))
    at_16k = in_process["asr_quartznet_8k"](load_audio(path, 16000))
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


def test_a_killed_python_worker_is_reloaded_under_load(
    server: TritonServer, in_process: dict[str, Transcriber], librivox: list
) -> None:
    audio = librivox[0][1]
    expected = in_process["asr_quartznet"](audio)

    def request() -> str:
        module, client = connect(server, "http")
        try:
            return transcripts(module, client, "asr_quartznet", *one_utterance(audio))[0]
        finally:
            client.close()

    model = "asr_quartznet_acoustic_model"
    outcome = kill_a_worker_under_load(server, model, request, lambda text: text == expected)
    assert_healed(outcome, model)


def test_the_largest_allowed_request_is_answered_within_the_memory_budget(
    server: TritonServer, in_process: dict[str, Transcriber], librivox: list
) -> None:
    """max_batch_size (8) utterances of max_audio_seconds (60 s) each, in one request."""
    speech = np.concatenate([audio for _, audio, _ in librivox])
    longest = np.resize(speech, 60 * SAMPLE_RATE)  # real speech, repeated to the limit
    batch = np.stack([np.roll(longest, shift * SAMPLE_RATE) for shift in range(8)])
    lengths = np.full((8, 1), batch.shape[1], dtype=np.int32)
    module, client = connect(server, "http")
    try:
        texts, _ = send_largest(
            server,
            "asr_quartznet",
            "8 x 60 s of audio",
            lambda: transcripts(module, client, "asr_quartznet", batch, lengths),
        )
    finally:
        client.close()
    assert len(texts) == 8 and len(set(texts)) == 8
    assert texts[0] == in_process["asr_quartznet"](batch[0])
