"""Benchmark part 9: build -> archive -> deploy.

For each pipeline, in fresh processes as users run them: the direct build, the build into a
plain archive and into an encrypted one, and deploys of each (as built, and with the python
models' packages packed for this Python); the sizes of the repository and the archives; and,
in this process, sealing and unsealing the plain archive (the cost of encryption itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.archive.encryption import seal, unseal
from modelrepo_gen.archive.write import ENGINE_CHECKS, PYTHON, RENDERINGS
from modelrepo_gen.bench.build import BenchmarkError, build_process, repository_mib

KEY = b"benchmark archive key"
FULL = {
    "asr_quartznet": (),
    "asr_whisper": (),
    "nlp_text_classification": (),
    "tts_piper": (),
}
QUICK = {"asr_quartznet": ("model=quartznet_mini",)}


@dataclass(frozen=True)
class ArchiveSettings:
    pipelines: tuple[tuple[str, tuple[str, ...]], ...]
    repeats: int = 3  # sealing and unsealing: the best of these
    timeout_s: float = 1800

    @classmethod
    def full(cls) -> ArchiveSettings:
        return cls(tuple(FULL.items()))

    @classmethod
    def quick(cls) -> ArchiveSettings:
        return cls(tuple(QUICK.items()), repeats=2, timeout_s=300)


def archives_part(settings: ArchiveSettings, work: Path, log: Callable[[str], None]) -> dict:
    rows = []
    for pipeline, extra in settings.pipelines:
        log(f"archives: {pipeline}")
        try:
            rows.append(_measure(pipeline, list(extra), work / f"archive_{pipeline}", settings))
        except BenchmarkError as error:
            rows.append({"pipeline": pipeline, "status": f"skipped: {error}".splitlines()[0]})
    return {"pipelines": rows}


def _measure(pipeline: str, extra: list[str], folder: Path, settings: ArchiveSettings) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "archive.key"
    key_file.write_bytes(KEY)
    overrides = [f"pipeline={pipeline}", *extra]
    direct, _ = _build(overrides, folder / "direct", settings)
    plain, sealed = folder / "plain.mrga", folder / "sealed.mrga"
    plain_s, steps = _build([*overrides, f"archive={plain}"], folder / "unused", settings)
    sealed_s, _ = _build(
        [*overrides, f"archive={sealed}", f"archive_key_file={key_file}"],
        folder / "unused",
        settings,
    )
    deploys = {
        "plain, as built": _deploy(plain, folder / "as_built", "--python-env", "none"),
        "plain, packages packed": _deploy(plain, folder / "packed"),
        "encrypted, packages packed": _deploy(
            sealed, folder / "sealed_packed", "--key-file", str(key_file)
        ),
        "plain, for the other target": _deploy(
            plain, folder / "other_target", "--target", "gpu", "--python-env", "none"
        ),
    }
    data = plain.read_bytes()
    seal_s, sealed_bytes = _best(settings.repeats, lambda: seal(data, KEY))
    unseal_s, _ = _best(settings.repeats, lambda: unseal(sealed_bytes, KEY, "the archive"))
    mib = len(data) / 2**20
    return {
        "pipeline": pipeline,
        "status": "ok",
        "repository_mib": repository_mib(folder / "direct"),
        "packed_repository_mib": repository_mib(folder / "packed"),
        "archive_mib": mib,
        "packages_mib": _members_mib(plain, (f"{PYTHON}/",)),
        # The other target's and TensorRT's configs, and the inputs the engines are checked on.
        "renderings_mib": _members_mib(plain, (f"{RENDERINGS}/", f"{ENGINE_CHECKS}/")),
        "renderings_s": steps.get("other renderings", 0.0),
        "sealed_archive_mib": sealed.stat().st_size / 2**20,
        "direct_build_s": direct,
        "archive_build_s": plain_s,
        "sealed_archive_build_s": sealed_s,
        "deploy_s": deploys,
        "seal_s": seal_s,
        "unseal_s": unseal_s,
        "seal_mib_per_s": mib / seal_s,
        "unseal_mib_per_s": mib / unseal_s,
    }


def _build(
    overrides: list[str], repository: Path, settings: ArchiveSettings
) -> tuple[float, dict[str, float]]:
    """(process wall seconds, the build's step times)."""
    built = build_process(overrides, repository, settings.timeout_s)
    if built is None:
        raise BenchmarkError(f"the build took longer than {settings.timeout_s:.0f} s")
    return built[0], built[1]["seconds"]


def _deploy(archive: Path, output: Path, *options: str) -> float:
    command = [sys.executable, "-m", "modelrepo_gen.deploy", str(archive), str(output), *options]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchmarkError(f"deploy failed: {done.stderr.strip()}")
    return wall


def _members_mib(archive: Path, prefixes: tuple[str, ...]) -> float:
    """The archive's members under `prefixes` (uncompressed)."""
    with tarfile.open(archive) as members:
        return sum(m.size for m in members if m.name.startswith(prefixes)) / 2**20


def _best(repeats: int, action: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result
