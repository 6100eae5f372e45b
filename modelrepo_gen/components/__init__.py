"""Components: the makers of a repository's models, named by `component:` in conf/.

Network components (a PyTorch module the build exports) and python components (Triton
python-backend code under triton_python/) register here by name; the resolver looks them up
and never branches on a name. A new component is one file plus its line below.
"""

from modelrepo_gen.components.base import COMPONENTS, Component, NetworkComponent, PythonComponent

__all__ = ["COMPONENTS", "Component", "NetworkComponent", "PythonComponent"]


def register_builtin_components() -> None:
    # Importing a module registers its component.
    from modelrepo_gen.components import (  # noqa: F401
        bert,
        conv_asr,
        ctc_beam,
        ctc_greedy,
        ctc_sentencepiece,
        ctc_streaming,
        fastpitch,
        hifigan,
        mel_features,
        nemo_conv_asr,
        nemo_fastpitch,
        nemo_hifigan,
        nemo_mel_features,
        piper_voice,
        speech_synthesizer,
        tacotron2,
        text_task,
        text_tokenizer,
        tts_text_frontend,
        waveglow,
        whisper_ctranslate2,
        whisper_decoder,
        whisper_detokenizer,
        whisper_encoder,
        whisper_features,
        whisper_greedy,
    )
