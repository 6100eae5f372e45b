"""Real CTC ASR repositories for tests that serve them: built once per session.

The acoustic models get a checkpoint whose classifier has large random weights (N(0, 3), zero
bias) so the greedy transcripts change from frame to frame ('ulululwuwu...'): served and PyTorch
pipelines that disagree anywhere then give different text. Every build is named after its own
pipeline (``pipeline.name``), so all of them fit in one repository served by one server.

conftest.py registers the fixtures for every test module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers.language_models import write_bigram_arpa
from helpers.project import add_models, compose_config
from modelrepo_gen.clients.asr_client import infer_transcript
from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.clients.in_process_repository import InProcessRepository
from modelrepo_gen.config.schema import register_schema
from modelrepo_gen.core.build_plan import BuildPlan
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.repository.manifest import MANIFEST
from modelrepo_gen.serve.server import TritonServer

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
NUM_CLASSES = 29  # 28 symbols + the CTC blank
SHORT_MAX_SECONDS = 2.0
SAMPLE_RATE = 16000

register_schema()
Transcriber = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class AsrBuild:
    """One repository to build: ``name`` is its ensemble (pipeline.name)."""

    name: str
    pipeline: str  # asr_quartznet | asr_jasper
    model: str  # quartznet_mini | jasper_mini
    backend: str  # onnx | torchscript
    overrides: tuple[str, ...] = ()

    def config_overrides(self, checkpoint: Path, language_model: Path | None = None) -> list[str]:
        """The build's overrides; `{lm}` in one stands for the test language model's path."""
        return [
            f"pipeline={self.pipeline}",
            f"model={self.model}",
            f"backend={self.backend}",
            f"model.checkpoint={checkpoint}",
            f"pipeline.name={self.name}",
            *(override.replace("{lm}", str(language_model or "")) for override in self.overrides),
        ]


# The ONNX x TorchScript x Jasper x QuartzNet matrix, plus variants for single aspects.
BUILDS = {
    build.name: build
    for build in (
        AsrBuild("asr_quartznet", "asr_quartznet", "quartznet_mini", "onnx"),
        AsrBuild("asr_quartznet_ts", "asr_quartznet", "quartznet_mini", "torchscript"),
        AsrBuild("asr_jasper", "asr_jasper", "jasper_mini", "torchscript"),
        AsrBuild("asr_jasper_onnx", "asr_jasper", "jasper_mini", "onnx"),
        AsrBuild(
            "asr_quartznet_fp16", "asr_quartznet", "quartznet_mini", "onnx", ("precision=fp16",)
        ),
        AsrBuild(
            "asr_quartznet_nobatch",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            ("dynamic_batching=disabled",),
        ),
        AsrBuild(
            "asr_quartznet_short",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            (f"pipeline.max_audio_seconds={SHORT_MAX_SECONDS}",),
        ),
        AsrBuild(  # the CPU target's lowering: every step in one model (plan/merged_steps.py)
            "asr_quartznet_merged",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            ("target.merge_python_steps=true",),
        ),
        AsrBuild(  # beam search with a word bigram model of the LibriVox transcripts
            "asr_quartznet_beam",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            ("decoder=ctc_beam", "decoder.lm_path={lm}"),
        ),
        AsrBuild(  # plain beam search, one beam: greedy decoding
            "asr_quartznet_beam1",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            ("decoder=ctc_beam", "decoder.beam_size=1"),
        ),
        AsrBuild(  # streamed in chunks, with context beyond the receptive field (4.28 s)
            "asr_quartznet_stream",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            (
                "mode=streaming",
                "featurizer.normalize=none",
                "mode.left_context_seconds=4.5",
                "mode.right_context_seconds=4.5",
                "mode.max_streams=8",
                "mode.stream_timeout_seconds=5",
            ),
        ),
        AsrBuild(  # the same network offline
            "asr_quartznet_unnormalized",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            ("featurizer.normalize=none",),
        ),
        AsrBuild(
            "asr_quartznet_8k",
            "asr_quartznet",
            "quartznet_mini",
            "onnx",
            ("pipeline.sample_rate=8000",),
        ),
    )
}


# -- plain helpers -----------------------------------------------------------------------------
def write_fake_checkpoint(pipeline: str, model: str, path: Path, seed: int = 1) -> Path:
    """The seeded acoustic module's state dict with a N(0, 3) classifier and zero bias."""
    from modelrepo_gen.plan.resolver import resolve

    plan = resolve(compose_config([f"pipeline={pipeline}", f"model={model}"]))
    (acoustic,) = [unit for unit in plan.units if unit.role == "acoustic_model"]
    state = acoustic.export.make_module().state_dict()
    generator = torch.Generator().manual_seed(seed)
    weight = state["classifier.weight"]
    state["classifier.weight"] = 3.0 * torch.randn(weight.shape, generator=generator)
    state["classifier.bias"] = torch.zeros_like(state["classifier.bias"])
    torch.save(state, path)
    return path


