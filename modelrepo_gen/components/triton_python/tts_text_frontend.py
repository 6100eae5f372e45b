"""Triton python-backend model: text -> sentences -> symbol ids for speech synthesis.

Input TEXT (STRING [1], UTF-8). The text is normalized (text_normalization.py, with the rules
table), split into sentences, and each sentence encoded (symbol_encoding.py, with the symbol
set). A sentence longer than the acoustic model takes is cut, at a clause break or a space near
its middle, until every piece fits. Out go SYMBOL_IDS (INT64 [-1], every sentence's ids one
after another) and SENTENCE_LENGTHS (INT32 [-1], the number of ids of each sentence), so the
synthesizer can speak the sentences one by one and join them.
Settings from config.pbtxt `parameters`:
  rules                 JSON normalization rules
  symbols               JSON symbol set (its `encoding` chooses characters or Piper phonemes)
  phoneme_id_map        Piper voice JSON in the version folder (piper_phonemes only; else "")
  max_characters        longest text accepted
  max_sentence_symbols  most ids of one sentence (longer ones are cut)
  max_symbols           most ids of one text, all its sentences together (more is refused)
"""

import json
import re
from pathlib import Path

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository (the stub puts its folder on sys.path)
    from model_kernel import fault, model_settings, refusal
    from symbol_encoding import SymbolEncoder
    from text_normalization import normalize
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import fault, model_settings, refusal
    from modelrepo_gen.components.triton_python.symbol_encoding import SymbolEncoder
    from modelrepo_gen.components.triton_python.text_normalization import normalize


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


CLAUSE_BREAK = re.compile(r"[,;:]\s+")
SPACE = re.compile(r"\s+")


def cut_near_middle(sentence: str) -> tuple[str, str]:
    """Two halves of a sentence: at a clause break in its middle half, else at the space
    nearest its middle, else (one long word) at its middle character."""
    middle = len(sentence) // 2
    for pattern, reach in ((CLAUSE_BREAK, len(sentence) // 4), (SPACE, len(sentence))):
        cuts = [m for m in pattern.finditer(sentence) if 0 < m.start() and m.end() < len(sentence)]
        cuts = [m for m in cuts if abs(m.start() - middle) <= reach]
        if cuts:
            best = min(cuts, key=lambda m: abs(m.start() - middle))
            return sentence[: best.start() + 1].rstrip(), sentence[best.end() :]
    return sentence[:middle], sentence[middle:]


def fitted(sentence: str, encode, limit: int, ids: list[int] | None = None) -> list[list[int]]:
    """The ids of a sentence (`ids`: already encoded), as pieces of at most `limit` ids each
    (cut near the middle until each piece fits); pieces with nothing to say are dropped."""
    ids = encode(sentence) if ids is None else ids
    if len(ids) <= limit:
        return [ids] if ids else []
    if len(sentence) < 2:
        raise BadText(f"one character needs {len(ids)} symbols, more than {limit}")
    head, tail = cut_near_middle(sentence)
    return fitted(head, encode, limit) + fitted(tail, encode, limit)


def encode_text(
    text: str, rules: dict, encoder: SymbolEncoder, max_sentence: int, max_total: int
) -> list[list[int]]:
    """Symbol ids per sentence (each at most `max_sentence`); BadText if nothing in the text can
    be spoken, or if its sentences need more than `max_total` ids (counted before any is cut)."""
    sentences, total = [], 0
    for sentence in encoder.sentences(normalize(text, rules)):
        ids = encoder.encode(sentence)
        total += len(ids)
        if total > max_total:  # stop at once: the rest would be work for nothing
            raise BadText(
                f"TEXT needs more than {max_total} symbols to speak (the maximum per text, "
                "after numbers and symbols are spelled out); send it in parts"
            )
        sentences.append((sentence, ids))
    encoded = [
        piece
        for sentence, ids in sentences
        for piece in fitted(sentence, encoder.encode, max_sentence, ids)
    ]
    if not encoded:
        raise BadText("TEXT has nothing to speak (no letters or digits the voice knows)")
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
        config, params = model_settings(args)
        self.model_name = config["name"]
        self.rules = json.loads(params["rules"])
        self.max_characters = int(params["max_characters"])
        self.max_sentence_symbols = int(params["max_sentence_symbols"])
        self.max_symbols = int(params["max_symbols"])
        voice, texts = None, {}
        folder = Path(args["model_repository"]) / args["model_version"]
        if params.get("phoneme_id_map"):
            voice = json.loads((folder / params["phoneme_id_map"]).read_text(encoding="utf-8"))
        for key, name in json.loads(params.get("symbol_files") or "{}").items():
            texts[key] = (folder / name).read_text(encoding="utf-8")  # a NeMo IPA dictionary
        self.encoder = SymbolEncoder(json.loads(params["symbols"]), voice, texts)

    def _encode(self, request):
        texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
        if texts.size == 0:
            raise BadText("TEXT is empty")
        return [
            encode_text(
                decode_text(raw, self.max_characters),
                self.rules,
                self.encoder,
                self.max_sentence_symbols,
                self.max_symbols,
            )
            for raw in texts
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                ids, lengths = pack(self._encode(request))
            except BadText as error:
                responses.append(refusal(self.model_name, str(error)))
                continue
            except Exception as error:  # e.g. the phonemizer failing: answer, do not crash
                responses.append(fault(self.model_name, f"encoding failed: {error}"))
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
