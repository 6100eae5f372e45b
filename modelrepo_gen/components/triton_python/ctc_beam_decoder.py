"""Triton python-backend model: CTC beam search of log-probabilities into text, with an optional
KenLM word language model and word boosting per request (ctc_beam_search.py, flashlight-text).

A request may boost words, as Riva's speech contexts do: parameters `boosted_words` (the words,
separated by spaces or commas) and `boosted_words_score` (the score added to each, -100 to 100).
Boosting needs a lexicon (a language model or a lexicon file at build time). Settings from
config.pbtxt `parameters`:
  options         JSON of flashlight's options: beam_size, beam_size_token, beam_threshold,
                  lm_weight, word_insertion_score
  vocabulary      JSON list of a character model's symbols in class order ("" for a tokenizer)
  tokenizer       file name of a SentencePiece model in the version folder ("" for characters)
  language_model  file name of the KenLM model (ARPA or binary) in the version folder, or ""
  lexicon         file name of the lexicon in the version folder, or ""
"""

import json
import re
from pathlib import Path

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from ctc_beam_search import (
        CtcBeamSearch,
        character_tokens,
        read_lexicon,
        sentencepiece_tokens,
    )
    from model_kernel import BadRequest, model_settings, numeric_parameters, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.ctc_beam_search import (
        CtcBeamSearch,
        character_tokens,
        read_lexicon,
        sentencepiece_tokens,
    )
    from modelrepo_gen.components.triton_python.model_kernel import (
        BadRequest,
        model_settings,
        numeric_parameters,
        refusal,
    )

BOOST_LIMIT = 100.0  # the largest boost a request may give, either way
MAX_BOOSTED_WORDS = 1000


def load_search(folder: Path, params: dict) -> CtcBeamSearch:
    """The searcher a model's settings describe, its files read from `folder`."""
    if params["tokenizer"]:
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(
            model_file=str(folder / params["tokenizer"])
        )
        tokens = sentencepiece_tokens(processor)
    else:
        tokens = character_tokens(json.loads(params["vocabulary"]))
    lm_path = folder / params["language_model"] if params["language_model"] else None
    lexicon = read_lexicon(folder / params["lexicon"]) if params["lexicon"] else None
    return CtcBeamSearch(tokens, json.loads(params["options"]), lm_path, lexicon)


def boosted_words(raw: str, search: CtcBeamSearch) -> dict:
    """A request's `boosted_words` and `boosted_words_score` parameters -> {word: score}."""
    given = json.loads(raw or "{}")
    unknown = sorted(set(given) - {"boosted_words", "boosted_words_score"})
    if unknown:
        raise BadRequest(
            f"unknown request parameter '{unknown[0]}' (this model takes: boosted_words, "
            "boosted_words_score)"
        )
    if not given:
        return {}
    if set(given) != {"boosted_words", "boosted_words_score"}:
        raise BadRequest("request parameters 'boosted_words' and 'boosted_words_score' go together")
    words = given["boosted_words"]
    if not isinstance(words, str):
        raise BadRequest(f"request parameter 'boosted_words' must be text, got {words!r}")
    score = numeric_parameters(
        json.dumps({"boosted_words_score": given["boosted_words_score"]}),
        {"boosted_words_score": [-BOOST_LIMIT, BOOST_LIMIT]},
    )["boosted_words_score"]
    listed = [word for word in re.split(r"[\s,]+", words) if word]
    if len(listed) > MAX_BOOSTED_WORDS:
        raise BadRequest(
            f"request parameter 'boosted_words' lists {len(listed)} words, at most "
            f"{MAX_BOOSTED_WORDS} may be boosted"
        )
    if listed and not search.has_lexicon:
        raise BadRequest(
            "word boosting needs a lexicon: this decoder was built without decoder.lm_path or "
            "decoder.lexicon_path"
        )
    unwritable = search.unspellable(listed)
    if unwritable:
        raise BadRequest(f"boosted word {unwritable[0]!r} cannot be written in this model's tokens")
    return {word: score for word in listed}


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        self.model_name = config["name"]
        self.search = load_search(Path(args["model_repository"]) / args["model_version"], params)
        self.classes = len(self.search.tokens.symbols) + 1  # and the blank
        self.logprobs_name, self.length_name = [t["name"] for t in config["input"]]
        self.output_name = config["output"][0]["name"]

    def _checked(self, request):
        """(logprobs, lengths, boosts) of a request; BadRequest says what is wrong."""
        logprobs = pb_utils.get_input_tensor_by_name(request, self.logprobs_name).as_numpy()
        lengths = pb_utils.get_input_tensor_by_name(request, self.length_name).as_numpy()
        lengths = lengths.reshape(-1)
        frames, classes = logprobs.shape[1], logprobs.shape[2]
        if classes != self.classes:
            raise BadRequest(
                f"{self.logprobs_name} must have {self.classes} classes, got {classes}"
            )
        if lengths.size != logprobs.shape[0] or np.any(lengths < 0) or np.any(lengths > frames):
            raise BadRequest(f"{self.length_name} must be between 0 and {frames} per item")
        if np.any(np.isnan(logprobs) | np.isposinf(logprobs)):  # -inf: probability 0
            raise BadRequest(f"{self.logprobs_name} contains NaN or +inf values")
        return logprobs, lengths, boosted_words(request.parameters(), self.search)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                logprobs, lengths, boosts = self._checked(request)
            except BadRequest as error:
                responses.append(refusal(self.model_name, str(error)))
                continue
            texts = [
                self.search.decode(item[: int(n)], boosts).encode("utf-8")
                for item, n in zip(logprobs, lengths)
            ]
            transcript = np.array(texts, dtype=np.object_).reshape(-1, 1)
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, transcript)])
            )
        return responses
