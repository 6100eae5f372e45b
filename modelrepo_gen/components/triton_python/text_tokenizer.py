"""Triton python-backend model: raw text -> token windows for a BERT-family network.

Each text (and, for question answering, its question) is decoded from UTF-8 and tokenized with
the model's tokenizer.json into overlapping windows (see text_windows.py); the windows of a
request's texts go out padded to the longest. Settings from config.pbtxt `parameters`:
  tokenizer       file name of tokenizer.json in the version folder
  max_seq_length  tokens per window, special tokens included
  doc_stride      tokens two neighbouring windows share
  max_windows     windows a text may need (1: longer texts keep their first window)
  max_characters  longer texts are refused before tokenizing
  texts           JSON list of the text inputs: ["TEXT"] or ["QUESTION", "CONTEXT"]
"""

import json
from pathlib import Path

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_kernel import fault, model_settings, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import fault, model_settings, refusal

try:  # beside model.py in a repository
    from text_windows import (
        QuestionTooLong,
        TextTooLong,
        load_tokenizer,
        stack_windows,
        tokenize_windows,
    )
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.text_windows import (
        QuestionTooLong,
        TextTooLong,
        load_tokenizer,
        stack_windows,
        tokenize_windows,
    )


def read_texts(arrays: dict, names: list, max_characters: int) -> list:
    """Per row of the request, its texts in `names` order; ValueError says what is wrong."""
    rows = []
    for row in range(len(arrays[names[0]])):
        texts = []
        for name in names:
            array = arrays[name]
            if array.shape[0] != len(arrays[names[0]]) or array[row].size != 1:
                raise ValueError(f"{name} must hold one string per item")
            value = array[row].reshape(-1)[0]
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ValueError(f"{name} is not valid UTF-8 ({error.reason})") from None
            value = str(value)
            if not value.strip():
                raise ValueError(f"{name} is empty")
            if len(value) > max_characters:
                raise ValueError(
                    f"{name} is {len(value)} characters long, more than the maximum of "
                    f"{max_characters}"
                )
            texts.append(value)
        rows.append(texts)
    return rows


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        self.model_name = config["name"]
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = load_tokenizer(
            str(folder / params["tokenizer"]),
            int(params["max_seq_length"]),
            int(params["doc_stride"]),
        )
        self.max_windows = int(params["max_windows"])
        self.max_characters = int(params["max_characters"])
        self.texts = json.loads(params["texts"])

    def _windows(self, request):
        arrays = {
            name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.texts
        }
        items = []
        for texts in read_texts(arrays, self.texts, self.max_characters):
            text, question = texts[-1], (texts[0] if len(texts) == 2 else None)
            try:
                items.append(tokenize_windows(self.tokenizer, text, question, self.max_windows))
            except TextTooLong as error:  # named as the client sent it: TEXT or CONTEXT
                raise TextTooLong(f"{self.texts[-1]} {error}") from None
            except QuestionTooLong as error:
                raise QuestionTooLong(f"{self.texts[0]} {error}") from None
        stacked, counts = stack_windows(items)
        return [
            pb_utils.Tensor("INPUT_IDS", stacked.input_ids),
            pb_utils.Tensor("ATTENTION_MASK", stacked.attention_mask),
            pb_utils.Tensor("TOKEN_TYPE_IDS", stacked.token_type_ids),
            pb_utils.Tensor("TOKEN_OFFSETS", stacked.offsets),
            pb_utils.Tensor("WORD_IDS", stacked.word_ids),
            pb_utils.Tensor("WINDOW_COUNT", counts),
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(self._windows(request)))
            except ValueError as error:  # the text cannot be used (TextTooLong and others)
                responses.append(refusal(self.model_name, str(error)))
            except Exception as error:  # answer, do not crash the stub
                responses.append(fault(self.model_name, f"tokenizing failed: {error}"))
        return responses
