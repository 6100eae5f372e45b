"""The five NLP pipelines, built from checkpoint folders a user brings and served by the real
Triton server, answer raw text exactly as the same repository run in this process does
(InProcessRepository): real sentences with accents, CJK and emoji, one word, and texts several
windows long; concurrent mixed batches answer as one by one; bad requests get a clean error and
the server keeps serving.

Each pipeline is built once (a tiny BERT with the real MiniLM vocabulary and a confident random
head, so labels differ from word to word and a wrong wiring shows); all of them live in one
repository that one server loads for the module. The networks' agreement with transformers is
test_text_answers.py's and test_bert_*'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.largest_requests import send_largest
from helpers.project import add_models
from helpers.served_requests import is_bad_request
from helpers.text_fixtures import SENTENCES, save_tiny_text_folder
from helpers.worker_faults import assert_healed, kill_a_worker_under_load
from test_bert_onnx_import import Logits, export_elsewhere

from modelrepo_gen.clients.in_process_repository import InProcessError, InProcessRepository
from modelrepo_gen.clients.text_client import TextModel, infer_answer
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.server import TritonServer

pytestmark = pytest.mark.server

PIPELINES = [
    "nlp_qa",
    "nlp_token_classification",
    "nlp_text_classification",
    "nlp_intent_slot",
    "nlp_punctuation",
    "nlp_text_classification+onnx",  # the folder's model exported elsewhere, served as it is
]
MAX_SEQ_LENGTH = 32  # small windows: a paragraph needs several
LONG_TEXT = (
    " ".join(s.lower().rstrip(".😀") for s in SENTENCES[:3])
    + " "
    + " ".join(f"sentence number {i} goes on and on" for i in range(12))
)
QUESTIONS = [
    ("Who wrote novels?", SENTENCES[0]),
    ("Where did the café open?", SENTENCES[1]),
    ("What is the capital?", SENTENCES[2]),
    ("What?", "hello"),
    ("Which sentence number goes on?", LONG_TEXT),
]


def ensemble_name(param: str) -> str:
    """The ensemble of a PIPELINES entry: its pipeline's name, "_onnx" for the imported one."""
    pipeline, _, imported = param.partition("+")
    return f"{pipeline}_{imported}" if imported else pipeline


@pytest.fixture(scope="module")
def nlp_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every PIPELINES entry built, all in one repository (each named by its ensemble)."""
    from helpers.asr_fixtures import compose_config

    from modelrepo_gen.assembly.run import build_repository

    combined = tmp_path_factory.mktemp("nlp") / "repo"
    for param in PIPELINES:
        pipeline, _, imported = param.partition("+")
        root = tmp_path_factory.mktemp(ensemble_name(param))
        folder = save_tiny_text_folder(root / "checkpoint", pipeline)
        overrides = [
            f"pipeline={pipeline}",
            f"pipeline.name={ensemble_name(param)}",
            f"model.path={folder}",
            f"model.max_seq_length={MAX_SEQ_LENGTH}",
            "pipeline.models.tokenizer.doc_stride=8",
        ]
        if imported:
            from transformers import AutoModelForSequenceClassification

            model = Logits(AutoModelForSequenceClassification.from_pretrained(folder))
            names = ["input_ids", "attention_mask", "token_type_ids"]
            overrides.append(f"model.onnx={export_elsewhere(model, root / 'model.onnx', names)}")
        build_repository(compose_config(overrides), root / "repo")
        add_models(root / "repo", combined)
    return combined


@pytest.fixture(scope="module")
def nlp_server(nlp_repository: Path) -> Iterator[TritonServer]:
    with TritonServer(nlp_repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        yield server


@pytest.fixture(scope="module")
def nlp_in_process(nlp_repository: Path) -> Iterator[InProcessRepository]:
    with InProcessRepository(nlp_repository) as repository:
        yield repository


@dataclass
class InProcess:
    """A pipeline of the repository run in this process (the same models, no server): the
    answers the served one must give."""

    repository: InProcessRepository
    model: TextModel

    def answer(self, texts: dict) -> dict:
        return infer_answer(self.repository, "in_process", self.model, texts)

    def window_count(self, text: str, question: str | None = None) -> int:
        """The windows the pipeline's tokenizer cuts the text (and question) into."""
        inputs = {"TEXT": text} if question is None else {"QUESTION": question, "CONTEXT": text}
        arrays = {name: text_tensor(value) for name, value in inputs.items()}
        windows = self.repository.run(f"{self.model.name}_tokenizer", arrays, ["WINDOW_COUNT"])
        return int(windows["WINDOW_COUNT"].reshape(-1)[0])


