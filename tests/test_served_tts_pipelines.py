"""tts_tacotron2_waveglow and tts_fastpitch_hifigan at their small sizes, and tts_nemo from the
NeMo-made FastPitch + HiFi-GAN fixtures, built from conf/ and served by the real Triton server,
speak as the same repository run in this process does (InProcessRepository: the front-end, the
exported networks, the synthesizer's own chain and noise), and their acoustic models give the
PyTorch module's mel. tts_nemo also speaks as NeMo itself does (tests/fixtures/nemo/tts.*).

Tacotron 2's checkpoint has a gate that ends the test sentences at different steps, two of
them cut at max_decoder_steps (a seeded one stops every sentence at once, or never). The three
pipelines live in one repository served by one server for the module.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.largest_requests import send_largest
from helpers.nemo_fixtures import FIXTURES
from helpers.project import add_models, compose_config
from helpers.served_requests import connect, infer, is_bad_request
from helpers.tts_fixtures import module_of, stop_items_apart
from helpers.tts_in_process import InProcessSpeech
from helpers.worker_faults import assert_healed, kill_a_worker_under_load
from omegaconf import DictConfig

from modelrepo_gen.clients.wav_writer import pcm16
from modelrepo_gen.components.triton_python.symbol_encoding import SymbolEncoder
from modelrepo_gen.components.triton_python.tts_text_frontend import encode_text
from modelrepo_gen.core.build_plan import ModelUnit
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.synthesize import main as synthesize_main

pytestmark = pytest.mark.server

RATE = 22050
TEXTS = [
    "Hello, world.",
    "Dr. Smith paid $3.50 on May 1st, 1999! Did he? Yes.",  # four sentences, digits, currency
    "Yes",
    "The meeting is at 10:30; bring 2 copies and a pen.",
]
MINI = {
    "tts_tacotron2_waveglow": ("tacotron2_mini", "waveglow_mini"),
    "tts_fastpitch_hifigan": ("fastpitch_mini", "hifigan_mini"),
}
NEMO_PAIR = (FIXTURES / "fastpitch_chars.nemo", FIXTURES / "hifigan_small.nemo")
NEMO_REFERENCE = json.loads((FIXTURES / "tts.reference.json").read_text(encoding="utf-8"))
NEMO_ARRAYS = np.load(FIXTURES / "tts.reference.npz")
TOLERANCE = 1e-4  # exported (TorchScript, ONNX) vs PyTorch, batched vs alone; vs NeMo, relative


@dataclass
class Served:
    name: str
    server: TritonServer
    reference: InProcessSpeech
    acoustic: ModelUnit  # its PyTorch module makes the mel the served one must give
    stops: list  # Tacotron 2's stop step per sentence of TEXTS (None: cut); [] for FastPitch

    def expected(self, text: str, pace: float | None = None) -> tuple[np.ndarray, bool]:
        """The in-process audio and truncation flag."""
        speech = self.reference.speech(text, **({} if pace is None else {"pace": pace}))
        return speech.audio, speech.truncated

    @cached_property
    def acoustic_module(self) -> torch.nn.Module:
        return self.acoustic.export.make_module().eval()

    def pytorch_mel(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """The acoustic model's PyTorch module on one request's inputs: mel, its length."""
        module = self.acoustic_module
        names = [spec.name for spec in self.acoustic.export.inputs]
        with torch.inference_mode():
            outputs = module(*[torch.from_numpy(inputs[name]) for name in names])
        got = dict(zip([spec.name for spec in self.acoustic.export.outputs], outputs))
        return got["MEL"][0].numpy(), int(got["MEL_LENGTH"].item())


def _overrides(name: str) -> list[str]:
    if name == "tts_nemo":
        return [
            f"pipeline={name}",
            f"model.acoustic={NEMO_PAIR[0]}",
            f"model.vocoder={NEMO_PAIR[1]}",
        ]
    acoustic, vocoder = MINI[name]
    return [
        f"pipeline={name}",
        f"model@pipeline.models.acoustic={acoustic}",
        f"model@pipeline.models.vocoder={vocoder}",
    ]


def _sentence_ids(cfg: DictConfig, texts: list[str]) -> list[list[int]]:
    """The sentences' symbol ids, as the pipeline's front-end code cuts them (before a build)."""
    frontend = next(unit for unit in resolve(cfg).units if unit.role == "frontend").parameters
    encoder = SymbolEncoder(json.loads(frontend["symbols"]))
    limits = int(frontend["max_sentence_symbols"]), int(frontend["max_symbols"])
    rules = json.loads(frontend["rules"])
    return [ids for text in texts for ids in encode_text(text, rules, encoder, *limits)]


def _tacotron2_checkpoint(path: Path) -> list:
    """A tacotron2_mini state dict whose gate ends TEXTS' sentences apart; their stops."""
    sentences = _sentence_ids(compose_config(_overrides("tts_tacotron2_waveglow")), TEXTS)
    ids = torch.zeros(len(sentences), max(map(len, sentences)), dtype=torch.int64)
    for row, sentence in zip(ids, sentences, strict=True):
        row[: len(sentence)] = torch.tensor(sentence)
    counts = torch.tensor([[len(s)] for s in sentences], dtype=torch.int32)
    module = module_of("tacotron2_mini")
    stops = stop_items_apart(module, ids, counts)
    torch.save(module.state_dict(), path)
    return stops


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """The three pipelines built into one repository and served by one server."""
    from modelrepo_gen.assembly.run import build_repository

    work = tmp_path_factory.mktemp("chains")
    combined = work / "repo"
    built = {}
    for name in [*MINI, "tts_nemo"]:
        overrides, stops = _overrides(name), []
        if name == "tts_tacotron2_waveglow":
            stops = _tacotron2_checkpoint(work / "tacotron2.pt")
            overrides.append(f"pipeline.models.acoustic.checkpoint={work / 'tacotron2.pt'}")
        cfg = compose_config(overrides)
        build_repository(cfg, work / name)
        add_models(work / name, combined)
        acoustic = next(unit for unit in resolve(cfg).units if unit.role == "acoustic")
        built[name] = (acoustic, stops)
    with TritonServer(combined, 0, 0, 0) as triton:
        served = {
            name: Served(name, triton, InProcessSpeech(combined, name), acoustic, stops)
            for name, (acoustic, stops) in built.items()
        }
        yield served
        for one in served.values():
            one.reference.close()


