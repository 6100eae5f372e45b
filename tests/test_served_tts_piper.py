"""tts_piper, built from the installed Piper voice and served by the real Triton server,
speaks as the same repository run in this process (InProcessRepository) does.

The voice's graph draws its VITS noise with RandomNormalLike ops that take no seed, so two
runs with the voice's default scales differ. Exact parity is therefore checked on requests
that set noise_scale=0 and noise_w=0 (request parameters; then the graph is deterministic);
the default scales are checked on what the noise must not change: the speech is intelligible
(Whisper tiny.en transcribes it back, WER) and its duration stays near the noise-free one.
One build and one server for the module.
"""

from __future__ import annotations

import os
import re
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from helpers.project import compose_config
from helpers.served_requests import connect, infer, is_bad_request
from helpers.tts_chain_fixtures import CHAIN, STEP_LIMIT, add_chain, expected_chain_audio
from helpers.tts_in_process import InProcessSpeech
from helpers.worker_faults import assert_healed, kill_a_worker_under_load
from scipy.signal import resample_poly

from modelrepo_gen.clients.transcribe_manifest import word_errors
from modelrepo_gen.clients.wav_writer import pcm16
from modelrepo_gen.serve.processes import free_port
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.synthesize import main as synthesize_main

pytestmark = pytest.mark.server

ENSEMBLE = "tts_piper"
RATE = 22050
NO_NOISE = {"noise_scale": 0.0, "noise_w": 0.0}  # request parameters
PARITY_TEXTS = [
    "Hello, world.",
    "Dr. Smith paid $3.50 on May 1st, 1999! Did he? Yes.",
    "The meeting is at 10:30; bring 2 copies & a pen. Thank you.",
]
# Plain words: Whisper writes numbers as digits, which the WER normalization drops.
SPOKEN = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call the doctor before noon tomorrow.",
    "She sells fresh bread at the market every morning.",
    "Turn left at the next corner and keep going until you see the river.",
]
MAX_WER = 0.2
TOLERANCE = 1e-4  # the same onnxruntime graph on the same ids; only threading may differ


@pytest.fixture(scope="module")
def piper_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelrepo_gen.assembly.run import build_repository

    output = tmp_path_factory.mktemp("tts_piper") / "repo"
    build_repository(compose_config(["pipeline=tts_piper"]), output)
    add_chain(output, frontend="tts_piper_frontend")  # tts_chain, see tts_chain_fixtures
    return output


@pytest.fixture(scope="module")
def server(piper_repository: Path) -> Iterator[TritonServer]:
    triton = TritonServer(piper_repository, 0, 0, 0)
    # Under the C locale, as a server started by a service manager often is: any UTF-8 text
    # must still be spoken (its ASCII argument encoding failed on 'Zoë' before).
    with mock.patch.dict(os.environ, {"LANG": "C", "LC_ALL": "C"}):
        triton.start()
    try:
        yield triton
    finally:
        triton.stop()


@pytest.fixture(scope="module")
def reference(piper_repository: Path) -> Iterator[InProcessSpeech]:
    """The repository in this process, noise-free unless a call says otherwise."""
    speech = InProcessSpeech(piper_repository, ENSEMBLE, NO_NOISE)
    yield speech
    speech.close()


def speak(
    server: TritonServer,
    texts: list,
    protocol: str = "http",
    parameters: dict | None = NO_NOISE,
    model: str = ENSEMBLE,
) -> dict[str, np.ndarray]:
    """One request holding `texts`; noise-free unless `parameters` says otherwise."""
    module, client = connect(server, protocol)
    try:
        raw = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
        request = module.InferInput("TEXT", [len(raw), 1], "BYTES")
        request.set_data_from_numpy(np.array(raw, dtype=np.object_).reshape(-1, 1))
        names = ["AUDIO", "AUDIO_LENGTH", "TRUNCATED"]
        outputs = [module.InferRequestedOutput(n) for n in names]
        extra = {"parameters": parameters} if parameters else {}
        result = client.infer(model, [request], outputs=outputs, **extra)
        return {n: result.as_numpy(n) for n in names}
    finally:
        client.close()


