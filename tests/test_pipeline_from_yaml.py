"""A new pipeline made of existing components is one YAML file: built and served for real.

The pipeline below lives in a team's own config folder (--config-dir), not in conf/: QuartzNet
on 80 mel bands with a digits vocabulary. Its acoustic model gets a checkpoint with a large
random classifier, so the served greedy transcripts change from frame to frame and must equal
the same repository's run in this process (InProcessRepository) on real speech; the build has
checked each network against its PyTorch module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.cli_runs import run_cli
from helpers.project import compose_config
from helpers.served_requests import connect, infer, one_utterance

from modelrepo_gen.assembly.render import parse_model_config
from modelrepo_gen.clients.in_process_repository import InProcessRepository
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.serve.server import TritonServer

pytestmark = pytest.mark.server

DIGITS = [" ", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
PIPELINE = """\
# @package _global_
# Digits on 80 mel bands: the shipped components, wired here.
defaults:
  - /featurizer: nemo_mel80
  - /model: quartznet_mini
  - /decoder: ctc_greedy
  - _self_

vocabulary:
  symbols: {symbols}

pipeline:
  name: digits80
  sample_rate: 16000
  max_audio_seconds: 20.0
  models:
    features: ${{featurizer}}
    encoder: ${{model}}
    greedy: ${{decoder}}
  ensemble:
    inputs: [AUDIO_SIGNAL, NUM_SAMPLES]
    outputs: [TEXT]
    steps:
      - model: features
        inputs: [AUDIO_SIGNAL, NUM_SAMPLES]
        outputs: {{FEATURES: mel, FEATURE_LENGTHS: mel_lengths}}
      - model: encoder
        inputs: {{FEATURES: mel, FEATURE_LENGTHS: mel_lengths}}
        outputs: [LOGPROBS, ENCODED_LENGTHS]
      - model: greedy
        inputs: [LOGPROBS, ENCODED_LENGTHS]
        outputs: {{TRANSCRIPT: TEXT}}
    parameters:
      sample_rate: ${{featurizer.sample_rate}}
"""


@pytest.fixture(scope="module")
def team_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    conf = tmp_path_factory.mktemp("team") / "conf"
    (conf / "pipeline").mkdir(parents=True)
    (conf / "pipeline" / "digits80.yaml").write_text(PIPELINE.format(symbols=json.dumps(DIGITS)))
    return conf


@pytest.fixture(scope="module")
def repository(team_conf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits80")
    cfg = compose_config(["pipeline=digits80"], team_conf=team_conf)
    (encoder,) = [u for u in resolve(cfg).units if u.role == "encoder"]
    state = encoder.export.make_module().state_dict()
    generator = torch.Generator().manual_seed(3)
    state["classifier.weight"] = 3.0 * torch.randn(
        state["classifier.weight"].shape, generator=generator
    )
    torch.save(state, folder / "encoder.pt")
    repo = folder / "repo"
    result = run_cli(
        "--config-dir",
        str(team_conf),
        "pipeline=digits80",
        f"model.checkpoint={folder / 'encoder.pt'}",
        f"output_dir={repo}",
    )
    assert result.returncode == 0, result.stderr
    return repo


def test_repository_has_the_declared_models_and_tensors(repository: Path) -> None:
    names = sorted(p.name for p in repository.iterdir() if p.is_dir())
    assert names == ["digits80", "digits80_encoder", "digits80_features", "digits80_greedy"]
    configs = {
        name: parse_model_config((repository / name / "config.pbtxt").read_text(), name)
        for name in names
    }
    assert list(configs["digits80_features"].output[0].dims) == [80, -1]
    assert list(configs["digits80_encoder"].output[0].dims) == [-1, len(DIGITS) + 1]
    assert [t.name for t in configs["digits80"].output] == ["TEXT"]
    readme = (repository / "README.md").read_text()
    assert '-->|"mel<br/>TYPE_FP32 [80, -1]"| model_digits80_encoder' in readme


def test_served_transcripts_equal_in_process(repository: Path, librivox: list) -> None:
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        module, client = connect(server, "http")
        served = []
        for _, audio, _ in librivox[:3]:
            tensors = {
                "AUDIO_SIGNAL": (one_utterance(audio)[0], "FP32"),
                "NUM_SAMPLES": (one_utterance(audio)[1], "INT32"),
            }
            (text,) = infer(module, client, "digits80", tensors, ["TEXT"])["TEXT"].reshape(-1)
            served.append(text.decode())
    expected = []
    with InProcessRepository(repository) as models:
        for _, audio, _ in librivox[:3]:
            signal, length = one_utterance(audio)
            inputs = {"AUDIO_SIGNAL": signal, "NUM_SAMPLES": length}
            (text,) = models.run("digits80", inputs, ["TEXT"])["TEXT"].reshape(-1)
            expected.append(text.decode())
    assert served == expected
    assert all(set(text) <= set(DIGITS) for text in served) and any(served)
