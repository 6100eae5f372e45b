"""Requests to a served speech synthesis ensemble: check the model, send text, get audio.

The ensemble's interface: input ``TEXT`` (TYPE_STRING, dims [1], UTF-8), outputs ``AUDIO``
(FP32, dims [-1]), ``AUDIO_LENGTH`` (INT32, dims [1]) and, where the pipeline can cut speech
short, ``TRUNCATED`` (BOOL, dims [1]); the audio's rate is the ensemble's `sample_rate`
parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelrepo_gen.clients.triton_calls import (
    REQUEST_TIMEOUT_S,
    client_module,
    connect,
    ready_model_config,
    request_failure,
)
from modelrepo_gen.core.errors import UserError

TEXT_INPUT, AUDIO_OUTPUT, LENGTH_OUTPUT, TRUNCATED_OUTPUT = (
    "TEXT",
    "AUDIO",
    "AUDIO_LENGTH",
    "TRUNCATED",
)


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray  # float32 samples, AUDIO_LENGTH of them
    sample_rate: int
    truncated: bool  # the model stopped some sentence at its step limit

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def check_tts_model(url: str, protocol: str, model_name: str) -> dict:
    """The model's config; fails early, and clearly, if it is not loaded or not TTS-shaped."""
    config = ready_model_config(url, protocol, model_name)
    inputs = {t.get("name") for t in config.get("input", [])}
    outputs = {t.get("name") for t in config.get("output", [])}
    if TEXT_INPUT not in inputs or not {AUDIO_OUTPUT, LENGTH_OUTPUT} <= outputs:
        raise UserError(
            f"model '{model_name}' is not a speech synthesis ensemble: it takes "
            f"{sorted(inputs)} and returns {sorted(outputs)}, expected {TEXT_INPUT} -> "
            f"{AUDIO_OUTPUT}, {LENGTH_OUTPUT}"
        )
    if served_audio_rate(config) is None:
        raise UserError(f"model '{model_name}' declares no sample_rate parameter")
    return config


def served_audio_rate(config: dict) -> int | None:
    value = config.get("parameters", {}).get("sample_rate", {}).get("string_value")
    return int(value) if value else None


def infer_speech(
    client: Any,
    protocol: str,
    model_name: str,
    config: dict,
    text: str,
    parameters: dict[str, float] | None = None,
) -> Speech:
    """One request with one text on an open client (`config`: from check_tts_model);
    `parameters`: Triton request parameters (e.g. a Piper voice's noise_scale)."""
    module = client_module(protocol)
    reports_truncation = TRUNCATED_OUTPUT in {t.get("name") for t in config.get("output", [])}
    request = module.InferInput(TEXT_INPUT, [1, 1], "BYTES")
    request.set_data_from_numpy(np.array([[text.encode("utf-8")]], dtype=np.object_))
    names = [AUDIO_OUTPUT, LENGTH_OUTPUT] + ([TRUNCATED_OUTPUT] if reports_truncation else [])
    outputs = [module.InferRequestedOutput(name) for name in names]
    extra = {} if protocol == "http" else {"client_timeout": REQUEST_TIMEOUT_S}
    if parameters:
        extra["parameters"] = parameters
    try:
        result = client.infer(model_name, [request], outputs=outputs, **extra)
    except Exception as error:  # the server's refusal of the text, or a lost connection
        raise UserError(request_failure(model_name, error)) from None
    length = int(result.as_numpy(LENGTH_OUTPUT).reshape(-1)[0])
    audio = result.as_numpy(AUDIO_OUTPUT).reshape(-1)
    if not 0 <= length <= audio.size:
        raise UserError(f"'{model_name}' gave AUDIO_LENGTH {length} for {audio.size} samples")
    truncated = reports_truncation and bool(result.as_numpy(TRUNCATED_OUTPUT).reshape(-1)[0])
    return Speech(audio[:length].astype(np.float32), served_audio_rate(config), truncated)


def synthesize_speech(
    url: str,
    protocol: str,
    model_name: str,
    text: str,
    parameters: dict[str, float] | None = None,
) -> Speech:
    """Check the model, speak `text`, return its audio; a UserError for every failure."""
    config = check_tts_model(url, protocol, model_name)
    client = connect(url, protocol)
    try:
        return infer_speech(client, protocol, model_name, config, text, parameters)
    finally:
        client.close()
