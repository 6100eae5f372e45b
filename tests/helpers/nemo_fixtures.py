"""The NeMo-made .nemo fixtures, NeMo's reference outputs for them, and their repositories.

tests/fixtures/nemo/make_fixtures.py made each NAME.nemo with NeMo 3.0 and wrote what NeMo
computes for two LibriVox utterances alone (single_0, single_1) and three in one zero-padded
batch (batch): features, feature lengths, log-probabilities, encoded lengths (NAME.reference.npz)
and greedy transcripts (NAME.reference.json).

conftest.py registers the fixtures for every test module.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helpers.asr_fixtures import LIBRIVOX, compose_config, librivox_language_model
from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.core.build_plan import BuildPlan
from modelrepo_gen.serve.server import TritonServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nemo"
TAGS = ("single_0", "single_1", "batch")
BEAM_BUILD = "asr_nemo_citrinet_like_beam"  # also in nemo_builds: decoder=ctc_beam with an LM
TOLERANCE = 1e-4  # relative: max |ours - NeMo| / max(1, max |NeMo|), valid frames only


@dataclass(frozen=True)
class NemoFixture:
    name: str  # quartznet_like | jasper_like | citrinet_like
    backend: str  # the format its test repository exports

    @property
    def nemo(self) -> Path:
        return FIXTURES / f"{self.name}.nemo"

    @property
    def ensemble(self) -> str:
        return f"asr_nemo_{self.name}"

    def overrides(self) -> list[str]:
        return [
            "pipeline=asr_nemo",
            f"model.checkpoint={self.nemo}",
            f"pipeline.name={self.ensemble}",
            f"backend={self.backend}",
        ]


NEMO_FIXTURES = {
    f.name: f
    for f in (
        NemoFixture("quartznet_like", "onnx"),
        NemoFixture("jasper_like", "onnx"),
        NemoFixture("citrinet_like", "torchscript"),
    )
}


@dataclass(frozen=True)
class Reference:
    """NeMo's outputs for one input set (one utterance, or a padded batch)."""

    audio: np.ndarray  # [B, T] zero-padded
    num_samples: np.ndarray  # [B] int32
    features: np.ndarray  # [B, n_mels, F] as NeMo gives them (pad_to included)
    feature_lengths: np.ndarray
    logprobs: np.ndarray  # [B, T', classes]
    encoded_lengths: np.ndarray
    transcripts: list[str]


def read_references(name: str) -> dict[str, Reference]:
    arrays = np.load(FIXTURES / f"{name}.reference.npz")
    meta = json.loads((FIXTURES / f"{name}.reference.json").read_text())
    single = sorted(meta["single"])
    groups = {
        "single_0": [single[0]],
        "single_1": [single[1]],
        "batch": meta["batch"]["utterances"],
    }
    references = {}
    for tag, utterances in groups.items():
        audios = [load_audio(LIBRIVOX / f"{u}.wav") for u in utterances]
        width = max(a.size for a in audios)
        texts = meta["batch"]["transcripts"] if tag == "batch" else [meta["single"][utterances[0]]]
        references[tag] = Reference(
            audio=np.stack([np.pad(a, (0, width - a.size)) for a in audios]),
            num_samples=arrays[f"{tag}_num_samples"],
            features=arrays[f"{tag}_features"],
            feature_lengths=arrays[f"{tag}_feature_lengths"],
            logprobs=arrays[f"{tag}_logprobs"],
            encoded_lengths=arrays[f"{tag}_encoded_lengths"],
            transcripts=texts,
        )
        assert references[tag].num_samples.tolist() == [a.size for a in audios]
    return references


def relative_error(reference: np.ndarray, ours: np.ndarray, lengths: np.ndarray) -> float:
    """Worst relative error of [B, T, ...] arrays over each item's first `lengths` frames."""
    worst = 0.0
    for ref, out, n in zip(reference, ours, lengths.reshape(-1)):
        ref, out = ref[: int(n)], out[: int(n)]
        assert ref.shape == out.shape
        diff = float(np.max(np.abs(ref.astype(np.float64) - out), initial=0.0))
        worst = max(worst, diff / max(1.0, float(np.max(np.abs(ref), initial=0.0))))
    return worst


@pytest.fixture(scope="session")
def nemo_references() -> dict[str, dict[str, Reference]]:
    if not (LIBRIVOX / "transcription").is_file():
        pytest.skip(f"no LibriVox speech under {LIBRIVOX} (make speech installs it)")
    return {name: read_references(name) for name in NEMO_FIXTURES}


@pytest.fixture(scope="session")
def nemo_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, BuildPlan]]:
    """Each fixture built as a repository: name -> (folder, its build plan)."""
    from modelrepo_gen.assembly.run import build_repository

    root = tmp_path_factory.mktemp("nemo_builds")
    builds = {}
    for name, fixture in NEMO_FIXTURES.items():
        report = build_repository(compose_config(fixture.overrides()), root / name)
        builds[name] = (root / name, report.plan)
    # Citrinet's SentencePiece tokens searched with beams and a word bigram model
    language_model = librivox_language_model(root / "librivox.arpa")
    citrinet = [o for o in NEMO_FIXTURES["citrinet_like"].overrides() if "pipeline.name" not in o]
    beam = [*citrinet, f"pipeline.name={BEAM_BUILD}", "decoder=ctc_beam"]
    beam.append(f"decoder.lm_path={language_model}")
    report = build_repository(compose_config(beam), root / BEAM_BUILD)
    builds[BEAM_BUILD] = (root / BEAM_BUILD, report.plan)
    return builds


@pytest.fixture(scope="session")
def nemo_server(
    nemo_builds: dict[str, tuple[Path, BuildPlan]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    """One server for the three repositories (their ensembles are named apart)."""
    combined = tmp_path_factory.mktemp("nemo_combined") / "repo"
    combined.mkdir()
    for repository, _ in nemo_builds.values():
        for folder in repository.iterdir():
            if folder.is_dir():
                shutil.copytree(folder, combined / folder.name)
    with TritonServer(combined, http_port=0, grpc_port=0, metrics_port=0) as triton:
        yield triton
