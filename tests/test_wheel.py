"""The wheel, installed as users install it, runs every command from any folder.

The wheel is built from the checkout and installed without its dependencies into a fresh
virtual environment; the dependencies come from this project's environment through a `.pth`
line (its editable install of modelrepo_gen is not seen there: `.pth` files of a folder added
that way are not read). Everything runs from a folder outside the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from helpers.project import ROOT

# What the wheel is built from (setup.py packages conf/, templates/ and recipes/ into it).
SOURCE_FILES = ["setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md"]
SOURCE_FOLDERS = ["modelrepo_gen", "conf", "templates", "recipes"]
PYCACHE = shutil.ignore_patterns("__pycache__", "*.egg-info")
COMMANDS = ["serve", "deploy", "transcribe", "ask", "synthesize", "demo", "bench"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fresh environment's bin folder, with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the wheel is made of: setuptools writes build/ and egg-info
    # next to its sources and walks the folder, which the other test worker may be writing to.
    source = work / "source"
    for name in SOURCE_FOLDERS:
        # symlinks=True: conf/recipe stays a link to recipes/, as in the checkout
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=PYCACHE)
    for name in SOURCE_FILES:
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, f"the wheel did not build:\n{built.stdout}\n{built.stderr}"
    (wheel,) = (work / "dist").glob("modelrepo_gen-*.whl")
    fresh = work / "venv"
    venv.create(fresh, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(fresh), "platbase": str(fresh)}))
    (site / "project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python"), "install"]
        + ["--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return fresh / "bin"


def run(bin_folder: Path, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_folder / command), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path) -> None:
    done = subprocess.run(
        [str(installed / "python"), "-c", "import modelrepo_gen; print(modelrepo_gen.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    package = Path(done.stdout.strip()).parent
    assert installed.parent in package.parents
    assert (package / "_data" / "conf" / "config.yaml").is_file()
    assert (package / "_data" / "templates" / "model_config.pbtxt.j2").is_file()


def test_builds_a_pipeline_outside_the_checkout(installed, tmp_path) -> None:
    done = run(
        installed,
        "modelrepo-gen",
        "pipeline=asr_quartznet",
        "model=quartznet_mini",
        "output_dir=repo",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "repo" / "manifest.json").read_text())
    assert "asr_quartznet_acoustic_model" in manifest["models"]
    assert (tmp_path / "repo" / "asr_quartznet" / "config.pbtxt").is_file()
    # A shared recipe and the label files travel too.
    done = run(installed, "modelrepo-gen", "+recipe=low_latency", "dry_run=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_build_help_says_what_it_does_lists_pipelines_and_examples(installed, tmp_path) -> None:
    done = run(installed, "modelrepo-gen", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "build a validated NVIDIA Triton model repository" in done.stdout
    assert "tts_piper" in done.stdout and "nlp_qa" in done.stdout
    assert "python -m modelrepo_gen pipeline=" in done.stdout
    assert "parity_shapes" not in done.stdout  # no dump of the default config


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_console_script_with_help(installed, tmp_path, command) -> None:
    done = run(installed, f"modelrepo-gen-{command}", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: modelrepo-gen-{command}")
    assert "examples:" in done.stdout
    assert "pipelines:" in done.stdout
