"""mode=streaming served by the real Triton server (the CTC ASR repository every ASR test
shares): chunks are ordinary requests with Triton's sequence id and start / end flags, over gRPC
and HTTP; interleaved streams each end with their own offline transcript; every bad stream
request gets one clear refusal and the server streams on; `transcribe --stream` prints partials
and latencies.

asr_quartznet_stream: QuartzNet-mini with 4.5 s of context each side (its receptive field is
4.28 s), at most 8 streams, freed after 5 s idle; asr_quartznet_unnormalized is the same network
offline (both without per-utterance feature normalization, which a stream cannot reproduce).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers.served_requests import connect, is_bad_request, one_utterance, transcripts

from modelrepo_gen.clients.stream_client import stream_audio
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import main

pytestmark = pytest.mark.server

STREAMED, OFFLINE = "asr_quartznet_stream", "asr_quartznet_unnormalized"
RATE = 16000
CHUNK = int(0.8 * RATE)


def send(module, client, piece: np.ndarray, sequence_id, parameters=None, **flags) -> str:
    """One chunk of a stream; its answer (the transcript so far)."""
    signal, samples = one_utterance(piece.astype(np.float32))
    inputs = [
        module.InferInput("AUDIO_SIGNAL", list(signal.shape), "FP32"),
        module.InferInput("NUM_SAMPLES", [1, 1], "INT32"),
    ]
    inputs[0].set_data_from_numpy(signal)
    inputs[1].set_data_from_numpy(samples)
    answer = client.infer(STREAMED, inputs, sequence_id=sequence_id, parameters=parameters, **flags)
    return answer.as_numpy("TRANSCRIPT").reshape(-1)[0].decode()


def refused(module, client, piece: np.ndarray, sequence_id, said: str, **flags) -> None:
    with pytest.raises(Exception) as error:
        send(module, client, piece, sequence_id, **flags)
    assert is_bad_request(error.value), error.value
    assert said in str(error.value), error.value


@pytest.fixture(scope="module")
def recordings(librivox: list) -> list[np.ndarray]:
    """Eight recordings: the five utterances, and three of them cut to 40 %."""
    audios = [audio for _, audio, _ in librivox]
    return audios + [audio[: int(0.4 * audio.size)] for audio in audios[:3]]


def test_eight_interleaved_streams_each_end_with_their_own_offline_transcript(
    server: TritonServer, recordings: list[np.ndarray]
) -> None:
    module, client = connect(server, "grpc")
    offline = [transcripts(module, client, OFFLINE, *one_utterance(a))[0] for a in recordings]
    assert len(set(offline)) == len(offline) and min(map(len, offline)) > 5
    pieces = [[a[i : i + CHUNK] for i in range(0, a.size, CHUNK)] for a in recordings]
    ids = [1000 + n for n in range(len(recordings))]
    answers: list[list[str]] = [[] for _ in recordings]
    for index in range(max(map(len, pieces))):  # chunk 0 of every stream, then chunk 1, ...
        for n, chunks in enumerate(pieces):
            if index < len(chunks):
                flags = {"sequence_start": index == 0, "sequence_end": index == len(chunks) - 1}
                answers[n].append(send(module, client, chunks[index], ids[n], **flags))
    assert [said[-1] for said in answers] == offline
    for said, final in zip(answers, offline, strict=True):
        assert all(final.startswith(partial) for partial in said)  # it only grows


def test_a_stream_over_http_in_uneven_pieces_ends_as_offline(
    server: TritonServer, recordings: list[np.ndarray]
) -> None:
    module, client = connect(server, "http")
    audio = recordings[2]
    offline = transcripts(module, client, OFFLINE, *one_utterance(audio))[0]
    streamed = stream_audio(client, "http", STREAMED, audio, 5000, RATE, realtime=False)
    assert streamed.transcript == offline and len(streamed.partials) == -(-audio.size // 5000)


def test_bad_stream_requests_are_refused_by_name_and_the_server_streams_on(
    server: TritonServer, recordings: list[np.ndarray]
) -> None:
    module, client = connect(server, "grpc")
    audio = recordings[0]
    piece = audio[:CHUNK]
    refused(module, client, piece, 0, "send each chunk with a sequence id")
    refused(module, client, piece, 77, "stream 77 was never started")
    send(module, client, piece, 78, sequence_start=True)
    refused(module, client, piece, 78, "78 is already streaming", sequence_start=True)
    two_rows = np.stack([piece, piece])
    with pytest.raises(Exception) as error:
        inputs = [
            module.InferInput("AUDIO_SIGNAL", list(two_rows.shape), "FP32"),
            module.InferInput("NUM_SAMPLES", [2, 1], "INT32"),
        ]
        inputs[0].set_data_from_numpy(two_rows.astype(np.float32))
        inputs[1].set_data_from_numpy(np.array([[CHUNK], [CHUNK]], dtype=np.int32))
        client.infer(STREAMED, inputs, sequence_id=78)
    assert is_bad_request(error.value) and "one row of audio" in str(error.value)
    boost = {"boosted_words": "wood", "boosted_words_score": 5}
    with pytest.raises(Exception) as error:
        send(module, client, piece, 78, parameters=boost)
    assert is_bad_request(error.value) and "take no request parameters" in str(error.value)
    send(module, client, piece, 78, sequence_end=True)  # the refusals left the stream going
    refused(module, client, piece, 78, "stream 78 has ended")
    # a stream idle past its timeout (5 s) is freed, and its next chunk says so
    send(module, client, piece, 79, sequence_start=True)
    time.sleep(5.5)
    refused(module, client, piece, 79, "79 was idle for more than 5 s and was freed")
    # the model holds 8 streams: a ninth is refused until one ends
    for n in range(8):
        send(module, client, piece, 200 + n, sequence_start=True)
    refused(module, client, piece, 208, "at most 8 streams", sequence_start=True)
    send(module, client, piece, 200, sequence_end=True)
    send(module, client, piece, 208, sequence_start=True)
    for n in range(1, 9):
        send(module, client, piece, 200 + n, sequence_end=True)
    # and it streams on, as before
    offline = transcripts(module, client, OFFLINE, *one_utterance(audio))[0]
    assert stream_audio(client, "grpc", STREAMED, audio, CHUNK, RATE, False).transcript == offline


def test_transcribe_streams_a_file_in_real_time_and_reports_latencies(
    server: TritonServer, librivox: list, capsys: pytest.CaptureFixture[str]
) -> None:
    path, audio, _ = librivox[1]
    module, client = connect(server, "grpc")
    offline = transcripts(module, client, OFFLINE, *one_utterance(audio))[0]
    started = time.perf_counter()
    assert main(["--url", server.grpc_url, "--model", STREAMED, "--stream", str(path)]) == 0
    took = time.perf_counter() - started
    lines = capsys.readouterr().out.splitlines()
    partials = [line.split("\t") for line in lines[:-2]]
    assert len(partials) == -(-audio.size // CHUNK)  # one line per 0.8 s chunk
    assert all(float(p[1].removesuffix(" s")) <= audio.size / RATE + 1e-6 for p in partials)
    assert lines[-2] == f"{path}\t{' '.join(offline.split())}"
    assert "latency from a chunk's end to its transcript: p50" in lines[-1]
    assert took >= audio.size / RATE  # sent as it would be recorded
    assert main(["--url", server.grpc_url, "--model", OFFLINE, "--stream", str(path)]) == 1
    assert "build the pipeline with mode=streaming" in capsys.readouterr().err
