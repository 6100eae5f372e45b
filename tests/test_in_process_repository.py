"""InProcessRepository runs a built repository without a server: its answers equal the PyTorch
chain the build made (an independent computation), a native-backend rendering of the same
repository answers as the python-backend one, and what Triton refuses it refuses the same way.

The served side of the comparison (served == in-process) is in each family's served tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.asr_fixtures import (
    AsrBuild,
    build_asr_repository,
    built_plan,
    pytorch_networks,
    write_fake_checkpoint,
)

from modelrepo_gen.clients.asr_client import infer_transcript
from modelrepo_gen.clients.in_process_repository import InProcessError, InProcessRepository
from modelrepo_gen.components.triton_python.ctc_greedy_decoder import greedy_decode
from modelrepo_gen.core.errors import UserError


def pytorch_transcript(repository: Path, audio: np.ndarray) -> str:
    """Features -> acoustic model in PyTorch, greedy CTC decoding: what the ensemble does."""
    features, acoustic = pytorch_networks(repository)
    (decoder,) = [u for u in built_plan(repository).units if "vocabulary" in u.parameters]
    vocabulary = json.loads(decoder.parameters["vocabulary"])
    with torch.inference_mode():
        signal = torch.from_numpy(audio).view(1, -1)
        feats, frames = features(signal, torch.tensor([[audio.size]], dtype=torch.int32))
        logprobs, lengths = acoustic(feats, frames)
    return greedy_decode(logprobs[0].numpy(), int(lengths.reshape(-1)[0]), vocabulary)


@pytest.mark.parametrize("name", ["asr_quartznet", "asr_jasper"])  # ONNX and TorchScript
def test_transcripts_equal_the_pytorch_chain(
    name: str, asr_builds: dict[str, Path], librivox: list
) -> None:
    with InProcessRepository(asr_builds[name]) as models:
        got = [infer_transcript(models, "in_process", name, a) for _, a, _ in librivox[:3]]
    expected = [pytorch_transcript(asr_builds[name], audio) for _, audio, _ in librivox[:3]]
    assert got == expected
    assert len(set(got)) == 3 and min(map(len, got)) > 20  # long, distinct: a real comparison


@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_triton_native_backends_answer_as_the_python_backend(
    backend: str, asr_builds: dict[str, Path], librivox: list, tmp_path: Path
) -> None:
    """target=gpu serves the networks with Triton's onnxruntime / libtorch backends: run here
    by onnxruntime and torch.jit, they answer as the CPU build's python-backend models do."""
    name = {"onnx": "asr_quartznet", "torchscript": "asr_quartznet_ts"}[backend]
    build = AsrBuild(name, "asr_quartznet", "quartznet_mini", backend, ("target=gpu",))
    checkpoint = write_fake_checkpoint("asr_quartznet", "quartznet_mini", tmp_path / "c.pt")
    native = build_asr_repository(build, checkpoint, tmp_path / "repo")
    audios = [audio for _, audio, _ in librivox[:3]]
    with InProcessRepository(native) as models:
        platform = models.configs[f"{name}_acoustic_model"].platform
        assert platform == {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}[backend]
        got = [infer_transcript(models, "in_process", name, audio) for audio in audios]
    with InProcessRepository(asr_builds[name]) as models:
        assert got == [infer_transcript(models, "in_process", name, a) for a in audios]


def test_refuses_what_triton_refuses(asr_builds: dict[str, Path], clip: np.ndarray) -> None:
    length = np.array([[clip.size]], dtype=np.int32)
    with InProcessRepository(asr_builds["asr_quartznet"]) as models:
        refusals = {
            "wrong type": (
                {"AUDIO_SIGNAL": clip[None], "NUM_SAMPLES": length.astype(np.int64)},
                "input 'NUM_SAMPLES' expects int32, got int64",
            ),  # fmt: skip
            "missing": ({"AUDIO_SIGNAL": clip[None]}, "expected the input 'NUM_SAMPLES'"),
            "unknown": (
                {"AUDIO_SIGNAL": clip[None], "NUM_SAMPLES": length, "X": length},
                "unexpected input 'X'",
            ),  # fmt: skip
            # The feature extractor's own check, answered as its model.py answers it.
            "model's own": (
                {
                    "AUDIO_SIGNAL": np.full((1, 99), np.nan, np.float32),
                    "NUM_SAMPLES": np.array([[99]], np.int32),
                },
                "AUDIO_SIGNAL contains NaN or infinite values",
            ),  # fmt: skip
        }
        for label, (inputs, message) in refusals.items():
            with pytest.raises(InProcessError, match=message) as refused:
                models.run("asr_quartznet", inputs)
            assert refused.value.invalid_argument and refused.value.status() == "400", label
        with pytest.raises(InProcessError, match="unknown model 'nope'") as unknown:
            models.run("nope", {})
        assert not unknown.value.invalid_argument
        # Still answers after every refusal.
        text = models.run("asr_quartznet", {"AUDIO_SIGNAL": clip[None], "NUM_SAMPLES": length})
        assert text["TRANSCRIPT"].shape == (1, 1)


def test_a_repository_without_models_and_a_tensorrt_model_are_one_clear_error(
    asr_builds: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="holds no models"):
        InProcessRepository(tmp_path)
    plan = tmp_path / "repo" / "engine"
    plan.mkdir(parents=True)
    (plan / "config.pbtxt").write_text('name: "engine"\nplatform: "tensorrt_plan"\n')
    with InProcessRepository(tmp_path / "repo") as models:
        with pytest.raises(UserError, match="TensorRT engines need a GPU and Triton"):
            models.run("engine", {})
