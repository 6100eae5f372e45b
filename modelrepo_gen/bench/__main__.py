"""`make bench`: build, inference and serving benchmark of the ASR repositories.

    python -m modelrepo_gen.bench --output bench_results          # full sizes, ~15 min
    python -m modelrepo_gen.bench --output /tmp/bench --quick     # mini models, ~2 min
    python -m modelrepo_gen.bench --only archives  # one part: ctc whisper nemo nlp tts limits ...
    python -m modelrepo_gen.bench --runs 3   # three runs: each ratio's median and range too

Measures in one run (so the ratios compare numbers taken together) and writes
``results.md`` (printed too), ``results.json`` and the figures ``plots/*.png`` (served
throughput and latency against concurrency per family, beside in-process) under ``--output``:
  1. builds of QuartzNet 15x5 and Jasper 10x5: cold build, export and parity time per format;
  2. the acoustic model on 7 s of audio: PyTorch eager vs onnxruntime (and TorchScript);
  3. the served QuartzNet ensemble: throughput and latency at several concurrencies, dynamic
     batching on and off, and the serving overhead against in-process transcription;
  4. the Whisper pipeline (tiny.en): cold build, real-time factor served and in-process with the
     served WER, and one cached decoder step served, in PyTorch and in onnxruntime;
  5. importing a full-size QuartzNet 15x5 .nemo file (pipeline=asr_nemo) against its export;
     NeMo makes the file when NEMO_PYTHON names a Python with nemo_toolkit;
  6. the NLP pipelines (text classification, question answering) on all-MiniLM-L6-v2: builds,
     the network in PyTorch and onnxruntime, served requests/s and latency at concurrency 1
     and 8 with dynamic batching on and off, against the same pipeline in-process;
  7. speech synthesis with the Piper voice (tts_piper): cold build, audio seconds per wall
     second served at several concurrencies and in-process; then Tacotron 2 -> WaveGlow and
     FastPitch -> HiFi-GAN (seeded weights): cold build with each network's export time,
     audio seconds per wall second served and in-process;
  8. the largest request each pipeline's limits allow (QuartzNet, Whisper, token
     classification, Piper, FastPitch -> HiFi-GAN), served: its time, the answer's size, the
     peak memory of the server and each python worker, and the 400 refusal of the request
     just over each limit;
  9. build -> archive -> deploy (QuartzNet, Whisper, text classification, Piper): archive and
     repository sizes, build and deploy times, plain and encrypted, and the cost of sealing and
     unsealing an archive.
The parts live in bench/build.py (no server), bench/serving.py, bench/whisper.py,
bench/nemo_import.py, bench/nlp.py, bench/speech.py, bench/speech_chains.py and
bench/largest_requests.py and bench/archives.py.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.assembly.render import ENVIRONMENT
from modelrepo_gen.bench.archives import ArchiveSettings, archives_part
from modelrepo_gen.bench.build import (
    BUILD_VARIANTS,
    FULL_MODELS,
    QUICK_MODELS,
    BenchmarkError,
    InferenceSettings,
    ModelChoice,
    acoustic_inference,
    timed_build,
)
from modelrepo_gen.bench.ctc_decoding import CtcDecodingSettings, ctc_decoding_part
from modelrepo_gen.bench.largest_requests import LargestRequestSettings, largest_requests_part
from modelrepo_gen.bench.nemo_import import nemo_import_part
from modelrepo_gen.bench.nlp import NlpSettings, nlp_part
from modelrepo_gen.bench.plots import draw
from modelrepo_gen.bench.serving import (
    ServingSettings,
    in_process,
    load_utterances,
    served_load,
)
from modelrepo_gen.bench.speech import SpeechSettings, speech_part
from modelrepo_gen.bench.speech_chains import SpeechChainSettings, speech_chains_part
from modelrepo_gen.bench.spread import spread
from modelrepo_gen.bench.streaming import StreamingSettings, streaming_part
from modelrepo_gen.bench.whisper import WhisperSettings, whisper_part
from modelrepo_gen.command_line import command_parser
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.manifest import package_versions

PACKAGES = (
    "torch",
    "onnxruntime",
    "onnx",
    "numpy",
    "tritonclient",
    "nvidia-pytriton",
    "transformers",
)
PARTS = ("ctc", "whisper", "nemo", "nlp", "tts", "limits", "archives")


@dataclass
class Settings:
    models: tuple[ModelChoice, ...]
    inference: dict[str, InferenceSettings]  # per model label
    serving: ServingSettings
    build_timeout_s: float  # a build taking longer is reported as skipped
    whisper: WhisperSettings
    nlp: NlpSettings
    speech: SpeechSettings
    speech_chains: SpeechChainSettings
    limits: LargestRequestSettings
    archives: ArchiveSettings
    ctc_decoding: CtcDecodingSettings
    streaming: StreamingSettings

    @classmethod
    def full(cls) -> Settings:
        quartznet, jasper = FULL_MODELS
        return cls(
            models=FULL_MODELS,
            inference={
                quartznet.label: InferenceSettings(repeats=3),
                # Jasper 10x5 (333M parameters) takes seconds per call: fewer runs.
                jasper.label: InferenceSettings(repeats=2),
            },
            serving=ServingSettings(requests=48),
            build_timeout_s=420,
            whisper=WhisperSettings(),
            nlp=NlpSettings(),
            speech=SpeechSettings(),
            speech_chains=SpeechChainSettings.full(),
            limits=LargestRequestSettings.full(),
            archives=ArchiveSettings.full(),
            ctc_decoding=CtcDecodingSettings(),
            streaming=StreamingSettings(),
        )

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            models=QUICK_MODELS,
            inference={
                m.label: InferenceSettings(repeats=2, torchscript_warmup=1) for m in QUICK_MODELS
            },
            serving=ServingSettings(requests=8),
            build_timeout_s=300,
            whisper=WhisperSettings.quick(),
            nlp=NlpSettings.quick(),
            speech=SpeechSettings.quick(),
            speech_chains=SpeechChainSettings.quick(),
            limits=LargestRequestSettings.quick(),
            archives=ArchiveSettings.quick(),
            ctc_decoding=CtcDecodingSettings.quick(),
            streaming=StreamingSettings.quick(),
        )


MERGE = "target.merge_python_steps"
MERGED = "default, steps merged"  # the serving rows of the merge_python_steps=true build


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the machine -----------------------------------------------------------------------------
def _proc_value(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_info() -> dict:
    import onnxruntime
    import torch

    versions = package_versions(PACKAGES)
    memory = _proc_value("/proc/meminfo", "MemTotal")
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        load = "unknown"
    return {
        "cpu_model": _proc_value("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory.split()[0]) / 2**20, 1) if memory[:1].isdigit() else None,
        "gpu": "cuda" if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        "packages": versions,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime_threads": "default (one per physical core)",
        "onnxruntime_version": onnxruntime.__version__,
        "load_average_at_start": load,
    }


# -- the run ---------------------------------------------------------------------------------
def run(settings: Settings, work: Path, parts: tuple[str, ...] = PARTS) -> dict:
    started = time.perf_counter()
    names, audios = load_utterances()  # fails now, not after the builds, if speech is missing
    results: dict = {"machine": machine_info()}
    if "ctc" in parts:
        results.update(run_ctc(settings, work, names, audios))
    if "whisper" in parts:
        results["whisper"] = whisper_part(names, audios, settings.whisper, work, log)
    if "nemo" in parts:
        results["nemo"] = nemo_import_part(work, log, quick=settings.models == QUICK_MODELS)
    if "nlp" in parts:
        results["nlp"] = nlp_part(settings.nlp, work, log)
    if "tts" in parts:
        results["speech"] = speech_part(settings.speech, work, log)
        results["speech_chains"] = speech_chains_part(settings.speech_chains, work, log)
    if "limits" in parts:
        results["limits"] = largest_requests_part(audios, settings.limits, work, log)
    if "archives" in parts:
        results["archives"] = archives_part(settings.archives, work, log)
    results["machine"]["load_average_at_end"] = Path("/proc/loadavg").read_text().split()[0]
    results["total_s"] = time.perf_counter() - started
    return results


def run_ctc(settings: Settings, work: Path, names: list[str], audios: list) -> dict:
    """Parts 1-3: builds, acoustic inference and serving of the CTC repositories."""
    results: dict = {"build": [], "inference": []}
    repositories: dict[tuple[str, str, str], Path] = {}
    for model in settings.models:
        for backend, precision in BUILD_VARIANTS:
            log(f"build {model.label} {backend} {precision}")
            path = work / f"{model.model}-{backend}-{precision}"
            row = timed_build(model, backend, precision, path, timeout_s=settings.build_timeout_s)
            results["build"].append(row)
            if row["status"] == "ok":
                repositories[(model.label, backend, precision)] = path
                log(f"  {row['process_wall_s']:.1f} s")
            else:
                log(f"  {row['status']}")
    for model in settings.models:
        log(f"acoustic inference {model.label}")
        onnx = repositories.get((model.label, "onnx", "fp32"))
        if onnx is None:
            raise BenchmarkError(f"the default onnx fp32 build of {model.label} is missing")
        script = repositories.get((model.label, "torchscript", "fp32"))
        inference = settings.inference[model.label]
        results["inference"] += acoustic_inference(model, onnx, script, inference, log)
        for key in [k for k in repositories if k[0] == model.label and k[1:] != ("onnx", "fp32")]:
            shutil.rmtree(repositories.pop(key), ignore_errors=True)  # free the disk early

    served = settings.models[0]
    serving_repos = {"default": repositories[(served.label, "onnx", "fp32")]}
    for mode in settings.serving.modes:
        if mode not in serving_repos:
            log(f"build {served.label} onnx fp32 dynamic_batching={mode}")
            path = work / f"{served.model}-onnx-fp32-batching-{mode}"
            row = timed_build(served, "onnx", "fp32", path, mode, settings.build_timeout_s)
            if row["status"] != "ok":
                raise BenchmarkError(f"the dynamic_batching={mode} build {row['status']}")
            serving_repos[mode] = path
    # The CPU target's other lowering: every step in one model (target.merge_python_steps).
    log(f"build {served.label} onnx fp32 target.merge_python_steps=true")
    path = work / f"{served.model}-onnx-fp32-merged"
    row = timed_build(
        served, "onnx", "fp32", path, "default", settings.build_timeout_s, (f"{MERGE}=true",)
    )
    if row["status"] != "ok":
        raise BenchmarkError(f"the {MERGE}=true build {row['status']}")
    serving_repos[MERGED] = path
    log(f"serving {served.label}: in-process baselines")
    baselines = in_process(serving_repos["default"], audios, settings.serving.in_process_passes)
    serving_rows, server_version = [], "unknown"
    for mode in (*settings.serving.modes, MERGED):
        log(f"serving {served.label} {mode}")
        rows, server_version = served_load(serving_repos[mode], mode, audios, settings.serving, log)
        serving_rows += rows
    results["serving"] = {
        "model": served.label,
        "backend": "onnx fp32, target=cpu (python backend)",
        "utterances": names,
        "utterance_seconds": [round(len(a) / 16000, 2) for a in audios],
        "server_version": server_version,
        "load": serving_rows,
        "in_process": baselines,
        "ratios": _serving_ratios(serving_rows, baselines, settings.serving),
    }
    log(f"CTC decoding {served.label}: greedy, beam search, beam search with a language model")
    results["ctc_decoding"] = ctc_decoding_part(
        served, audios, settings.ctc_decoding, work, settings.build_timeout_s, log
    )
    log(f"streaming {served.label}: mode=streaming, chunks sent in real time")
    results["streaming"] = streaming_part(
        served, audios, settings.streaming, work, settings.build_timeout_s, log
    )
    return results


def _serving_ratios(rows: list[dict], baselines: dict, settings: ServingSettings) -> dict:
    by_key = {(r["dynamic_batching"], r["concurrency"]): r for r in rows}
    on, off = settings.modes[0], settings.modes[-1]

    def throughput_ratio(top: str, bottom: str) -> dict[str, float]:
        """Throughput of mode `top` over mode `bottom` at each concurrency both ran."""
        return {
            str(c): by_key[top, c]["throughput_audio_s_per_s"]
            / by_key[bottom, c]["throughput_audio_s_per_s"]
            for c in settings.concurrencies
            if (top, c) in by_key and (bottom, c) in by_key
        }

    def over_in_process(mode: str) -> dict[str, float]:
        """Seconds of work per audio second of `mode` alone (the lowest concurrency) over each
        in-process baseline's."""
        single = by_key[mode, min(settings.concurrencies)]
        rtf = single["wall_s"] / single["audio_s"]
        return {name: rtf / (base["wall_s"] / base["audio_s"]) for name, base in baselines.items()}

    single = by_key[on, min(settings.concurrencies)]
    matching = sum(
        a == b
        for a, b in zip(single["transcripts"], baselines["in_process"]["transcripts"], strict=False)
    )
    return {
        "batching_on_over_off_throughput": throughput_ratio(on, off),
        "merged_over_unmerged_throughput": throughput_ratio(MERGED, on),
        "served_over_in_process_time": over_in_process(on),
        "merged_served_over_in_process_time": over_in_process(MERGED),
        "served_transcripts_equal_in_process": f"{matching}/{len(single['transcripts'])}",
    }


