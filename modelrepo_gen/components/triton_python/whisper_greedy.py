"""Triton python-backend model: audio -> token ids by greedy Whisper decoding.

It calls three models of the repository by name (Triton's business-logic scripting): the
features model (audio window -> log-mel), the encoder (log-mel -> cross-attention cache, once
per window) and the decoder (tokens + caches -> next-token logits + grown cache, once per
token). Audio is decoded window after window. Decoded with timestamps (`timestamps`: always, or
long_audio for a recording longer than one window), a window's timestamp tokens cut it into
segments and the next window starts where its last complete segment ended (the seek of Whisper's
own transcribe, whisper_timestamps.py); without, windows are consecutive 30 s cuts, one segment
each. The current windows of every request in one execution are decoded in batches of at most
the decoder's max_batch_size, one batch after another (features, encoder, every token), so only
one batch's caches are held. Out go each request's text token ids, every segment ended by the
end-of-text id (TOKENS, padded with it), how many there are (TOKEN_COUNT), each segment's start
and end in seconds (SEGMENT_TIMES, start, end, start, ...), for the detokenizer model to turn
into text, and the language decoded (LANGUAGE: en, this model's prompt).
Settings come from the `parameters` of config.pbtxt:
  calls            JSON {slot: {"model": name, "max_batch_size": n, ...}} for features, encoder,
                   decoder (model_calls.py)
  prompt           JSON token ids every window starts from (the last: no-timestamps, left out
                   when decoding with timestamps)
  eos              end-of-text token id
  no_timestamps    the no-timestamps token id
  timestamp_begin  the first timestamp token id
  timestamps       always | long_audio | never: which recordings are decoded with timestamps
  suppress         JSON token ids never generated
  begin_suppress   JSON token ids not generated at the first free step
  max_length       most tokens of a window, the prompt included
  window_samples   samples per window (30 s)
  sample_rate      samples per second
  max_samples      longest audio accepted
  max_amplitude    largest sample size accepted (float PCM: 1.0 is full scale)
  temperatures     JSON temperatures tried in turn (Whisper's temperature fallback:
                   whisper_fallback.py); best_of  samples per window above temperature 0
  compression_ratio_threshold, logprob_threshold, no_speech_threshold  the fallback's
                   thresholds ("": not checked)
  no_speech        the no-speech token id ("": the model has none)
  tokenizer        tokenizer.json beside model.py (the fallback measures a window's text)
  condition_on_previous_text  true: each window's prompt starts with the text decoded so far
                   (<|startofprev|>, then its last max_length / 2 - 1 tokens); false: not
  start_of_previous  the <|startofprev|> token id
"""

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_calls import ModelCalls
    from model_kernel import BadRequest, fault, model_settings, numeric_parameters, refusal
    from whisper_fallback import Decoded, FallbackRules
    from whisper_timestamps import apply_timestamp_rules, window_segments
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_calls import ModelCalls
    from modelrepo_gen.components.triton_python.model_kernel import (
        BadRequest,
        fault,
        model_settings,
        numeric_parameters,
        refusal,
    )
    from modelrepo_gen.components.triton_python.whisper_fallback import Decoded, FallbackRules
    from modelrepo_gen.components.triton_python.whisper_timestamps import (
        apply_timestamp_rules,
        window_segments,
    )


# The fallback's thresholds, in FallbackRules' order, as parameters ("": not checked).
THRESHOLDS = ("compression_ratio_threshold", "logprob_threshold", "no_speech_threshold")
# Above this temperature a window's text does not condition the next one (Whisper's rule).
MAX_CONDITIONED_TEMPERATURE = 0.5
# The language of the greedy prompt (English-only, or English on a multilingual model).
ENGLISH = "en"


