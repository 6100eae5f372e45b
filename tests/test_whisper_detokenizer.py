"""The detokenizer's split of token ids into windows, and its text, with the real tokenizer."""

from __future__ import annotations

from modelrepo_gen.components.triton_python.whisper_detokenizer import detokenize, window_ids

EOS = 50256


def test_ids_split_at_each_end_of_text() -> None:
    assert window_ids([1, 2, EOS, 3, EOS], EOS) == [[1, 2], [3]]
    assert window_ids([1, 2], EOS) == [[1, 2]]
    assert window_ids([EOS, EOS], EOS) == [[], []]
    assert window_ids([], EOS) == []


def test_windows_are_decoded_apart_and_joined_with_a_space(tiny_en) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_en / "tokenizer.json"))
    first = tokenizer.encode(" He was not.", add_special_tokens=False).ids
    second = tokenizer.encode(" A young man.", add_special_tokens=False).ids
    ids = [*first, EOS, *second, EOS, EOS]  # an empty last window adds nothing
    assert detokenize(tokenizer, ids, EOS) == "He was not. A young man."
    assert detokenize(tokenizer, [EOS], EOS) == ""
