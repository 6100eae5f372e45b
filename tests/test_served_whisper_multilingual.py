"""A multilingual Whisper (base, CTranslate2) served with `whisper_runtime=ctranslate2`: the
language is detected per recording and comes back as LANGUAGE, or chosen by the build or the
request (`language`, `task`: transcribe or translate); the answers are CTranslate2's own on the
same prompt (helpers/ctranslate2_whisper_reference.py).

One build and one server for the module. The checkpoint is Systran's faster-whisper-base, which
two packages carry in two parts (tests/helpers/whisper_fixtures.py joins them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest
from helpers.ctranslate2_whisper_reference import CTranslate2WhisperReference
from helpers.project import compose_config
from helpers.served_requests import connect, infer, is_bad_request, one_utterance
from test_whisper_reference import normalize

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.components.triton_python.whisper_fallback import compression_ratio
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.whisper import load_whisper
from modelrepo_gen.serve.server import TritonServer

pytestmark = pytest.mark.server

ENSEMBLE = "asr_whisper"
MAX_WER = 0.1  # base on the five LibriVox utterances


def overrides(folder: Path, *more: str) -> list[str]:
    """Greedy unless a request says otherwise: CTranslate2's answers compared with are."""
    runtime = ["whisper_runtime=ctranslate2", "model.beam_size=1"]
    return ["pipeline=asr_whisper", *runtime, f"model.path={folder}", *more]


@pytest.fixture(scope="module")
def repository(whisper_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("whisper_base") / "repo"
    build_repository(compose_config(overrides(whisper_base)), output)
    return output


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[TritonServer]:
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        yield triton


@pytest.fixture(scope="module")
def engine(whisper_base: Path) -> CTranslate2WhisperReference:
    return CTranslate2WhisperReference(whisper_base, load_whisper(whisper_base).facts)


def served(server: TritonServer, audio: np.ndarray, **parameters: object) -> tuple[str, str]:
    """(transcript, language) of one recording. A window stuck in a loop is decoded at up to
    six temperatures, five samples each, to the token limit: minutes on a busy machine."""
    module, client = connect(server, "http", timeout_s=600)
    signal, lengths = one_utterance(audio)
    tensors = {"AUDIO_SIGNAL": (signal, "FP32"), "NUM_SAMPLES": (lengths, "INT32")}
    try:
        out = infer(module, client, ENSEMBLE, tensors, ["TRANSCRIPT", "LANGUAGE"], parameters)
    finally:
        client.close()
    return out["TRANSCRIPT"].reshape(-1)[0].decode(), out["LANGUAGE"].reshape(-1)[0].decode()


def test_english_speech_is_detected_as_english_and_transcribed_as_ctranslate2_does(
    server, engine, librivox
) -> None:
    texts = []
    for i, (_, clip, _) in enumerate(librivox):
        text, language = served(server, clip)
        assert language == "en"
        if i < 2:  # CTranslate2's own answers, on two of them
            assert engine.language(clip) == "en"
            assert text == engine.transcribe(clip, language="en")
        texts.append(text)
    truths = [normalize(truth) for _, _, truth in librivox]
    wer = jiwer.wer(truths, [normalize(text) for text in texts])
    print(f"Whisper base WER over {len(texts)} LibriVox utterances: {wer:.4f}")
    assert wer <= MAX_WER


def test_a_request_chooses_its_language_and_task(server, engine, librivox) -> None:
    whole = librivox[1][1]  # "He was not an ill-disposed young man."
    german, language = served(server, whole, language="de")
    assert language == "de" and german == engine.transcribe(whole, language="de")
    assert german != served(server, whole)[0]
    clip = whole[: int(1.6 * 16000)]  # "He was not an ..."
    english, _ = served(server, clip)
    translated, language = served(server, clip, language="de", task="translate", beam_size=2)
    assert language == "de"
    assert translated == engine.transcribe(clip, beam_size=2, language="de", task="translate")
    assert served(server, clip, language="auto") == (english, "en")


def test_a_window_stuck_in_a_loop_is_decoded_again_at_a_higher_temperature(
    server, engine, librivox
) -> None:
    """English speech forced to French: greedy decoding repeats one phrase to the token limit
    (CTranslate2's own answer); the temperature fallback samples that window again until its
    text no longer repeats itself."""
    clip = librivox[1][1]
    looping = engine.greedy_text(clip, language="fr")
    assert compression_ratio(looping) > 2.4, looping
    first, language = served(server, clip, language="fr")
    print(f"greedy: {looping[:80]!r}...\nserved: {first!r}")
    assert language == "fr"
    assert compression_ratio(first) <= 2.4 and first != looping


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"language": "xx"}, "'language' must be auto or a language code of this model"),
        ({"language": 3}, "request parameter 'language' must be text, got 3"),
        ({"task": True}, "request parameter 'task' must be text, got True"),
        ({"task": "summarize"}, "'task' must be transcribe or translate, got 'summarize'"),
    ],
    ids=["unknown-language", "number", "bool", "unknown-task"],
)
def test_a_bad_language_or_task_is_refused_and_the_server_keeps_serving(
    server, librivox, parameters, message
) -> None:
    from tritonclient.utils import InferenceServerException

    clip = librivox[4][1]
    with pytest.raises(InferenceServerException, match=message) as raised:
        served(server, clip, **parameters)
    assert is_bad_request(raised.value)
    assert served(server, clip)[1] == "en"


def test_the_build_sets_the_language_and_task_requests_start_from(whisper_base, tmp_path) -> None:
    repository = tmp_path / "repo"
    settings = overrides(whisper_base, "model.language=fr", "model.task=translate")
    build_repository(compose_config(settings), repository)
    config = (repository / f"{ENSEMBLE}_generator" / "config.pbtxt").read_text()
    assert 'key: "language"\n  value { string_value: "fr" }' in config
    assert 'key: "task"\n  value { string_value: "translate" }' in config


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["model.language=xx"], "model.language: 'xx' is not a language of this model"),
        (["model.task=summarize"], "model.task must be one of transcribe, translate"),
    ],
    ids=["unknown-language", "unknown-task"],
)
def test_a_language_or_task_the_model_lacks_is_refused_at_build_time(
    whisper_base, tmp_path, more, message
) -> None:
    with pytest.raises(UserError, match=message):
        build_repository(compose_config(overrides(whisper_base, *more)), tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