def audio_of(result: dict[str, np.ndarray], row: int = 0) -> np.ndarray:
    return result["AUDIO"][row, : int(result["AUDIO_LENGTH"][row, 0])]


def assert_same_audio(served: np.ndarray, expected: np.ndarray) -> None:
    assert served.shape == expected.shape
    assert np.max(np.abs(served - expected)) <= TOLERANCE


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_audio_equals_the_reference(
    server: TritonServer, reference: InProcessSpeech, protocol: str
) -> None:
    for text in PARITY_TEXTS:
        result = speak(server, [text], protocol)
        assert result["TRUNCATED"].tolist() == [[False]]
        assert_same_audio(audio_of(result), reference.speak(text))


def test_batched_and_concurrent_requests(server: TritonServer, reference: InProcessSpeech) -> None:
    expected = [reference.speak(t) for t in PARITY_TEXTS]
    result = speak(server, PARITY_TEXTS)  # one request holding three texts
    for row, audio in enumerate(expected):
        assert_same_audio(audio_of(result, row), audio)
        assert not result["AUDIO"][row, len(audio) :].any()
    with ThreadPoolExecutor(4) as pool:  # requests the server may batch together
        results = list(pool.map(lambda t: speak(server, [t]), PARITY_TEXTS))
    for result, audio in zip(results, expected):
        assert_same_audio(audio_of(result), audio)


def test_long_text_is_split_and_joined(server: TritonServer, reference: InProcessSpeech) -> None:
    text = " ".join(PARITY_TEXTS)
    sentences = len(reference.sentence_ids(text))
    assert sentences == 6
    served = audio_of(speak(server, [text]))
    assert_same_audio(served, reference.speak(text))
    pieces = [reference.speak(t) for t in PARITY_TEXTS]  # 1 + 3 + 2 sentences
    silence = round(0.2 * RATE)
    assert len(served) == sum(len(p) for p in pieces) + (len(pieces) - 1) * silence


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "TEXT is empty"),
        (b"   \n ", "TEXT is empty"),
        (b"?! ... --", "TEXT has nothing to speak"),
        (b"caf\xe9 \xff", "TEXT is not valid UTF-8"),
        (b"word " * 1001, "TEXT is 5005 characters long, more than the maximum of 5000"),
        # The probe's 4000 digits: read digit by digit, far more ids than a text may have.
        (b"1" * 4000, "TEXT needs more than 15000 symbols to speak"),
    ],
)
def test_bad_text_is_refused_and_the_server_keeps_serving(
    server: TritonServer, reference: InProcessSpeech, text: bytes, message: str
) -> None:
    with pytest.raises(Exception, match=message) as refused:
        speak(server, [text])
    assert "tts_piper_frontend" in str(refused.value)
    assert is_bad_request(refused.value), refused.value
    assert_same_audio(audio_of(speak(server, ["Still here."])), reference.speak("Still here."))


