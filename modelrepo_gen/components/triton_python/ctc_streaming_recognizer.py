"""Triton python-backend model: CTC speech recognition in chunks (mode=streaming).

Each request is one chunk of a stream: AUDIO_SIGNAL [1, n] + NUM_SAMPLES, with Triton's sequence
id (correlation id) and its start flag on the first chunk, its end flag on the last. The answer
to every chunk is the stream's transcript so far; the answer to the last one is the final one.

The model keeps each stream's state in its own memory (so it runs as one instance): the audio it
still needs and the log-probabilities decided so far. Every `chunk_samples` of audio are decided
once the `right_samples` after them have arrived (the look-ahead; at the end of the stream, with
what there is): the called feature extractor and acoustic model run on the chunk with up to
`left_samples` before it and the look-ahead after it, and the chunk's own frames are kept. The
called decoder then reads all the frames so far. A stream's answers depend on its audio only,
not on how the client cut it into requests. The length of a frame in samples is learnt from the
network once (two silent calls), and the chunk and contexts are whole frames.

What a client can get wrong is refused with a line that says so, and the stream (if any) goes on:
a chunk of a stream never started (or that ended, or was freed after `stream_timeout_seconds`
idle: it says which), a start for an id already streaming, a start when `max_streams` are held,
a request without a sequence id, more than one row or more than `max_chunk_samples`, request
parameters (word boosting is for offline requests). Settings
from config.pbtxt `parameters`: sample_rate, chunk_samples, left_samples, right_samples,
max_chunk_samples, max_streams, stream_timeout_seconds, calls (model_calls.py).
"""

import json
import time
from collections import OrderedDict

import numpy as np

try:  # only importable inside Triton's python stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton (tests import the helpers)
    pb_utils = None

try:  # beside model.py in a repository
    from model_calls import ModelCalls
    from model_kernel import BadRequest, fault, model_settings, refusal
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_calls import ModelCalls
    from modelrepo_gen.components.triton_python.model_kernel import (
        BadRequest,
        fault,
        model_settings,
        refusal,
    )

START, END = 1, 2  # Triton's sequence flags on a request
PROBE_SECONDS = 1.0  # the first probe's length; the second is PROBE_STEP_SECONDS longer
PROBE_STEP_SECONDS = 2.56  # a whole number of frames for every usual hop and stride
REMEMBERED = 4096  # ids of ended or freed streams kept, to tell a late chunk what happened
# What Triton's HTTP protocol carries among a request's parameters: the sequence itself.
SEQUENCE_PARAMETERS = {"sequence_id", "sequence_start", "sequence_end", "priority", "timeout"}


class Stream:
    """One stream's state: its audio from sample `offset` on, how much arrived, up to which
    sample its frames are decided, and those frames' log-probabilities."""

    def __init__(self, now: float) -> None:
        self.audio = np.zeros(0, dtype=np.float32)
        self.offset = 0
        self.received = 0
        self.done = 0
        self.logprobs = []
        self.last_seen = now


def whole_frames(samples: int, frame: int) -> int:
    """`samples` rounded to whole frames (at least one)."""
    return max(frame, int(round(samples / frame)) * frame)