def find_problem(
    audio: np.ndarray, lengths: np.ndarray, max_samples: int, max_amplitude: float
) -> str | None:
    """The first reason this request cannot be transcribed, or None."""
    if audio.ndim != 2 or audio.size == 0:
        return "AUDIO_SIGNAL is empty"
    if audio.shape[1] > max_samples:
        return (
            f"AUDIO_SIGNAL is {audio.shape[1]} samples long, more than the maximum of {max_samples}"
        )
    if not np.all(np.isfinite(audio)):
        return "AUDIO_SIGNAL contains NaN or infinite values"
    peak = float(np.abs(audio).max())
    if peak > max_amplitude:  # its features would overflow to NaN
        return (
            f"AUDIO_SIGNAL must hold values from {-max_amplitude:g} to {max_amplitude:g}, "
            f"got a sample of size {peak:g}"
        )
    values = lengths.reshape(-1)
    if values.size != audio.shape[0]:
        return "NUM_SAMPLES must hold one length per item of AUDIO_SIGNAL"
    if np.any(values < 1) or np.any(values > audio.shape[1]):
        return (
            f"NUM_SAMPLES must be between 1 and {audio.shape[1]} (the length of AUDIO_SIGNAL), "
            f"got {values.tolist()}"
        )
    return None


@dataclass
class TokenRules:
    """What decoding a window obeys besides the weights."""

    eos: int
    suppress: list  # never generated
    begin_suppress: list  # not generated at the first free step
    max_length: int  # most tokens, the prompt included
    timestamps: tuple | None = None  # (first timestamp id, no-timestamps id): Whisper's rules
    no_speech: int | None = None  # the no-speech token, its probability read after the start


def decode_tokens(cross, decode, prompt, rules, temperature=0.0, rngs=None, start_at=0) -> list:
    """A Decoded per row of `cross` (whisper_fallback.py): the tokens after the prompt,
    end-of-text left out, greedy at temperature 0, else sampled from the softmax of the logits
    over `temperature` with each row's own random generator (`rngs`).

    decode(tokens [B, S] int64, past, cross) -> (logits [B, V], present); rows that finished
    leave the batch, so the calls shrink as windows end. `start_at`: where the start of
    transcript lies in the prompt (after the previous window's text, if any).
    """
    rows = cross.shape[0]
    layers, pair, heads, _, dim = cross.shape[1:]
    generated: list[list[int]] = [[] for _ in range(rows)]
    logprob_sums = np.zeros(rows)
    no_speech = [None] * rows
    active = np.arange(rows)
    tokens = np.tile(np.asarray(prompt, dtype=np.int64), (rows, 1))
    past = np.zeros((rows, layers, pair, heads, 0, dim), dtype=np.float32)
    length = len(prompt)
    if rules.no_speech is not None:  # up to the start first: its logits say "no speech"
        logits, past = decode(tokens[:, : start_at + 1], past, cross)
        for row, probs in enumerate(softmax(np.asarray(logits, dtype=np.float32))):
            no_speech[row] = float(probs[rules.no_speech])
        tokens = tokens[:, start_at + 1 :]
        if not tokens.shape[1]:  # the prompt is the start alone: these logits are the first
            tokens = None
    while len(active) and length < rules.max_length:
        if tokens is not None:
            logits, past = decode(tokens, past, cross)
        logits = np.array(logits, dtype=np.float32)
        first = length == len(prompt)
        logits[:, rules.suppress] = -np.inf
        if first:
            logits[:, rules.begin_suppress] = -np.inf
        if rules.timestamps:
            so_far = [generated[row] for row in active]
            begin, no_timestamps = rules.timestamps
            apply_timestamp_rules(logits, so_far, first, begin, rules.eos, no_timestamps)
        if temperature > 0:
            chosen = np.array([sample(row, temperature, rngs[r]) for r, row in zip(active, logits)])
        else:
            chosen = np.argmax(logits, axis=1)
        with np.errstate(divide="ignore"):
            logprob_sums[active] += np.log(softmax(logits)[np.arange(len(active)), chosen])
        length += 1
        going = chosen != rules.eos
        for row, token in zip(active[going], chosen[going]):
            generated[row].append(int(token))
        active, past, cross = active[going], past[going], cross[going]
        tokens = chosen[going].astype(np.int64).reshape(-1, 1)
    return [
        Decoded(ids, float(total) / (len(ids) + 1), speech)
        for ids, total, speech in zip(generated, logprob_sums, no_speech)
    ]


