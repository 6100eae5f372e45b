"""Triton python-backend model: Whisper token ids -> text, with the `tokenizers` library.

Inputs TOKENS (INT32 [-1], padded with the end-of-text id), TOKEN_COUNT (INT32 [1]) and
SEGMENT_TIMES (FP32 [-1]: start, end, start, ... in seconds); each segment's ids end with the
end-of-text id. Every segment is decoded on its own, special tokens skipped and whitespace
trimmed; out go the segments' texts joined with a space (TRANSCRIPT) and the segments with text,
with their times (SEGMENTS: JSON [{"start": s, "end": s, "text": ...}, ...]).
Settings from config.pbtxt `parameters`:
  eos        end-of-text token id
  tokenizer  tokenizers-library tokenizer.json in the version folder
"""

import json
from pathlib import Path

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_kernel import model_settings, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import model_settings, refusal


def window_ids(ids: list, eos: int) -> list:
    """The ids split at each end-of-text id: one list per window."""
    windows, current = [], []
    for token in ids:
        if token == eos:
            windows.append(current)
            current = []
        else:
            current.append(token)
    if current:
        windows.append(current)
    return windows


def segment_texts(tokenizer, ids: list, eos: int) -> list:
    """Each segment's text, special tokens skipped and whitespace trimmed."""
    return [tokenizer.decode(w, skip_special_tokens=True).strip() for w in window_ids(ids, eos)]


def detokenize(tokenizer, ids: list, eos: int) -> str:
    return " ".join(text for text in segment_texts(tokenizer, ids, eos) if text)


def segments_json(texts: list, times) -> str:
    """The segments with text as JSON, times rounded to the 0.01 s Whisper's timestamps have."""
    found = [
        {
            "start": round(float(times[2 * i]), 2),
            "end": round(float(times[2 * i + 1]), 2),
            "text": text,
        }
        for i, text in enumerate(texts)
        if text
    ]
    return json.dumps(found, ensure_ascii=False)


def column(values: list) -> np.ndarray:
    return np.array(values, dtype=np.object_).reshape(-1, 1)


class TritonPythonModel:
    def initialize(self, args):
        from tokenizers import Tokenizer

        config, params = model_settings(args)
        self.model_name = config["name"]
        self.eos = int(params["eos"])
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = Tokenizer.from_file(str(folder / params["tokenizer"]))
        self.vocabulary_size = self.tokenizer.get_vocab_size(with_added_tokens=True)

    def execute(self, requests):
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS").as_numpy()
            counts = pb_utils.get_input_tensor_by_name(request, "TOKEN_COUNT").as_numpy()
            counts = counts.reshape(-1)
            if (
                counts.size != tokens.shape[0]
                or np.any(counts < 0)
                or np.any(counts > tokens.shape[1])
                or np.any(tokens < 0)
                or np.any(tokens >= self.vocabulary_size)
            ):
                message = (
                    f"TOKEN_COUNT must be between 0 and {tokens.shape[1]} per item and TOKENS "
                    f"between 0 and {self.vocabulary_size - 1}"
                )
                responses.append(refusal(self.model_name, message))
                continue
            times = pb_utils.get_input_tensor_by_name(request, "SEGMENT_TIMES").as_numpy()
            rows = [
                segment_texts(self.tokenizer, row[: int(n)].tolist(), self.eos)
                for row, n in zip(tokens, counts)
            ]
            if times.shape[0] != len(rows) or any(2 * len(t) > times.shape[1] for t in rows):
                message = "SEGMENT_TIMES must hold a start and an end per segment of TOKENS"
                responses.append(refusal(self.model_name, message))
                continue
            transcripts = [" ".join(t for t in texts if t).encode("utf-8") for texts in rows]
            segments = [segments_json(t, row).encode("utf-8") for t, row in zip(rows, times)]
            responses.append(
                pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor("TRANSCRIPT", column(transcripts)),
                        pb_utils.Tensor("SEGMENTS", column(segments)),
                    ]
                )
            )
        return responses
