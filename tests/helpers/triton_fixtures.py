"""Tiny model repositories for tests that start a real Triton server (python backend only).

The stand-in ASR model reads text *encoded in the audio* (one sample per character, value
``code / 256``) and answers it as the TRANSCRIPT, so tests know every expected transcript and
word error rate exactly, over real HTTP and gRPC.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

ECHO_MODEL_PY = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", data)]))
        return responses
"""

BROKEN_MODEL_PY = """
class TritonPythonModel:
    def initialize(self, args):
        raise ValueError("deliberate failure for the test")

    def execute(self, requests):
        return []
"""

# Decodes the text encoded by encode_text(); "slow ..." sleeps, "raise error ..." is refused.
STANDIN_DECODER_PY = """
import time

import numpy as np
import triton_python_backend_utils as pb_utils


def decode(row):
    codes = np.rint(row * 256).astype(int)
    return "".join(chr(c) for c in codes if 32 <= c < 127 or 160 <= c < 256)


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            audio = pb_utils.get_input_tensor_by_name(request, "AUDIO_SIGNAL").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "NUM_SAMPLES").as_numpy()
            texts = []
            for row, length in zip(audio, lengths.reshape(-1)):
                length = int(length)
                texts.append(decode(row[:length]) or f"{length} samples")
            refused = [t for t in texts if t.startswith("raise error")]
            if refused:
                error = pb_utils.TritonError("stand-in model refuses: " + refused[0])
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            if any(t.startswith("slow") for t in texts):
                time.sleep(0.5)
            out = np.array([[t.encode("utf-8")] for t in texts], dtype=object)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("TRANSCRIPT", out)]))
        return responses
"""

ASR_ENSEMBLE = "asr_standin"
ASR_DECODER = "asr_standin_decoder"


def encode_text(text: str) -> np.ndarray:
    """Audio the stand-in ASR model transcribes as ``text`` (Latin-1 characters only)."""
    return np.array([ord(c) / 256 for c in text], dtype=np.float32)


def _tensor(name: str, dtype: str, dims: str) -> str:
    return f'{{ name: "{name}" data_type: {dtype} dims: [ {dims} ] }}'


def write_python_model(
    repository: Path,
    name: str,
    model_py: str,
    inputs: list[str],
    outputs: list[str],
    max_batch_size: int = 8,
    instances: int = 1,
) -> Path:
    """A python-backend model folder: config.pbtxt and 1/model.py."""
    folder = repository / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(textwrap.dedent(model_py).lstrip())
    (folder / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch_size}\n'
        f"input [ {', '.join(inputs)} ]\noutput [ {', '.join(outputs)} ]\n"
        f"instance_group [ {{ kind: KIND_CPU count: {instances} }} ]\n"
    )
    return folder


def write_echo_model(repository: Path, name: str = "echo") -> Path:
    return write_python_model(
        repository,
        name,
        ECHO_MODEL_PY,
        [_tensor("INPUT0", "TYPE_FP32", "-1")],
        [_tensor("OUTPUT0", "TYPE_FP32", "-1")],
    )


def write_broken_model(repository: Path, name: str = "broken") -> Path:
    return write_python_model(
        repository,
        name,
        BROKEN_MODEL_PY,
        [_tensor("INPUT0", "TYPE_FP32", "-1")],
        [_tensor("OUTPUT0", "TYPE_FP32", "-1")],
    )


def write_standin_asr(repository: Path, name: str = ASR_ENSEMBLE) -> None:
    """An ensemble with the fixed ASR interface over one python decoder step."""
    decoder = f"{name}_decoder"
    audio = _tensor("AUDIO_SIGNAL", "TYPE_FP32", "-1")
    length = _tensor("NUM_SAMPLES", "TYPE_INT32", "1")
    transcript = _tensor("TRANSCRIPT", "TYPE_STRING", "1")
    # Two instances so concurrent requests really run side by side.
    write_python_model(
        repository, decoder, STANDIN_DECODER_PY, [audio, length], [transcript], instances=2
    )
    folder = repository / name
    (folder / "1").mkdir(parents=True)  # an ensemble needs an (empty) version folder
    (folder / "config.pbtxt").write_text(
        f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: 8\n'
        f"input [ {audio}, {length} ]\noutput [ {transcript} ]\n"
        "ensemble_scheduling { step [ {\n"
        f'  model_name: "{decoder}" model_version: -1\n'
        '  input_map { key: "AUDIO_SIGNAL" value: "AUDIO_SIGNAL" }\n'
        '  input_map { key: "NUM_SAMPLES" value: "NUM_SAMPLES" }\n'
        '  output_map { key: "TRANSCRIPT" value: "TRANSCRIPT" }\n'
        "} ] }\n"
    )


# -- what a server leaves behind ---------------------------------------------------------------
def live_processes_mentioning(text: str) -> list[int]:
    """Non-zombie processes whose command line contains ``text`` (e.g. a tmp repository)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if text in cmdline and stat[stat.rfind(")") + 2 :].split()[0] != "Z":
            found.append(int(entry.name))
    return found


def shm_regions_mapped_by(pids: list[int]) -> set[str]:
    """The python backend's /dev/shm regions that these processes have mapped."""
    regions = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.split("\n"):
            if "/dev/shm/triton_python_backend_shm_region_" in line:
                regions.add(line.rsplit("/", 1)[-1].removesuffix(" (deleted)"))
    return regions
