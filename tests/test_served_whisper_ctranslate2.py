"""asr_whisper with `whisper_runtime=ctranslate2`, built from the installed tiny.en (a
CTranslate2 folder) and served by the real Triton server: the same endpoint and answers as the
onnxruntime runtime's reference, windows of concurrent requests decoded together.

fp32 must transcribe exactly as the in-process WhisperReference; int8 (weights quantized by
CTranslate2 on load) is judged by the task, its WER beside the reference's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import numpy as np
import pytest
from helpers.ctranslate2_whisper_reference import CTranslate2WhisperReference
from helpers.project import compose_config
from helpers.served_requests import (
    batch_counts,
    connect,
    infer,
    is_bad_request,
    one_utterance,
    said_with_pauses,
    segments,
    sentences_with_pauses,
)
from helpers.served_requests import transcripts as served_transcripts
from test_whisper_reference import normalize

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.clients.whisper_reference import WhisperReference
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import transcribe_arrays

pytestmark = pytest.mark.server

ENSEMBLE = "asr_whisper"
RATE = 16000
MAX_SECONDS = 45.0
INT8_MAX_EXTRA_WER = 0.005  # the task's parity: half a point of WER beside the reference


def build(output: Path, *overrides: str) -> Path:
    # Greedy unless a test says otherwise (the runtime's default is 5 beams): the references
    # compared with decode greedily.
    base = ["pipeline=asr_whisper", "whisper_runtime=ctranslate2", "model.beam_size=1"]
    base.append(f"pipeline.max_audio_seconds={MAX_SECONDS}")
    build_repository(compose_config([*base, *overrides]), output)
    return output


@pytest.fixture(scope="module")
def repositories(tiny_en: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("whisper_ctranslate2")
    return {
        precision: build(root / precision, f"precision={precision}")
        for precision in ("fp32", "int8")
    }


@pytest.fixture(scope="module")
def server(repositories: dict[str, Path]) -> Iterator[TritonServer]:
    with TritonServer(repositories["fp32"], http_port=0, grpc_port=0, metrics_port=0) as triton:
        yield triton


@pytest.fixture(scope="module")
def reference(tiny_en: Path) -> WhisperReference:
    return WhisperReference(tiny_en)


def served(server: TritonServer, audio: np.ndarray, **parameters: object) -> str:
    module, client = connect(server, "http")
    try:
        texts = served_transcripts(
            module, client, ENSEMBLE, *one_utterance(audio), parameters=parameters or None
        )
        return texts[0]
    finally:
        client.close()


def test_the_repository_carries_the_ctranslate2_model_and_no_exported_decoder(
    repositories: dict[str, Path], tiny_en: Path
) -> None:
    repository = repositories["fp32"]
    generator = repository / f"{ENSEMBLE}_generator"
    assert (generator / "1" / "model.bin").read_bytes() == (tiny_en / "model.bin").read_bytes()
    assert (generator / "1" / "config.json").is_file()
    assert not (repository / f"{ENSEMBLE}_encoder").exists()
    assert not (repository / f"{ENSEMBLE}_decoder").exists()
    manifest = json.loads((repository / "manifest.json").read_text())
    assert f"{ENSEMBLE}_generator/1/model.bin" in manifest["files"]
    config = (generator / "config.pbtxt").read_text()
    assert '"float32"' in config and f"{ENSEMBLE}_features" in config
    assert '"int8"' in (repositories["int8"] / f"{ENSEMBLE}_generator/config.pbtxt").read_text()


@pytest.fixture(scope="module")
def expected(reference, librivox) -> list[str]:
    """The in-process reference's transcript of each LibriVox utterance."""
    return [reference.transcribe(clip) for _, clip, _ in librivox]


def test_fp32_transcripts_equal_the_reference(server, expected, librivox) -> None:
    clips = [clip for _, clip, _ in librivox]
    assert transcribe_arrays(clips, url=server.http_url) == expected


def test_int8_word_error_rate_is_within_half_a_point_of_the_reference(
    repositories, expected, librivox
) -> None:
    truths = [normalize(text) for _, _, text in librivox]
    clips = [clip for _, clip, _ in librivox]
    wanted = jiwer.wer(truths, [normalize(text) for text in expected])
    with TritonServer(repositories["int8"], http_port=0, grpc_port=0, metrics_port=0) as triton:
        texts = transcribe_arrays(clips, url=triton.http_url)
    wer = jiwer.wer(truths, [normalize(text) for text in texts])
    print(f"int8 WER {wer:.4f}, reference {wanted:.4f}: {texts}")
    assert wer <= wanted + INT8_MAX_EXTRA_WER


def test_audio_longer_than_a_window_is_split_and_joined(server, expected, librivox) -> None:
    first, second = librivox[0][1], librivox[4][1]
    audio = np.zeros(40 * RATE, dtype=np.float32)
    audio[: first.size] = first
    audio[30 * RATE : 30 * RATE + second.size] = second
    assert served(server, audio) == f"{expected[0]} {expected[4]}"


