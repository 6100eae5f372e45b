"""Triton python-backend model: a Piper voice (VITS, ONNX) served as it is, in onnxruntime.

Inputs SYMBOL_IDS (INT64 [-1], padded) and SYMBOL_COUNT (INT32 [1]): one sentence's phoneme
ids per row. Outputs AUDIO (FP32 [-1], padded with zeros) and AUDIO_LENGTH (INT32 [1]).
Each row runs alone: the voice's output carries no per-item length, so a padded batch could
not be cut back to each sentence's audio.
Settings from config.pbtxt `parameters`:
  voice        the voice's ONNX file in the version folder
  noise_scale  VITS prior noise (0: no randomness in the sound)
  length_scale phoneme durations (> 1: slower)
  noise_w      duration predictor noise (0: no randomness in the timing)
  speaker_id   speaker of a multi-speaker voice ("" for a single-speaker voice)
  threads      onnxruntime intra-op threads (0: onnxruntime's choice)
  num_symbols  the voice's phoneme ids (0 .. num_symbols - 1)
  max_symbols  most ids of one row (one sentence)
  limits       JSON {scale: [low, high]}: the values a request may set
A request's parameters noise_scale, length_scale and noise_w (numbers, or numbers as text,
within `limits`) replace the configured scales for that request.
"""

import json
from pathlib import Path

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_kernel import BadRequest, fault, model_settings, numeric_parameters, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import (
        BadRequest,
        fault,
        model_settings,
        numeric_parameters,
        refusal,
    )


def voice_inputs(ids: np.ndarray, scales: np.ndarray, speaker_id: int | None) -> dict:
    """The Piper ONNX inputs for one sentence's ids."""
    feeds = {
        "input": np.asarray(ids, dtype=np.int64).reshape(1, -1),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.asarray(scales, dtype=np.float32),
    }
    if speaker_id is not None:
        feeds["sid"] = np.array([speaker_id], dtype=np.int64)
    return feeds


def speak(session, ids: np.ndarray, scales: np.ndarray, speaker_id: int | None) -> np.ndarray:
    """One sentence's audio (float32, the voice's sample rate)."""
    (audio,) = session.run(["output"], voice_inputs(ids, scales, speaker_id))
    return np.asarray(audio, dtype=np.float32).reshape(-1)


SCALES = ("noise_scale", "length_scale", "noise_w")


def request_scales(raw: str, configured: np.ndarray, limits: dict) -> np.ndarray:
    """The scales for one request: its parameters (within `limits`) over the configured ones;
    BadRequest names a parameter that is unknown or out of its limits."""
    scales = configured.copy()
    for name, number in numeric_parameters(raw, limits).items():
        scales[SCALES.index(name)] = number
    return scales


def find_problem(
    ids: np.ndarray, counts: np.ndarray, num_symbols: int, max_symbols: int
) -> str | None:
    """The first reason these rows cannot be spoken, or None."""
    counts = counts.reshape(-1)
    if ids.ndim != 2 or counts.size != ids.shape[0]:
        return "SYMBOL_COUNT must hold one count per row of SYMBOL_IDS"
    longest = min(ids.shape[1], max_symbols)
    if np.any(counts < 1) or np.any(counts > longest):
        return f"SYMBOL_COUNT must be between 1 and {longest}, got {counts.tolist()}"
    if np.any(ids < 0) or np.any(ids >= num_symbols):
        return f"SYMBOL_IDS must be between 0 and {num_symbols - 1}"
    return None


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime

        config, params = model_settings(args)
        self.model_name = config["name"]
        folder = Path(args["model_repository"]) / args["model_version"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(params["threads"])
        self.session = onnxruntime.InferenceSession(
            str(folder / params["voice"]), options, providers=["CPUExecutionProvider"]
        )
        self.scales = np.array(
            [float(params[k]) for k in SCALES],
            dtype=np.float32,
        )
        self.speaker_id = int(params["speaker_id"]) if params["speaker_id"] else None
        self.num_symbols = int(params["num_symbols"])
        self.max_symbols = int(params["max_symbols"])
        self.limits = {name: json.loads(params["limits"])[name] for name in SCALES}

    def execute(self, requests):
        responses = []
        for request in requests:
            ids = pb_utils.get_input_tensor_by_name(request, "SYMBOL_IDS").as_numpy()
            counts = pb_utils.get_input_tensor_by_name(request, "SYMBOL_COUNT").as_numpy()
            try:
                scales = request_scales(request.parameters(), self.scales, self.limits)
                problem = find_problem(ids, counts, self.num_symbols, self.max_symbols)
                if problem:
                    raise BadRequest(problem)
            except BadRequest as error:
                responses.append(refusal(self.model_name, str(error)))
                continue
            try:
                clips = [
                    speak(self.session, row[: int(n)], scales, self.speaker_id)
                    for row, n in zip(ids, counts.reshape(-1))
                ]
            except Exception as error:  # answer, do not crash the stub
                responses.append(fault(self.model_name, f"the voice failed: {error}"))
                continue
            audio = np.zeros((len(clips), max(len(c) for c in clips)), dtype=np.float32)
            for out, clip in zip(audio, clips):
                out[: len(clip)] = clip
            lengths = np.array([[len(c)] for c in clips], dtype=np.int32)
            responses.append(
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("AUDIO", audio), pb_utils.Tensor("AUDIO_LENGTH", lengths)]
                )
            )
        return responses
