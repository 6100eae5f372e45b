"""The real all-MiniLM-L6-v2, served: a team pipeline (its own --config-dir) whose ensemble takes
token ids and serves the `bert` network's hidden states. Real sentences, tokenized with the
folder's tokenizer.json and sent concurrently at different lengths, come back equal to
transformers' own BertModel output, each at its own length; a malformed request is refused
by name and the server keeps serving."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from helpers.bert_fixtures import compose_team
from helpers.served_requests import batch_counts, connect, infer
from tokenizers import Tokenizer

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.components.bert_source import BertSourceSettings, model_folder, tokenizer_json
from modelrepo_gen.serve.server import TritonServer

pytestmark = pytest.mark.server

PIPELINE = """\
# @package _global_
# Sentence features: token ids in, all-MiniLM-L6-v2's last hidden states out.
defaults:
  - /model: minilm_l6_v2
  - _self_

pipeline:
  name: minilm_features
  models:
    encoder:
      component: bert
      path: ${model.path}
      head: feature_extraction
      max_seq_length: ${model.max_seq_length}
  serving:  # long enough for concurrent requests of different lengths to share a batch
    encoder: {dynamic_batching: {max_queue_delay_us: 50000}}
  ensemble:
    inputs: [INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS]
    outputs: [HIDDEN_STATES]
    steps:
      - model: encoder
        inputs: [INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS]
        outputs: [HIDDEN_STATES]
"""
SENTENCES = [
    "Hello.",
    "The river flows through Paris.",
    "Triton serves many models from one repository.",
    "A quick brown fox jumps over the lazy dog near the bank of the river.",
    "What time is it?",
    "Speech recognition turns audio into text, and language models read that text.",
    "Sentence embeddings place similar meanings close together in a vector space.",
    "Yes",
]
MODEL = "minilm_features"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    conf = tmp_path_factory.mktemp("team") / "conf"
    (conf / "pipeline").mkdir(parents=True)
    (conf / "pipeline" / f"{MODEL}.yaml").write_text(PIPELINE)
    repo = tmp_path_factory.mktemp("served") / "repo"
    # What `--config-dir CONF pipeline=minilm_features` builds (the CLI's own path is tested
    # elsewhere; in process saves a second import of torch and transformers).
    report = build_repository(compose_team(conf, [f"pipeline={MODEL}"]), repo)
    print(f"build: {report.seconds}")
    return repo


@pytest.fixture(scope="module")
def expected() -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Each sentence's token ids (the folder's tokenizer.json) and transformers' hidden states."""
    settings = BertSourceSettings()
    tokenizer = Tokenizer.from_file(str(tokenizer_json(settings)))
    model = transformers.BertModel.from_pretrained(str(model_folder(settings))).eval()
    pairs = []
    for sentence in SENTENCES:
        encoding = tokenizer.encode(sentence)
        arrays = {
            "INPUT_IDS": np.array([encoding.ids], dtype=np.int64),
            "ATTENTION_MASK": np.array([encoding.attention_mask], dtype=np.int64),
            "TOKEN_TYPE_IDS": np.array([encoding.type_ids], dtype=np.int64),
        }
        with torch.no_grad():
            hidden = model(**{k.lower(): torch.from_numpy(v) for k, v in arrays.items()})
        pairs.append((arrays, hidden.last_hidden_state.numpy()))
    return pairs


def _hidden_states(server: TritonServer, arrays: dict[str, np.ndarray]) -> np.ndarray:
    module, client = connect(server, "http")  # one client per thread
    try:
        tensors = {name: (array, "INT64") for name, array in arrays.items()}
        return infer(module, client, MODEL, tensors, ["HIDDEN_STATES"])["HIDDEN_STATES"]
    finally:
        client.close()


def test_served_minilm_equals_transformers(repository: Path, expected: list) -> None:
    assert len({arrays["INPUT_IDS"].shape[1] for arrays, _ in expected}) == len(SENTENCES)
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        before = batch_counts(server, f"{MODEL}_encoder")
        with ThreadPoolExecutor(len(SENTENCES)) as pool:
            served = list(pool.map(lambda pair: _hidden_states(server, pair[0]), expected))
        # Triton records an execution just after its answers leave: wait for the last ones.
        deadline = time.monotonic() + 10
        while True:
            after = batch_counts(server, f"{MODEL}_encoder")
            counted = sum(size * (n - before.get(size, 0)) for size, n in after.items())
            if counted >= len(SENTENCES) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        errors = []
        for (_, reference), states in zip(expected, served, strict=True):
            assert states.shape == reference.shape  # its own length, whatever it was batched with
            errors.append(float(np.abs(states - reference).max()))
        print(f"served HIDDEN_STATES vs transformers: max abs error {max(errors):.2e}")
        assert max(errors) < 1e-4
        executions = {size: after[size] - before.get(size, 0) for size in after}
        assert sum(size * n for size, n in executions.items()) == len(SENTENCES)
        print(f"executions per batch size: {executions}")

        module, client = connect(server, "http")
        arrays = dict(expected[1][0])
        arrays["INPUT_IDS"] = arrays["INPUT_IDS"] + 40000  # beyond the 30522-token vocabulary
        tensors = {name: (array, "INT64") for name, array in arrays.items()}
        with pytest.raises(Exception, match="INPUT_IDS must hold values from 0 to 30521"):
            infer(module, client, MODEL, tensors, ["HIDDEN_STATES"])
        again = _hidden_states(server, expected[0][0])
        assert np.abs(again - expected[0][1]).max() < 1e-4
