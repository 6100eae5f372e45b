"""A Whisper of 128 mel bins (the front end of large-v3 and large-v3-turbo), served on both
runtimes: the features model reads as many bins as the model, and the answers are the
in-process references' on real speech.

No such checkpoint installs offline: the model is tiny.en's shape with 128 mel bins, two
layers and random weights (its words are nonsense, the same nonsense in every runtime). These
builds decode greedily without the fallback (random weights are unsure of every word), as the
references do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.ctranslate2_whisper_reference import CTranslate2WhisperReference
from helpers.project import compose_config

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.clients.whisper_reference import WhisperReference
from modelrepo_gen.loaders.ctranslate2_conversion import converted_folder
from modelrepo_gen.loaders.whisper import load_whisper
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import transcribe_arrays

pytestmark = pytest.mark.server

# Greedy, without the fallback, as the references decode.
GREEDY = ["model.beam_size=1", "model.temperatures=[0.0]", "model.no_speech_threshold=null"]


@pytest.fixture(scope="module")
def wide_model(tiny_en: Path, tiny_en_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face Whisper folder reading 128 mel bins, with tiny.en's tokenizer."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(**{**tiny_en_model.model.config.to_dict(), "num_mel_bins": 128})
    config.encoder_layers = config.decoder_layers = 2
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("large_v3_like")
    WhisperForConditionalGeneration(config).save_pretrained(folder)
    shutil.copy(tiny_en / "tokenizer.json", folder)
    return folder


def served_texts(repository: Path, clips: list) -> list[str]:
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        return transcribe_arrays(clips, url=triton.http_url)


def build(folder: Path, output: Path, runtime: str) -> Path:
    overrides = ["pipeline=asr_whisper", f"whisper_runtime={runtime}", f"model.path={folder}"]
    build_repository(compose_config([*overrides, *GREEDY]), output)
    return output


def test_onnxruntime_serves_it_as_the_in_process_reference(wide_model, librivox, tmp_path):
    repository = build(wide_model, tmp_path / "repo", "onnxruntime")
    config = (repository / "asr_whisper_features" / "config.pbtxt").read_text()
    assert "dims: [ 128, 3000 ]" in config
    clips = [librivox[1][1]]
    expected = WhisperReference(wide_model).transcribe_batch(clips)
    assert all(expected)  # nonsense, but words: the comparison is not of two empty answers
    assert served_texts(repository, clips) == expected


def test_ctranslate2_serves_its_conversion_as_ctranslate2_itself(wide_model, librivox, tmp_path):
    repository = build(wide_model, tmp_path / "repo", "ctranslate2")
    clips = [librivox[1][1]]
    engine = CTranslate2WhisperReference(
        converted_folder(wide_model), load_whisper(wide_model).facts
    )
    assert engine.whisper.n_mels == 128
    expected = [engine.greedy_text(clip) for clip in clips]
    assert all(expected)
    assert served_texts(repository, clips) == expected
