"""Triton python-backend model: token windows -> a task's answer (QA span, entities, label,
intent and slots, punctuated text), calling the task's network itself.

The windows of every text of every request in one execution go to the network together
(Triton's business-logic scripting), padded to the longest window and max_batch_size rows at
a time; each text's answer comes from text_answers.py. Settings from config.pbtxt `parameters`:
  task               the task (nlp_tasks.py): what the network gives and the answer reads
  labels             JSON {network output: [label per class]}
  calls              JSON {"network": {"model": name, "max_batch_size": n, ...}} (model_calls.py)
  max_answer_length  tokens (question answering)
  allow_no_answer    true | false (question answering)
  vocab_size         token ids the network takes (0 .. vocab_size - 1)
  token_types        token types it takes
"""

import json

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_calls import ModelCalls
    from model_kernel import fault, model_settings, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_calls import ModelCalls
    from modelrepo_gen.components.triton_python.model_kernel import fault, model_settings, refusal

try:  # beside model.py in a repository
    from nlp_tasks import TASKS
    from text_answers import answer, to_tensors
    from text_windows import Windows, unstack_windows
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.nlp_tasks import TASKS
    from modelrepo_gen.components.triton_python.text_answers import answer, to_tensors
    from modelrepo_gen.components.triton_python.text_windows import Windows, unstack_windows

WINDOW_INPUTS = {
    "INPUT_IDS": "input_ids",
    "ATTENTION_MASK": "attention_mask",
    "TOKEN_TYPE_IDS": "token_type_ids",
    "TOKEN_OFFSETS": "offsets",
    "WORD_IDS": "word_ids",
}
NETWORK_INPUTS = ["INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS"]


def pad_rows(arrays: list) -> np.ndarray:
    """[rows, tokens, ...] arrays of different token counts -> one array, zero-padded."""
    width = max(a.shape[1] for a in arrays)
    return np.concatenate(
        [np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)) for a in arrays]
    )


def windows_problem(
    stacked: Windows, counts: np.ndarray, texts: np.ndarray, vocabulary: int, token_types: int
) -> str | None:
    """The first reason these windows cannot be read back into their texts (or sent to the
    network: its own refusal would reach the client as a server fault), or None."""
    grid = stacked.input_ids.shape
    if len(grid) != 3:
        return f"INPUT_IDS must be [texts, windows, tokens], got {list(grid)}"
    for name, field in WINDOW_INPUTS.items():
        shape = getattr(stacked, field).shape[:3]
        if shape != grid:
            return f"{name} has shape {list(shape)}, but INPUT_IDS has {list(grid)}"
    if stacked.offsets.shape != (*grid, 2):
        shape = list(stacked.offsets.shape)
        return f"TOKEN_OFFSETS must be [texts, windows, tokens, 2], got {shape}"
    if counts.size != grid[0] or texts.size != grid[0]:
        return "WINDOW_COUNT and TEXT must hold one value per text"
    if np.any(counts < 1) or np.any(counts > grid[1]):
        return f"WINDOW_COUNT must be between 1 and {grid[1]}, got {counts.tolist()}"
    for name, array, high in (
        ("INPUT_IDS", stacked.input_ids, vocabulary - 1),
        ("ATTENTION_MASK", stacked.attention_mask, 1),
        ("TOKEN_TYPE_IDS", stacked.token_type_ids, token_types - 1),
    ):
        if array.size and (array.min() < 0 or array.max() > high):
            return f"{name} must hold values from 0 to {high}, got {array.min()}..{array.max()}"
    return None


def offsets_problem(text: str, offsets: np.ndarray) -> str | None:
    """Spans must lie inside the text (or be -1, -1 for tokens of no span): answers and entities
    are cut from the text with them."""
    starts, ends = offsets[..., 0], offsets[..., 1]
    none = (starts == -1) & (ends == -1)
    inside = (starts >= 0) & (starts <= ends) & (ends <= len(text))
    if not np.all(none | inside):
        return f"TOKEN_OFFSETS must be spans within the text's {len(text)} characters (or -1, -1)"
    return None


def read_request(request, vocabulary: int, token_types: int) -> list:
    """(text, Windows) per item of the request; ValueError says what is wrong."""
    get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
    stacked = Windows(**{field: get(name) for name, field in WINDOW_INPUTS.items()})
    counts = get("WINDOW_COUNT").reshape(-1)
    texts = get("TEXT").reshape(-1)
    problem = windows_problem(stacked, counts, texts, vocabulary, token_types)
    if problem:
        raise ValueError(problem)
    items = []
    for index, (text, count) in enumerate(zip(texts, counts)):
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        windows = unstack_windows(stacked, int(count), index)
        problem = offsets_problem(text, windows.offsets)
        if problem:
            raise ValueError(problem)
        items.append((text, windows))
    return items


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        self.model_name = config["name"]
        self.task = params["task"]
        self.labels = json.loads(params["labels"])
        self.calls = ModelCalls(json.loads(params["calls"]), args, pb_utils)
        self.max_answer_length = int(params.get("max_answer_length", "30"))
        self.allow_no_answer = params.get("allow_no_answer", "true") == "true"
        outputs = TASKS[self.task].network_outputs
        self.network_outputs = [output.name for output in outputs]
        # Outputs with one row per window; the others have one row per token.
        self.per_window = {output.name for output in outputs if not output.per_token}
        self.vocabulary = int(params["vocab_size"])
        self.token_types = int(params["token_types"])

    def _run_network(self, windows: list) -> list:
        """The network's outputs for every Windows, as dicts row-aligned with each."""
        inputs = {
            name: pad_rows([getattr(w, WINDOW_INPUTS[name]) for w in windows])
            for name in NETWORK_INPUTS
        }
        step = self.calls.max_batch_size("network")
        results = self.calls.call("network", inputs, self.network_outputs, step)
        # The network may give a batch back wider than it was sent (batched with others).
        merged = {
            name: np.concatenate(parts) if name in self.per_window else pad_rows(parts)
            for name, parts in results.items()
        }
        per_text, start = [], 0
        for w in windows:
            width = w.input_ids.shape[1]
            own = {}
            for name, array in merged.items():
                rows_of_text = array[start : start + w.count]
                own[name] = rows_of_text if name in self.per_window else rows_of_text[:, :width]
            per_text.append(own)
            start += w.count
        return per_text

    def execute(self, requests):
        responses = [None] * len(requests)
        accepted = []  # (request index, [(text, windows)])
        for index, request in enumerate(requests):
            try:
                accepted.append((index, read_request(request, self.vocabulary, self.token_types)))
            except (ValueError, UnicodeDecodeError) as error:
                responses[index] = refusal(self.model_name, str(error))
        items = [item for _, request_items in accepted for item in request_items]
        if not items:
            return responses
        try:
            outputs = self._run_network([w for _, w in items])
            answers = [
                answer(
                    self.task,
                    text,
                    w,
                    own,
                    self.labels,
                    self.max_answer_length,
                    self.allow_no_answer,
                )
                for (text, w), own in zip(items, outputs)
            ]
        except Exception as exc:  # a failed call must answer every request, not crash the stub
            for index, _ in accepted:
                responses[index] = fault(self.model_name, str(exc))
            return responses
        start = 0
        for index, request_items in accepted:
            own = [to_tensors(self.task, a) for a in answers[start : start + len(request_items)]]
            start += len(request_items)
            tensors = [pb_utils.Tensor(name, np.stack([t[name] for t in own])) for name in own[0]]
            responses[index] = pb_utils.InferenceResponse(tensors)
        return responses

    def finalize(self):
        self.calls.finalize()
