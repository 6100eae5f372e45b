"""Every numeric pipeline and model setting is checked before any work: one line, exit 2.

Each row: an override -> a fragment of the single `error:` line it must produce. The build
must stop before writing anything, so the output folder stays absent. The rows run through the
command line's entry point, all in one interpreter (tests/helpers/cli_runs.py) to keep this quick.
"""

from __future__ import annotations

from pathlib import Path
from subprocess import CompletedProcess

import pytest
from helpers.cli_runs import run_cli, run_many
from helpers.project import ROOT, compose_config

from modelrepo_gen.plan.resolver import resolve

SMALL = ["model=quartznet_mini"]
F = "featurizer"

BAD_VALUES = [
    # features: zero, negative, NaN, huge, and combinations that cannot work
    ([f"{F}.window_stride=0"], f"{F}.window_stride must be > 0 seconds, got 0"),
    ([f"{F}.window_stride=-0.01"], f"{F}.window_stride must be > 0 seconds, got -0.01"),
    ([f"{F}.window_stride=nan"], f"{F}.window_stride must be > 0 seconds, got nan"),
    ([f"{F}.window_stride=0.00001"], f"{F}.window_stride must span at least 1 sample"),
    ([f"{F}.window_stride=5"], f"{F}.window_stride (5 s) must not exceed window_size (0.02 s)"),
    ([f"{F}.window_size=0"], f"{F}.window_size must be > 0 seconds, got 0"),
    ([f"{F}.window_size=0.00005"], f"{F}.window_size must span at least 2 samples"),
    ([f"{F}.n_fft=64"], f"{F}.n_fft (64) must be at least the window length"),
    ([f"{F}.n_fft=0"], f"{F}.n_fft must be >= 1 and <= 4096, got 0"),
    ([f"{F}.n_fft=100000000"], f"{F}.n_fft must be >= 1 and <= 4096, got 100000000"),
    ([f"{F}.n_mels=0", "model.feat_in=0"], f"{F}.n_mels must be >= 1 and <= 257, got 0"),
    ([f"{F}.n_mels=200", "model.feat_in=200"], "3 mel bands would get no FFT bin"),
    ([f"{F}.highfreq=9000"], f"{F}.highfreq must be > 0 and <= 8000 Hz"),
    ([f"{F}.highfreq=0"], f"{F}.highfreq must be > 0 and <= 8000 Hz"),
    ([f"{F}.lowfreq=4000", f"{F}.highfreq=3000"], f"{F}.highfreq must be > 4000"),
    ([f"{F}.lowfreq=-1"], f"{F}.lowfreq must be >= 0 and < 8000 Hz, got -1"),
    ([f"{F}.preemphasis=2"], f"{F}.preemphasis must be >= 0 and < 1, got 2"),
    ([f"{F}.log_zero_guard=0"], f"{F}.log_zero_guard must be > 0 and < 1, got 0"),
    ([f"{F}.sample_rate=0"], f"{F}.sample_rate must be >= 1 and <= 384000 Hz, got 0"),
    ([f"{F}.window_stride=abc"], f"{F}.window_stride: Value 'abc'"),
    # pipeline
    # pipeline values the featurizer and the other parts read
    (["pipeline.sample_rate=0"], f"{F}.sample_rate must be >= 1 and <= 384000 Hz, got 0"),
    (["pipeline.sample_rate=500000"], f"{F}.sample_rate must be >= 1 and <= 384000 Hz"),
    (["pipeline.max_audio_seconds=0"], f"{F}.max_audio_seconds must be > 0"),
    (["pipeline.max_audio_seconds=-3"], f"{F}.max_audio_seconds must be > 0"),
    (["pipeline.max_audio_seconds=1e12"], "<= 134217 seconds (NUM_SAMPLES is INT32"),
    # vocabulary (read by the acoustic model's class count and by the decoder)
    (["vocabulary.symbols=[]"], "model.num_classes must be >= 2 (the vocabulary plus the CTC"),
    (["vocabulary.symbols=[ab,c]"], "decoder.vocabulary.0 must be one character"),
    (["vocabulary.symbols=['',a]"], "decoder.vocabulary.0 must be one character, got ''"),
    (["vocabulary.symbols=[a,b,a]"], "decoder.vocabulary.2 'a' repeats decoder.vocabulary.0"),
    (["pipeline.name=''"], "pipeline.name must start with a letter or digit"),
    # model blocks: every size 0 or negative, impossible shapes, a network too big to export
    (["model.blocks=[]"], "model.blocks must list at least one block"),
    (["model.blocks.0.filters=0"], "model.blocks.0.filters must be >= 1, got 0"),
    (["model.blocks.0.kernel=0"], "model.blocks.0.kernel must be >= 1, got 0"),
    (["model.blocks.0.kernel=-3"], "model.blocks.0.kernel must be >= 1, got -3"),
    (["model.blocks.0.stride=0"], "model.blocks.0.stride must be >= 1, got 0"),
    (["+model.blocks.0.dilation=0"], "model.blocks.0.dilation must be >= 1, got 0"),
    (["model.blocks.1.repeat=0"], "model.blocks.1.repeat must be >= 1, got 0"),
    (["+model.blocks.0.times=0"], "model.blocks.0.times must be >= 1, got 0"),
    (["model.blocks.1.kernel=2"], "model.blocks.1 is residual, so it must keep the time length"),
    (["+model.blocks.1.stride=2"], "model.blocks.1 is residual, so it must keep the time length"),
    (["model=jasper_mini", "+model.blocks.0.times=2"], "adds every earlier block's output"),
    (["model.blocks.0.filters=1000000000"], "at most 536,870,912 (2 GiB in fp32"),
    (["model.blocks.0.filters=1.5"], "model.blocks.0.filters: Value '1.5'"),
    # build settings
    (["precision.parity_tolerance=-1"], "precision.parity_tolerance (precision=fp32) must be >= 0"),
    (["precision.parity_tolerance=nan"], "must be >= 0 (largest relative error of an export)"),
    (["parity_shapes=[{batch:0,seconds:1},{batch:1,seconds:1}]"], "parity_shapes.0.batch"),
    (["parity_shapes=[{batch:1,seconds:0},{batch:1,seconds:1}]"], "parity_shapes.0.seconds"),
    (
        ["parity_shapes=[{batch:1,seconds:1},{batch:1,seconds:1e7}]"],
        "parity_shapes.1.seconds must be > 0 and <= 300 seconds",
    ),
    (["parity_shapes=[{batch:99,seconds:1},{batch:1,seconds:1}]"], "parity_shapes.0.batch must"),
    (["parity_shapes=[{batch:1,seconds:1}]"], "parity_shapes needs at least two shapes"),
    (["seed=100000000000000000000000"], "seed must be >= 0"),
    (["max_batch_size=0"], "max_batch_size must be >= 1"),
    (["max_batch_size=3000000000"], "max_batch_size must be >= 1 and <= 2147483647"),
    (["instance_group.count=0"], "instance_group.count must be >= 1"),
    (["instance_group.count=10000000000"], "instance_group.count must be >= 1 and <= 2147483647"),
    (["dynamic_batching.preferred_batch_size=[16]"], "preferred_batch_size 16 must be between"),
    (["dynamic_batching.max_queue_delay_us=-1"], "max_queue_delay_us must be >= 0"),
    (["dynamic_batching.max_queue_delay_us=100000000000"], "<= 60000000 microseconds"),
    (["+per_model.acoustic_model.max_batch_size=0"], "per_model.acoustic_model.max_batch_size"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[CompletedProcess, Path]]:
    """Every row run once; each row builds into its own (never created) folder."""
    root = tmp_path_factory.mktemp("bad_values")
    outs = [root / f"row{i}" / "repo" for i in range(len(BAD_VALUES))]
    runs = [[*SMALL, *row, f"output_dir={out}"] for (row, _), out in zip(BAD_VALUES, outs)]
    return dict(enumerate(zip(run_many(runs, ROOT), outs, strict=True)))


@pytest.mark.parametrize("row", range(len(BAD_VALUES)), ids=[str(r) for r, _ in BAD_VALUES])
def test_bad_value_stops_with_one_line_before_any_work(outcomes, row: int) -> None:
    result, out = outcomes[row]
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert BAD_VALUES[row][1] in lines[0]
    assert result.stdout == ""
    assert not out.parent.exists()  # nothing written, not even a staging folder beside it


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["featurizer.window_stride=0"], "window_stride must be > 0 seconds"),
        (["model.blocks.0.kernel=0"], "model.blocks.0.kernel must be >= 1"),
    ],
)
def test_dry_run_catches_bad_values_too(tmp_path, overrides, expected) -> None:
    result = run_cli(*SMALL, *overrides, "dry_run=true", f"output_dir={tmp_path / 'r'}")
    assert result.returncode == 2 and expected in result.stderr
    assert result.stdout == ""


def test_features_run_at_the_pipeline_sample_rate() -> None:
    plan = resolve(compose_config([*SMALL, "pipeline.sample_rate=8000"]))
    features = next(u for u in plan.units if u.role == "feature_extractor").export.make_module()
    assert features.hop == 80  # 10 ms at 8 kHz, not at a hidden 16 kHz default