# -- the report ------------------------------------------------------------------------------
def render_markdown(results: dict, quick: bool) -> str:
    return ENVIRONMENT.get_template("bench_results.md.j2").render(results=results, quick=quick)


def _strip_transcripts(results: dict) -> dict:
    """The JSON without the (meaningless, random-weight) transcripts."""
    clean = json.loads(json.dumps(results))
    for row in clean.get("serving", {}).get("load", []):
        row.pop("transcripts", None)
    for base in clean.get("serving", {}).get("in_process", {}).values():
        base.pop("transcripts", None)
    # Whisper's are real (pretrained weights): kept once, beside the WER they give.
    for row in clean.get("whisper", {}).get("speed", {}).get("served", []):
        row.pop("transcripts", None)
    return clean


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("modelrepo_gen.bench", __doc__)
    parser.add_argument("--output", default="bench_results", help="folder for the results")
    parser.add_argument("--quick", action="store_true", help="mini models, few requests")
    parser.add_argument(
        "--work-dir", help="build the repositories here and keep them (default: a temp folder)"
    )
    parser.add_argument(
        "--only",
        choices=PARTS,
        help="run one part: ctc (1-3), whisper (4), nemo (5), nlp (6), tts (7) or limits (8); "
        "default all",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the whole benchmark N times and report how much each ratio moves between "
        "runs (its median and range); the tables are the first run's",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    settings = Settings.quick() if args.quick else Settings.full()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    if args.work_dir:
        work = Path(args.work_dir).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="modelrepo_gen_bench_"))
    parts = (args.only,) if args.only else PARTS
    try:
        # Each run builds into its own folder; the report's tables are the first run's.
        every_run = []
        for index in range(args.runs):
            if args.runs > 1:
                log(f"run {index + 1} of {args.runs}")
            folder = work / f"run{index + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            every_run.append(run(settings, folder, parts))
        results = every_run[0]
    except (BenchmarkError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    results["quick"] = args.quick
    results["runs"] = args.runs
    if args.runs > 1:
        results["spread"] = spread(every_run)
    results["plots"] = [path.as_posix() for path in draw(results, output)]
    table = render_markdown(results, args.quick)
    (output / "results.md").write_text(table)
    (output / "results.json").write_text(json.dumps(_strip_transcripts(results), indent=2) + "\n")
    print(table)
    log(f"wrote {output / 'results.md'} and {output / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
