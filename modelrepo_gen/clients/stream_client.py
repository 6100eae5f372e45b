"""Streaming a recording to a pipeline built with mode=streaming: chunk after chunk, each one an
ordinary inference request with Triton's sequence id and start / end flags (any Triton client
can do the same), each answered with the transcript so far.

With `realtime`, each chunk is sent when its last sample would have been recorded, as a
microphone would; the latency of a chunk is the time from that moment to its answer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelrepo_gen.clients.triton_calls import client_module, request_failure
from modelrepo_gen.core.errors import UserError

AUDIO_INPUT, LENGTH_INPUT, TEXT_OUTPUT = "AUDIO_SIGNAL", "NUM_SAMPLES", "TRANSCRIPT"
CHUNK_PARAMETER = "streaming_chunk_seconds"


@dataclass
class StreamResult:
    transcript: str  # the answer to the last chunk
    partials: list[str] = field(default_factory=list)  # the answer to each chunk
    latencies_s: list[float] = field(default_factory=list)  # chunk's end -> its answer
    busy_s: list[float] = field(default_factory=list)  # chunk sent -> its answer
    audio_s: float = 0.0
    wall_s: float = 0.0  # first request -> last answer


def streaming_chunk_seconds(config: dict) -> float:
    """The chunk length a streaming ensemble declares (UserError if it is not one)."""
    value = config.get("parameters", {}).get(CHUNK_PARAMETER, {}).get("string_value")
    if not value:
        raise UserError(
            f"model '{config.get('name')}' does not stream: build the pipeline with mode=streaming"
        )
    return float(value)


def new_sequence_id() -> int:
    """A random id no other client is likely to use at the same time (Triton's are uint64)."""
    return random.SystemRandom().randrange(1, 2**63)


def stream_audio(
    client: Any,
    protocol: str,
    model_name: str,
    audio: np.ndarray,
    chunk_samples: int,
    sample_rate: int,
    realtime: bool = True,
    sequence_id: int | None = None,
    on_partial: Callable[[int, str, float], None] | None = None,
) -> StreamResult:
    """Send `audio` in chunks of `chunk_samples` as one stream; `on_partial(index, text,
    latency_s)` sees each answer as it arrives."""
    module = client_module(protocol)
    signal = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    sequence_id = sequence_id or new_sequence_id()
    starts = list(range(0, max(len(signal), 1), chunk_samples))
    result = StreamResult("", audio_s=len(signal) / sample_rate)
    began = time.perf_counter()
    for index, start in enumerate(starts):
        piece = signal[start : start + chunk_samples].reshape(1, -1)
        recorded = began + (start + piece.shape[1]) / sample_rate  # the chunk's last sample
        if realtime and time.perf_counter() < recorded:
            time.sleep(recorded - time.perf_counter())
        sent = time.perf_counter()
        inputs = [
            module.InferInput(AUDIO_INPUT, list(piece.shape), "FP32"),
            module.InferInput(LENGTH_INPUT, [1, 1], "INT32"),
        ]
        inputs[0].set_data_from_numpy(piece)
        inputs[1].set_data_from_numpy(np.array([[piece.shape[1]]], dtype=np.int32))
        try:
            answer = client.infer(
                model_name,
                inputs,
                outputs=[module.InferRequestedOutput(TEXT_OUTPUT)],
                sequence_id=sequence_id,
                sequence_start=index == 0,
                sequence_end=index == len(starts) - 1,
            )
        except UserError:
            raise
        except Exception as error:  # the server's refusal, a dropped connection
            raise UserError(request_failure(model_name, error)) from None
        text = answer.as_numpy(TEXT_OUTPUT).reshape(-1)[0]
        text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
        latency = time.perf_counter() - (recorded if realtime else sent)
        result.partials.append(text)
        result.latencies_s.append(latency)
        result.busy_s.append(time.perf_counter() - sent)
        if on_partial is not None:
            on_partial(index, text, latency)
    result.transcript = result.partials[-1]
    result.wall_s = time.perf_counter() - began
    return result