@pytest.fixture(params=PIPELINES)
def served(request, nlp_repository, nlp_server, nlp_in_process) -> tuple:
    """(the ensemble's name, the server, the same pipeline in process)."""
    name = ensemble_name(request.param)
    model = TextModel(str(nlp_repository), "in_process", name)
    return name, nlp_server, InProcess(nlp_in_process, model)


def requests_for(pipeline: str) -> list[dict]:
    if pipeline == "nlp_qa":
        return [{"QUESTION": q, "CONTEXT": c} for q, c in QUESTIONS]
    return [{"TEXT": text} for text in [*SENTENCES, LONG_TEXT]]


def expected(reference: InProcess, texts: dict) -> dict:
    return reference.answer(texts)


def assert_same_answer(served: dict, wanted: dict) -> None:
    """Labels, texts and offsets exactly; scores and probabilities to 1e-4."""
    assert served.keys() == wanted.keys()
    for key, value in wanted.items():
        if isinstance(value, float):
            assert served[key] == pytest.approx(value, abs=1e-4), key
        elif isinstance(value, dict):
            assert served[key] == pytest.approx(value, abs=1e-4), key
        elif isinstance(value, list):  # entities / slots
            assert [{k: v for k, v in e.items() if k != "score"} for e in served[key]] == [
                {k: v for k, v in e.items() if k != "score"} for e in value
            ], key
            assert [e["score"] for e in served[key]] == pytest.approx(
                [e["score"] for e in value], abs=1e-4
            )
        else:
            assert served[key] == value, key


def test_served_answers_equal_the_in_process_reference(served) -> None:
    pipeline, server, reference = served
    model = TextModel(server.http_url, "http", pipeline)
    long_windows = reference.window_count(
        LONG_TEXT, "Which sentence?" if pipeline == "nlp_qa" else None
    )
    if not pipeline.startswith("nlp_text_classification"):
        assert long_windows > 2, "the long text spans several windows"
    answers = []
    for texts in requests_for(pipeline):
        answer = model.ask(texts)
        assert_same_answer(answer, expected(reference, texts))
        answers.append(answer)
    assert len({repr(a) for a in answers}) > 1, "different texts, different answers"


def test_concurrent_mixed_lengths_answer_as_one_by_one(served) -> None:
    pipeline, server, _ = served
    texts = requests_for(pipeline) * 3
    one_by_one = [TextModel(server.grpc_url, "grpc", pipeline).ask(t) for t in texts[:5]]

    def ask(item: dict) -> dict:
        return TextModel(server.grpc_url, "grpc", pipeline).ask(item)

    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(ask, texts))
    for index, answer in enumerate(together):
        assert_same_answer(answer, one_by_one[index % 5])


def raw_request(server: TritonServer, model: str, inputs: dict) -> Exception | dict:
    """Send input tensors as given (any dtype); the error, or the outputs."""
    import tritonclient.http as http

    client = http.InferenceServerClient(server.http_url)
    try:
        tensors = []
        for name, array in inputs.items():
            dtype = "BYTES" if array.dtype == object else http.np_to_triton_dtype(array.dtype)
            tensor = http.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        try:
            result = client.infer(model, tensors)
        except Exception as error:
            return error
        return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}
    finally:
        client.close()


def text_tensor(value: bytes | str) -> np.ndarray:
    data = value if isinstance(value, bytes) else value.encode("utf-8")
    return np.array([[data]], dtype=object)


def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(served) -> None:
    pipeline, server, reference = served
    good = requests_for(pipeline)[0]
    names = list(good)
    bad = {
        "empty": ({n: text_tensor("") for n in names}, "is empty"),
        "whitespace": ({n: text_tensor(" \t\n ") for n in names}, "is empty"),
        "not UTF-8": ({n: text_tensor(b"caf\xe9 \xff") for n in names}, "not valid UTF-8"),
        "far too long": (
            {n: text_tensor("word " * 30_000) for n in names},
            "more than the maximum",
        ),
        "wrong type": ({n: np.array([[1.5]], dtype=np.float32) for n in names}, "expects 'BYTES'"),
    }
    if pipeline == "nlp_qa":
        bad["missing context"] = ({"QUESTION": text_tensor("Who?")}, "CONTEXT")
    for label, (inputs, message) in bad.items():
        error = raw_request(server, pipeline, inputs)
        assert isinstance(error, Exception), label
        assert message in str(error), (label, str(error))
        assert is_bad_request(error), (label, str(error))
    model = TextModel(server.http_url, "http", pipeline)
    assert_same_answer(model.ask(good), expected(reference, good))