@pytest.fixture(scope="module")
def tacotron2_waveglow(chains: dict[str, Served]) -> Served:
    return chains["tts_tacotron2_waveglow"]


@pytest.fixture(scope="module")
def fastpitch_hifigan(chains: dict[str, Served]) -> Served:
    return chains["tts_fastpitch_hifigan"]


@pytest.fixture(scope="module")
def nemo_pair(chains: dict[str, Served]) -> Served:
    return chains["tts_nemo"]


@pytest.fixture(params=["tacotron2_waveglow", "fastpitch_hifigan", "nemo_pair"])
def served(request: pytest.FixtureRequest) -> Served:
    return request.getfixturevalue(request.param)


def speak(served: Served, texts: list, parameters: dict | None = None) -> dict[str, np.ndarray]:
    """One request holding `texts`."""
    module, client = connect(served.server, "http")
    try:
        raw = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
        request = module.InferInput("TEXT", [len(raw), 1], "BYTES")
        request.set_data_from_numpy(np.array(raw, dtype=np.object_).reshape(-1, 1))
        names = ["AUDIO", "AUDIO_LENGTH", "TRUNCATED"]
        outputs = [module.InferRequestedOutput(n) for n in names]
        extra = {"parameters": parameters} if parameters else {}
        result = client.infer(served.name, [request], outputs=outputs, **extra)
        return {n: result.as_numpy(n) for n in names}
    finally:
        client.close()


