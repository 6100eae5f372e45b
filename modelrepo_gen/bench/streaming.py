"""Benchmark part: a CTC pipeline built with mode=streaming, served, streams sent in real time.

Each stream is one LibriVox utterance sent over gRPC in chunks of the build's chunk_seconds, each
chunk when its last sample would have been recorded (clients/stream_client.py). At 1 stream the
utterances go one after another; at 8, eight streams run at once (the utterances in turn). Per
chunk: latency, from the moment its audio was complete to its answer (the transcript so far:
what was decided up to right_context_seconds before); real-time factor: the server's time on
the chunks (sent to answered) over the audio's length, over all streams.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelrepo_gen.bench.build import BenchmarkError, ModelChoice, timed_build
from modelrepo_gen.bench.serving import SAMPLE_RATE
from modelrepo_gen.clients.stream_client import StreamResult, stream_audio


@dataclass
class StreamingSettings:
    concurrencies: tuple[int, ...] = (1, 8)
    utterances: int = 5  # streams at concurrency 1 (one after another)
    max_seconds: float | None = None  # each utterance cut to this (None: whole)

    @classmethod
    def quick(cls) -> StreamingSettings:
        return cls(utterances=1, max_seconds=2.0)


def _streams(url: str, model: str, audios: Sequence[np.ndarray], chunk: int, concurrency: int):
    """Each audio streamed once, `concurrency` streams at a time; results in order."""
    import tritonclient.grpc as grpc

    results: list[StreamResult | None] = [None] * len(audios)
    errors: list[BaseException] = []
    next_index = iter(range(len(audios)))
    lock = threading.Lock()

    def work() -> None:
        client = grpc.InferenceServerClient(url)
        try:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                results[index] = stream_audio(
                    client, "grpc", model, audios[index], chunk, SAMPLE_RATE, realtime=True
                )
        except BaseException as error:  # reported after the threads end
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def streaming_part(
    model: ModelChoice,
    audios: Sequence[np.ndarray],
    settings: StreamingSettings,
    work: Path,
    timeout_s: float,
    log: Callable[[str], None] = print,
) -> dict:
    from modelrepo_gen.clients.stream_client import streaming_chunk_seconds
    from modelrepo_gen.clients.triton_calls import ready_model_config
    from modelrepo_gen.serve.server import TritonServer

    path = work / "streaming"
    shutil.rmtree(path, ignore_errors=True)  # a run before this one's
    log(f"build {model.label} onnx fp32 mode=streaming")
    row = timed_build(model, "onnx", "fp32", path, "default", timeout_s, ("mode=streaming",))
    if row["status"] != "ok":
        raise BenchmarkError(f"the mode=streaming build {row['status']}")
    if settings.max_seconds:
        audios = [a[: int(settings.max_seconds * SAMPLE_RATE)] for a in audios]
    rows = []
    with TritonServer(path, http_port=0, grpc_port=0, metrics_port=0) as server:
        config = ready_model_config(server.grpc_url, "grpc", model.pipeline)
        chunk_seconds = streaming_chunk_seconds(config)
        chunk = int(round(chunk_seconds * SAMPLE_RATE))
        streamer = ready_model_config(server.grpc_url, "grpc", f"{model.pipeline}_streamer")
        context = {
            side: int(streamer["parameters"][f"{side}_samples"]["string_value"]) / SAMPLE_RATE
            for side in ("left", "right")
        }
        _streams(server.grpc_url, model.pipeline, audios[:1], chunk, 1)  # warm-up, not timed
        for concurrency in settings.concurrencies:
            count = settings.utterances if concurrency == 1 else concurrency
            chosen = [audios[i % len(audios)] for i in range(count)]
            started = time.perf_counter()
            results = _streams(server.grpc_url, model.pipeline, chosen, chunk, concurrency)
            wall = time.perf_counter() - started
            latencies = np.concatenate([r.latencies_s for r in results])
            audio_s = sum(r.audio_s for r in results)
            rows.append(
                {
                    "concurrency": concurrency,
                    "streams": count,
                    "chunks": int(latencies.size),
                    "audio_s": audio_s,
                    "wall_s": wall,
                    "latency_p50_s": float(np.percentile(latencies, 50)),
                    "latency_p99_s": float(np.percentile(latencies, 99)),
                    "rtf": float(sum(sum(r.busy_s) for r in results) / audio_s),
                }
            )
            log(
                f"  {concurrency} stream(s) at once: latency p50 {rows[-1]['latency_p50_s']:.3f} s"
                f", p99 {rows[-1]['latency_p99_s']:.3f} s, real-time factor {rows[-1]['rtf']:.3f}"
            )
    return {
        "model": model.label,
        "chunk_seconds": chunk_seconds,
        "left_context_seconds": context["left"],
        "right_context_seconds": context["right"],
        "build_s": row["process_wall_s"],
        "rows": rows,
    }