def test_synthesize_writes_the_served_audio(
    server: TritonServer, reference: InProcessSpeech, tmp_path: Path, capsys
) -> None:
    text = PARITY_TEXTS[1]
    for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
        out = tmp_path / f"{protocol}.wav"
        noise_free = ["-p", "noise_scale=0", "-p", "noise_w=0"]
        argv = [text, "-o", str(out), "--url", url, "--protocol", protocol, *noise_free]
        argv += ["--model", ENSEMBLE]
        assert synthesize_main(argv) == 0
        expected = reference.speak(text)
        assert (
            f"{out}: {len(expected) / RATE:.2f} s of audio at {RATE} Hz" in capsys.readouterr().out
        )
        with wave.open(str(out), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
            assert wav.getnframes() == len(expected)
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        assert np.max(np.abs(samples.astype(int) - pcm16(expected))) <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["  ", "-o", "{tmp}/a.wav"], "error: the text is empty"),
        (["Hi.", "-o", "{tmp}/missing/a.wav"], "does not exist"),
        (["Hi.", "-o", "{tmp}"], "it is a folder"),
        (["?! ... --", "-o", "{tmp}/a.wav", "--model", "tts_piper"], "TEXT has nothing to speak"),
        (["Hi.", "-o", "{tmp}/a.wav", "--model", "nope"], "model 'nope' is not ready"),
        (["Hi.", "-o", "{tmp}/a.wav", "-p", "noise_w"], "--parameter must be NAME=NUMBER"),
        (
            ["Hi.", "-o", "{tmp}/a.wav", "--model", "tts_piper", "-p", "speed=2"],
            "unknown request parameter 'speed'",
        ),
        (
            ["Hi.", "-o", "{tmp}/a.wav"],
            "serves several ensembles (tts_chain, tts_piper): choose one with --model",
        ),
    ],
)
def test_synthesize_errors_are_one_line(
    server: TritonServer, tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--url", server.http_url]
    assert synthesize_main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*"))


def test_synthesize_without_a_server(tmp_path: Path, capsys) -> None:
    url = f"127.0.0.1:{free_port()}"
    assert synthesize_main(["Hi.", "-o", str(tmp_path / "a.wav"), "--url", url]) == 1
    err = capsys.readouterr().err
    assert "is a Triton server running at this address?" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_request_parameters_reach_the_voice(
    server: TritonServer, reference: InProcessSpeech
) -> None:
    text = PARITY_TEXTS[0]
    slow = audio_of(speak(server, [text], parameters={**NO_NOISE, "length_scale": 1.5}))
    assert_same_audio(slow, reference.speak(text, length_scale=1.5))
    assert len(slow) > 1.3 * len(reference.speak(text))


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"speed": 2}, "unknown request parameter 'speed' (this model takes: length_scale, "),
        ({"noise_w": -1}, "request parameter 'noise_w' must be a number from 0 to 2, got -1"),
        ({"length_scale": 0}, "request parameter 'length_scale' must be a number from 0.25 to 4"),
        # The probe's 46 s, 388 s of audio request: refused before any work.
        ({"length_scale": 1000}, "'length_scale' must be a number from 0.25 to 4, got 1000"),
        ({"noise_scale": "nan"}, "'noise_scale' must be a number from 0 to 2, got 'nan'"),
    ],
)
def test_bad_request_parameters_are_refused(
    server: TritonServer, reference: InProcessSpeech, parameters: dict, message: str
) -> None:
    with pytest.raises(Exception, match=re.escape(message)) as refused:
        speak(server, ["Hello."], parameters=parameters)
    # Said once, by the synthesizer that checks what it passes on to the voice.
    assert str(refused.value).count("tts_piper_") == 1, refused.value
    assert is_bad_request(refused.value), refused.value
    assert_same_audio(audio_of(speak(server, ["Still here."])), reference.speak("Still here."))


def test_default_voice_is_intelligible(
    server: TritonServer, reference: InProcessSpeech, tiny_en: Path
) -> None:
    from modelrepo_gen.clients.whisper_reference import WhisperReference

    whisper = WhisperReference(tiny_en)
    result = speak(server, SPOKEN, parameters=None)  # the voice's own scales: noise on
    clips = []
    for row, text in enumerate(SPOKEN):
        audio = audio_of(result, row)
        noise_free = len(reference.speak(text))
        assert 0.8 * noise_free <= len(audio) <= 1.25 * noise_free  # noise_w varies timing
        clips.append(resample_poly(audio, 320, 441).astype(np.float32))  # to 16 kHz
    heard = whisper.transcribe_batch(clips)
    errors = word_errors(SPOKEN, heard)
    print(f"WER of the Piper voice transcribed back: {errors.rate:.3f} {heard}")
    assert errors.rate <= MAX_WER, heard