def audio_of(result: dict[str, np.ndarray], row: int = 0) -> np.ndarray:
    return result["AUDIO"][row, : int(result["AUDIO_LENGTH"][row, 0])]


def assert_same_audio(served: np.ndarray, expected: np.ndarray) -> float:
    assert served.shape == expected.shape
    error = float(np.max(np.abs(served - expected)))
    assert error <= TOLERANCE
    return error


def test_served_audio_equals_the_reference(served: Served) -> None:
    result = speak(served, TEXTS)  # one request: the sentences of all texts batch together
    worst = 0.0
    for row, text in enumerate(TEXTS):
        audio, truncated = served.expected(text)
        assert int(result["AUDIO_LENGTH"][row, 0]) == len(audio)
        worst = max(worst, assert_same_audio(audio_of(result, row), audio))
        assert not result["AUDIO"][row, len(audio) :].any()
        assert bool(result["TRUNCATED"][row, 0]) is truncated
    # PCM in [-1, 1] as the endpoint promises, whatever the (here seeded) vocoder gives.
    assert np.abs(result["AUDIO"]).max() <= 1.0
    print(f"{served.name}: served vs reference audio, max abs error {worst:.2e}")


def test_served_acoustic_model_gives_the_pytorch_mel(served: Served) -> None:
    module, client = connect(served.server, "http")
    lengths = []
    try:
        for text in TEXTS:
            for ids in served.reference.sentence_ids(text):
                request = {
                    "SYMBOL_IDS": (np.array([ids], dtype=np.int64), "INT64"),
                    "SYMBOL_COUNT": (np.array([[len(ids)]], dtype=np.int32), "INT32"),
                }
                if served.name != "tts_tacotron2_waveglow":
                    request["PACE"] = (np.array([[1.0]], dtype=np.float32), "FP32")
                got = infer(
                    module, client, f"{served.name}_acoustic", request, ["MEL", "MEL_LENGTH"]
                )
                mel, length = served.pytorch_mel({k: v for k, (v, _) in request.items()})
                assert int(got["MEL_LENGTH"].item()) == length
                np.testing.assert_allclose(got["MEL"][0], mel, rtol=0, atol=TOLERANCE)
                lengths.append(length)
    finally:
        client.close()
    assert len(set(lengths)) >= 3  # sentences of different lengths, not one fixed size


def test_the_nemo_pair_speaks_as_nemo(nemo_pair: Served) -> None:
    """NeMo's own mel for its tokens from the served FastPitch, and NeMo's audio for a whole
    text (one sentence) from the served ensemble, within 1e-4 of the largest value."""
    module, client = connect(nemo_pair.server, "grpc")
    worst = {"mel": 0.0, "audio": 0.0}
    try:
        for i, item in enumerate(NEMO_REFERENCE["items"]):
            tokens = NEMO_ARRAYS[f"tokens_{i}"].reshape(1, -1)
            request = {
                "SYMBOL_IDS": (tokens, "INT64"),
                "SYMBOL_COUNT": (np.array([[tokens.shape[1]]], np.int32), "INT32"),
                "PACE": (np.array([[1.0]], np.float32), "FP32"),
            }
            got = infer(module, client, "tts_nemo_acoustic", request, ["MEL", "MEL_LENGTH"])
            assert int(got["MEL_LENGTH"].item()) == item["frames"]
            nemo = NEMO_ARRAYS[f"mel_{i}"]
            error = np.max(np.abs(got["MEL"][0, :, : item["frames"]] - nemo)) / np.max(np.abs(nemo))
            worst["mel"] = max(worst["mel"], float(error))
    finally:
        client.close()
    for i in (0, 1):  # single sentences: the served text is spoken in one pass, as NeMo's
        audio, nemo = (
            audio_of(speak(nemo_pair, [NEMO_REFERENCE["texts"][i]])),
            NEMO_ARRAYS[f"audio_{i}"],
        )
        assert audio.shape == nemo.shape
        worst["audio"] = max(
            worst["audio"], float(np.max(np.abs(audio - nemo)) / np.max(np.abs(nemo)))
        )
    assert max(worst.values()) <= TOLERANCE, worst
    mel, audio = worst["mel"], worst["audio"]
    print(f"tts_nemo served vs NeMo, max relative error: mel {mel:.1e}, audio {audio:.1e}")


