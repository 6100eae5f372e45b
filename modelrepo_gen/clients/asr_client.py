"""Requests to a served ASR ensemble: find and check the model, send audio, collect transcripts.

The ensemble's interface is fixed: inputs ``AUDIO_SIGNAL`` (FP32, dims [-1]) and
``NUM_SAMPLES`` (INT32, dims [1]), output ``TRANSCRIPT`` (TYPE_STRING, dims [1], UTF-8), with
``max_batch_size > 0`` so one request carries shapes [1, n] and [1, 1].
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from modelrepo_gen.clients.transcribe_args import (
    DEFAULT_URLS,
    check_concurrency,
)
from modelrepo_gen.clients.triton_calls import (
    REQUEST_TIMEOUT_S,
    ask,
    client_module,
    connect,
    model_config,
    ready_model_config,
    ready_models,
    request_failure,
)
from modelrepo_gen.core.errors import UserError

AUDIO_INPUT, LENGTH_INPUT, TEXT_OUTPUT = "AUDIO_SIGNAL", "NUM_SAMPLES", "TRANSCRIPT"
SEGMENTS_OUTPUT = "SEGMENTS"  # Whisper's: JSON [{"start", "end", "text"}, ...]
DEFAULT_SAMPLE_RATE = 16000


def _is_ensemble(client: Any, url: str, protocol: str, name: str) -> bool:
    config = ask(url, protocol, f"describe '{name}'", lambda: model_config(client, protocol, name))
    return config.get("platform") == "ensemble"


def find_ensemble_model(url: str, protocol: str = "http") -> str:
    """The one ensemble-platform model that is READY on the server (else a UserError)."""
    client = connect(url, protocol)
    try:
        ready = ask(url, protocol, "list its models", lambda: ready_models(client, protocol))
        ensembles = [name for name in ready if _is_ensemble(client, url, protocol, name)]
    finally:
        client.close()
    if len(ensembles) == 1:
        return ensembles[0]
    if ensembles:
        raise UserError(
            f"the server at '{url}' serves several ensembles ({', '.join(ensembles)}): "
            "choose one with --model"
        )
    raise UserError(
        f"no ensemble model is ready on the server at '{url}' "
        f"(ready models: {', '.join(ready) or 'none'}): name the model with --model"
    )


def check_asr_model(url: str, protocol: str, model_name: str) -> dict:
    """The model's config; fails early, and clearly, if it is not loaded or not ASR-shaped."""
    config = ready_model_config(url, protocol, model_name)
    inputs = {t.get("name") for t in config.get("input", [])}
    outputs = {t.get("name") for t in config.get("output", [])}
    if not {AUDIO_INPUT, LENGTH_INPUT} <= inputs or TEXT_OUTPUT not in outputs:
        raise UserError(
            f"model '{model_name}' is not an ASR ensemble: it takes {sorted(inputs)} and "
            f"returns {sorted(outputs)}, expected {AUDIO_INPUT}, {LENGTH_INPUT} -> {TEXT_OUTPUT}"
        )
    return config


def served_sample_rate(config: dict) -> int:
    """The sample rate the ensemble declares in its parameters (16 kHz if it declares none)."""
    value = config.get("parameters", {}).get("sample_rate", {}).get("string_value")
    return int(value) if value else DEFAULT_SAMPLE_RATE


def infer_transcript(
    client: Any,
    protocol: str,
    model_name: str,
    audio: np.ndarray,
    output: str = TEXT_OUTPUT,
    parameters: dict[str, Any] | None = None,
) -> str:
    """One request with one utterance on an open client; the transcript it returns (or the
    text of another STRING output, such as SEGMENTS). `parameters`: the request's (e.g. a beam
    search decoder's boosted_words and boosted_words_score)."""
    module = client_module(protocol)
    signal = np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1)
    length = np.array([[signal.shape[1]]], dtype=np.int32)
    inputs = [
        module.InferInput(AUDIO_INPUT, list(signal.shape), "FP32"),
        module.InferInput(LENGTH_INPUT, list(length.shape), "INT32"),
    ]
    inputs[0].set_data_from_numpy(signal)
    inputs[1].set_data_from_numpy(length)
    outputs = [module.InferRequestedOutput(output)]
    extra: dict[str, Any] = {"parameters": parameters} if parameters else {}
    if protocol == "grpc":
        extra["client_timeout"] = REQUEST_TIMEOUT_S
    result = client.infer(model_name, inputs, outputs=outputs, **extra)
    text = result.as_numpy(output).reshape(-1)[0]
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)


