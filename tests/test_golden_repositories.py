"""The ASR pipelines build exactly what they built before their graphs became YAML.

tests/golden/ holds, for five variants, every config.pbtxt text and the SHA-256 of every
exported ONNX model and python-backend file, recorded from the Python plan builders the YAML
graphs replaced; the python-backend files' hashes were recorded again when their code moved
onto one shared kernel (model_kernel.py), and when the network runner stopped copying a lone
request's arrays; the configs were recorded again when the default dynamic batching stopped
waiting for more requests (max_queue_delay_microseconds 1000 -> 0), networks unchanged.
(TorchScript archives embed debug paths and a per-process serialization id, so only their
configs are compared.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers.project import compose_config

from modelrepo_gen.assembly.run import build_repository

GOLDEN = Path(__file__).with_name("golden")


@pytest.mark.parametrize("variant", sorted(p.stem for p in GOLDEN.glob("*.json")))
def test_repository_equals_the_golden_record(variant: str, tmp_path) -> None:
    record = json.loads((GOLDEN / f"{variant}.json").read_text())
    repo = tmp_path / variant
    build_repository(compose_config(record["overrides"]), repo)
    configs = {
        p.relative_to(repo).as_posix(): p.read_text() for p in sorted(repo.rglob("config.pbtxt"))
    }
    assert configs == record["configs"]
    for relative, digest in record["artifacts"].items():
        assert hashlib.sha256((repo / relative).read_bytes()).hexdigest() == digest, relative