def test_acoustic_vocoder_chain(server: TritonServer, reference: InProcessSpeech) -> None:
    """The synthesizer's other chain, over two tiny numpy models (tts_chain_fixtures): PACE
    from a request parameter, STOPPED to TRUNCATED, NOISE drawn in the server from the seed."""
    long = "This one sentence goes on and on and on, longer than the tiny model can ever say."
    texts = ["One. Two three!", long]
    ids = [reference.sentence_ids(t) for t in texts]
    assert max(len(s) for s in ids[0]) <= STEP_LIMIT < len(ids[1][0])
    for pace, parameters in ((1.0, None), (1.5, {"pace": 1.5})):
        together = speak(server, texts, parameters=parameters, model=CHAIN)
        with ThreadPoolExecutor(2) as pool:
            alone = list(
                pool.map(lambda t, p=parameters: speak(server, [t], "http", p, CHAIN), texts)
            )
        for row, sentences in enumerate(ids):
            audio, truncated = expected_chain_audio(sentences, pace)
            for result, index in ((together, row), (alone[row], 0)):
                np.testing.assert_allclose(audio_of(result, index), audio, rtol=0, atol=1e-5)
                assert bool(result["TRUNCATED"][index, 0]) is truncated
    with pytest.raises(Exception, match="unknown request parameter 'noise_w'"):
        speak(server, texts, parameters={"noise_w": 0}, model=CHAIN)


def test_a_killed_synthesizer_worker_is_reloaded_under_load(
    server: TritonServer, reference: InProcessSpeech
) -> None:
    """The voice dies under load (as it did out of memory): on the CPU target it runs inside
    the synthesizer's worker, which is killed."""
    text = PARITY_TEXTS[0]
    expected = reference.speak(text)

    def is_right(result: dict[str, np.ndarray]) -> bool:
        audio = audio_of(result)
        return audio.shape == expected.shape and np.max(np.abs(audio - expected)) <= TOLERANCE

    model = f"{ENSEMBLE}_synthesizer"
    outcome = kill_a_worker_under_load(server, model, lambda: speak(server, [text]), is_right)
    assert_healed(outcome, model)


@pytest.mark.parametrize(
    "text",
    ["Zoë's café serves crème brûlée.", "Hello 😀 world.", "Tab\tand NUL\x00between words."],
    ids=["accents", "emoji", "control_characters"],
)
def test_any_utf8_text_is_spoken_under_the_c_locale(
    server: TritonServer, reference: InProcessSpeech, text: str
) -> None:
    assert_same_audio(audio_of(speak(server, [text])), reference.speak(text))


def test_the_synthesizer_checks_what_it_passes_on_to_the_voice(server: TritonServer) -> None:
    """Called directly: ids the voice does not take, or a sentence longer than it takes, are
    a bad request here (the voice's own refusal would reach the client as a server fault)."""
    from tritonclient.utils import InferenceServerException

    module, client = connect(server, "http")
    cases = [
        (
            np.array([[1, 0, 100000, 0, 2]]),
            np.array([[5]]),
            "SYMBOL_IDS must hold values from 0 to 255",
        ),
        (np.ones((1, 601)), np.array([[601]]), "SENTENCE_LENGTHS must be at most 600, got 601"),
    ]
    try:
        for ids, lengths, message in cases:
            tensors = {
                "SYMBOL_IDS": (ids.astype(np.int64), "INT64"),
                "SENTENCE_LENGTHS": (lengths.astype(np.int32), "INT32"),
            }
            with pytest.raises(InferenceServerException) as refused:
                infer(module, client, f"{ENSEMBLE}_synthesizer", tensors, ["AUDIO"])
            assert message in refused.value.message() and is_bad_request(refused.value)
    finally:
        client.close()
