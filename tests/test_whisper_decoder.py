"""The cached step decoder and the cross-attention encoder the asr_whisper repository exports
give transformers' own Whisper logits, step by step, in PyTorch and in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelrepo_gen.components.networks.whisper_decoder import WhisperStepDecoder
from modelrepo_gen.components.networks.whisper_encoder import WhisperCrossKV
from modelrepo_gen.components.whisper_decoder import WhisperDecoder
from modelrepo_gen.components.whisper_source import WhisperSourceSettings
from modelrepo_gen.exporters.onnx_exporter import OnnxExporter

TOLERANCE = 2e-4  # logits reach about 30: float32 rounding only


@pytest.fixture(scope="module")
def teacher_forced(tiny_en_model, librivox):
    """Features of real speech, a forced token sequence and transformers' logits for it."""
    from modelrepo_gen.components.networks.whisper_features import WhisperLogMel

    clips = [librivox[0][1], librivox[2][1]]
    audio = torch.zeros(2, max(c.size for c in clips))
    for row, clip in zip(audio, clips):
        row[: clip.size] = torch.from_numpy(clip)
    lengths = torch.tensor([[c.size] for c in clips], dtype=torch.int32)
    tokens = torch.tensor([[50257, 50362, 843, 1770, 13, 1757, 16189]] * 2)
    with torch.no_grad():
        features = WhisperLogMel()(audio, lengths)
        logits = tiny_en_model.model(input_features=features, decoder_input_ids=tokens).logits
    return features, tokens, logits


def test_step_by_step_logits_equal_transformers(tiny_en_model, teacher_forced) -> None:
    features, tokens, expected = teacher_forced
    encoder = WhisperCrossKV(tiny_en_model.model).eval()
    decoder = WhisperStepDecoder(tiny_en_model.model).eval()
    with torch.no_grad():
        cross = encoder(features)
        assert tuple(cross.shape) == (2, 4, 2, 6, 1500, 64)
        past = torch.zeros(2, 4, 2, 6, 0, 64)
        logits, past = decoder(tokens[:, :2], past, cross)  # the prompt, from an empty cache
        errors = [float((logits - expected[:, 1]).abs().max())]
        for step in range(2, tokens.shape[1]):
            logits, past = decoder(tokens[:, step : step + 1], past, cross)
            errors.append(float((logits - expected[:, step]).abs().max()))
        assert past.shape[4] == tokens.shape[1]
        # The whole sequence in one call, as a cache-free decoder would see it.
        whole, _ = decoder(tokens, torch.zeros(2, 4, 2, 6, 0, 64), cross)
    print(f"largest logit error per step: {max(errors):.2e}")
    assert max(errors) < TOLERANCE
    assert float((whole - expected[:, -1]).abs().max()) < TOLERANCE
    assert int(logits.argmax(-1)[0]) == int(expected[0, -1].argmax())


def test_exported_decoder_runs_from_an_empty_cache(
    tiny_en: Path, tiny_en_model, teacher_forced, tmp_path: Path
) -> None:
    component, settings = WhisperDecoder(), WhisperSourceSettings(path=str(tiny_en))
    signature = component.signature(settings)
    exporter = OnnxExporter()
    artifact = tmp_path / "model.onnx"
    module = component.make_module(settings, 0)
    example = component.example_inputs(settings, 2, 1.0, 0)
    exporter.export(module, example, signature.inputs, signature.outputs, "fp32", artifact)
    assert artifact.stat().st_size < 150e6  # the tied output matrix is stored once
    run = exporter.load(artifact, signature.inputs)
    features, tokens, expected = teacher_forced
    with torch.no_grad():
        cross = WhisperCrossKV(tiny_en_model.model).eval()(features).numpy()
    past = np.zeros((2, 4, 2, 6, 0, 64), np.float32)
    logits, past = run([tokens[:, :2].numpy(), past, cross])
    assert np.abs(logits - expected[:, 1].numpy()).max() < TOLERANCE
    for step in range(2, tokens.shape[1]):
        logits, past = run([tokens[:, step : step + 1].numpy(), past, cross])
        assert np.abs(logits - expected[:, step].numpy()).max() < TOLERANCE
    assert past.shape == (2, 4, 2, 6, tokens.shape[1], 64)
