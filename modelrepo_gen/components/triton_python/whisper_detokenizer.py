"""Triton python-backend model: Whisper token ids -> text, with the `tokenizers` library.

Inputs TOKENS (INT32 [-1], padded with the end-of-text id) and TOKEN_COUNT (INT32 [1]); each
window's ids end with the end-of-text id. Every window is decoded on its own, special tokens
skipped and whitespace trimmed, and the windows' texts are joined with a space.
Settings from config.pbtxt `parameters`:
  eos        end-of-text token id
  tokenizer  tokenizers-library tokenizer.json in the version folder
"""

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


def detokenize(tokenizer, ids: list, eos: int) -> str:
    texts = (tokenizer.decode(w, skip_special_tokens=True).strip() for w in window_ids(ids, eos))
    return " ".join(text for text in texts if text)


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
            texts = [
                detokenize(self.tokenizer, row[: int(n)].tolist(), self.eos).encode("utf-8")
                for row, n in zip(tokens, counts)
            ]
            out = np.array(texts, dtype=np.object_).reshape(-1, 1)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("TRANSCRIPT", out)]))
        return responses
