"""decoder=ctc_beam over a .nemo model's SentencePiece tokens (the Citrinet-like fixture), served
by the real Triton server: its transcripts are flashlight's called directly on the served
acoustic model's log-probabilities, the lexicon being a word bigram model's words spelled in
the file's own tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece
from helpers.flashlight_reference import lexicon_search, sentencepiece_spelling
from helpers.nemo_fixtures import BEAM_BUILD
from helpers.served_requests import connect, one_utterance, served_logprobs, transcripts

from modelrepo_gen.core.build_plan import BuildPlan
from modelrepo_gen.serve.server import TritonServer

pytestmark = pytest.mark.server


def test_served_sentencepiece_beam_search_is_flashlights(
    nemo_server: TritonServer, nemo_builds: dict[str, tuple[Path, BuildPlan]], librivox: list
) -> None:
    repository, _ = nemo_builds[BEAM_BUILD]
    language_model = repository.parent / "librivox.arpa"
    decoder = repository / f"{BEAM_BUILD}_ctc_decoder" / "1"
    processor = sentencepiece.SentencePieceProcessor(model_file=str(decoder / "tokenizer.model"))
    symbols = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    module, client = connect(nemo_server, "http")
    got, expected = [], []
    for _, audio, _ in librivox:
        signal, samples = one_utterance(audio)
        logprobs = served_logprobs(module, client, BEAM_BUILD, audio)
        expected.append(
            lexicon_search(
                logprobs,
                language_model,
                symbols,
                sentencepiece_spelling(processor),
                separator=None,
            )
        )
        got.append(transcripts(module, client, BEAM_BUILD, signal, samples)[0])
    assert got == expected
    assert sum(len(text.split()) for text in got) >= 3  # words of the model, several
