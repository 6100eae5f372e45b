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


def test_segments_come_with_their_times_and_empty_ones_are_left_out() -> None:
    import json

    from modelrepo_gen.components.triton_python.whisper_detokenizer import segments_json

    found = json.loads(segments_json(["Hello.", "", "Où?"], [0.0, 2.004, 2.5, 3.0, 3.0, 4.5]))
    assert found == [
        {"start": 0.0, "end": 2.0, "text": "Hello."},
        {"start": 3.0, "end": 4.5, "text": "Où?"},
    ]
