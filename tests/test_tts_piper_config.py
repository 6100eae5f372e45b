"""tts_piper's config: the voice's .onnx.json feeds the plan, overrides reach the served
settings, and a voice that is missing or is not a Piper voice stops the build with one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.cli_runs import run_cli
from helpers.project import compose_config
from onnx import TensorProto, helper

from modelrepo_gen.components.piper_voice_source import voice_file
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve


def plan_of(*overrides: str):
    return resolve(compose_config(["pipeline=tts_piper", *overrides]))


def test_the_voice_json_feeds_the_plan() -> None:
    facts = json.loads(voice_file(None).with_suffix(".onnx.json").read_text())
    plan = plan_of()
    units = {u.role: u for u in plan.units}
    assert list(units) == ["frontend", "voice", "synthesizer"]
    voice = units["voice"].parameters
    assert float(voice["noise_scale"]) == facts["inference"]["noise_scale"]
    assert float(voice["length_scale"]) == facts["inference"]["length_scale"]
    assert float(voice["noise_w"]) == facts["inference"]["noise_w"]
    assert plan.ensemble.parameters["sample_rate"] == str(facts["audio"]["sample_rate"])
    symbols = json.loads(units["frontend"].parameters["symbols"])
    assert symbols["espeak_voice"] == facts["espeak"]["voice"]
    assert units["synthesizer"].calls == {"voice": "tts_piper_voice"}
    assert units["synthesizer"].parameters["silence_samples"] == str(
        round(0.2 * facts["audio"]["sample_rate"])
    )


def test_overrides_reach_the_served_settings() -> None:
    units = {u.role: u for u in plan_of("model.noise_scale=0", "model.length_scale=1.5").units}
    assert units["voice"].parameters["noise_scale"] == "0.0"
    assert units["voice"].parameters["length_scale"] == "1.5"


def copy_voice(folder: Path, onnx_bytes: bytes | None = None) -> Path:
    """The installed voice's JSON beside `onnx_bytes` (default: the real ONNX)."""
    source = voice_file(None)
    target = folder / "voice.onnx"
    if onnx_bytes is None:
        try:  # a second name for the same 63 MB, where the file system allows it
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    else:
        target.write_bytes(onnx_bytes)
    shutil.copyfile(source.with_suffix(".onnx.json"), folder / "voice.onnx.json")
    return target


def not_a_voice() -> bytes:
    """A valid ONNX graph whose inputs are not a Piper voice's."""
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    opsets = [helper.make_opsetid("", 15)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


@pytest.mark.parametrize(
    ("onnx_bytes", "message"),
    [
        (b"not an onnx file", "does not load in onnxruntime"),
        (not_a_voice(), "not a Piper voice's inputs"),
    ],
    ids=["garbage", "another_graph"],
)
def test_a_file_that_is_no_piper_voice_is_named(
    tmp_path: Path, onnx_bytes: bytes, message: str
) -> None:
    path = copy_voice(tmp_path, onnx_bytes)
    with pytest.raises(UserError, match=message):
        plan_of(f"model.path={path}")


def test_a_voice_from_a_path(tmp_path: Path) -> None:
    path = copy_voice(tmp_path)
    facts = json.loads((tmp_path / "voice.onnx.json").read_text())
    facts["inference"]["noise_scale"] = 0.5
    (tmp_path / "voice.onnx.json").write_text(json.dumps(facts))
    units = {u.role: u for u in plan_of(f"model.path={path}").units}
    assert units["voice"].files["voice.onnx"] == path
    assert units["voice"].parameters["noise_scale"] == "0.5"  # read from that voice's JSON


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.noise_w=-0.1", "model.noise_w must be >= 0 and <= 2, got -0.1"),
        ("model.length_scale=1000", "model.length_scale must be >= 0.25 and <= 4, got 1000"),
        ("model.limits.length_scale=[0,4]",
         "model.limits.length_scale must be [low, high] with 0.01 <= low and low <= high"),
        ("model.max_symbols=2", "model.max_symbols must be >= 8, got 2"),
        ("pipeline.models.frontend.max_symbols=10",
         "pipeline.models.frontend.max_symbols must be >= 600, got 10"),
        ("+pipeline.models.synthesizer.noise_sigma=0.5",  # a vocoder's setting: none here
         "pipeline.models.synthesizer.noise_sigma: Key 'noise_sigma' not in "
         "'VoiceSynthesizerSettings'"),
        ("pipeline.models.frontend.max_characters=0",
         "pipeline.models.frontend.max_characters must be >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused(override: str, message: str) -> None:
    with pytest.raises(UserError) as refused:
        plan_of(override)
    assert str(refused.value).startswith(message)


def test_a_missing_voice_is_one_line(tmp_path: Path) -> None:
    output = tmp_path / "repo"
    done = run_cli("pipeline=tts_piper", "model.path=/nowhere/voice.onnx", f"output_dir={output}")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "error: model.path: no Piper voice at /nowhere/voice.onnx (expected a .onnx file)\n"
    )
    assert not output.exists()


def _voice_with_json(folder: Path, change) -> Path:  # noqa: ANN001 - a function of the facts
    path = copy_voice(folder)
    facts = json.loads((folder / "voice.onnx.json").read_text())
    change(facts)
    (folder / "voice.onnx.json").write_text(json.dumps(facts))
    return path


def test_a_phoneme_map_the_voice_cannot_take_is_refused(tmp_path: Path) -> None:
    """ids of 5000 against a voice that embeds 256 symbols: every request would have failed."""
    path = _voice_with_json(tmp_path, lambda f: f["phoneme_id_map"].update({"ʃ": [5000]}))
    with pytest.raises(UserError) as refused:
        plan_of(f"model.path={path}")
    assert str(refused.value) == (
        f"the Piper voice's {path}.json does not fit voice.onnx: its phoneme_id_map has ids "
        "from 0 to 5000, but the voice takes ids 0..255"
    )


def test_an_espeak_voice_espeak_does_not_have_is_refused(tmp_path: Path) -> None:
    path = _voice_with_json(tmp_path, lambda f: f["espeak"].update({"voice": "xx-nonexistent"}))
    with pytest.raises(UserError, match="espeak-ng has no voice 'xx-nonexistent'"):
        plan_of(f"model.path={path}")


def test_a_linked_voice_takes_the_json_beside_the_link(tmp_path: Path) -> None:
    """Hugging Face's cache: snapshots/<rev>/voice.onnx -> ../../blobs/<hash>."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "rev"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    copy_voice(blobs)
    (blobs / "voice.onnx").rename(blobs / "b1")
    (blobs / "voice.onnx.json").rename(blobs / "b2")
    (snapshot / "voice.onnx").symlink_to("../../blobs/b1")
    (snapshot / "voice.onnx.json").symlink_to("../../blobs/b2")
    units = {u.role: u for u in plan_of(f"model.path={snapshot / 'voice.onnx'}").units}
    assert units["voice"].files["voice.onnx"] == snapshot / "voice.onnx"
    # A link with no JSON beside it: named as the user gave it, not the JSON beside the blob.
    lone = tmp_path / "lone"
    lone.mkdir()
    copy_voice(lone)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "voice.onnx").symlink_to(lone / "voice.onnx")
    with pytest.raises(UserError) as refused:
        plan_of(f"model.path={tmp_path / 'elsewhere' / 'voice.onnx'}")
    assert str(refused.value) == (
        f"model.path: the Piper voice {tmp_path / 'elsewhere' / 'voice.onnx'} has no "
        "voice.onnx.json beside it"
    )