def seed(window: np.ndarray, temperature: float) -> int:
    """A random seed of the window's audio and the temperature."""
    return zlib.crc32(np.ascontiguousarray(window).tobytes()) ^ int(temperature * 1000)


def optional_number(text: str):
    return float(text) if text else None


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sample(logits: np.ndarray, temperature: float, rng) -> int:
    """One token drawn from the softmax of `logits` / `temperature` (masked ones never)."""
    probs = softmax(logits / temperature)
    return int(min(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum()), len(probs) - 1))


def languages(options) -> np.ndarray:
    """LANGUAGE [clips, 1]: the language each clip was decoded in."""
    return np.array([[o.get("language", ENGLISH).encode()] for o in options], dtype=np.object_)


def one_array(parts: list) -> np.ndarray:
    """The parts of a call's output as one array (no copy of a single part: the decoder's cache
    comes back at every token)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        self.model_name = config["name"]
        self.calls = ModelCalls(json.loads(params["calls"]), args, pb_utils)
        self.prompt = json.loads(params["prompt"])
        self.eos = int(params["eos"])
        self.no_timestamps = int(params["no_timestamps"])
        self.timestamp_begin = int(params["timestamp_begin"])
        self.timestamps = params["timestamps"]
        self.sample_rate = int(params["sample_rate"])
        self.suppress = json.loads(params["suppress"])
        self.begin_suppress = json.loads(params["begin_suppress"])
        self.max_length = int(params["max_length"])
        self.window = int(params["window_samples"])
        self.max_samples = int(params["max_samples"])
        self.max_amplitude = float(params["max_amplitude"])
        self.no_speech = int(params["no_speech"]) if params["no_speech"] else None
        self.condition_on_previous_text = params["condition_on_previous_text"] == "true"
        self.start_of_previous = int(params["start_of_previous"] or -1)
        self.max_previous = self.max_length // 2 - 1  # Whisper's: half the decoder's positions
        self.best_of = int(params["best_of"])
        self.fallback = FallbackRules(
            tuple(json.loads(params["temperatures"])),
            *(optional_number(params[name]) for name in THRESHOLDS),
        )
        from tokenizers import Tokenizer

        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = Tokenizer.from_file(str(folder / params["tokenizer"]))

    def _call(self, slot, inputs, outputs):
        """Run the model bound to `slot` on row-aligned inputs, max_batch_size rows at a time."""
        parts = self.calls.call(slot, inputs, outputs, self.calls.max_batch_size(slot))
        return [one_array(parts[name]) for name in outputs]

    def _decode(self, tokens, past, cross):
        logits, present = self._call(
            "decoder",
            {"TOKENS": tokens, "PAST_KV": past, "CROSS_KV": cross},
            ["LOGITS", "PRESENT_KV"],
        )
        return logits, present

    def _generate(self, clips, options):
        """Segments per clip, each (start, end, text ids) in samples: window after window, every
        clip's current window decoded together with every other clip's that has the same
        decoding `options` (one dict per clip), one decoder batch of windows at a time
        (features, encoder, then every token), so the caches of only that batch are held."""
        for clip, chosen in zip(clips, options):
            long_audio = len(clip) > self.window
            chosen["timestamps"] = self.timestamps == "always" or (
                self.timestamps == "long_audio" and long_audio
            )
        seeks = [0] * len(clips)
        segments = [[] for _ in clips]
        previous = [[] for _ in clips]  # text tokens so far, when conditioning on them
        step = self._windows_per_batch()
        pending = list(range(len(clips)))
        while pending:
            groups = {}  # options -> the clips decoding with them
            for owner in pending:
                if self.condition_on_previous_text:  # each clip its own prompt, then
                    options[owner]["previous"] = tuple(previous[owner][-self.max_previous :])
                groups.setdefault(tuple(sorted(options[owner].items())), []).append(owner)
            for chosen, owners in groups.items():
                for start in range(0, len(owners), step):
                    batch = owners[start : start + step]
                    windows = [clips[o][seeks[o] : seeks[o] + self.window] for o in batch]
                    decoded = self._decode_with_fallback(windows, dict(chosen))
                    stamps = self.timestamp_begin if dict(chosen)["timestamps"] else None
                    for owner, window, result in zip(batch, windows, decoded):
                        if self.fallback.is_silent(result):  # skipped whole, as Whisper does
                            found, advance = [], len(window)
                        else:  # unstamped, a sampled timestamp is no text (Whisper's decode)
                            ids = result.ids
                            if stamps is None:
                                ids = [t for t in ids if t < self.timestamp_begin]
                            found, advance = window_segments(ids, stamps, len(window))
                        at = seeks[owner]
                        segments[owner] += [(at + s, at + e, text) for s, e, text in found]
                        seeks[owner] += advance
                        if result.temperature > MAX_CONDITIONED_TEMPERATURE:
                            previous[owner] = []  # a shaky window is no context (as Whisper)
                        else:
                            previous[owner] += [t for *_, text in found for t in text]
            pending = [o for o in pending if seeks[o] < len(clips[o])]
        return segments

    def _decode_with_fallback(self, windows, options):
        """A Decoded per window: at the first temperature, then each window whose decoding
        looks wrong again at the next one, and so on (Whisper's temperature fallback)."""
        temperatures = self.fallback.temperatures
        results = self._decode_windows(windows, options, temperatures[0])
        for temperature in temperatures[1:]:
            redo = [
                i
                for i, result in enumerate(results)
                if self.fallback.needs_fallback(result, self._text(result.ids))
            ]
            if not redo:
                break
            again = self._decode_windows([windows[i] for i in redo], options, temperature)
            for i, result in zip(redo, again):
                result.temperature = temperature
                results[i] = result
        return results

    def _previous(self, options):
        """The previous window's text to condition on: <|startofprev|> and its tokens (the
        last MAX_PREVIOUS of them), or nothing."""
        previous = list(options.get("previous", ()))
        return [self.start_of_previous, *previous] if previous else []

    def _prompt(self, options):
        """A window's whole prompt: the previous text, if any, then the start of transcript
        sequence, without its last token (no-timestamps) when decoding with timestamps."""
        prompt = self._transcript_start(options)
        return self._previous(options) + (prompt[:-1] if options["timestamps"] else prompt)

    def _transcript_start(self, options):
        """The start of transcript sequence, ending with no-timestamps: the build's prompt."""
        return list(self.prompt)

    def _text(self, ids):
        words = [token for token in ids if token < self.timestamp_begin]
        return self.tokenizer.decode(words, skip_special_tokens=True).strip()

    def _options(self, request):
        """The request's decoding options from its parameters: greedy decoding takes none
        (BadRequest names any it is sent)."""
        numeric_parameters(request.parameters(), {})
        return {}

    def _windows_per_batch(self):
        return self.calls.max_batch_size("decoder")

    def _window_features(self, windows):
        """The log-mel features of the windows, one row each, by the features model."""
        audio = np.zeros((len(windows), max(len(w) for w in windows)), dtype=np.float32)
        for row, window in zip(audio, windows):
            row[: len(window)] = window
        lengths = np.array([[len(w)] for w in windows], dtype=np.int32)
        (features,) = self._call(
            "features", {"AUDIO_SIGNAL": audio, "NUM_SAMPLES": lengths}, ["FEATURES"]
        )
        return features

    def _decode_windows(self, windows, options, temperature):
        """A Decoded per window: greedy at temperature 0, else the likeliest of best_of
        samples, each drawn with a generator seeded by the window's audio (the same request
        gets the same answer, alone or batched with others)."""
        features = self._window_features(windows)
        (cross,) = self._call("encoder", {"FEATURES": features}, ["CROSS_KV"])
        stamped = options["timestamps"]
        rules = TokenRules(
            self.eos,
            self.suppress,
            self.begin_suppress,
            self.max_length,
            (self.timestamp_begin, self.no_timestamps) if stamped else None,
            self.no_speech,
        )
        prompt, start_at = self._prompt(options), len(self._previous(options))
        if temperature == 0:
            return decode_tokens(cross, self._decode, prompt, rules, start_at=start_at)
        tries = self.best_of
        rngs = [
            np.random.default_rng([seed(window, temperature), k])
            for window in windows
            for k in range(tries)
        ]
        samples = decode_tokens(
            np.repeat(cross, tries, axis=0),
            self._decode,
            prompt,
            rules,
            temperature,
            rngs,
            start_at=start_at,
        )
        return [
            max(samples[i * tries : (i + 1) * tries], key=lambda d: d.avg_logprob)
            for i in range(len(windows))
        ]

    def execute(self, requests):
        responses = [None] * len(requests)
        accepted = []  # (request index, clips)
        for index, request in enumerate(requests):
            audio = pb_utils.get_input_tensor_by_name(request, "AUDIO_SIGNAL").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "NUM_SAMPLES").as_numpy()
            problem = find_problem(audio, lengths, self.max_samples, self.max_amplitude)
            try:
                options = self._options(request)
            except BadRequest as bad:
                problem = problem or str(bad)
            if problem:
                responses[index] = refusal(self.model_name, problem)
            else:
                clips = [row[: int(n)] for row, n in zip(audio, lengths.reshape(-1))]
                accepted.append((index, clips, options))
        if not accepted:
            return responses
        # Each clip's own options: a generator may settle what a request left open (its language).
        chosen = [dict(options) for _, clips, options in accepted for _ in clips]
        try:
            segments = self._generate([clip for _, clips, _ in accepted for clip in clips], chosen)
        except Exception as exc:  # a failed call must answer every request, not crash the stub
            for index, _, _ in accepted:
                responses[index] = fault(self.model_name, f"transcription failed: {exc}")
            return responses
        start = 0
        for index, clips, _ in accepted:
            found = segments[start : start + len(clips)]
            used = chosen[start : start + len(clips)]
            start += len(clips)
            responses[index] = pb_utils.InferenceResponse(
                [
                    *(pb_utils.Tensor(name, array) for name, array in self._answer(found)),
                    pb_utils.Tensor("LANGUAGE", languages(used)),
                ]
            )
        return responses

    def _answer(self, segments):
        """TOKENS, TOKEN_COUNT and SEGMENT_TIMES of clips' segments (one list per clip)."""
        rows = [[token for *_, text in found for token in (*text, self.eos)] for found in segments]
        tokens = np.full((len(rows), max(1, *map(len, rows))), self.eos, dtype=np.int32)
        for out, row in zip(tokens, rows):
            out[: len(row)] = row
        counts = np.array([[len(row)] for row in rows], dtype=np.int32)
        times = np.zeros((len(rows), max(1, *(2 * len(found) for found in segments))), np.float32)
        for out, found in zip(times, segments):
            spans = [
                sample / self.sample_rate for begin, end, _ in found for sample in (begin, end)
            ]
            out[: len(spans)] = spans
        return [("TOKENS", tokens), ("TOKEN_COUNT", counts), ("SEGMENT_TIMES", times)]

    def finalize(self):
        self.calls.finalize()