def test_text_the_nemo_tokenizer_cannot_spell_is_refused(nemo_pair: Served) -> None:
    """Characters its tokenizer lacks are dropped, as NeMo drops them; a text left with none
    is a bad request, and the server keeps serving."""
    with pytest.raises(Exception, match="TEXT has nothing to speak") as refused:
        speak(nemo_pair, ["\u4f60\u597d\uff0c\u4e16\u754c\u3002"])
    assert is_bad_request(refused.value), refused.value
    mixed, plain = speak(nemo_pair, ["\u4f60\u597d world."]), speak(nemo_pair, ["world."])
    assert_same_audio(audio_of(mixed), audio_of(plain))


def test_tacotron2_stops_apart_and_a_cut_sentence_is_truncated(
    tacotron2_waveglow: Served,
) -> None:
    stops = tacotron2_waveglow.stops
    assert None in stops and len({s for s in stops if s is not None}) >= 2
    result = speak(tacotron2_waveglow, TEXTS)
    sentences = [len(tacotron2_waveglow.reference.sentence_ids(t)) for t in TEXTS]
    first = np.cumsum([0, *sentences[:-1]])
    cut = [None in stops[f : f + n] for f, n in zip(first, sentences, strict=True)]
    assert True in cut and False in cut
    assert [bool(t) for t in result["TRUNCATED"][:, 0]] == cut


def test_pace_request_parameter_changes_the_length(fastpitch_hifigan: Served) -> None:
    text = TEXTS[3]
    normal = audio_of(speak(fastpitch_hifigan, [text]))
    for pace in (0.5, 2.0):
        faster = audio_of(speak(fastpitch_hifigan, [text], {"pace": pace}))
        expected, _ = fastpitch_hifigan.expected(text, pace)
        assert_same_audio(faster, expected)
        assert (len(faster) < len(normal)) is (pace > 1)


def test_synthesize_writes_the_served_audio(served: Served, tmp_path: Path, capsys) -> None:
    text = TEXTS[1]
    out = tmp_path / "speech.wav"
    argv = [text, "-o", str(out), "--url", served.server.http_url, "--model", served.name]
    assert synthesize_main(argv) == 0
    assert f"{out}: " in capsys.readouterr().out
    expected, _ = served.expected(text)
    with wave.open(str(out), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        assert wav.getnframes() == int(speak(served, [text])["AUDIO_LENGTH"][0, 0])
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert np.max(np.abs(samples.astype(int) - pcm16(expected))) <= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "TEXT is empty"),
        (b"?! ... --", "TEXT has nothing to speak"),
        (b"caf\xe9 \xff", "TEXT is not valid UTF-8"),
    ],
    ids=["empty", "symbols_only", "not_utf8"],
)
def test_bad_text_is_refused_and_the_server_keeps_serving(
    served: Served, text: bytes, message: str
) -> None:
    with pytest.raises(Exception, match=message) as refused:
        speak(served, [text])
    assert f"{served.name}_frontend" in str(refused.value)
    assert is_bad_request(refused.value), refused.value
    expected, _ = served.expected("Still here.")
    assert_same_audio(audio_of(speak(served, ["Still here."])), expected)


def test_a_killed_synthesizer_worker_is_reloaded_under_load(fastpitch_hifigan: Served) -> None:
    """FastPitch's worker is the one the probe's long text took down; on the CPU target
    FastPitch and HiFi-GAN run inside the synthesizer's worker: kill it under load."""
    served = fastpitch_hifigan
    text = TEXTS[0]
    expected, _ = served.expected(text)

    def is_right(result: dict[str, np.ndarray]) -> bool:
        audio = audio_of(result)
        return audio.shape == expected.shape and np.max(np.abs(audio - expected)) <= TOLERANCE

    model = f"{served.name}_synthesizer"
    outcome = kill_a_worker_under_load(
        served.server, model, lambda: speak(served, [text]), is_right
    )
    assert_healed(outcome, model)


