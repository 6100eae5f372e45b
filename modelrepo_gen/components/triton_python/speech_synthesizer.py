"""Triton python-backend model: symbol ids per sentence -> one clip of speech.

Inputs SYMBOL_IDS (INT64 [-1], each text's sentences one after another) and SENTENCE_LENGTHS
(INT32 [-1], ids per sentence; 0 pads). Every sentence of every request in one execution is
spoken by the models this one calls by name (Triton's business-logic scripting), in chunks of
at most the called models' max_batch_size, then each text's sentences are joined with a short
silence. Two chains, chosen by `chain`:
- `voice`: one model, SYMBOL_IDS + SYMBOL_COUNT -> AUDIO + AUDIO_LENGTH (a Piper voice);
- `acoustic_vocoder`: an acoustic model, SYMBOL_IDS + SYMBOL_COUNT (+ PACE) -> MEL + MEL_LENGTH
  (+ STOPPED), then a vocoder, MEL + MEL_LENGTH (+ NOISE) -> AUDIO + AUDIO_LENGTH.
A vocoder that takes NOISE (WaveGlow) gets standard normal noise times `noise_sigma`, one value
per audio sample (MEL_LENGTH * hop_length, zeros past it), drawn here from a numpy Generator
seeded with `noise_seed` afresh for every text, sentence after sentence: a text gets the same
audio however requests are batched, and an in-process run with the same seed gets it too.
Out go AUDIO (FP32 [-1], zero padded), AUDIO_LENGTH (INT32 [1]) and TRUNCATED (BOOL [1]: some
sentence reached the acoustic model's step limit before its stop gate fired).
A request may carry the Triton request parameters named in `request_parameters`, each a number
within its range (checked here: a called model's refusal would reach the client as a fault):
`pace` replaces the configured PACE; any other is passed on to the voice or acoustic model as
a parameter of its request (e.g. a Piper voice's noise_scale). Requests with different
parameters are spoken in separate calls.
Settings from config.pbtxt `parameters`:
  calls            JSON {slot: {"model": name, "max_batch_size": n, ...}} (model_calls.py)
  chain            voice | acoustic_vocoder
  silence_samples  zeros between two sentences
  hop_length       audio samples per mel frame (acoustic_vocoder)
  pace             PACE sent to the acoustic model ("": it takes none)
  reports_stop     "true": the acoustic model gives STOPPED
  noise_sigma      NOISE for the vocoder ("": it takes none)
  noise_seed       seed of each request's noise
  num_symbols      ids the called voice or acoustic model takes, 0..num_symbols-1 ("": any)
  max_symbols      ids of one sentence it takes ("": any)
  request_parameters  JSON {name: [low, high]} a request may set
"""

import json

import numpy as np

PACE = "pace"  # the one request parameter the synthesizer uses itself

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    import model_kernel as kernel
    from model_calls import ModelCalls
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python import model_kernel as kernel
    from modelrepo_gen.components.triton_python.model_calls import ModelCalls


