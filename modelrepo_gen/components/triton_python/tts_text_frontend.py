"""Triton python-backend model: text -> sentences -> symbol ids for speech synthesis.

Input TEXT (STRING [1], UTF-8). The text is normalized (text_normalization.py, with the rules
table), split into sentences, and each sentence encoded (symbol_encoding.py, with the symbol
set). Out go SYMBOL_IDS (INT64 [-1], every sentence's ids one after another) and
SENTENCE_LENGTHS (INT32 [-1], the number of ids of each sentence), so the synthesizer can
speak the sentences one by one and join them.
Settings from config.pbtxt `parameters`:
  rules           JSON normalization rules
  symbols         JSON symbol set (its `encoding` chooses characters or Piper phonemes)
  phoneme_id_map  Piper voice JSON in the version folder (piper_phonemes only; else "")
  max_characters  longest text accepted
"""

import json
import sys
from pathlib import Path

import numpy as np

# The two helper files are copied beside this one (the stub does not put it on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from symbol_encoding import SymbolEncoder  # noqa: E402
from text_normalization import normalize, split_sentences  # noqa: E402

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None


class BadText(ValueError):
    """A text that cannot be spoken; the message goes back to the client."""


def decode_text(raw: object, max_characters: int) -> str:
    """The request's text, or BadText saying why it cannot be used."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadText(f"TEXT is not valid UTF-8 (byte {error.start})") from None
    text = str(raw)
    if not text.strip():
        raise BadText("TEXT is empty")
    if len(text) > max_characters:
        raise BadText(
            f"TEXT is {len(text)} characters long, more than the maximum of {max_characters}"
        )
    return text


def encode_text(text: str, rules: dict, encoder: SymbolEncoder) -> list[list[int]]:
    """Symbol ids per sentence; BadText if nothing in the text can be spoken."""
    sentences = split_sentences(normalize(text, rules))
    encoded = [ids for ids in (encoder.encode(s) for s in sentences) if ids]
    if not encoded:
        raise BadText("TEXT has nothing to speak (no letters or digits)")
    return encoded


def pack(rows: list[list[list[int]]]) -> tuple[np.ndarray, np.ndarray]:
    """Per text: its sentences' ids one after another, and each sentence's id count (padded
    with 0 ids and 0 lengths to the longest text)."""
    flat = [[i for sentence in row for i in sentence] for row in rows]
    ids = np.zeros((len(rows), max(len(f) for f in flat)), dtype=np.int64)
    lengths = np.zeros((len(rows), max(len(row) for row in rows)), dtype=np.int32)
    for r, (row, values) in enumerate(zip(rows, flat)):
        ids[r, : len(values)] = values
        lengths[r, : len(row)] = [len(sentence) for sentence in row]
    return ids, lengths


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.model_name = config["name"]
        self.rules = json.loads(params["rules"])
        self.max_characters = int(params["max_characters"])
        id_map = None
        if params.get("phoneme_id_map"):
            folder = Path(args["model_repository"]) / args["model_version"]
            voice = json.loads((folder / params["phoneme_id_map"]).read_text(encoding="utf-8"))
            id_map = voice["phoneme_id_map"]
        self.encoder = SymbolEncoder(json.loads(params["symbols"]), id_map)

    def _encode(self, request):
        texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
        if texts.size == 0:
            raise BadText("TEXT is empty")
        return [
            encode_text(decode_text(raw, self.max_characters), self.rules, self.encoder)
            for raw in texts
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                ids, lengths = pack(self._encode(request))
            except BadText as error:
                message = pb_utils.TritonError(f"{self.model_name}: {error}")
                responses.append(pb_utils.InferenceResponse(error=message))
                continue
            except Exception as error:  # e.g. espeak-ng failing: answer, do not crash the stub
                message = pb_utils.TritonError(f"{self.model_name}: encoding failed: {error}")
                responses.append(pb_utils.InferenceResponse(error=message))
                continue
            responses.append(
                pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor("SYMBOL_IDS", ids),
                        pb_utils.Tensor("SENTENCE_LENGTHS", lengths),
                    ]
                )
            )
        return responses
