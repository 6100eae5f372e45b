"""The asr_whisper repository, built from the installed tiny.en and served by the real Triton
server, transcribes real speech exactly as the in-process WhisperReference does.

One build and one server for the module. The ensemble is the CTC pipelines' endpoint, so the
plain transcribe client talks to it unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import numpy as np
import pytest
from helpers.largest_requests import send_largest
from helpers.served_requests import (
    connect,
    infer,
    is_bad_request,
    one_utterance,
    said_with_pauses,
    segments,
    sentences_with_pauses,
    transcripts,
)
from helpers.worker_faults import assert_healed, kill_a_worker_under_load
from test_whisper_reference import normalize

from modelrepo_gen.clients.whisper_reference import WhisperReference
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import transcribe_arrays

pytestmark = pytest.mark.server

ENSEMBLE = "asr_whisper"
RATE = 16000
MAX_SECONDS = 45.0  # the build's pipeline.max_audio_seconds: two windows
MAX_WER = 0.05


@pytest.fixture(scope="module")
def repository(tiny_en: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers.asr_fixtures import compose_config

    from modelrepo_gen.assembly.run import build_repository

    output = tmp_path_factory.mktemp("whisper") / "repo"
    overrides = ["pipeline=asr_whisper", f"pipeline.max_audio_seconds={MAX_SECONDS}"]
    build_repository(compose_config(overrides), output)
    return output


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[TritonServer]:
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        yield triton


@pytest.fixture(scope="module")
def reference(tiny_en: Path) -> WhisperReference:
    return WhisperReference(tiny_en)


@pytest.fixture(scope="module")
def still_serving(server, reference, librivox) -> Callable[[], None]:
    """Asserts the server still transcribes a short clip as the reference does (after a bad
    request, say)."""
    clip = librivox[3][1][: 3 * RATE]
    expected = reference.transcribe(clip)

    def check() -> None:
        assert served(server, clip) == expected

    return check


def served(server: TritonServer, audio: np.ndarray) -> str:
    module, client = connect(server, "http")
    try:
        return transcripts(module, client, ENSEMBLE, *one_utterance(audio))[0]
    finally:
        client.close()


def test_repository_is_self_contained_and_declares_its_calls(repository: Path) -> None:
    manifest = json.loads((repository / "manifest.json").read_text())
    assert "asr_whisper_detokenizer/1/tokenizer.json" in manifest["files"]
    config = (repository / "asr_whisper_generator" / "config.pbtxt").read_text()
    for role in ("features", "encoder", "decoder"):
        assert f"asr_whisper_{role}" in config
        assert (repository / f"asr_whisper_{role}" / "1" / "model.onnx").is_file()
    assert "calls decoder" in (repository / "README.md").read_text()
    assert manifest["weights"]["asr_whisper_decoder"]["path"].endswith("model.bin")


def test_librivox_transcripts_equal_the_reference(server, reference, librivox) -> None:
    clips = [clip for _, clip, _ in librivox]
    expected = [reference.transcribe(clip) for clip in clips]
    # The unchanged transcribe client, as a user runs it.
    texts = transcribe_arrays(clips, url=server.http_url)
    for (path, _, truth), text, want in zip(librivox, texts, expected):
        print(f"{path.stem}: {text!r} (reference {want!r}; truth {truth!r})")
    assert texts == expected
    wer = jiwer.wer([normalize(t) for _, _, t in librivox], [normalize(t) for t in texts])
    print(f"served WER over {len(clips)} utterances: {wer:.4f}")
    assert wer <= MAX_WER


def test_concurrent_requests_of_different_lengths_equal_one_by_one(server, librivox) -> None:
    clips = []
    for _, clip, _ in librivox:  # 2 to 4 seconds each
        clips += [clip[: 2 * RATE], clip[RATE : 5 * RATE]]
    alone = [served(server, clip) for clip in clips]
    with ThreadPoolExecutor(max_workers=len(clips)) as pool:
        together = list(pool.map(lambda clip: served(server, clip), clips))
    assert together == alone
    assert len(set(alone)) == len(alone)  # every clip says something of its own


def test_audio_longer_than_a_window_is_split_and_joined(server, reference, librivox) -> None:
    first, second = librivox[0][1], librivox[4][1]
    audio = np.zeros(45 * RATE, dtype=np.float32)
    audio[: first.size] = first  # window one: 0-30 s
    audio[30 * RATE : 30 * RATE + second.size] = second  # window two: 30-45 s
    expected = f"{reference.transcribe(first)} {reference.transcribe(second)}"
    assert served(server, audio) == expected


def test_long_audio_is_cut_where_segments_end_with_no_sentence_dropped(
    server, reference, librivox
) -> None:
    """45 s of seven sentences with pauses, the fifth across the 30 s mark: the second window
    starts where the first one's last complete segment ended, so every sentence comes back
    whole and once, with the reference's segments and times."""
    audio = sentences_with_pauses(librivox, RATE)
    expected = reference.segments([audio])[0]
    module, client = connect(server, "http")
    try:
        found = segments(module, client, ENSEMBLE, audio)
    finally:
        client.close()
    for segment in found:
        print(segment)
    assert [s["text"] for s in found] == [text for *_, text in expected]
    for segment, (start, end, _) in zip(found, expected):
        assert segment["start"] == pytest.approx(start, abs=0.011)
        assert segment["end"] == pytest.approx(end, abs=0.011)
    assert all(a["end"] <= b["start"] for a, b in zip(found, found[1:]))
    heard = normalize(" ".join(s["text"] for s in found))
    said = normalize(" ".join(text for _, _, text in said_with_pauses(librivox)))
    assert jiwer.wer(said, heard) <= 0.1
    fifth = normalize(librivox[4][2])
    assert any(normalize(s["text"]) == fifth for s in found)  # whole, in one segment