def split_sentences(ids: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """One text's sentences from its packed ids and per-sentence lengths (0 = padding)."""
    sentences, start = [], 0
    for length in lengths.reshape(-1):
        if length > 0:
            sentences.append(ids[start : start + int(length)])
            start += int(length)
    return sentences


def find_problem(
    ids: np.ndarray,
    lengths: np.ndarray,
    num_symbols: int | None = None,
    max_symbols: int | None = None,
) -> str | None:
    """The first reason these rows cannot be spoken, or None."""
    if ids.ndim != 2 or lengths.ndim != 2 or ids.shape[0] != lengths.shape[0]:
        return "SYMBOL_IDS and SENTENCE_LENGTHS must have one row per text"
    if np.any(lengths < 0):
        return "SENTENCE_LENGTHS must not be negative"
    totals = lengths.sum(axis=1)
    if np.any(totals < 1) or np.any(totals > ids.shape[1]):
        return (
            f"SENTENCE_LENGTHS must add up to between 1 and {ids.shape[1]} (the length of "
            f"SYMBOL_IDS) per text, got {totals.tolist()}"
        )
    if num_symbols is not None and (ids.min() < 0 or ids.max() >= num_symbols):
        return (
            f"SYMBOL_IDS must hold values from 0 to {num_symbols - 1}, got {ids.min()}..{ids.max()}"
        )
    if max_symbols is not None and lengths.max() > max_symbols:
        return f"SENTENCE_LENGTHS must be at most {max_symbols}, got {lengths.max()}"
    return None


def padded(rows: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Rows padded with zeros into one array, and their lengths as [n, 1] int32."""
    out = np.zeros((len(rows), max(len(r) for r in rows)), dtype=dtype)
    for target, row in zip(out, rows):
        target[: len(row)] = row
    return out, np.array([[len(r)] for r in rows], dtype=np.int32)


def vocoder_noise(
    mel_lengths: np.ndarray, width: int, generators: list, sigma: float, hop: int
) -> np.ndarray:
    """NOISE for one vocoder call: row i holds mel_lengths[i] * hop draws from generators[i]
    times sigma, then zeros up to width * hop."""
    noise = np.zeros((len(generators), width * hop), dtype=np.float32)
    for row, n, generator in zip(noise, mel_lengths.reshape(-1), generators):
        row[: int(n) * hop] = generator.standard_normal(int(n) * hop, dtype=np.float32) * sigma
    return noise


def speak_chunk(call, chain: dict, sentences: list[np.ndarray], generators: list):
    """Audio of each sentence of one chunk, and whether each stopped on its own.

    call(slot, inputs {name: array}, output names) -> output arrays, one row per sentence.
    """
    ids, counts = padded(sentences, np.int64)
    inputs = {"SYMBOL_IDS": ids, "SYMBOL_COUNT": counts}
    stopped = np.ones(len(sentences), dtype=bool)
    if chain["chain"] == "voice":
        audio, audio_lengths = call("voice", inputs, ["AUDIO", "AUDIO_LENGTH"])
    else:
        if chain["pace"] is not None:
            inputs["PACE"] = np.full((len(sentences), 1), chain["pace"], dtype=np.float32)
        wanted = ["MEL", "MEL_LENGTH"] + (["STOPPED"] if chain["reports_stop"] else [])
        outputs = call("acoustic", inputs, wanted)
        mel, mel_lengths = outputs[0], outputs[1]
        if chain["reports_stop"]:
            stopped = outputs[2].reshape(-1).astype(bool)
        vocoder_inputs = {"MEL": mel, "MEL_LENGTH": mel_lengths}
        if chain["noise_sigma"] is not None:
            vocoder_inputs["NOISE"] = vocoder_noise(
                mel_lengths, mel.shape[-1], generators, chain["noise_sigma"], chain["hop_length"]
            )
        audio, audio_lengths = call("vocoder", vocoder_inputs, ["AUDIO", "AUDIO_LENGTH"])
    clips = [row[: int(n)] for row, n in zip(audio, audio_lengths.reshape(-1))]
    return clips, stopped


def synthesize(call, chain: dict, texts: list[list[np.ndarray]], chunk: int):
    """Each text's audio (its sentences joined with silence) and whether it was truncated.

    Sentences of all texts are spoken together, `chunk` at a time; each text draws its noise
    from its own Generator seeded with chain["noise_seed"], in sentence order.
    """
    owners = [t for t, sentences in enumerate(texts) for _ in sentences]
    flat = [s for sentences in texts for s in sentences]
    generators = [np.random.default_rng(chain["noise_seed"]) for _ in texts]
    clips, stopped = [], []
    for start in range(0, len(flat), chunk):
        chunk_owners = owners[start : start + chunk]
        got, flags = speak_chunk(
            call, chain, flat[start : start + chunk], [generators[o] for o in chunk_owners]
        )
        clips += got
        stopped += flags.tolist()
    silence = np.zeros(chain["silence_samples"], dtype=np.float32)
    audio, truncated = [], []
    for t in range(len(texts)):
        mine = [c for c, o in zip(clips, owners) if o == t]
        joined = [piece for clip in mine for piece in (silence, clip)][1:]
        # PCM in [-1, 1], as the endpoint promises (an untrained or loud voice can overshoot).
        audio.append(np.clip(np.concatenate(joined), -1.0, 1.0).astype(np.float32))
        truncated.append(not all(s for s, o in zip(stopped, owners) if o == t))
    return audio, truncated


def chain_settings(params: dict) -> dict:
    """The chain's settings from config.pbtxt parameters."""
    return {
        "chain": params["chain"],
        "silence_samples": int(params["silence_samples"]),
        "hop_length": int(params["hop_length"]),
        "pace": float(params["pace"]) if params["pace"] else None,
        "reports_stop": params["reports_stop"] == "true",
        "noise_sigma": float(params["noise_sigma"]) if params["noise_sigma"] else None,
        "noise_seed": int(params["noise_seed"]),
        "num_symbols": int(params["num_symbols"]) if params.get("num_symbols") else None,
        "max_symbols": int(params["max_symbols"]) if params.get("max_symbols") else None,
        "request_parameters": json.loads(params["request_parameters"]),
    }


class TritonPythonModel:
    def initialize(self, args):
        config, params = kernel.model_settings(args)
        self.model_name = config["name"]
        self.calls = ModelCalls(json.loads(params["calls"]), args, pb_utils)
        self.chain = chain_settings(params)
        # A chunk goes through every called model together, so the smallest batch bounds it.
        self.chunk = min(self.calls.max_batch_size(slot) for slot in self.calls.calls)
        self.allowed = self.chain["request_parameters"]

    def _call(self, slot, inputs, outputs, passed=None):
        parameters = passed if slot in ("voice", "acoustic") else None
        parts = self.calls.call(slot, inputs, outputs, parameters=parameters)
        return [parts[name][0] for name in outputs]

    def _speak(self, group):
        """Audio and truncation flags of a group of (request index, texts) sharing parameters."""
        values = group[0][2]
        chain = dict(self.chain)
        if PACE in values:
            chain["pace"] = values[PACE]
        # BLS request parameters hold strings, ints or bools: numbers travel as text.
        passed = {name: repr(value) for name, value in values.items() if name != PACE}

        def call(slot, inputs, outputs):
            return self._call(slot, inputs, outputs, passed)

        return synthesize(call, chain, [t for _, texts, _ in group for t in texts], self.chunk)

    def execute(self, requests):
        responses = [None] * len(requests)
        groups = {}  # request parameters -> [(request index, texts, parameters)]
        for index, request in enumerate(requests):
            ids = pb_utils.get_input_tensor_by_name(request, "SYMBOL_IDS").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SENTENCE_LENGTHS").as_numpy()
            try:
                values = kernel.numeric_parameters(request.parameters(), self.allowed)
                problem = find_problem(
                    ids, lengths, self.chain["num_symbols"], self.chain["max_symbols"]
                )
                if problem:
                    raise kernel.BadRequest(problem)
            except kernel.BadRequest as error:
                responses[index] = kernel.refusal(self.model_name, str(error))
                continue
            texts = [split_sentences(i, n) for i, n in zip(ids, lengths)]
            groups.setdefault(tuple(values.items()), []).append((index, texts, values))
        for group in groups.values():
            try:
                audio, truncated = self._speak(group)
            except Exception as exc:  # a failed call must answer every request, not crash the stub
                for index, _, _ in group:
                    responses[index] = kernel.fault(self.model_name, f"synthesis failed: {exc}")
                continue
            start = 0
            for index, texts, _ in group:
                clips = audio[start : start + len(texts)]
                flags = truncated[start : start + len(texts)]
                start += len(texts)
                out, out_lengths = padded(clips, np.float32)
                responses[index] = pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor("AUDIO", out),
                        pb_utils.Tensor("AUDIO_LENGTH", out_lengths),
                        pb_utils.Tensor("TRUNCATED", np.array(flags, dtype=bool).reshape(-1, 1)),
                    ]
                )
        return responses

    def finalize(self):
        self.calls.finalize()
