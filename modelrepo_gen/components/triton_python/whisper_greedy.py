"""Triton python-backend model: audio -> token ids by greedy Whisper decoding.

It calls three models of the repository by name (Triton's business-logic scripting): the
features model (audio window -> log-mel), the encoder (log-mel -> cross-attention cache, once
per window) and the decoder (tokens + caches -> next-token logits + grown cache, once per
token). Audio longer than one window is cut into consecutive windows; each window is decoded
from the prompt. The windows of every request in one execution are decoded in batches of at
most the decoder's max_batch_size, one batch after another (features, encoder, every token),
so only one batch's caches are held. Out go each request's token ids, the prompt left out and
every window ended by the end-of-text id (TOKENS, padded with it), how many there are
(TOKEN_COUNT), for the detokenizer model to turn into text, and the language decoded (LANGUAGE:
en, this model's prompt).
Settings come from the `parameters` of config.pbtxt:
  calls           JSON {slot: {"model": name, "max_batch_size": n, ...}} for features, encoder,
                  decoder (model_calls.py)
  prompt          JSON token ids every window starts from
  eos             end-of-text token id
  suppress        JSON token ids never generated
  begin_suppress  JSON token ids not generated at the first free step
  max_length      most tokens of a window, the prompt included
  window_samples  samples per window (30 s)
  max_samples     longest audio accepted
  max_amplitude   largest sample size accepted (float PCM: 1.0 is full scale)
"""

import json

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_calls import ModelCalls
    from model_kernel import BadRequest, fault, model_settings, numeric_parameters, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_calls import ModelCalls
    from modelrepo_gen.components.triton_python.model_kernel import (
        BadRequest,
        fault,
        model_settings,
        numeric_parameters,
        refusal,
    )


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


def split_windows(clip: np.ndarray, window: int) -> list[np.ndarray]:
    """Consecutive windows of at most `window` samples covering the clip."""
    return [clip[start : start + window] for start in range(0, len(clip), window)]


def greedy(cross, decode, prompt, eos, suppress, begin_suppress, max_length) -> list[list[int]]:
    """Generated tokens per row of `cross` (the prompt and end-of-text left out).

    decode(tokens [B, S] int64, past, cross) -> (logits [B, V], present); rows that finished
    leave the batch, so the calls shrink as windows end.
    """
    rows = cross.shape[0]
    layers, pair, heads, _, dim = cross.shape[1:]
    generated: list[list[int]] = [[] for _ in range(rows)]
    active = np.arange(rows)
    tokens = np.tile(np.asarray(prompt, dtype=np.int64), (rows, 1))
    past = np.zeros((rows, layers, pair, heads, 0, dim), dtype=np.float32)
    length = len(prompt)
    while len(active) and length < max_length:
        logits, past = decode(tokens, past, cross)
        logits = np.array(logits, dtype=np.float32)
        logits[:, suppress] = -np.inf
        if length == len(prompt):
            logits[:, begin_suppress] = -np.inf
        chosen = np.argmax(logits, axis=1)
        length += 1
        going = chosen != eos
        for row, token in zip(active[going], chosen[going]):
            generated[row].append(int(token))
        active, past, cross = active[going], past[going], cross[going]
        tokens = chosen[going].astype(np.int64).reshape(-1, 1)
    return generated


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
        self.suppress = json.loads(params["suppress"])
        self.begin_suppress = json.loads(params["begin_suppress"])
        self.max_length = int(params["max_length"])
        self.window = int(params["window_samples"])
        self.max_samples = int(params["max_samples"])
        self.max_amplitude = float(params["max_amplitude"])

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
        """Token ids per clip: its windows decoded together with every other clip's that has
        the same decoding `options` (one dict per clip), one decoder batch of windows at a time
        (features, encoder, then every token), so the caches of only that batch are held."""
        groups = {}  # options -> (windows, their clips)
        for owner, (clip, chosen) in enumerate(zip(clips, options)):
            windows, owners = groups.setdefault(tuple(sorted(chosen.items())), ([], []))
            for window in split_windows(clip, self.window):
                windows.append(window)
                owners.append(owner)
        ids = [[] for _ in clips]
        step = self._windows_per_batch()
        for chosen, (windows, owners) in groups.items():
            for start in range(0, len(windows), step):
                decoded = self._decode_windows(windows[start : start + step], dict(chosen))
                for owner, window_ids in zip(owners[start : start + step], decoded):
                    ids[owner] += [*window_ids, self.eos]  # end-of-text closes each window
        return ids

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

    def _decode_windows(self, windows, options):
        features = self._window_features(windows)
        (cross,) = self._call("encoder", {"FEATURES": features}, ["CROSS_KV"])
        return greedy(
            cross,
            self._decode,
            self.prompt,
            self.eos,
            self.suppress,
            self.begin_suppress,
            self.max_length,
        )

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
            ids = self._generate([clip for _, clips, _ in accepted for clip in clips], chosen)
        except Exception as exc:  # a failed call must answer every request, not crash the stub
            for index, _, _ in accepted:
                responses[index] = fault(self.model_name, f"transcription failed: {exc}")
            return responses
        start = 0
        for index, clips, _ in accepted:
            rows = ids[start : start + len(clips)]
            used = chosen[start : start + len(clips)]
            start += len(clips)
            width = max(len(row) for row in rows)
            tokens = np.full((len(rows), width), self.eos, dtype=np.int32)
            for out, row in zip(tokens, rows):
                out[: len(row)] = row
            counts = np.array([[len(row)] for row in rows], dtype=np.int32)
            languages = [[o.get("language", ENGLISH).encode()] for o in used]
            responses[index] = pb_utils.InferenceResponse(
                [
                    pb_utils.Tensor("TOKENS", tokens),
                    pb_utils.Tensor("TOKEN_COUNT", counts),
                    pb_utils.Tensor("LANGUAGE", np.array(languages, dtype=np.object_)),
                ]
            )
        return responses

    def finalize(self):
        self.calls.finalize()
