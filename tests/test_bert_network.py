"""The `bert` network of every head, exported to ONNX, TorchScript and fp16 ONNX from a tiny
Hugging Face folder: checked against PyTorch at several batch sizes and token lengths, and
padding (0 ids, 0 mask) never changes a valid position's output, in PyTorch or exported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.bert_fixtures import (
    HEAD_OUTPUTS,
    VOCAB,
    compose_team,
    mixed_rows,
    save_hf_bert,
    write_network_pipelines,
)

from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.exporters import EXPORTERS
from modelrepo_gen.plan.resolver import resolve

VARIANTS = {  # overrides -> (exporter, artifact, largest relative error allowed)
    "onnx": (["backend=onnx"], "onnx", 1e-4),
    "torchscript": (["backend=torchscript"], "torchscript", 1e-4),
    "onnx_fp16": (["precision=fp16"], "onnx", 2e-2),
}
LENGTHS = [23, 7, 15, 3]  # one batch of mixed lengths


@pytest.fixture(scope="module")
def team_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_network_pipelines(tmp_path_factory.mktemp("team") / "conf")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_bert")
    save_hf_bert(folder)
    return folder


def _valid(output: np.ndarray, name: str, length: int) -> np.ndarray:
    per_token = name not in ("LOGITS", "INTENT_LOGITS")
    return output[:, :length] if per_token else output


def test_pytorch_module_ignores_padding(team_conf: Path, encoder: Path) -> None:
    for head, names in HEAD_OUTPUTS.items():
        plan = resolve(compose_team(team_conf, [f"pipeline=bert_{head}", f"model.path={encoder}"]))
        module = plan.units[0].export.make_module()
        ids, mask, types = (torch.from_numpy(a) for a in mixed_rows(LENGTHS, len(VOCAB)))
        with torch.no_grad():
            together = module(ids, mask, types)
            for row, n in enumerate(LENGTHS):
                alone = module(
                    ids[row : row + 1, :n], mask[row : row + 1, :n], types[row : row + 1, :n]
                )
                for name, whole, single in zip(names, together, alone, strict=True):
                    part = _valid(whole[row : row + 1].numpy(), name, n)
                    assert np.abs(part - single.numpy()).max() < 1e-5, (head, name, row)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("head", sorted(HEAD_OUTPUTS))
def test_export_matches_pytorch_and_ignores_padding(
    head: str, variant: str, team_conf: Path, encoder: Path, tmp_path: Path
) -> None:
    overrides, exporter, tolerance = VARIANTS[variant]
    cfg = compose_team(team_conf, [f"pipeline=bert_{head}", f"model.path={encoder}", *overrides])
    report = build_repository(cfg, tmp_path / "repo")
    name = f"bert_{head}_network"
    entry = json.loads((tmp_path / "repo" / "manifest.json").read_text())["models"][name]
    checked = {(p["batch"], p["tokens"], p["output"]) for p in entry["parity"]}
    assert checked == {(b, t, o) for b, t in [(1, 9), (3, 31)] for o in HEAD_OUTPUTS[head]}
    assert all(p["relative_error"] <= tolerance for p in entry["parity"])

    (unit,) = report.plan.units
    artifact = tmp_path / "repo" / name / "1" / unit.artifact
    run = EXPORTERS.get(exporter).load(artifact, unit.export.inputs)
    arrays = mixed_rows(LENGTHS, len(VOCAB), seed=1)
    together = run(arrays)
    for row, n in enumerate(LENGTHS):
        alone = run([a[row : row + 1, :n] for a in arrays])
        for output, whole, single in zip(HEAD_OUTPUTS[head], together, alone, strict=True):
            part = _valid(whole[row : row + 1], output, n)
            assert part.shape == single.shape
            scale = max(1.0, float(np.abs(single).max()))
            assert np.abs(part - single).max() / scale < tolerance, (output, row)


def test_fp16_torchscript_trace_keeps_integer_inputs(
    team_conf: Path, encoder: Path, tmp_path: Path
) -> None:
    """The fp16 TorchScript a GPU build makes (the CPU build refuses fp16 TorchScript for the
    convolutional networks' sake): weights in fp16, ids left as integers, fp32 out."""
    plan = resolve(compose_team(team_conf, ["pipeline=bert_punctuation", f"model.path={encoder}"]))
    export = plan.units[0].export
    exporter = EXPORTERS.get("torchscript")
    artifact = tmp_path / "model.pt"
    example = export.make_inputs(1, 1.0, 0, 9)
    exporter.export(export.make_module(), example, export.inputs, export.outputs, "fp16", artifact)
    arrays = mixed_rows(LENGTHS, len(VOCAB), seed=2)
    served = exporter.load(artifact, export.inputs)(arrays)
    with torch.no_grad():
        reference = export.make_module()(*(torch.from_numpy(a) for a in arrays))
    for out, ref in zip(served, reference, strict=True):
        assert out.dtype == np.float32
        scale = max(1.0, float(ref.abs().max()))
        assert np.abs(out - ref.numpy()).max() / scale < VARIANTS["onnx_fp16"][2]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torchscript_trace_holds_no_device_of_the_machine_that_traced_it(
    precision: str, team_conf: Path, encoder: Path, tmp_path: Path
) -> None:
    """A trace records the device of every tensor the module makes; the network must make
    none (its attention bias comes from the mask), or one traced on a CPU fails on a GPU
    ("Expected all tensors to be on the same device", seen on an H200)."""
    plan = resolve(
        compose_team(team_conf, ["pipeline=bert_question_answering", f"model.path={encoder}"])
    )
    export = plan.units[0].export
    artifact = tmp_path / "model.pt"
    example = export.make_inputs(2, 1.0, 0, 9)
    EXPORTERS.get("torchscript").export(
        export.make_module(), example, export.inputs, export.outputs, precision, artifact
    )
    graph = str(torch.jit.load(str(artifact)).inlined_graph)
    devices = [line.strip() for line in graph.splitlines() if 'value="cpu"' in line]
    assert devices == []