def test_a_pace_outside_fastpitchs_range_is_refused(fastpitch_hifigan: Served) -> None:
    for pace in (0.1, 5, "fast"):
        with pytest.raises(Exception, match="'pace' must be a number from 0.25 to 4") as refused:
            speak(fastpitch_hifigan, ["Hello."], {"pace": pace})
        assert is_bad_request(refused.value), refused.value
    expected, _ = fastpitch_hifigan.expected("Still here.")
    assert_same_audio(audio_of(speak(fastpitch_hifigan, ["Still here."])), expected)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_acoustic_models_refuse_symbol_ids_outside_their_set(served: Served, protocol: str) -> None:
    """Out-of-range ids used to end in a TorchScript traceback (Tacotron 2) or an onnxruntime
    error (FastPitch): now one line naming the tensor and the range, as a bad request."""
    from tritonclient.utils import InferenceServerException

    model = f"{served.name}_acoustic"
    ids = np.array([[3, 4, 500, 5]], dtype=np.int64)
    tensors = {"SYMBOL_IDS": (ids, "INT64"), "SYMBOL_COUNT": (np.array([[4]], np.int32), "INT32")}
    if served.name != "tts_tacotron2_waveglow":
        tensors["PACE"] = (np.array([[1.0]], np.float32), "FP32")
    highest = served.acoustic_module.embedding.num_embeddings  # the symbol ids it takes
    module, client = connect(served.server, protocol)
    try:
        with pytest.raises(InferenceServerException) as refused:
            infer(module, client, model, tensors, ["MEL", "MEL_LENGTH"])
        assert refused.value.message().endswith(
            f"{model}: SYMBOL_IDS must hold values from 0 to {highest - 1}, got 3..500"
        ), refused.value.message()
        assert is_bad_request(refused.value)
        too_long = np.ones((1, 301), dtype=np.int64)
        tensors["SYMBOL_IDS"] = (too_long, "INT64")
        tensors["SYMBOL_COUNT"] = (np.array([[301]], np.int32), "INT32")
        with pytest.raises(InferenceServerException, match="more than the maximum of 300"):
            infer(module, client, model, tensors, ["MEL", "MEL_LENGTH"])
    finally:
        client.close()
    expected, _ = served.expected("Still here.")
    assert_same_audio(audio_of(speak(served, ["Still here."])), expected)


def test_the_largest_allowed_request_is_answered_within_the_memory_budget(
    fastpitch_hifigan: Served,
) -> None:
    """max_characters (5000) of text, close to max_symbols (7500): the probe's 4000 digits took
    this pipeline down with one sentence of 36,661 symbols; now every sentence fits FastPitch
    and the whole text is bounded."""
    served = fastpitch_hifigan
    sentence = "The quick brown fox jumps over the lazy dog near the river bank, and runs away. "
    text = (sentence * 70)[:5000]
    ids = served.reference.sentence_ids(text)
    assert sum(map(len, ids)) > 4900 and max(map(len, ids)) <= 300
    result, _ = send_largest(
        served.server, served.name, "5000 characters", lambda: speak(served, [text])
    )
    assert result["TRUNCATED"].tolist() == [[False]]
    assert audio_of(result).size == result["AUDIO"].shape[1] > 22050 * 60
    with pytest.raises(Exception, match="TEXT needs more than 7500 symbols") as refused:
        speak(served, ["1" * 4000])  # read digit by digit: 16,000 symbols
    assert is_bad_request(refused.value)
    expected, _ = served.expected("Still here.")
    assert_same_audio(audio_of(speak(served, ["Still here."])), expected)
