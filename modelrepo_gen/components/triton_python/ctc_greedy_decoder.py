"""Triton python-backend model: greedy CTC decoding of log-probabilities into text.

Per frame (up to each utterance's length) take the most likely class, collapse repeats, drop
the blank (the class after the last vocabulary entry). Settings from config.pbtxt `parameters`:
  vocabulary    JSON list of the output symbols, in class order
"""

import json

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_kernel import model_settings, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import model_settings, refusal


def greedy_decode(logprobs: np.ndarray, length: int, vocabulary: list) -> str:
    """logprobs [frames, classes] -> text."""
    blank = len(vocabulary)
    best = np.argmax(logprobs[:length], axis=-1)
    symbols = []
    previous = -1
    for index in best.tolist():
        if index != previous and index != blank:
            symbols.append(vocabulary[index])
        previous = index
    return "".join(symbols)


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        self.model_name = config["name"]
        self.vocabulary = json.loads(params["vocabulary"])
        self.logprobs_name, self.length_name = [t["name"] for t in config["input"]]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests):
        responses = []
        for request in requests:
            logprobs = pb_utils.get_input_tensor_by_name(request, self.logprobs_name).as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, self.length_name).as_numpy()
            lengths = lengths.reshape(-1)
            frames, classes = logprobs.shape[1], logprobs.shape[2]
            wanted = len(self.vocabulary) + 1  # and the blank
            if classes != wanted:
                message = f"{self.logprobs_name} must have {wanted} classes, got {classes}"
            elif (
                lengths.size != logprobs.shape[0] or np.any(lengths < 0) or np.any(lengths > frames)
            ):
                message = f"{self.length_name} must be between 0 and {frames} per item"
            elif np.any(np.isnan(logprobs) | np.isposinf(logprobs)):  # -inf: probability 0
                # argmax over NaN picks a class: the answer would be a made-up transcript
                message = f"{self.logprobs_name} contains NaN or +inf values"
            else:
                message = None
            if message:
                responses.append(refusal(self.model_name, message))
                continue
            texts = [
                greedy_decode(item, int(n), self.vocabulary).encode("utf-8")
                for item, n in zip(logprobs, lengths)
            ]
            transcript = np.array(texts, dtype=np.object_).reshape(-1, 1)
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, transcript)])
            )
        return responses
