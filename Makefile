# Every target installs what it needs: its own virtual environment with pinned packages, and
# Debian's pocketsphinx-testdata (real LibriVox speech) for the demo and the tests. (The Piper
# voice's phonemes come from piper-tts's espeak-ng library, a pinned package.)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SPEECH := /usr/share/pocketsphinx/test/data/librivox/transcription
DEMO_REPOSITORY ?= demo_repository

.PHONY: install speech demo test lint format bench clean

$(STAMP): requirements.txt requirements-nodeps.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(STAMP)

$(SPEECH):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq pocketsphinx-testdata >/dev/null

speech: $(SPEECH)

# Builds asr_whisper from the installed Whisper tiny.en, serves it on the bundled Triton server,
# transcribes the LibriVox utterances next to their references (with the WER); then builds
# tts_piper (the installed Piper voice) into $(DEMO_REPOSITORY)_tts, speaks a sentence and
# transcribes it back with asr_whisper, printing both texts; and stops both servers.
# Another pipeline: make demo DEMO_ARGS="pipeline=asr_quartznet".
demo: install speech
	$(PY) -m modelrepo_gen.demo --repository $(DEMO_REPOSITORY) $(DEMO_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Two workers share the tests (a file, and files sharing session fixtures, stay on one). A third
# was faster (their time is a third waiting) but, in one of four runs, three workers' servers at
# once left a server dead mid-run on this 24 GiB machine. The tests that check machine-wide state
# run alone afterwards.
test: install speech lint
	$(PY) -m pytest -n 2 --dist loadfile -m "not serial"
	$(PY) -m pytest -m serial

BENCH_RUNS ?= 1
# The peers users would run instead (faster-whisper) go into the same environment, for the
# benchmark only.
bench: install speech
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements-bench.txt
	$(PY) -m modelrepo_gen.bench --output bench_results --runs $(BENCH_RUNS)

clean:
	rm -rf $(VENV) $(DEMO_REPOSITORY) $(DEMO_REPOSITORY)_tts model_repository bench_results
