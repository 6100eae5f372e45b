"""Benchmark of a served ASR ensemble: closed-loop load from N client threads, and the same
utterances transcribed in-process for the serving overhead.

Each client thread owns its own tritonclient HTTP client (one must not be shared across
threads) and sends its next request as soon as the previous answer arrives.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelrepo_gen.bench.build import BenchmarkError
from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.repository.publish import MANIFEST
from modelrepo_gen.transcribe import infer_transcript

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class ServingSettings:
    concurrencies: tuple[int, ...] = (1, 4, 8)
    requests: int = 40  # per setting, cycling the utterances
    modes: tuple[str, ...] = ("default", "disabled")  # dynamic_batching options
    in_process_passes: int = 2  # times the utterances are transcribed in-process


def load_utterances() -> tuple[list[str], list[np.ndarray]]:
    files = sorted(LIBRIVOX.glob("*.wav"))
    if not files:
        raise BenchmarkError(
            f"no speech under {LIBRIVOX}: install Debian's pocketsphinx-testdata (make speech)"
        )
    return [f.name for f in files], [load_audio(f, SAMPLE_RATE) for f in files]


def repository_models(repository: Path) -> dict[str, str]:
    """Role -> model name, from the repository's manifest (the ensemble under 'ensemble')."""
    manifest = json.loads((repository / MANIFEST).read_text())
    return {entry["role"]: name for name, entry in manifest["models"].items()}


def batching_model(models: dict[str, str], role: str) -> str:
    """The model whose executions show the batches formed: the one running every step where
    the target merges them (target.merge_python_steps), else the model in `role`."""
    return models.get("all_steps", models[role])


# -- load generation -------------------------------------------------------------------------
def closed_loop(
    url: str, requests: int, concurrency: int, send: Callable[[object, int], object]
) -> tuple[list[tuple[float, float]], list]:
    """Requests 0..n-1 from ``concurrency`` threads, each sending its next one as soon as the
    previous answer arrives: ``send(client, index)`` on the thread's own HTTP client. The
    (start, end) time of every request and what each `send` returned."""
    import tritonclient.http as httpclient

    spans: list[tuple[float, float] | None] = [None] * requests
    answers: list = [None] * requests
    errors: list[BaseException] = []
    lock = threading.Lock()
    next_index = iter(range(requests))
    start = threading.Barrier(concurrency)

    def work() -> None:
        client = httpclient.InferenceServerClient(url, connection_timeout=60, network_timeout=600)
        try:
            start.wait()
            while not errors:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                began = time.perf_counter()
                answers[index] = send(client, index)
                spans[index] = (began, time.perf_counter())
        except BaseException as error:  # reported by the main thread
            with lock:
                errors.append(error)
            start.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchmarkError(f"a request failed: {errors[0]!r}")
    return [s for s in spans if s is not None], answers


def latency_row(spans: list[tuple[float, float]], concurrency: int) -> dict:
    latencies = np.array([end - began for began, end in spans])
    wall = max(end for _, end in spans) - min(began for began, _ in spans)
    return {
        "concurrency": concurrency,
        "requests": len(spans),
        "wall_s": wall,
        "requests_per_s": len(spans) / wall,
        "latency_p50_s": float(np.percentile(latencies, 50)),
        "latency_p99_s": float(np.percentile(latencies, 99)),
        "latency_mean_s": float(latencies.mean()),
    }


def run_load(
    url: str, model_name: str, audios: Sequence[np.ndarray], requests: int, concurrency: int
) -> dict:
    """Send ``requests`` requests (utterance i % len(audios)) from ``concurrency`` threads."""

    def send(client, index: int) -> str:
        return infer_transcript(client, "http", model_name, audios[index % len(audios)])

    spans, texts = closed_loop(url, requests, concurrency, send)
    row = latency_row(spans, concurrency)
    audio_s = sum(len(audios[i % len(audios)]) for i in range(requests)) / SAMPLE_RATE
    row["audio_s"] = audio_s
    row["throughput_audio_s_per_s"] = audio_s / row["wall_s"]
    row["transcripts"] = texts[: len(audios)]
    return row


def model_counts(url: str, model_name: str) -> tuple[int, int]:
    """(inferences, executions) the server has counted for a model: their ratio is the batch."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(model_name)["model_stats"]
    finally:
        client.close()
    return (
        sum(int(s.get("inference_count", 0)) for s in stats),
        sum(int(s.get("execution_count", 0)) for s in stats),
    )


def server_version(url: str) -> str:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    try:
        return client.get_server_metadata().get("version", "unknown")
    finally:
        client.close()


def served_load(
    repository: Path,
    mode: str,
    audios: Sequence[np.ndarray],
    settings: ServingSettings,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], str]:
    """Start the server on ``repository`` and run every concurrency; rows and server version."""

    from modelrepo_gen.serve.server import TritonServer

    models = repository_models(repository)
    ensemble, batcher = models["ensemble"], batching_model(models, "acoustic_model")
    rows = []
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        version = server_version(server.http_url)
        # Warm-up, not timed: every utterance once, then one full concurrent wave.
        run_load(server.http_url, ensemble, audios, len(audios), 1)
        wave = max(settings.concurrencies)
        run_load(server.http_url, ensemble, audios, wave, wave)
        for concurrency in settings.concurrencies:
            before = model_counts(server.http_url, batcher)
            row = run_load(server.http_url, ensemble, audios, settings.requests, concurrency)
            after = model_counts(server.http_url, batcher)
            executions = after[1] - before[1]
            row["mean_batch"] = (after[0] - before[0]) / executions if executions else 0
            row["dynamic_batching"] = mode
            rows.append(row)
            log(
                f"  dynamic_batching={mode} concurrency {concurrency}: "
                f"{row['throughput_audio_s_per_s']:.2f} audio-s/s, "
                f"p50 {row['latency_p50_s']:.3f} s, p99 {row['latency_p99_s']:.3f} s, "
                f"batch {row['mean_batch']:.2f}"
            )
    return rows, version


# -- in-process baselines --------------------------------------------------------------------
def _time_sequential(transcribe: Callable[[np.ndarray], str], audios: Sequence[np.ndarray]):
    transcribe(audios[0])  # warm-up
    texts, started = [], time.perf_counter()
    for audio in audios:
        texts.append(transcribe(audio))
    wall = time.perf_counter() - started
    audio_s = sum(len(a) for a in audios) / SAMPLE_RATE
    return {
        "utterances": len(audios),
        "audio_s": audio_s,
        "wall_s": wall,
        "throughput_audio_s_per_s": audio_s / wall,
        "latency_mean_s": wall / len(audios),
        "transcripts": texts,
    }


def in_process(repository: Path, audios: Sequence[np.ndarray], passes: int = 1) -> dict[str, dict]:
    """The utterances transcribed sequentially (``passes`` times) in this process by the
    repository itself (InProcessRepository: the same model.py files and networks the server
    runs, the same request code), so the difference to served is the cost of serving."""
    from modelrepo_gen.clients.asr_client import find_ensemble_model
    from modelrepo_gen.clients.in_process_repository import InProcessRepository

    ensemble = find_ensemble_model(str(repository), "in_process")
    with InProcessRepository(repository) as models:
        results = {
            "in_process": _time_sequential(
                lambda audio: infer_transcript(models, "in_process", ensemble, audio),
                list(audios) * passes,
            )
        }
    gc.collect()
    return results
