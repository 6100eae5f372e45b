"""Benchmark part: CTC beam search (decoder=ctc_beam) against greedy decoding, served.

Three builds of the served CTC model share its network: greedy decoding (the default), plain
beam search (32 beams, no language model) and beam search with a word bigram model (the
LibriVox transcripts, plus MiniLM's whole-word vocabulary as unigrams: a lexicon of about 20,000
words). One server holds the three; each utterance goes to each in turn, one request at a time,
`passes` times, so every ratio to greedy is measured in one run. The decoder alone is timed too,
in this process on the served acoustic model's log-probabilities.

The network has random weights: its log-probabilities are flatter than a trained network's, so
fewer hypotheses are pruned. Beam search costs at least as much as it would on a trained model.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelrepo_gen.assembly.render import parse_model_config
from modelrepo_gen.bench.build import BenchmarkError, ModelChoice, timed_build
from modelrepo_gen.bench.language_model import write_bigram_arpa
from modelrepo_gen.bench.serving import SAMPLE_RATE
from modelrepo_gen.clients.librivox import librivox_utterances
from modelrepo_gen.components.bert_source import DEFAULT_PACKAGE
from modelrepo_gen.components.triton_python.ctc_beam_decoder import load_search
from modelrepo_gen.components.triton_python.ctc_beam_search import arpa_words
from modelrepo_gen.components.triton_python.ctc_greedy_decoder import greedy_decode

DECODERS = {  # ensemble suffix -> build overrides ({lm}: the language model's path)
    "greedy": (),
    "beam": ("decoder=ctc_beam",),
    "beam_lm": ("decoder=ctc_beam", "decoder.lm_path={lm}"),
}


@dataclass
class CtcDecodingSettings:
    passes: int = 3  # each utterance through each decoder
    vocabulary_words: int = 25000  # MiniLM vocabulary entries read for the lexicon

    @classmethod
    def quick(cls) -> CtcDecodingSettings:
        return cls(passes=1, vocabulary_words=3000)


def _language_model(path: Path, words: int) -> Path:
    from importlib.resources import files

    vocabulary = files(DEFAULT_PACKAGE).joinpath("model", "vocab.txt").read_text().split()
    whole_words = [w for w in vocabulary[:words] if re.fullmatch(r"[a-z']{2,}", w)]
    return write_bigram_arpa([text for _, text in librivox_utterances()], path, whole_words)


def _acoustic_logprobs(client, models: dict[str, str], audio: np.ndarray) -> np.ndarray:
    """The served feature extractor's and acoustic model's answer: valid frames only."""
    import tritonclient.http as http

    def call(model: str, tensors: dict[str, np.ndarray], outputs: list[str]) -> dict:
        inputs = []
        for name, array in tensors.items():
            kind = "FP32" if array.dtype == np.float32 else "INT32"
            inputs.append(http.InferInput(name, list(array.shape), kind))
            inputs[-1].set_data_from_numpy(array)
        result = client.infer(model, inputs)
        return {name: result.as_numpy(name) for name in outputs}

    signal = audio.astype(np.float32).reshape(1, -1)
    samples = np.array([[audio.size]], dtype=np.int32)
    features = call(
        models["feature_extractor"],
        {"AUDIO_SIGNAL": signal, "NUM_SAMPLES": samples},
        ["FEATURES", "FEATURE_LENGTHS"],
    )
    acoustic = call(models["acoustic_model"], features, ["LOGPROBS", "ENCODED_LENGTHS"])
    return acoustic["LOGPROBS"][0, : int(acoustic["ENCODED_LENGTHS"].reshape(-1)[0])]


def _decoder_alone(repository: Path, logprobs: list[np.ndarray], audio_s: float) -> dict:
    """ms of the decoder's own work per audio second, in this process, per decoder."""
    decoder = next(p for p in repository.iterdir() if p.name.endswith("_ctc_decoder"))
    config = parse_model_config((decoder / "config.pbtxt").read_text(), str(decoder))
    params = {key: value.string_value for key, value in config.parameters.items()}
    if "options" not in params:  # greedy
        vocabulary = json.loads(params["vocabulary"])
        decode: Callable[[np.ndarray], str] = lambda x: greedy_decode(x, len(x), vocabulary)  # noqa: E731
    else:
        decode = load_search(decoder / "1", params).decode
    started = time.perf_counter()
    for item in logprobs:
        decode(item)
    return {"decoder_ms_per_audio_s": 1000 * (time.perf_counter() - started) / audio_s}


def ctc_decoding_part(
    model: ModelChoice,
    audios: Sequence[np.ndarray],
    settings: CtcDecodingSettings,
    work: Path,
    timeout_s: float,
    log: Callable[[str], None] = print,
) -> dict:
    from modelrepo_gen.clients.asr_client import connect, infer_transcript
    from modelrepo_gen.serve.server import TritonServer

    language_model = _language_model(work / "decoding_lm.arpa", settings.vocabulary_words)
    lexicon_words = len(arpa_words(language_model))
    combined = work / "decoding_repository"
    shutil.rmtree(combined, ignore_errors=True)
    repositories = {}
    for suffix, overrides in DECODERS.items():
        name = f"{model.pipeline}_{suffix}"
        extra = (f"pipeline.name={name}", *(o.format(lm=language_model) for o in overrides))
        log(f"build {model.label} onnx fp32 {' '.join(extra[1:]) or 'greedy'}")
        path = work / f"decoding-{suffix}"
        shutil.rmtree(path, ignore_errors=True)  # a run before this one's
        row = timed_build(model, "onnx", "fp32", path, "default", timeout_s, extra)
        if row["status"] != "ok":
            raise BenchmarkError(f"the {name} build {row['status']}")
        repositories[suffix] = path
        for folder in path.iterdir():
            if folder.is_dir():
                shutil.copytree(folder, combined / folder.name)
    names = {suffix: f"{model.pipeline}_{suffix}" for suffix in DECODERS}
    audio_s = sum(a.size for a in audios) / SAMPLE_RATE
    walls = {suffix: 0.0 for suffix in DECODERS}
    with TritonServer(combined, http_port=0, grpc_port=0, metrics_port=0) as server:
        client = connect(server.http_url, "http")
        try:
            for suffix in DECODERS:  # warm-up, not timed
                infer_transcript(client, "http", names[suffix], audios[0])
            for _ in range(settings.passes):
                for audio in audios:
                    for suffix in DECODERS:
                        started = time.perf_counter()
                        infer_transcript(client, "http", names[suffix], audio)
                        walls[suffix] += time.perf_counter() - started
            roles = {
                "feature_extractor": f"{names['greedy']}_feature_extractor",
                "acoustic_model": f"{names['greedy']}_acoustic_model",
            }
            logprobs = [_acoustic_logprobs(client, roles, audio) for audio in audios]
        finally:
            client.close()
    rows = []
    for suffix in DECODERS:
        rtf = walls[suffix] / (audio_s * settings.passes)
        row = {"decoder": suffix, "served_rtf": rtf}
        row.update(_decoder_alone(repositories[suffix], logprobs, audio_s))
        rows.append(row)
        log(f"  {suffix}: served RTF {rtf:.4f}, decoder {row['decoder_ms_per_audio_s']:.2f} ms/s")
    greedy = rows[0]
    return {
        "model": model.label,
        "passes": settings.passes,
        "utterances": len(audios),
        "lexicon_words": lexicon_words,
        "rows": rows,
        "ratios": {
            f"{row['decoder']}_over_greedy_served_time": row["served_rtf"] / greedy["served_rtf"]
            for row in rows[1:]
        },
    }
