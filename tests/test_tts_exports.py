"""The speech-synthesis networks exported by a real build and checked against PyTorch at several
lengths and batch sizes; bad checkpoints and settings stop the build with one line."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from helpers.cli_runs import run_many
from helpers.project import ROOT, compose_config
from helpers.tts_fixtures import VOICES_PARITY_SHAPES, VoicesBuild, module_of, write_voices_conf

from modelrepo_gen.assembly.render import parse_model_config
from modelrepo_gen.plan.resolver import resolve

NETWORKS = {"tacotron2": "torchscript", "waveglow": "onnx", "fastpitch": "onnx", "hifigan": "onnx"}
OUTPUTS = {
    "tacotron2": ["MEL", "MEL_LENGTH", "STOPPED"],
    "waveglow": ["AUDIO", "AUDIO_LENGTH"],
    "fastpitch": ["MEL", "MEL_LENGTH"],
    "hifigan": ["AUDIO", "AUDIO_LENGTH"],
}


def test_every_network_matches_pytorch_at_every_shape(voices_build: VoicesBuild) -> None:
    repository = voices_build.repository
    manifest = json.loads((repository / "manifest.json").read_text())
    for role, fmt in NETWORKS.items():
        entry = manifest["models"][f"voices_{role}"]
        assert entry["format"] == fmt and entry["precision"] == "fp32"
        checked = {(p["batch"], p["seconds"], p["output"]) for p in entry["parity"]}
        assert checked == {(b, s, o) for b, s in VOICES_PARITY_SHAPES for o in OUTPUTS[role]}
        assert all(p["relative_error"] <= entry["tolerance"] for p in entry["parity"]), entry
    assert manifest["weights"]["voices_tacotron2"]["source"] == "checkpoint"
    assert manifest["weights"]["voices_hifigan"] == {"source": "random", "seed": 0}


def test_exports_are_what_the_tensor_interface_says(voices_build: VoicesBuild) -> None:
    repository = voices_build.repository
    note = "'voices_tacotron2' is exported with torchscript whatever backend=onnx says"
    assert note in voices_build.stdout
    scripted = torch.jit.load(str(repository / "voices_tacotron2" / "1" / "model.pt"))
    assert scripted.decoder.max_decoder_steps == 40
    waveglow = onnx.load(str(repository / "voices_waveglow" / "1" / "model.onnx"))
    assert not {n.op_type for n in waveglow.graph.node} & {"Inverse", "Det"}
    config = parse_model_config(
        (repository / "voices_waveglow" / "config.pbtxt").read_text(), "voices_waveglow"
    )
    assert [(t.name, t.allow_ragged_batch) for t in config.input] == [
        ("MEL", True),
        ("MEL_LENGTH", False),
        ("NOISE", True),
    ]
    checks = json.loads(config.parameters["input_checks"].string_value)
    assert checks["max_length"] == {"MEL": [40, 2]}  # tacotron2_mini's max_decoder_steps


def _state(model: str, **changes) -> dict:
    return module_of(model, **changes).state_dict()


def _save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def test_bad_checkpoints_and_settings_are_one_clear_line(tmp_path: Path) -> None:
    conf = write_voices_conf(tmp_path)
    waveglow = _state("waveglow_mini")
    del waveglow["WN.0.start.weight"]
    rows = [
        (
            "pipeline.models.tacotron2.checkpoint="
            + str(_save(_state("tacotron2_mini", attention_dim=8), tmp_path / "t2.pt")),
            "does not fit model 'tacotron2_mini': mis-shaped: decoder.attention.location_layer",
        ),
        (
            "pipeline.models.waveglow.checkpoint=" + str(_save(waveglow, tmp_path / "wg.pt")),
            "does not fit model 'waveglow_mini': missing: WN.0.start.weight",
        ),
        (
            "pipeline.models.fastpitch.checkpoint=" + str(tmp_path / "absent.pt"),
            "pipeline.models.fastpitch.checkpoint: no such file",
        ),
        (
            "pipeline.models.hifigan.upsample_rates=[8,8,2]",
            "pipeline.models.hifigan.upsample_rates [8, 8, 2] multiply to 128, but hop_length "
            "is 256",
        ),
        (
            "pipeline.models.waveglow.n_group=6",
            "pipeline.models.waveglow.n_group must be >= 2 and divide hop_length (256), got 6",
        ),
        (
            "pipeline.models.tacotron2.gate_threshold=1.5",
            "pipeline.models.tacotron2.gate_threshold must be > 0 and < 1",
        ),
    ]
    outs = [tmp_path / f"out{i}" / "repo" for i in range(len(rows))]
    runs = [
        ["--config-dir", str(conf), "pipeline=voices", override, f"output_dir={out}"]
        for (override, _), out in zip(rows, outs, strict=True)
    ]
    for (_, expected), out, result in zip(rows, outs, run_many(runs, ROOT), strict=True):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
        assert not out.parent.exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["precision=fp16"],
            {
                "tacotron2": ("torchscript", "fp32"),
                "waveglow": ("onnx", "fp16"),
                "fastpitch": ("onnx", "fp32"),
                "hifigan": ("onnx", "fp16"),
            },
        ),
        (
            ["backend=torchscript"],
            {
                "tacotron2": ("torchscript", "fp32"),
                "waveglow": ("onnx", "fp32"),
                "fastpitch": ("onnx", "fp32"),
                "hifigan": ("onnx", "fp32"),
            },
        ),
    ],
    ids=["fp16", "torchscript"],
)
def test_each_network_is_exported_in_a_format_and_precision_it_works_in(
    tmp_path: Path, overrides: list[str], expected: dict
) -> None:
    conf = write_voices_conf(tmp_path)
    cfg = compose_config(["pipeline=voices", *overrides], team_conf=conf)
    plan = resolve(cfg)
    networks = [u for u in plan.units if u.export]  # the model running the steps exports none
    assert {u.role: (u.export.exporter, u.export.precision) for u in networks} == expected
    backend = cfg.backend
    moved = [role for role, (fmt, _) in expected.items() if fmt != backend]
    assert [n for n in plan.notes if n.startswith("note:")] == [
        f"note: model 'voices_{role}' is exported with {expected[role][0]} whatever "
        f"backend={backend} says: its network exports only to "
        + ("torchscript" if role == "tacotron2" else "onnx, tensorrt")
        for role in moved
    ]
