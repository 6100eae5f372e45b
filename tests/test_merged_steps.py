"""target.merge_python_steps=true: the CPU target runs every step of the ensemble in one python
model (`<pipeline>_all_steps`), hosting each step's own model.py. The ensemble keeps its name
and tensors, answers as the unmerged repository does, refuses a bad request with the step's own
message and code, and still batches requests.

The merged QuartzNet-mini build (asr_fixtures.BUILDS) is served by the CTC family's session
server, beside the same network unmerged (`asr_quartznet`, the same checkpoint).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers.project import compose_config
from helpers.served_requests import (
    batch_counts,
    connect,
    is_bad_request,
    one_utterance,
    transcripts,
)

from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.serve.server import TritonServer

MERGED = "asr_quartznet_merged"
PLAIN = "asr_quartznet"


def test_the_plan_runs_every_step_in_one_model_on_the_cpu_only() -> None:
    plan = resolve(compose_config(["model=quartznet_mini", "target.merge_python_steps=true"]))
    roles = [unit.role for unit in plan.units]
    assert roles == ["feature_extractor", "acoustic_model", "ctc_decoder", "all_steps"]
    assert [s.model_name for s in plan.ensemble.steps] == [
        f"{PLAIN}_{r}" for r in ("feature_extractor", "acoustic_model", "ctc_decoder")
    ]  # as declared: the README draws it
    (step,) = plan.endpoint.steps
    assert step.model_name == f"{PLAIN}_all_steps"
    assert dict(step.input_map) == {"AUDIO_SIGNAL": "AUDIO_SIGNAL", "NUM_SAMPLES": "NUM_SAMPLES"}
    merged = plan.units[-1]
    assert merged.inputs[0].name == "AUDIO_SIGNAL" and merged.inputs[0].ragged
    gpu = resolve(
        compose_config(["model=quartznet_mini", "target=gpu", "target.merge_python_steps=true"]),
        on_this_machine=False,
    )  # native backends: nothing to merge
    assert gpu.served_ensemble is None and len(gpu.endpoint.steps) == 3


@pytest.mark.server
def test_served_merged_equals_the_unmerged_pipeline(server: TritonServer, in_process, librivox):
    audios = [audio for _, audio, _ in librivox]
    expected = [in_process[PLAIN](audio) for audio in audios]
    assert len(set(expected)) == len(expected)  # distinct texts: a real comparison
    assert [in_process[MERGED](audio) for audio in audios] == expected
    for protocol in ("http", "grpc"):
        module, client = connect(server, protocol)
        try:
            got = [transcripts(module, client, MERGED, *one_utterance(a))[0] for a in audios]
        finally:
            client.close()
        assert got == expected, protocol


@pytest.mark.server
def test_a_bad_request_is_refused_by_the_step_that_checks_it(server: TritonServer, clip):
    module, client = connect(server, "http")
    try:
        audio, _ = one_utterance(clip)
        too_many = np.array([[clip.size + 1]], dtype=np.int32)
        with pytest.raises(Exception, match="NUM_SAMPLES") as refused:
            transcripts(module, client, MERGED, audio, too_many)
        assert is_bad_request(refused.value), refused.value
        assert f"{MERGED}_feature_extractor" in str(refused.value)
        # One bad request in a batch fails alone, and the endpoint goes on answering.
        assert transcripts(module, client, MERGED, *one_utterance(clip)) == transcripts(
            module, client, PLAIN, *one_utterance(clip)
        )
    finally:
        client.close()


@pytest.mark.server
def test_concurrent_requests_are_batched_in_the_merged_model(server: TritonServer, librivox):
    audios = [audio for _, audio, _ in librivox] * 2
    alone = {}
    module, client = connect(server, "http")
    try:
        for audio in audios[:5]:
            alone[audio.size] = transcripts(module, client, MERGED, *one_utterance(audio))[0]
    finally:
        client.close()

    def send(audio: np.ndarray) -> str:
        module, client = connect(server, "http")
        try:
            return transcripts(module, client, MERGED, *one_utterance(audio))[0]
        finally:
            client.close()

    before = batch_counts(server, f"{MERGED}_all_steps")
    batched = False
    for _ in range(5):  # batches form under load; a few rounds make that certain
        with ThreadPoolExecutor(len(audios)) as pool:
            got = list(pool.map(send, audios))
        assert got == [alone[a.size] for a in audios]  # batched or not, the same words
        time.sleep(0.2)  # Triton records an execution just after its answers leave
        after = batch_counts(server, f"{MERGED}_all_steps")
        if any(size > 1 and count > before.get(size, 0) for size, count in after.items()):
            batched = True
            break
    assert batched, f"no execution of the merged model ran more than one request: {after}"


def test_side_by_side_chains_always_run_merged_on_the_cpu() -> None:
    """Triton's scheduler left a request of two chains side by side in flight when one chain
    refused it while the other ran, and the server later crashed (Signal 11): such a graph
    runs in one model on the CPU target whatever merge_python_steps says."""
    from modelrepo_gen.core.build_plan import Ensemble, EnsembleStep
    from modelrepo_gen.plan.merged_steps import runs_in_parallel

    def ensemble(*steps: tuple[list[str], list[str]]) -> Ensemble:
        made = [
            EnsembleStep(f"m{i}", tuple((t, t) for t in ins), tuple((t, t) for t in outs))
            for i, (ins, outs) in enumerate(steps)
        ]
        return Ensemble("e", 8, (), (), tuple(made))

    chain = ensemble((["A"], ["B"]), (["B"], ["C"]), (["C", "A"], ["D"]))
    assert not runs_in_parallel(chain)
    # Two steps reading only the ensemble's input: either may run first.
    assert runs_in_parallel(ensemble((["A"], ["B"]), (["A"], ["C"]), (["B", "C"], ["D"])))
    assert runs_in_parallel(ensemble((["A"], ["B"]), (["B"], ["C"]), (["A"], ["D"])))