def test_a_bad_request_is_refused_and_the_server_keeps_serving(server, librivox) -> None:
    from tritonclient.utils import InferenceServerException

    module, client = connect(server, "http")
    audio = np.array([[0.1, np.nan, 0.2]], np.float32)
    try:
        with pytest.raises(InferenceServerException, match="NaN") as raised:
            served_transcripts(module, client, ENSEMBLE, audio, np.array([[3]], np.int32))
        assert is_bad_request(raised.value)
    finally:
        client.close()
    assert served(server, librivox[1][1])


@pytest.fixture(scope="module")
def engine(tiny_en: Path, reference: WhisperReference) -> CTranslate2WhisperReference:
    return CTranslate2WhisperReference(tiny_en, reference.facts)


@pytest.fixture(scope="module")
def searches(engine, librivox) -> list[tuple[np.ndarray, str, str]]:
    """(clip, greedy transcript, 5-beam transcript) of pieces of the LibriVox utterances cut
    mid-word, where the search matters, by CTranslate2 itself."""
    clips = [
        clip[int(start * RATE) : int((start + seconds) * RATE)]
        for _, clip, _ in librivox[:3]
        for start, seconds in ((0.4, 1.7), (1.1, 2.3))
    ]
    return [(clip, engine.transcribe(clip), engine.transcribe(clip, beam_size=5)) for clip in clips]


def test_a_request_decodes_with_its_own_beam_size_as_ctranslate2_does(server, searches) -> None:
    assert any(greedy != beams for _, greedy, beams in searches)  # the clips tell them apart
    assert [served(server, clip, beam_size=5) for clip, _, _ in searches] == [
        beams for _, _, beams in searches
    ]
    # The build's beam_size: 1.
    assert [served(server, clip) for clip, _, _ in searches] == [g for _, g, _ in searches]


def test_concurrent_requests_are_decoded_together_each_with_its_beam_size(server, searches) -> None:
    """Windows of requests with the same beam size share a batch; each request gets what it
    gets alone."""
    cases = [(clip, 1 + 4 * (i % 2)) for i, (clip, _, _) in enumerate(searches)]
    alone = [greedy if n == 1 else beams for (_, greedy, beams), (_, n) in zip(searches, cases)]
    before = batch_counts(server, f"{ENSEMBLE}_generator")
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        together = list(pool.map(lambda case: served(server, case[0], beam_size=case[1]), cases))
    after = batch_counts(server, f"{ENSEMBLE}_generator")
    assert together == alone
    grown = {size for size, count in after.items() if count > before.get(size, 0)}
    assert max(grown) > 1, f"no batch of several requests was formed: {after}"


@pytest.mark.parametrize("beam_size", [1, 5])
def test_long_audio_seeks_by_timestamps_as_ctranslate2_does(
    server, engine, librivox, beam_size
) -> None:
    """45 s of seven sentences with pauses: the windows follow the predicted timestamps, greedy
    or with beams, with the segments CTranslate2 itself gives when seeking the same way."""
    audio = sentences_with_pauses(librivox, RATE)
    expected = engine.segments(audio, beam_size)
    module, client = connect(server, "http")
    try:
        found = segments(module, client, ENSEMBLE, audio, beam_size=beam_size)
    finally:
        client.close()
    assert [(s["start"], s["end"], s["text"]) for s in found] == [
        (round(start, 2), round(end, 2), text) for start, end, text in expected
    ]
    said = normalize(" ".join(text for _, _, text in said_with_pauses(librivox)))
    assert jiwer.wer(said, normalize(" ".join(s["text"] for s in found))) <= 0.1


def test_conditioning_on_the_previous_text_prompts_each_window_as_ctranslate2_does(
    tiny_en, engine, librivox, tmp_path
) -> None:
    """model.condition_on_previous_text=true: each window after the first starts from
    <|startofprev|> and the text so far; the segments are CTranslate2's own, prompted alike."""
    audio = sentences_with_pauses(librivox, RATE)
    expected = engine.segments(audio, condition=True)
    repository = build(tmp_path / "repo", "model.condition_on_previous_text=true")
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        module, client = connect(triton, "http")
        try:
            found = segments(module, client, ENSEMBLE, audio)
        finally:
            client.close()
    assert [(s["start"], s["end"], s["text"]) for s in found] == [
        (round(start, 2), round(end, 2), text) for start, end, text in expected
    ]
    assert expected != engine.segments(audio)  # the prompt changed what was decoded


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"beam_size": 0}, "'beam_size' must be a number from 1 to 16, got 0"),
        ({"beam_size": 17}, "'beam_size' must be a number from 1 to 16, got 17"),
        ({"beam_size": 2.5}, "'beam_size' must be a whole number, got 2.5"),
        ({"beam_size": "five"}, "'beam_size' must be a number from 1 to 16, got 'five'"),
        ({"temperature": 0.5}, "unknown request parameter 'temperature'"),
        ({"language": "fr"}, "English-only: request parameter 'language' must be en, got 'fr'"),
        ({"task": "translate"}, "English-only: it cannot translate"),
    ],
    ids=["zero", "over-max", "fraction", "text", "unknown", "french", "translate"],
)
def test_a_bad_decoding_parameter_is_refused_and_the_server_keeps_serving(
    server, librivox, parameters, message
) -> None:
    from tritonclient.utils import InferenceServerException

    clip = librivox[2][1]
    with pytest.raises(InferenceServerException, match=message) as raised:
        served(server, clip, **parameters)
    assert is_bad_request(raised.value)
    assert served(server, clip)