class TritonPythonModel:
    def initialize(self, args):
        config, params = model_settings(args)
        instances = sum(int(g.get("count", 1)) for g in config.get("instance_group", []))
        if instances > 1:
            raise ValueError(
                f"{config['name']}: a streaming model keeps its streams in its memory, so it runs "
                f"as one instance (instance_group count 1), not {instances}"
            )
        self.model_name = config["name"]
        self.rate = int(params["sample_rate"])
        self.chunk = int(params["chunk_samples"])
        self.left = int(params["left_samples"])
        self.right = int(params["right_samples"])
        self.max_chunk = int(params["max_chunk_samples"])
        self.max_streams = int(params["max_streams"])
        self.timeout = float(params["stream_timeout_seconds"])
        self.calls = ModelCalls(json.loads(params["calls"]), args, pb_utils)
        self.frame = None  # samples per frame of log-probabilities, learnt at the first call
        self.streams = {}
        self.gone = OrderedDict()  # id -> why it is no longer held ("ended", "freed: ...")

    # -- the network ---------------------------------------------------------------------------
    def _logprobs(self, audio: np.ndarray) -> np.ndarray:
        """The acoustic model's log-probabilities [frames, classes] of one stretch of audio."""
        signal = np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1)
        samples = np.array([[signal.shape[1]]], dtype=np.int32)
        features = self.calls.call(
            "features",
            {"AUDIO_SIGNAL": signal, "NUM_SAMPLES": samples},
            ["FEATURES", "FEATURE_LENGTHS"],
        )
        acoustic = self.calls.call(
            "acoustic",
            {
                "FEATURES": features["FEATURES"][0],
                "FEATURE_LENGTHS": features["FEATURE_LENGTHS"][0],
            },
            ["LOGPROBS", "ENCODED_LENGTHS"],
        )
        frames = int(acoustic["ENCODED_LENGTHS"][0].reshape(-1)[0])
        return acoustic["LOGPROBS"][0][0, :frames]

    def _learn_frames(self) -> None:
        """The frame length from two silent calls, and the chunk and contexts in whole frames."""
        first = int(PROBE_SECONDS * self.rate)
        step = int(round(PROBE_STEP_SECONDS * self.rate))
        shorter = len(self._logprobs(np.zeros(first, np.float32)))
        longer = len(self._logprobs(np.zeros(first + step, np.float32)))
        frames = longer - shorter
        if frames <= 0 or step % frames:
            raise RuntimeError(
                f"the acoustic model's frame length cannot be told: {step} more samples gave "
                f"{frames} more frames"
            )
        self.frame = step // frames
        self.chunk = whole_frames(self.chunk, self.frame)
        self.left = 0 if self.left == 0 else whole_frames(self.left, self.frame)
        self.right = 0 if self.right == 0 else whole_frames(self.right, self.frame)

    def _advance(self, stream: Stream, final: bool) -> None:
        """Decide every chunk whose look-ahead has arrived (at the end: every one left)."""
        while True:
            end = stream.done + self.chunk
            last = final and end >= stream.received
            if not last and not final and end + self.right > stream.received:
                return
            start = max(0, stream.done - self.left)
            stop = stream.received if last else min(stream.received, end + self.right)
            segment = stream.audio[start - stream.offset : stop - stream.offset]
            logprobs = self._logprobs(segment)
            first = (stream.done - start) // self.frame
            kept = logprobs[first:] if last else logprobs[first : first + self.chunk // self.frame]
            stream.logprobs.append(np.array(kept))
            stream.done = stream.received if last else end
            keep_from = max(0, stream.done - self.left)  # what the next chunk's context needs
            stream.audio = stream.audio[keep_from - stream.offset :]
            stream.offset = keep_from
            if last:
                return

    def _transcript(self, stream: Stream) -> str:
        if not stream.logprobs or not sum(len(part) for part in stream.logprobs):
            return ""
        logprobs = np.concatenate(stream.logprobs)
        answer = self.calls.call(
            "decoder",
            {
                "LOGPROBS": logprobs[None].astype(np.float32),
                "ENCODED_LENGTHS": np.array([[len(logprobs)]], dtype=np.int32),
            },
            ["TRANSCRIPT"],
        )
        text = answer["TRANSCRIPT"][0].reshape(-1)[0]
        return text.decode("utf-8") if isinstance(text, bytes) else str(text)

    # -- streams -------------------------------------------------------------------------------
    def _forget(self, key, why: str) -> None:
        self.streams.pop(key, None)
        self.gone[key] = why
        self.gone.move_to_end(key)
        while len(self.gone) > REMEMBERED:
            self.gone.popitem(last=False)

    def _free_idle(self, now: float) -> None:
        for key in [k for k, s in self.streams.items() if now - s.last_seen > self.timeout]:
            self._forget(key, f"was idle for more than {self.timeout:g} s and was freed")

    def _stream(self, request, now: float):
        """(id, stream, final) of a request's chunk; BadRequest says what is wrong."""
        key = request.correlation_id()
        if key in (0, "", None):
            raise BadRequest(
                "this model recognizes streams: send each chunk with a sequence id, the first "
                "with the sequence start flag and the last with the sequence end flag"
            )
        flags = request.flags()
        if flags & START:
            if key in self.streams:
                raise BadRequest(
                    f"sequence id {key} is already streaming: end it (sequence end flag) before "
                    "starting it again, or use another id"
                )
            if len(self.streams) >= self.max_streams:
                raise BadRequest(
                    f"this model holds at most {self.max_streams} streams at once: end one, or "
                    "retry later"
                )
            self.gone.pop(key, None)
            return key, Stream(now), bool(flags & END)
        if key not in self.streams:
            why = self.gone.get(key)
            if why is None:
                raise BadRequest(
                    f"stream {key} was never started: send its first chunk with the sequence "
                    "start flag"
                )
            raise BadRequest(f"stream {key} {why}: start it again with the sequence start flag")
        return key, self.streams[key], bool(flags & END)

    def _chunk(self, request) -> np.ndarray:
        given = sorted(set(json.loads(request.parameters() or "{}")) - SEQUENCE_PARAMETERS)
        if given:
            raise BadRequest(
                f"a stream's chunks take no request parameters, got '{given[0]}' (word boosting "
                "is for offline requests)"
            )
        audio = pb_utils.get_input_tensor_by_name(request, "AUDIO_SIGNAL").as_numpy()
        samples = pb_utils.get_input_tensor_by_name(request, "NUM_SAMPLES").as_numpy()
        if audio.ndim != 2 or audio.shape[0] != 1 or samples.size != 1:
            raise BadRequest(
                f"a chunk is one row of audio: AUDIO_SIGNAL [1, n] and NUM_SAMPLES [1, 1], got "
                f"{list(audio.shape)} and {list(samples.shape)}"
            )
        count = int(samples.reshape(-1)[0])
        if not 0 <= count <= audio.shape[1]:
            raise BadRequest(f"NUM_SAMPLES must be between 0 and {audio.shape[1]}, got {count}")
        if count > self.max_chunk:
            raise BadRequest(
                f"a chunk holds at most {self.max_chunk / self.rate:g} s "
                f"({self.max_chunk} samples), got {count}"
            )
        chunk = audio[0, :count]
        if not np.all(np.isfinite(chunk)):
            raise BadRequest("AUDIO_SIGNAL contains NaN or infinite samples")
        return chunk

    def execute(self, requests):
        responses = []
        for request in requests:
            now = time.monotonic()
            self._free_idle(now)
            try:
                key, stream, final = self._stream(request, now)
                chunk = self._chunk(request)
            except BadRequest as error:
                responses.append(refusal(self.model_name, str(error)))
                continue
            self.streams[key] = stream
            stream.audio = np.concatenate([stream.audio, chunk.astype(np.float32)])
            stream.received += len(chunk)
            stream.last_seen = now
            try:
                if self.frame is None:
                    self._learn_frames()
                self._advance(stream, final)
                text = self._transcript(stream)
            except RuntimeError as error:  # a called model failed: this stream cannot go on
                self._forget(key, "failed on the server and was freed")
                responses.append(fault(self.model_name, str(error)))
                continue
            if final:
                self._forget(key, "has ended")
            stream.last_seen = time.monotonic()
            transcript = np.array([[text.encode("utf-8")]], dtype=np.object_)
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor("TRANSCRIPT", transcript)])
            )
        return responses

    def finalize(self):
        self.calls.finalize()