# -- many requests, in parallel, results in order --------------------------------------------
def _checked_audio(audio: Any, label: str) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise UserError(f"{label}: audio must be mono (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise UserError(f"{label}: audio is empty")
    return audio


def iter_transcripts(
    get_audio: Callable[[int], np.ndarray],
    labels: Sequence[str],
    url: str,
    protocol: str,
    model_name: str,
    concurrency: int = 1,
    output: str = TEXT_OUTPUT,
    parameters: dict[str, Any] | None = None,
) -> Iterator[str]:
    """Transcripts (or `output`) of items 0..len(labels)-1 in order; ``get_audio(i)`` runs in
    the workers; every request carries `parameters`.

    Each worker thread owns its client for its whole life: a tritonclient HTTP client must not
    be used, or even closed, from another thread.
    """
    check_concurrency(concurrency)
    count = len(labels)
    tasks: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(count):
        tasks.put(index)
    results: dict[int, tuple[bool, Any]] = {}
    changed = threading.Condition()
    stop = threading.Event()

    def work() -> None:
        client = None
        try:
            client = connect(url, protocol)
            while not stop.is_set():
                try:
                    index = tasks.get_nowait()
                except queue.Empty:
                    return
                try:
                    audio = _checked_audio(get_audio(index), labels[index])
                    answer = infer_transcript(
                        client, protocol, model_name, audio, output, parameters
                    )
                    outcome = (True, answer)
                except UserError as error:
                    outcome = (False, error)
                except Exception as error:  # the server's refusal, a dropped connection
                    outcome = (
                        False,
                        UserError(f"{labels[index]}: {request_failure(model_name, error)}"),
                    )
                with changed:
                    results[index] = outcome
                    changed.notify_all()
                if not outcome[0]:
                    stop.set()
        except UserError as error:
            with changed:
                results.setdefault(-1, (False, error))
                changed.notify_all()
            stop.set()
        finally:
            if client is not None:
                client.close()
            with changed:
                changed.notify_all()

    workers = [
        threading.Thread(target=work, name=f"transcribe-{n}", daemon=True)
        for n in range(min(concurrency, count))
    ]
    for worker in workers:
        worker.start()
    try:
        for index in range(count):
            with changed:
                while index not in results:
                    failures = [i for i, (ok, _) in results.items() if not ok]
                    if failures or not any(w.is_alive() for w in workers):
                        break
                    changed.wait(timeout=1.0)
                outcome = results.get(index)
                if outcome is None or not outcome[0]:
                    failures = sorted(i for i, (ok, _) in results.items() if not ok)
                    if not failures:
                        raise RuntimeError(f"no result for item {index}")  # a bug, not user's
                    raise results[failures[0]][1]
            yield outcome[1]
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def transcribe_arrays(
    audios: Sequence[np.ndarray],
    url: str = DEFAULT_URLS["http"],
    protocol: str = "http",
    model_name: str | None = None,
    concurrency: int = 1,
) -> list[str]:
    """Transcribe mono float32 signals (at the model's sample rate), results in input order.

    ``model_name`` defaults to the server's only ensemble. Server-side errors become UserError
    carrying Triton's message.
    """
    client_module(protocol)
    check_concurrency(concurrency)
    model_name = model_name or find_ensemble_model(url, protocol)
    check_asr_model(url, protocol, model_name)
    labels = [f"audio #{i}" for i in range(len(audios))]
    return list(
        iter_transcripts(lambda i: audios[i], labels, url, protocol, model_name, concurrency)
    )