def test_the_client_refuses_what_the_model_does_not_take(served) -> None:
    pipeline, server, _ = served
    model = TextModel(server.http_url, "http", pipeline)
    if pipeline == "nlp_qa":
        with pytest.raises(UserError, match="needs both --question and --context"):
            model.request_texts(None, "Who?", None)
        with pytest.raises(UserError, match="not a text"):
            model.request_texts("hello", None, None)
    else:
        with pytest.raises(UserError, match="not --question/--context"):
            model.request_texts(None, "Who?", "x")
    with pytest.raises(UserError, match="is not ready"):
        TextModel(server.http_url, "http", "nlp_missing")


def test_ask_command_prints_the_served_answer(served) -> None:
    import json
    import subprocess
    import sys

    pipeline, server, _ = served
    texts = requests_for(pipeline)[0]
    if "QUESTION" in texts:
        arguments = ["--question", texts["QUESTION"], "--context", texts["CONTEXT"]]
    else:
        arguments = [texts["TEXT"]]
    command = [sys.executable, "-m", "modelrepo_gen.ask", pipeline, *arguments]
    done = subprocess.run(
        [*command, "--url", server.http_url, "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert_same_answer(
        json.loads(done.stdout), TextModel(server.http_url, "http", pipeline).ask(texts)
    )
    if pipeline not in ("nlp_qa", "nlp_token_classification"):
        return  # the printing and error paths are shared: two pipelines show them
    readable = subprocess.run(
        [*command, "--url", server.grpc_url, "--protocol", "grpc"], capture_output=True, text=True
    )
    assert readable.returncode == 0 and readable.stdout.strip(), readable.stderr
    nobody = subprocess.run([*command, "--url", "127.0.0.1:9"], capture_output=True, text=True)
    assert nobody.returncode != 0 and nobody.stdout == ""
    assert nobody.stderr.startswith("error: ") and nobody.stderr.count("\n") == 1, nobody.stderr


def test_one_request_with_several_texts_answers_each_as_alone(served) -> None:
    from modelrepo_gen.components.triton_python.text_answers import from_tensors

    pipeline, server, _ = served
    items = requests_for(pipeline)[:3]
    model = TextModel(server.http_url, "http", pipeline)
    inputs = {
        name: np.array([[item[name].encode("utf-8")] for item in items], dtype=object)
        for name in items[0]
    }
    outputs = raw_request(server, pipeline, inputs)
    assert isinstance(outputs, dict), outputs
    for row, item in enumerate(items):
        answer = from_tensors(
            model.task, {name: array[row] for name, array in outputs.items()}, model.class_labels
        )
        assert_same_answer(answer, model.ask(item))


@pytest.mark.parametrize("served", ["nlp_text_classification"], indirect=True)
def test_a_killed_postprocessing_worker_is_reloaded_under_load(served) -> None:
    """The probe's case (the network's worker killed under load), where the network runs on
    the CPU target: inside the post-processing model's worker."""
    pipeline, server, reference = served
    texts = requests_for(pipeline)[0]
    wanted = expected(reference, texts)

    def is_right(answer: dict) -> bool:
        try:
            assert_same_answer(answer, wanted)
        except AssertionError:
            return False
        return True

    model = f"{pipeline}_postprocessing"
    outcome = kill_a_worker_under_load(
        server, model, lambda: TextModel(server.http_url, "http", pipeline).ask(texts), is_right
    )
    assert_healed(outcome, model)


@pytest.mark.parametrize("served", ["nlp_qa", "nlp_token_classification"], indirect=True)
def test_post_processing_refuses_offsets_outside_the_text(served) -> None:
    """Answers and entities are cut from the text at TOKEN_OFFSETS: spans past its end (the
    probe sent 10^6 for a 3-character text) are refused, not answered."""
    pipeline, server, _ = served
    texts = {"QUESTION": "Who?", "CONTEXT": "Ann"} if pipeline == "nlp_qa" else {"TEXT": "Ann"}
    windows = raw_request(
        server, f"{pipeline}_tokenizer", {k: text_tensor(v) for k, v in texts.items()}
    )
    assert isinstance(windows, dict), windows
    inputs = {name: windows[name] for name in windows}
    inputs["TEXT"] = text_tensor(texts.get("CONTEXT", texts.get("TEXT")))
    answered = raw_request(server, f"{pipeline}_postprocessing", inputs)
    assert isinstance(answered, dict), answered  # the tokenizer's windows are answered
    for bad in (1_000_000, -5):
        offsets = windows["TOKEN_OFFSETS"].copy()
        offsets[offsets >= 0] = bad
        error = raw_request(
            server, f"{pipeline}_postprocessing", {**inputs, "TOKEN_OFFSETS": offsets}
        )
        assert isinstance(error, Exception), bad
        assert "TOKEN_OFFSETS must be spans within the text's 3 characters" in str(error)
        assert is_bad_request(error)
    # What it passes on to the network is checked here too (the network's own refusal would
    # reach the client as a server fault).
    ids = windows["INPUT_IDS"].copy()
    ids[..., 1] = 10_000_000
    error = raw_request(server, f"{pipeline}_postprocessing", {**inputs, "INPUT_IDS": ids})
    assert isinstance(error, Exception) and is_bad_request(error), error
    assert "INPUT_IDS must hold values from 0 to 30521, got" in str(error)
    word_ids = windows["WORD_IDS"][..., :-1].copy()
    error = raw_request(server, f"{pipeline}_postprocessing", {**inputs, "WORD_IDS": word_ids})
    assert isinstance(error, Exception) and is_bad_request(error), error
    assert "WORD_IDS has shape" in str(error) and "but INPUT_IDS has" in str(error)


@pytest.mark.parametrize("served", ["nlp_qa"], indirect=True)
@pytest.mark.parametrize(
    ("words", "context_left"),
    # [CLS] q [SEP] c [SEP]: 3 special tokens; doc_stride 8. Longer than a window, filling it,
    # leaving exactly doc_stride context tokens (no window could move on), and one fewer.
    [(2 * MAX_SEQ_LENGTH, 0), (MAX_SEQ_LENGTH - 3, 0), (MAX_SEQ_LENGTH - 11, 8), (22, 7)],
)
def test_a_question_that_leaves_too_little_context_is_refused(served, words, context_left) -> None:
    pipeline, server, _ = served
    context = "Ann wrote it in spring. " * 20  # needs several windows
    answered = raw_request(
        server, pipeline, {"QUESTION": text_tensor("who?"), "CONTEXT": text_tensor(context)}
    )
    assert not isinstance(answered, Exception), answered.message()
    question = "why " * words
    error = raw_request(
        server, pipeline, {"QUESTION": text_tensor(question), "CONTEXT": text_tensor(context)}
    )
    assert isinstance(error, Exception) and is_bad_request(error), error
    assert (
        f"QUESTION is {words} tokens long: with the special tokens it leaves {context_left} "
        f"tokens for the context in a window of {MAX_SEQ_LENGTH} tokens" in str(error)
    )
    shorter = "why " * (MAX_SEQ_LENGTH - 12)  # leaves doc_stride + 1: answered
    answered = raw_request(
        server, pipeline, {"QUESTION": text_tensor(shorter), "CONTEXT": text_tensor("Ann did.")}
    )
    assert not isinstance(answered, Exception), answered.message()


@pytest.mark.parametrize("served", ["nlp_token_classification"], indirect=True)
def test_the_largest_allowed_request_is_answered_within_the_memory_budget(served) -> None:
    """max_batch_size (8) texts that each need max_windows (64) windows."""
    pipeline, server, reference = served

    words = " ".join(f"{s.rstrip('.')} and" for s in SENTENCES).split() * 40

    def windows(count: int) -> int:
        try:
            return reference.window_count(" ".join(words[:count]))
        except InProcessError as error:  # the tokenizer refuses a text over max_windows
            assert error.invalid_argument and "more than the maximum" in str(error), error
            return 65

    low, high = 1, len(words)  # the most words that still fit 64 windows
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if windows(middle) <= 64 else (low, middle - 1)
    text = " ".join(words[:low])
    assert windows(low) == 64
    inputs = {"TEXT": np.array([[text.encode("utf-8")]] * 8, dtype=object)}
    outputs, _ = send_largest(
        server,
        pipeline,
        "8 texts of 64 windows",
        lambda: raw_request(server, pipeline, inputs),
    )
    assert isinstance(outputs, dict), outputs
    alone = TextModel(server.http_url, "http", pipeline).ask({"TEXT": text})
    assert [json.loads(e) for e in outputs["ENTITIES"].reshape(-1)] == [alone["entities"]] * 8