def test_the_transcribe_command_prints_the_segments_of_a_long_recording(
    server, reference, librivox, tmp_path
) -> None:
    """As a user runs it: `--segments` prints start, end and text of each segment."""
    import subprocess
    import sys

    from modelrepo_gen.clients.wav_writer import write_wav

    wav = tmp_path / "long.wav"
    write_wav(wav, sentences_with_pauses(librivox, RATE), RATE)
    command = [sys.executable, "-m", "modelrepo_gen.transcribe", "--url", server.http_url]
    done = subprocess.run(
        [*command, "--segments", str(wav)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    print(done.stdout)
    assert len(rows) >= 6 and all(len(row) == 4 and row[0] == str(wav) for row in rows)
    starts = [float(row[1]) for row in rows]
    assert (
        starts == sorted(starts)
        and float(rows[-1][2]) <= len(sentences_with_pauses(librivox, RATE)) / RATE
    )
    heard = normalize(" ".join(row[3] for row in rows))
    said = normalize(" ".join(text for _, _, text in said_with_pauses(librivox)))
    assert jiwer.wer(said, heard) <= 0.1  # the file is 16-bit PCM: close to the float audio


def test_noise_without_speech_is_skipped_not_transcribed(server, reference) -> None:
    """5 s of faint noise: greedy decoding hears "You"; the no-speech probability (above 0.6)
    and the unsure words (average log-probability below -1) make it silence: nothing."""
    noise = (np.random.default_rng(0).normal(size=5 * RATE) * 0.01).astype(np.float32)
    assert reference.transcribe(noise) != ""
    assert served(server, noise) == ""


def test_an_unsure_window_is_sampled_again_the_same_way_alone_or_batched(
    server, reference, librivox
) -> None:
    """Speech played backwards: greedy decoding is unsure (average log-probability below -1),
    so the window is sampled again at rising temperatures, seeded by its audio: another text
    than greedy's, the same on every request, alone or batched with another."""
    backwards = librivox[1][1][::-1].copy()
    greedy = reference.transcribe(backwards)
    alone = served(server, backwards)
    print(f"greedy {greedy!r}, served {alone!r}")
    assert alone != greedy and alone
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(lambda clip: served(server, clip), [backwards, librivox[0][1]]))
    assert together[0] == alone
    assert together[1] == reference.transcribe(librivox[0][1])


@pytest.mark.parametrize(
    ("audio", "lengths", "message"),
    [
        (np.zeros((1, 0), np.float32), np.array([[0]], np.int32), "AUDIO_SIGNAL is empty"),
        (np.array([[0.1, np.nan, 0.2]], np.float32), np.array([[3]], np.int32), "NaN"),
        (
            np.array([[0.1, 1e30, 0.2]], np.float32),
            np.array([[3]], np.int32),
            r"AUDIO_SIGNAL must hold values from -1e\+06 to 1e\+06, got a sample of size 1e\+30",
        ),
        (np.zeros((1, 100), np.float32), np.array([[101]], np.int32), "between 1 and 100"),
        (np.zeros((1, 100), np.float32), np.array([[0]], np.int32), "between 1 and 100"),
        (
            np.zeros((1, int(MAX_SECONDS * RATE) + 1), np.float32),
            np.array([[int(MAX_SECONDS * RATE) + 1]], np.int32),
            f"more than the maximum of {int(MAX_SECONDS * RATE)}",
        ),
    ],
    ids=["empty", "nan", "huge", "length-too-long", "length-zero", "over-max-seconds"],
)
def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(
    server, still_serving, audio, lengths, message
) -> None:
    from tritonclient.utils import InferenceServerException

    module, client = connect(server, "http")
    try:
        with pytest.raises(InferenceServerException, match=message) as raised:
            transcripts(module, client, ENSEMBLE, audio, lengths)
        assert "asr_whisper_generator" in str(raised.value)
        assert is_bad_request(raised.value), raised.value
    finally:
        client.close()
    still_serving()


def test_a_decoding_parameter_is_refused_by_the_greedy_runtime(server, still_serving) -> None:
    """Beam search is whisper_runtime=ctranslate2's: asking this one for it is a bad request."""
    from tritonclient.utils import InferenceServerException

    module, client = connect(server, "http")
    audio, lengths = one_utterance(np.zeros(RATE, dtype=np.float32))
    try:
        with pytest.raises(InferenceServerException, match="unknown request parameter 'beam_size'"):
            transcripts(module, client, ENSEMBLE, audio, lengths, parameters={"beam_size": 5})
    finally:
        client.close()
    still_serving()


@pytest.mark.parametrize(
    ("audio_type", "length_type", "wrong"),
    [("FP64", "INT32", "AUDIO_SIGNAL"), ("FP32", "INT64", "NUM_SAMPLES")],
)
def test_wrong_tensor_type_is_refused_and_the_server_keeps_serving(
    server, still_serving, audio_type, length_type, wrong
) -> None:
    from tritonclient.utils import InferenceServerException

    audio = np.zeros((1, RATE), dtype=np.float64 if audio_type == "FP64" else np.float32)
    lengths = np.array([[RATE]], dtype=np.int64 if length_type == "INT64" else np.int32)
    module, client = connect(server, "http")
    try:
        with pytest.raises(InferenceServerException, match=f"{wrong}.*data-type|{wrong}.*datatype"):
            transcripts(module, client, ENSEMBLE, audio, lengths, audio_type, length_type)
    finally:
        client.close()
    still_serving()


def test_a_killed_generator_worker_is_reloaded_under_load(server, librivox) -> None:
    """The generator (running the features, encoder and decoder models inside it on the CPU
    target) dies mid-generation: requests fail meanwhile, none is answered wrong, and the
    endpoint transcribes again after the reload."""
    audio = librivox[1][1][: 16000 * 2]
    expected = served(server, audio)
    outcome = kill_a_worker_under_load(
        server, f"{ENSEMBLE}_generator", lambda: served(server, audio), lambda t: t == expected
    )
    assert_healed(outcome, f"{ENSEMBLE}_generator")


def test_the_largest_allowed_request_is_answered_within_the_memory_budget(
    server, repository, librivox
) -> None:
    """max_batch_size recordings (the ensemble's: 4, the encoder's) of max_audio_seconds each."""
    import tritonclient.http as module

    rows = int(
        re.search(r"max_batch_size: (\d+)", (repository / ENSEMBLE / "config.pbtxt").read_text())[1]
    )
    speech = np.concatenate([audio for _, audio, _ in librivox])
    longest = np.resize(speech, int(MAX_SECONDS * RATE))
    batch = np.stack([np.roll(longest, shift * RATE * 3) for shift in range(rows)])
    lengths = np.full((rows, 1), batch.shape[1], dtype=np.int32)
    client = module.InferenceServerClient(server.http_url, network_timeout=900)
    try:
        texts, _ = send_largest(
            server,
            ENSEMBLE,
            f"{rows} x {MAX_SECONDS:g} s of audio",
            lambda: transcripts(module, client, ENSEMBLE, batch, lengths),
        )
    finally:
        client.close()
    assert len(texts) == rows and all(len(t.split()) > 30 for t in texts)
    assert texts[1] == served(server, batch[1])  # as when sent alone


def test_the_decoder_refuses_token_ids_outside_the_vocabulary(server) -> None:
    """Called directly (it is served): the ids are checked before onnxruntime sees them."""
    from tritonclient.utils import InferenceServerException

    module, client = connect(server, "http")
    cross = np.zeros((1, 4, 2, 6, 1500, 64), dtype=np.float32)
    past = np.zeros((1, 4, 2, 6, 0, 64), dtype=np.float32)
    try:
        for token in (60_000, -1):
            tensors = {
                "TOKENS": (np.array([[token]], dtype=np.int64), "INT64"),
                "PAST_KV": (past, "FP32"),
                "CROSS_KV": (cross, "FP32"),
            }
            with pytest.raises(InferenceServerException) as refused:
                infer(module, client, f"{ENSEMBLE}_decoder", tensors, ["LOGITS"])
            assert "TOKENS must hold values from 0 to 51863" in refused.value.message()
            assert is_bad_request(refused.value)
    finally:
        client.close()