def build_asr_repository(
    build: AsrBuild, checkpoint: Path, output_dir: Path, language_model: Path | None = None
) -> Path:
    from modelrepo_gen.assembly.run import build_repository

    build_repository(compose_config(build.config_overrides(checkpoint, language_model)), output_dir)
    return output_dir


def librivox_language_model(path: Path) -> Path:
    """A word bigram model (ARPA) of the LibriVox transcripts: the test language model."""
    return write_bigram_arpa([text for _, text in librivox_utterances()], path)


def librivox_utterances() -> list[tuple[Path, str]]:
    """(wav path, reference text) of the five LibriVox utterances, in file-name order."""
    transcription = LIBRIVOX / "transcription"
    if not transcription.is_file():
        pytest.skip(f"no LibriVox speech under {LIBRIVOX} (make speech installs it)")
    texts = {}
    for line in transcription.read_text().splitlines():
        if not line.strip():
            continue
        words, _, utterance_id = line.rpartition("(")
        text = words.replace("<s>", " ").replace("</s>", " ")
        texts[utterance_id.strip(" )")] = " ".join(text.split())
    utterances = [(LIBRIVOX / f"{uid}.wav", text) for uid, text in sorted(texts.items())]
    assert len(utterances) == 5 and all(path.is_file() for path, _ in utterances)
    return utterances


# -- session fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def librivox() -> list[tuple[Path, np.ndarray, str]]:
    """(path, 16 kHz float32 audio, reference text) of each LibriVox utterance."""
    return [(path, load_audio(path), text) for path, text in librivox_utterances()]


@pytest.fixture(scope="session")
def asr_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every build in BUILDS: ensemble name -> its own repository folder."""
    root = tmp_path_factory.mktemp("asr_builds")
    pairs = sorted({(build.pipeline, build.model) for build in BUILDS.values()})
    checkpoints = {
        (pipeline, model): write_fake_checkpoint(pipeline, model, root / f"{model}.pt")
        for pipeline, model in pairs
    }
    language_model = librivox_language_model(root / "librivox.arpa")
    return {
        name: build_asr_repository(
            build, checkpoints[build.pipeline, build.model], root / name, language_model
        )
        for name, build in BUILDS.items()
    }


@pytest.fixture(scope="session")
def asr_combined_repository(
    asr_builds: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One repository holding the models of every build (their names do not clash)."""
    combined = tmp_path_factory.mktemp("asr_combined") / "repo"
    for repository in asr_builds.values():
        add_models(repository, combined)
    return combined


@pytest.fixture(scope="session")
def server(asr_combined_repository: Path) -> Iterator[TritonServer]:
    with TritonServer(asr_combined_repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        yield triton


@pytest.fixture(scope="session")
def in_process(asr_builds: dict[str, Path]) -> Iterator[dict[str, Transcriber]]:
    """Each build run in this process by InProcessRepository (the same models, no server):
    build name -> audio -> transcript."""
    repositories = {name: InProcessRepository(path) for name, path in asr_builds.items()}
    yield {
        name: partial(infer_transcript, repository, "in_process", name)
        for name, repository in repositories.items()
    }
    for repository in repositories.values():
        repository.close()


def built_plan(repository: Path) -> BuildPlan:
    """The plan a repository was built from (its manifest's composed config, resolved)."""
    return resolve(OmegaConf.create(json.loads((repository / MANIFEST).read_text())["config"]))


def pytorch_networks(repository: Path) -> list[torch.nn.Module]:
    """The PyTorch modules of a repository's networks in step order, made as its build made
    them (same weights): what its exported networks are checked against."""
    plan = built_plan(repository)
    units = {unit.name: unit for unit in plan.units}
    chain = [units[step.model_name] for step in plan.ensemble.steps]
    return [unit.export.make_module() for unit in chain if unit.export]


@pytest.fixture(scope="session")
def clip(librivox: list) -> np.ndarray:
    """1.5 s of real speech: short enough for the 2 s repository."""
    return librivox[1][1][: int(1.5 * SAMPLE_RATE)]