def test_the_build_sets_the_default_beam_size(tiny_en, tmp_path) -> None:
    repository = build(tmp_path / "repo", "model.beam_size=3", "model.length_penalty=0.5")
    config = (repository / f"{ENSEMBLE}_generator" / "config.pbtxt").read_text()
    assert 'key: "beam_size"\n  value { string_value: "3" }' in config
    assert 'key: "length_penalty"\n  value { string_value: "0.5" }' in config
    # Unset (null): faster-whisper's 5 beams.
    repository = build(tmp_path / "default", "model.beam_size=null")
    config = (repository / f"{ENSEMBLE}_generator" / "config.pbtxt").read_text()
    assert 'key: "beam_size"\n  value { string_value: "5" }' in config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["precision=fp16"], "CTranslate2 has no float16 on the CPU"),
        (["pipeline.models.generator.threads=-1"], "threads"),
        (["model.beam_size=0"], "model.beam_size must be >= 1 and <= 16, got 0"),
        (["model.beam_size=17"], "model.beam_size must be >= 1 and <= 16, got 17"),
        (["model.length_penalty=-1"], "model.length_penalty must be >= 0"),
        (["model.language=fr"], "model.language: this Whisper model is English-only"),
        (["model.task=translate"], "model.task: this Whisper model is English-only"),
        (["model.timestamps=sometimes"], "model.timestamps: must be always, long_audio, never"),
        (["model.temperatures=[0.4,0.2]"], r"model.temperatures: must rise, got \[0.4, 0.2\]"),
        (["model.temperatures=[]"], "model.temperatures: a list of temperatures from 0 to 2"),
        (["model.temperatures=[0,5]"], "model.temperatures: a list of temperatures from 0 to 2"),
        (["model.best_of=0"], "model.best_of must be >= 1 and <= 16, got 0"),
        (["model.no_speech_threshold=2"], "model.no_speech_threshold must be >= 0 and <= 1"),
    ],
    ids=[
        "fp16-on-cpu",
        "negative-threads",
        "beam-zero",
        "beam-huge",
        "negative-penalty",
        "french",
        "translate",
        "timestamps-unknown",
        "temperatures-falling",
        "temperatures-empty",
        "temperature-huge",
        "best-of-zero",
        "no-speech-over-one",
    ],
)
def test_settings_it_cannot_serve_are_refused_before_anything_is_written(
    tiny_en, tmp_path, overrides, message
) -> None:
    with pytest.raises(UserError, match=message):
        build(tmp_path / "repo", *overrides)
    assert not (tmp_path / "repo").exists()


def test_a_hugging_face_folder_is_converted_and_answers_as_the_ctranslate2_one(
    tiny_en_model, tiny_en, server, librivox, tmp_path
) -> None:
    """The same weights saved by transformers: CTranslate2's converter makes the files served."""
    folder = tmp_path / "hf"
    tiny_en_model.model.save_pretrained(folder)
    (folder / "tokenizer.json").write_bytes((tiny_en / "tokenizer.json").read_bytes())
    repository = build(tmp_path / "repo", f"model.path={folder}")
    assert (repository / f"{ENSEMBLE}_generator" / "1" / "model.bin").is_file()
    clips = [clip for _, clip, _ in librivox[:2]]
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        assert transcribe_arrays(clips, url=triton.http_url) == [served(server, c) for c in clips]


def test_a_folder_that_is_no_whisper_model_is_refused(tiny_en, tmp_path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((tiny_en / "tokenizer.json").read_bytes())
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="model_type 'bert', not 'whisper'"):
        build(tmp_path / "repo", f"model.path={folder}")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("model.beam_size=5", "beam search needs whisper_runtime=ctranslate2"),
        ("model.language=fr", "model.language: the onnxruntime runtime transcribes English"),
        ("model.task=translate", "model.task: the onnxruntime runtime transcribes English"),
    ],
    ids=["beam", "language", "translate"],
)
def test_the_onnxruntime_runtime_refuses_what_only_ctranslate2_decodes(
    tiny_en, tmp_path, setting, message
) -> None:
    with pytest.raises(UserError, match=message):
        build_repository(compose_config(["pipeline=asr_whisper", setting]), tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_the_language_comes_back_with_the_transcript(server, librivox) -> None:
    module, client = connect(server, "http")
    audio, lengths = one_utterance(librivox[0][1])
    tensors = {"AUDIO_SIGNAL": (audio, "FP32"), "NUM_SAMPLES": (lengths, "INT32")}
    try:
        out = infer(module, client, ENSEMBLE, tensors, ["TRANSCRIPT", "LANGUAGE"])
    finally:
        client.close()
    assert out["LANGUAGE"].reshape(-1)[0] == b"en"
