"""Raw tritonclient requests for the served-ASR tests (HTTP or gRPC, any dtype or shape)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tritonclient.utils import np_to_triton_dtype

from modelrepo_gen.serve.server import TritonServer


# -- raw requests --------------------------------------------------------------------------------
def connect(server: TritonServer, protocol: str, timeout_s: float = 60.0) -> tuple[Any, Any]:
    if protocol == "http":
        import tritonclient.http as module

        client = module.InferenceServerClient(server.http_url, network_timeout=timeout_s)
        return module, client
    import tritonclient.grpc as module

    return module, module.InferenceServerClient(server.grpc_url)


def infer(
    module: Any,
    client: Any,
    model: str,
    tensors: dict[str, tuple[np.ndarray, str]],
    outputs: list[str],
    parameters: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    inputs = []
    for name, (array, datatype) in tensors.items():
        tensor = module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    requested = [module.InferRequestedOutput(name) for name in outputs]
    result = client.infer(model, inputs, outputs=requested, parameters=parameters)
    return {name: result.as_numpy(name) for name in outputs}


def transcripts(
    module: Any,
    client: Any,
    model: str,
    audio: np.ndarray,
    lengths: np.ndarray,
    audio_type: str = "FP32",
    length_type: str = "INT32",
    parameters: dict[str, Any] | None = None,
) -> list[str]:
    tensors = {"AUDIO_SIGNAL": (audio, audio_type), "NUM_SAMPLES": (lengths, length_type)}
    answers = infer(module, client, model, tensors, ["TRANSCRIPT"], parameters)
    texts = answers["TRANSCRIPT"].reshape(-1)
    return [t.decode("utf-8") for t in texts]


def segments(module: Any, client: Any, model: str, audio: np.ndarray, **parameters: Any) -> list:
    """The SEGMENTS answer for one recording: [{"start", "end", "text"}, ...]."""
    import json

    tensors = {
        "AUDIO_SIGNAL": (audio.reshape(1, -1), "FP32"),
        "NUM_SAMPLES": (np.array([[audio.size]], dtype=np.int32), "INT32"),
    }
    answers = infer(module, client, model, tensors, ["SEGMENTS"], parameters or None)
    return json.loads(answers["SEGMENTS"].reshape(-1)[0].decode("utf-8"))


def sentences_with_pauses(librivox: list, rate: int, pause_seconds: float = 1.4) -> np.ndarray:
    """The five LibriVox utterances and the first two again, each followed by a pause: 45 s,
    so that the fifth sentence runs across the 30 s mark where a fixed window would cut it."""
    parts = []
    for _, audio, _ in said_with_pauses(librivox):
        parts += [audio, np.zeros(int(pause_seconds * rate), dtype=np.float32)]
    return np.concatenate(parts)


def said_with_pauses(librivox: list) -> list:
    """The utterances sentences_with_pauses says, in order."""
    return [*librivox, librivox[0], librivox[1]]


def one_utterance(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return audio.reshape(1, -1), np.array([[audio.size]], dtype=np.int32)


def varied_lengths(librivox: list) -> list[np.ndarray]:
    """Each utterance whole and cut to 30 % and 65 % of it: 15 different lengths."""
    audios = []
    for _, audio, _ in librivox:
        audios += [audio, audio[: int(0.3 * audio.size)], audio[: int(0.65 * audio.size)]]
    assert len({a.size for a in audios}) == len(audios)
    return audios


def batch_counts(server: TritonServer, model: str) -> dict[int, int]:
    """Triton's executions of `model` so far, per batch size (its statistics), once they stop
    changing: Triton records an execution just after its answers leave."""
    _, client = connect(server, "http")
    try:
        counts, deadline = None, time.monotonic() + 5
        while True:
            (stats,) = client.get_inference_statistics(model)["model_stats"]
            now = {
                int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["batch_stats"]
            }
            if now == counts or time.monotonic() > deadline:
                return now
            counts = now
            time.sleep(0.2)
    finally:
        client.close()


# -- what kind of failure ------------------------------------------------------------------------
BAD_REQUEST = {"http": "400", "grpc": "StatusCode.INVALID_ARGUMENT"}
SERVER_FAULT = {"http": "500", "grpc": "StatusCode.INTERNAL"}


def status_of(error: Exception) -> str:
    """Triton's answer code as tritonclient gives it: '400' (HTTP), 'StatusCode.INTERNAL' ..."""
    return str(error.status())  # type: ignore[attr-defined]


def is_bad_request(error: Exception) -> bool:
    """HTTP 400 or gRPC INVALID_ARGUMENT: what a client must not send again as it is."""
    return status_of(error) in BAD_REQUEST.values()


def served_logprobs(module: Any, client: Any, name: str, audio: np.ndarray) -> np.ndarray:
    """The valid frames of the LOGPROBS that build `name`'s served feature extractor and
    acoustic model give for one recording."""
    signal, samples = one_utterance(audio)
    tensors = {"AUDIO_SIGNAL": (signal, "FP32"), "NUM_SAMPLES": (samples, "INT32")}
    features = infer(
        module, client, f"{name}_feature_extractor", tensors, ["FEATURES", "FEATURE_LENGTHS"]
    )
    tensors = {key: (value, np_to_triton_dtype(value.dtype)) for key, value in features.items()}
    outputs = infer(
        module, client, f"{name}_acoustic_model", tensors, ["LOGPROBS", "ENCODED_LENGTHS"]
    )
    return outputs["LOGPROBS"][0, : int(outputs["ENCODED_LENGTHS"].reshape(-1)[0])]
