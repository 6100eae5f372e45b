"""Benchmark part 8: the largest request each pipeline's limits allow, served.

For one pipeline of each family (CTC and Whisper speech recognition, token classification,
Piper and FastPitch -> HiFi-GAN speech synthesis) the repository is built, served by the real
Triton server, and sent the largest request its limits allow, read from the served configs
(the ensemble's max_batch_size and parameters, the front-end's and tokenizer's limits):
  1. the request's wall seconds and the answer's size (audio seconds in or out, windows, tokens);
  2. the peak resident memory of tritonserver and each python worker during that request
     (serve/process_memory.py: reset before, read after), and at start;
  3. that the request just over each limit (one more sample, character, symbol, window or row)
     is refused quickly as a bad request (HTTP 400), and the server still answers after.
A request whose probe says it would take longer than ``max_request_s`` is scaled down (fewer
rows, a shorter text); the table then shows what was sent beside what the limits allow.
A pipeline that fails is reported as skipped with its reason; the benchmark goes on.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelrepo_gen.bench.build import BenchmarkError, compose_config
from modelrepo_gen.bench.serving import repository_models, server_version
from modelrepo_gen.bench.whisper import _reason

FULL = {
    "asr_quartznet": [],
    "asr_whisper": [],
    "nlp_token_classification": [],
    "tts_piper": [],
    "tts_fastpitch_hifigan": [],
}
QUICK = {  # the mini networks and small limits; speech synthesis has its own tests (make test)
    "asr_quartznet": ["model=quartznet_mini", "pipeline.max_audio_seconds=10"],
    "nlp_token_classification": [
        "model.max_seq_length=32",
        "pipeline.models.tokenizer.doc_stride=8",
        "pipeline.models.tokenizer.max_windows=8",
    ],
}
# Ordinary English prose (no digits), cycled to the length a limit allows.
PROSE = (
    "The old harbour town wakes slowly in the winter. Fishing boats return before dawn, and "
    "the market opens as soon as the first crates are carried up the stone steps. Most of the "
    "people who live here have done the same work for years; they know the weather, the tides "
    "and each other. In the afternoon the streets are quiet again. Children walk home from "
    "school along the sea wall, shop keepers sweep the pavements, and somebody always seems to "
    "be painting a door or mending a net. Visitors often say that nothing happens here, but "
    "that is not quite true: the town simply keeps its own time, and it changes as the seasons "
    "do, a little at a time. "
)
TACOTRON2_NOTE = (
    "tts_tacotron2_waveglow is left out: at full size its autoregressive decoder and WaveGlow "
    "are too slow on a CPU for a 5000-character request."
)
WHISPER_QUICK_NOTE = (
    "asr_whisper, tts_piper and tts_fastpitch_hifigan are left out of --quick: each takes most "
    "of a minute (the full run has them)."
)


@dataclass(frozen=True)
class LargestRequestSettings:
    pipelines: tuple[tuple[str, tuple[str, ...]], ...]  # (pipeline, its overrides)
    # A request its probe says would take longer is scaled down (and reported as such).
    max_request_s: float = 300
    request_timeout_s: float = 1200  # the HTTP client's; a request past it counts as failed
    notes: tuple[str, ...] = (TACOTRON2_NOTE,)  # what is left out, and why

    @classmethod
    def full(cls) -> LargestRequestSettings:
        return cls(tuple((name, tuple(o)) for name, o in FULL.items()))

    @classmethod
    def quick(cls) -> LargestRequestSettings:
        pipelines = tuple((name, tuple(o)) for name, o in QUICK.items())
        notes = (TACOTRON2_NOTE, WHISPER_QUICK_NOTE)
        return cls(pipelines, max_request_s=20, request_timeout_s=120, notes=notes)


@dataclass
class Sent:
    """One request: its label for the table and its tensors (name -> (array, Triton dtype))."""

    label: str
    inputs: dict[str, tuple[np.ndarray, str]]
    outputs: tuple[str, ...]


@dataclass
class Plan:
    """What one pipeline is sent: the largest request (maybe scaled down), the answer's size,
    and the requests just over each limit (the last: one row over max_batch_size)."""

    allowed: str  # the largest request the limits allow
    largest: Sent
    size: Callable[[dict[str, np.ndarray]], dict]
    over: list[Sent]
    limits: dict
    notes: list[str] = field(default_factory=list)


# -- requests --------------------------------------------------------------------------------
class Endpoint:
    """The served ensemble of one repository, called through Triton HTTP."""

    def __init__(self, url: str, repository: Path, timeout_s: float) -> None:
        self.url, self.repository, self.timeout_s = url, repository, timeout_s
        self.models = repository_models(repository)
        self.name = self.models["ensemble"]

    def config(self, role: str = "ensemble") -> dict:
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(self.url)
        try:
            return client.get_model_config(self.models[role])
        finally:
            client.close()

    def parameters(self, role: str = "ensemble") -> dict[str, str]:
        params = self.config(role).get("parameters", {})
        return {key: value.get("string_value", "") for key, value in params.items()}

    def send(self, sent: Sent) -> tuple[dict[str, np.ndarray], float]:
        """The answer and the wall seconds of the call (request sent to answer parsed)."""
        answer, seconds, error = self._call(sent)
        if error is not None:
            raise error
        return answer, seconds

    def refusal(self, sent: Sent) -> dict:
        """Send a request over a limit: how fast, and how, it was refused (or not)."""
        from tritonclient.utils import InferenceServerException

        _, seconds, error = self._call(sent)
        row = {"request": sent.label, "seconds": seconds}
        if error is None:
            row.update(status="answered (limit not enforced)", message="")
        elif isinstance(error, InferenceServerException):
            message = " ".join(str(error.message() or error).split())
            row.update(status=str(error.status()), message=message[-240:])
        else:  # a lost connection: the server may be down
            row.update(status=f"no answer: {type(error).__name__}", message=str(error)[-240:])
        return row

    def _call(self, sent: Sent) -> tuple[dict[str, np.ndarray], float, Exception | None]:
        """(answer, seconds, error): the clock runs around the HTTP call only."""
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(
            self.url, connection_timeout=60, network_timeout=self.timeout_s
        )
        try:
            inputs = []
            for name, (array, datatype) in sent.inputs.items():
                tensor = httpclient.InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            outputs = [httpclient.InferRequestedOutput(name) for name in sent.outputs]
            started = time.perf_counter()
            try:
                result = client.infer(self.name, inputs, outputs=outputs)
            except Exception as error:  # the caller decides what a failure means
                return {}, time.perf_counter() - started, error
            seconds = time.perf_counter() - started
            return {name: result.as_numpy(name) for name in sent.outputs}, seconds, None
        finally:
            client.close()


def _scale(estimate_s: float, budget_s: float) -> float:
    """The fraction of a request that fits the time budget (1: all of it)."""
    return 1.0 if estimate_s <= budget_s else budget_s / estimate_s


# -- speech recognition ----------------------------------------------------------------------
def _audio_request(label: str, rows: int, samples: int, speech: np.ndarray, rate: int) -> Sent:
    longest = np.resize(speech, samples).astype(np.float32)  # real speech, repeated
    # Each row starts elsewhere in the speech: rows differ, as separate recordings do.
    batch = np.stack([np.roll(longest, row * 3 * rate) for row in range(rows)])
    lengths = np.full((rows, 1), samples, dtype=np.int32)
    inputs = {"AUDIO_SIGNAL": (batch, "FP32"), "NUM_SAMPLES": (lengths, "INT32")}
    return Sent(label, inputs, ("TRANSCRIPT",))


def asr_plan(endpoint: Endpoint, speech: np.ndarray, budget_s: float) -> Plan:
    params = endpoint.parameters()
    rate, seconds = int(params["sample_rate"]), float(params["max_audio_seconds"])
    rows, samples = int(endpoint.config()["max_batch_size"]), int(seconds * rate)
    allowed = f"{rows} x {seconds:g} s of audio"
    # The probe (one row at the limit) is the warm-up too; rows cost about the same each.
    _, probe_s = endpoint.send(_audio_request("probe", 1, samples, speech, rate))
    fraction = _scale(probe_s * rows, budget_s)
    notes = []
    sent_rows, sent_samples = rows, samples
    if fraction < 1:
        sent_rows = max(1, math.floor(rows * fraction))
        if sent_rows == 1:  # one row is still too long: shorter audio
            sent_samples = max(rate, int(samples * _scale(probe_s, budget_s)))
        notes.append(
            f"scaled down: one row of {seconds:g} s took {probe_s:.1f} s, so {allowed} "
            f"would take about {probe_s * rows:.0f} s (budget {budget_s:.0f} s)"
        )
    label = f"{sent_rows} x {sent_samples / rate:.4g} s of audio"

    def size(answer: dict[str, np.ndarray]) -> dict:
        texts = [t.decode("utf-8") for t in answer["TRANSCRIPT"].reshape(-1)]
        return {
            "audio_in_s": sent_rows * sent_samples / rate,
            "transcripts": len(texts),
            "words_out": sum(len(t.split()) for t in texts),
        }

    return Plan(
        allowed=allowed,
        largest=_audio_request(label, sent_rows, sent_samples, speech, rate),
        size=size,
        over=[
            _audio_request(f"1 x {seconds:g} s + 1 sample", 1, samples + 1, speech, rate),
            _audio_request(f"{rows + 1} rows of 1 s", rows + 1, rate, speech, rate),
        ],
        limits={"max_batch_size": rows, "max_audio_seconds": seconds, "sample_rate": rate},
        notes=notes,
    )


# -- token classification --------------------------------------------------------------------
def _text_request(label: str, texts: Sequence[str], outputs: tuple[str, ...]) -> Sent:
    array = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
    return Sent(label, {"TEXT": (array, "BYTES")}, outputs)


def _prose(characters: int) -> str:
    return (PROSE * (characters // len(PROSE) + 1))[:characters]


def nlp_plan(endpoint: Endpoint) -> Plan:
    from modelrepo_gen.components.triton_python.text_windows import (
        load_tokenizer,
        tokenize_windows,
    )

    tokenizer_params = endpoint.parameters("tokenizer")
    tokens, stride = int(tokenizer_params["max_seq_length"]), int(tokenizer_params["doc_stride"])
    max_windows = int(tokenizer_params["max_windows"])
    folder = endpoint.repository / endpoint.models["tokenizer"] / "1"
    tokenizer = load_tokenizer(str(folder / tokenizer_params["tokenizer"]), tokens, stride)
    rows = int(endpoint.config()["max_batch_size"])
    output = endpoint.config()["output"][0]["name"]
    words = PROSE.split()

    def text_of(count: int) -> str:
        return " ".join(words[i % len(words)] for i in range(count))

    def windows(count: int) -> int:
        return tokenize_windows(tokenizer, text_of(count), None, 10**9).count

    # The most words that still fit max_windows (windows grow with the words).
    low, high = 1, 1
    while windows(high) <= max_windows:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if windows(middle) <= max_windows else (low, middle)
    text = text_of(low)
    cut = tokenize_windows(tokenizer, text, None, max_windows)
    endpoint.send(_text_request("warm-up", ["The harbour town wakes slowly."], (output,)))

    def size(answer: dict[str, np.ndarray]) -> dict:
        found = [json.loads(row) for row in answer[output].reshape(-1)]
        return {
            "texts": rows,
            "characters_in": rows * len(text),
            "windows": rows * cut.count,
            "tokens": rows * int(cut.attention_mask.sum()),
            "entities_out": sum(len(f) for f in found),
        }

    return Plan(
        allowed=f"{rows} texts of {max_windows} windows of {tokens} tokens",
        largest=_text_request(
            f"{rows} texts of {cut.count} windows ({len(text)} characters each)",
            [text] * rows,
            (output,),
        ),
        size=size,
        over=[
            _text_request(f"a text of {windows(high)} windows", [text_of(high)], (output,)),
            _text_request(f"{rows + 1} texts", ["The harbour town."] * (rows + 1), (output,)),
        ],
        limits={
            "max_batch_size": rows,
            "max_windows": max_windows,
            "max_seq_length": tokens,
            "doc_stride": stride,
        },
    )


# -- speech synthesis ------------------------------------------------------------------------
def _symbol_counter(endpoint: Endpoint) -> Callable[[str], int]:
    """The served front-end's own encoding (its parameters and voice file), without its
    max_symbols: how many ids a text needs."""
    from modelrepo_gen.components.triton_python.symbol_encoding import SymbolEncoder
    from modelrepo_gen.components.triton_python.tts_text_frontend import encode_text

    params = endpoint.parameters("frontend")
    voice = None
    if params.get("phoneme_id_map"):
        folder = endpoint.repository / endpoint.models["frontend"] / "1"
        voice = json.loads((folder / params["phoneme_id_map"]).read_text(encoding="utf-8"))
    encoder = SymbolEncoder(json.loads(params["symbols"]), voice)
    rules, per_sentence = json.loads(params["rules"]), int(params["max_sentence_symbols"])

    def count(text: str) -> int:
        return sum(map(len, encode_text(text, rules, encoder, per_sentence, 10**9)))

    return count


def tts_plan(endpoint: Endpoint, budget_s: float) -> Plan:
    params = endpoint.parameters("frontend")
    max_characters, max_symbols = int(params["max_characters"]), int(params["max_symbols"])
    rows = int(endpoint.config()["max_batch_size"])
    rate = int(endpoint.parameters()["sample_rate"])
    count = _symbol_counter(endpoint)
    outputs = ("AUDIO", "AUDIO_LENGTH")
    characters = max_characters
    while count(_prose(characters)) > max_symbols:  # not for English prose at ~2.3 ids each
        characters = int(characters * 0.95)
    allowed = f"1 text of {characters} characters"
    # The probe (a tenth of the text) is the warm-up too; time grows with the text.
    probe = max(1, characters // 10)
    _, probe_s = endpoint.send(_text_request("probe", [_prose(probe)], outputs))
    estimate = probe_s * characters / probe
    notes = []
    if estimate > budget_s:
        notes.append(
            f"scaled down: {probe} characters took {probe_s:.1f} s, so {characters} would "
            f"take about {estimate:.0f} s (budget {budget_s:.0f} s)"
        )
        characters = max(probe, int(characters * budget_s / estimate))
    text = _prose(characters)
    symbols = count(text)

    # Digits are spelled one by one: the fewest that need more than max_symbols ids.
    per_digit = count("1" * 50) / 50
    digits = math.ceil(max_symbols / per_digit)
    while count("1" * digits) <= max_symbols:
        digits += max(1, digits // 100)

    def size(answer: dict[str, np.ndarray]) -> dict:
        return {
            "characters_in": len(text),
            "symbols_in": symbols,
            "audio_out_s": int(answer["AUDIO_LENGTH"].reshape(-1)[0]) / rate,
        }

    longer = _prose(max_characters + 1)
    over = [
        _text_request(f"a text of {len(longer)} characters", [longer], outputs),
        _text_request(f"{rows + 1} texts", ["Hello there."] * (rows + 1), outputs),
    ]
    if digits <= max_characters:
        label = f"{digits} digits: {count('1' * digits)} symbols"
        over.insert(1, _text_request(label, ["1" * digits], outputs))
    else:
        notes.append(f"max_symbols ({max_symbols}) cannot be passed within max_characters")
    return Plan(
        allowed=allowed,
        largest=_text_request(
            f"1 text of {len(text)} characters: {symbols} symbols", [text], outputs
        ),
        size=size,
        over=over,
        limits={
            "max_batch_size": rows,
            "max_characters": max_characters,
            "max_symbols": max_symbols,
            "max_sentence_symbols": int(params["max_sentence_symbols"]),
        },
        notes=notes,
    )


# -- one pipeline ----------------------------------------------------------------------------
def _memory(peaks: dict[str, float]) -> dict:
    largest = max(peaks, key=peaks.get) if peaks else "none"
    return {
        "total_mib": sum(peaks.values()),
        "largest_process": largest,
        "largest_mib": peaks.get(largest, 0.0),
        "processes": dict(sorted(peaks.items())),
    }


def _plan(endpoint: Endpoint, speech: np.ndarray, settings: LargestRequestSettings) -> Plan:
    inputs = {t["name"] for t in endpoint.config().get("input", [])}
    outputs = {t["name"] for t in endpoint.config().get("output", [])}
    if "AUDIO_SIGNAL" in inputs:
        return asr_plan(endpoint, speech, settings.max_request_s)
    if "AUDIO" in outputs:
        return tts_plan(endpoint, settings.max_request_s)
    return nlp_plan(endpoint)


def _serve(
    result: dict,
    repository: Path,
    speech: np.ndarray,
    settings: LargestRequestSettings,
    log: Callable[[str], None],
) -> None:
    from modelrepo_gen.serve.process_memory import peak_memory_mib, reset_peak_memory
    from modelrepo_gen.serve.server import TritonServer

    name = result["pipeline"]
    started = time.perf_counter()
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        result["server_start_s"] = time.perf_counter() - started
        result["memory_at_start"] = _memory(peak_memory_mib(server))
        result["server_version"] = server_version(server.http_url)
        endpoint = Endpoint(server.http_url, repository, settings.request_timeout_s)
        plan = _plan(endpoint, speech, settings)
        result.update(allowed=plan.allowed, sent=plan.largest.label, limits=plan.limits)
        result["notes"] = plan.notes
        log(f"{name}: {plan.largest.label} (the limits allow {plan.allowed})")
        reset_peak_memory(server)
        try:
            answer, result["seconds"] = endpoint.send(plan.largest)
        except Exception as error:  # say whether it took the server down
            state = "still running" if server.is_running() else "down"
            reason = " ".join(str(error).split())[:150]  # one line for the table
            raise BenchmarkError(f"the largest request failed, server {state}: {reason}") from None
        result["memory_during"] = _memory(peak_memory_mib(server))
        result["answer"] = plan.size(answer)
        log(
            f"  {result['seconds']:.1f} s, peak {result['memory_during']['total_mib']:.0f} MiB "
            f"(largest: {result['memory_during']['largest_process']})"
        )
        result["refusals"] = [endpoint.refusal(sent) for sent in plan.over]
        for row in result["refusals"]:
            log(f"  {row['request']}: {row['status']} in {row['seconds']:.2f} s")
        result["serving_after"] = server.is_running() and _answers(endpoint, plan)


def _answers(endpoint: Endpoint, plan: Plan) -> bool:
    """Whether the server still answers a small request after the refusals."""
    small = plan.over[-1]  # one row too many: a small request once cut to max_batch_size
    rows = int(endpoint.config()["max_batch_size"])
    inputs = {name: (array[:rows], dtype) for name, (array, dtype) in small.inputs.items()}
    try:
        endpoint.send(Sent("after", inputs, small.outputs))
    except Exception:  # reported as not serving
        return False
    return True


def _one_pipeline(
    name: str,
    overrides: list[str],
    speech: np.ndarray,
    settings: LargestRequestSettings,
    work: Path,
    log: Callable[[str], None],
) -> dict:
    from modelrepo_gen.assembly.run import build_repository

    result: dict = {"pipeline": name, "overrides": overrides, "status": "ok"}
    repository = work / f"limits-{name}"
    log(f"build {name} {' '.join(overrides)}")
    try:
        started = time.perf_counter()
        build_repository(compose_config([f"pipeline={name}", *overrides]), repository)
        result["build_s"] = time.perf_counter() - started
        _serve(result, repository, speech, settings, log)
    except Exception as error:  # reported in the table, the benchmark goes on
        result["status"] = _reason(error)
        log(f"  {result['status']}")
    return result


def largest_requests_part(
    audios: Sequence[np.ndarray],
    settings: LargestRequestSettings,
    work: Path,
    log: Callable[[str], None] = print,
) -> dict:
    """Each pipeline's largest allowed request and the refusals just over its limits."""
    speech = np.concatenate(list(audios)).astype(np.float32)
    rows = [
        _one_pipeline(name, list(overrides), speech, settings, work, log)
        for name, overrides in settings.pipelines
    ]
    versions = [row["server_version"] for row in rows if "server_version" in row]
    return {
        "pipelines": rows,
        "max_request_s": settings.max_request_s,
        "server_version": versions[0] if versions else "not started",
        "notes": list(settings.notes),
    }
