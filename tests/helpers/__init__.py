"""What the tests share: plain helpers, and the fixture modules conftest.py registers
(asr_fixtures, nemo_fixtures, whisper_fixtures, tts_build)."""
