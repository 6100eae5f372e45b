"""The CPU runner's checks and trimming for token-id networks, outside Triton: a malformed
request is named, and a request batched with longer ones gets its own length back."""

from __future__ import annotations

import numpy as np

from modelrepo_gen.components.triton_python.exported_model_runner import (
    find_problem,
    pad_and_stack,
    split_outputs,
)

CHECKS = {
    "finite": ["INPUT_IDS"],
    "max_length": {"INPUT_IDS": [8, 1]},
    "same_shape": {"ATTENTION_MASK": "INPUT_IDS", "TOKEN_TYPE_IDS": "INPUT_IDS"},
    "value_range": {"INPUT_IDS": [0, 99], "ATTENTION_MASK": [0, 1], "TOKEN_TYPE_IDS": [0, 1]},
}


def _request(length: int) -> dict[str, np.ndarray]:
    return {
        "INPUT_IDS": np.arange(1, length + 1, dtype=np.int64)[None],
        "ATTENTION_MASK": np.ones((1, length), np.int64),
        "TOKEN_TYPE_IDS": np.zeros((1, length), np.int64),
    }


def test_token_requests_are_checked_by_name() -> None:
    good = _request(5)
    assert find_problem(good, CHECKS) is None
    assert find_problem({**good, "INPUT_IDS": np.array([[1, 100, 3, 4, 5]])}, CHECKS) == (
        "INPUT_IDS must hold values from 0 to 99, got 1..100"
    )
    assert "ATTENTION_MASK must hold values from 0 to 1, got 0..2" in find_problem(
        {**good, "ATTENTION_MASK": np.array([[1, 1, 2, 0, 0]])}, CHECKS
    )
    assert find_problem({**good, "TOKEN_TYPE_IDS": np.zeros((1, 4), np.int64)}, CHECKS) == (
        "TOKEN_TYPE_IDS has shape [1, 4] but INPUT_IDS has [1, 5]; they must match"
    )
    assert "INPUT_IDS is 9 long, more than the maximum of 8" in find_problem(_request(9), CHECKS)
    assert "INPUT_IDS is empty" in find_problem(_request(0), CHECKS)


def test_per_token_outputs_come_back_at_each_requests_length() -> None:
    requests = [_request(3), _request(7), _request(5)]
    stacked = pad_and_stack([r["INPUT_IDS"] for r in requests])
    assert stacked.shape == (3, 7) and stacked[0, 3:].sum() == 0  # zero padding
    outputs = {
        "TOKEN_LOGITS": np.random.default_rng(0).normal(size=(3, 7, 4)).astype(np.float32),
        "LOGITS": np.ones((3, 2), np.float32),
    }
    rows = split_outputs(outputs, [1, 1, 1], {}, {"TOKEN_LOGITS": ["INPUT_IDS", 1]}, requests)
    assert [r["TOKEN_LOGITS"].shape for r in rows] == [(1, 3, 4), (1, 7, 4), (1, 5, 4)]
    assert [r["LOGITS"].shape for r in rows] == [(1, 2)] * 3
    np.testing.assert_array_equal(rows[2]["TOKEN_LOGITS"][0], outputs["TOKEN_LOGITS"][2, :5])
