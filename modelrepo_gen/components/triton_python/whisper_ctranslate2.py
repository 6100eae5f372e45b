"""Triton python-backend model: audio -> token ids by Whisper in CTranslate2.

The onnxruntime generator's model (whisper_greedy.py) with another decoder: it calls the
features model for each window's log-mel, then CTranslate2's Whisper (the model files beside
this one) encodes and decodes a batch of windows in one call, with the same suppressed tokens
and the same answers (TOKENS, TOKEN_COUNT, LANGUAGE). Requests are checked and windows cut
exactly as there.
Windows follow each other as there: decoded with timestamps, each starts where the last complete
segment of the one before ended (CTranslate2 applies Whisper's timestamp rules itself when the
prompt does not end with the no-timestamps token).
Decoding is by beam search, `beam_size` beams (1: greedy). A multilingual model's prompt names
the language and the task (transcribe, or translate into English); where the language is not
set it is detected on each recording's first window, and every window of the recording is
decoded in it. A request may choose its own: parameters `beam_size` (whole, 1 to
max_beam_size), `language` (a code of the model's, or `auto`: detect) and `task`; an
English-only model takes en and transcribe only. Windows decoded with the same choices are
decoded together.
Settings from config.pbtxt `parameters`, beside whisper_greedy.py's:
  compute_type       CTranslate2's compute type (float32, int8, float16)
  device             cpu or cuda
  threads            threads of one decoding call; 0: one per core
  max_batch_windows  windows decoded together
  beam_size          beams per window unless a request says otherwise
  max_beam_size      the most beams a request may ask for
  length_penalty     a hypothesis' score is divided by its length to this power
  languages, tasks   JSON {code: token id}, {task: token id}: a multilingual model's (else {})
  start              the start-of-transcript token id
  language, task     the build's choices (language "": detect)
"""

import json
import os
from pathlib import Path

import numpy as np

try:  # beside model.py in a repository
    from model_kernel import BadRequest, model_settings, numeric_parameters
    from whisper_fallback import Decoded
    from whisper_greedy import TritonPythonModel as GreedyModel
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import (
        BadRequest,
        model_settings,
        numeric_parameters,
    )
    from modelrepo_gen.components.triton_python.whisper_fallback import Decoded
    from modelrepo_gen.components.triton_python.whisper_greedy import (
        TritonPythonModel as GreedyModel,
    )


AUTO = "auto"  # the language parameter's value for "detect it"
PARAMETERS = ("beam_size", "language", "task")  # what a request may choose


class TritonPythonModel(GreedyModel):
    def initialize(self, args):
        import ctranslate2

        super().initialize(args)
        _, params = model_settings(args)
        self.ctranslate2 = ctranslate2
        threads = int(params["threads"]) or os.cpu_count() or 1
        self.batch_windows = int(params["max_batch_windows"])
        self.beam_size = int(params["beam_size"])
        self.max_beam_size = int(params["max_beam_size"])
        self.length_penalty = float(params["length_penalty"])
        self.languages = json.loads(params["languages"])
        self.tasks = json.loads(params["tasks"])
        self.start = int(params["start"])
        self.language = params["language"] or AUTO
        self.task = params["task"]
        self.whisper = ctranslate2.models.Whisper(
            str(Path(args["model_repository"]) / args["model_version"]),
            device=params["device"],
            compute_type=params["compute_type"],
            intra_threads=threads,
        )

    def _windows_per_batch(self):
        return self.batch_windows

    def _options(self, request):
        raw = json.loads(request.parameters() or "{}")
        unknown = sorted(set(raw) - set(PARAMETERS))
        if unknown:
            raise BadRequest(
                f"unknown request parameter '{unknown[0]}' (this model takes: "
                f"{', '.join(PARAMETERS)})"
            )
        numbers = {name: raw[name] for name in raw if name == "beam_size"}
        beam_size = numeric_parameters(json.dumps(numbers), {"beam_size": [1, self.max_beam_size]})
        beam_size = beam_size.get("beam_size", self.beam_size)
        if beam_size != int(beam_size):
            raise BadRequest(
                f"request parameter 'beam_size' must be a whole number, got {beam_size:g}"
            )
        language, task = raw.get("language", self.language), raw.get("task", self.task)
        for name, value in (("language", language), ("task", task)):
            if not isinstance(value, str):
                raise BadRequest(f"request parameter '{name}' must be text, got {value!r}")
        if not self.languages:
            if language not in (AUTO, "en"):
                raise BadRequest(
                    "this Whisper model is English-only: request parameter 'language' must be "
                    f"en, got {language!r}"
                )
            if task != "transcribe":
                raise BadRequest(
                    "this Whisper model is English-only: it cannot translate (request parameter "
                    f"'task' must be transcribe, got {task!r})"
                )
            language = "en"
        elif language != AUTO and language not in self.languages:
            raise BadRequest(
                "request parameter 'language' must be auto or a language code of this model "
                f"(such as {', '.join(sorted(self.languages)[:5])}), got {language!r}"
            )
        elif task not in self.tasks:
            raise BadRequest(
                f"request parameter 'task' must be {' or '.join(sorted(self.tasks))}, got {task!r}"
            )
        return {"beam_size": int(beam_size), "language": language, "task": task}

    def _generate(self, clips, options):
        """As the greedy model's, once every clip's language is settled: each one left to
        detect gets the language CTranslate2 detects on its first window."""
        open_ = [i for i, chosen in enumerate(options) if chosen["language"] == AUTO]
        for start in range(0, len(open_), self.batch_windows):
            rows = open_[start : start + self.batch_windows]
            features = self._window_features([clips[i][: self.window] for i in rows])
            found = self.whisper.detect_language(self._storage(features))
            for i, ranked in zip(rows, found):
                options[i]["language"] = ranked[0][0].strip("<|>")
        return super()._generate(clips, options)

    def _transcript_start(self, options):
        """A multilingual model's names the window's language and task."""
        if not self.languages:
            return super()._transcript_start(options)
        language, task = self.languages[options["language"]], self.tasks[options["task"]]
        return [self.start, language, task, self.no_timestamps]

    def _storage(self, features):
        return self.ctranslate2.StorageView.from_array(
            np.ascontiguousarray(features, dtype=np.float32)
        )

    def _decode_windows(self, windows, options, temperature):
        """A Decoded per window, by CTranslate2 in one call: beam search at temperature 0,
        above it the likeliest of best_of samples."""
        features = self._window_features(windows)
        prompt = self._prompt(options)
        common = {
            "length_penalty": self.length_penalty,
            "max_length": self.max_length,
            "suppress_tokens": list(self.suppress),
            "suppress_blank": bool(self.begin_suppress),
            "return_scores": True,
            "return_no_speech_prob": True,
        }
        if temperature == 0:
            search = {"beam_size": options["beam_size"]}
        else:  # CTranslate2 samples with its own generator: not reproducible call to call
            search = {
                "beam_size": 1,
                "num_hypotheses": self.best_of,
                "sampling_topk": 0,  # the whole distribution
                "sampling_temperature": temperature,
            }
        results = self.whisper.generate(
            self._storage(features), [prompt] * len(windows), **common, **search
        )
        return [self._decoded(result) for result in results]

    def _decoded(self, result):
        ids = [t for t in result.sequences_ids[0] if t != self.eos]
        # CTranslate2's score is the log-probability over the length to the length penalty.
        total = result.scores[0] * len(ids) ** self.length_penalty
        return Decoded(ids, total / (len(ids) + 1), result.no_speech_prob)
