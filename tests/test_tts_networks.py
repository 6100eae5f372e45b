"""The speech-synthesis networks in PyTorch, at the small sizes conf/ declares: each item of a
padded batch equals its single run, Tacotron 2 stops each item at its own gate and flags a cut
at max_decoder_steps, WaveGlow's flow inverts, FastPitch follows the pace."""

from __future__ import annotations

import warnings

import torch
from helpers.tts_fixtures import module_of, stop_items_apart, symbol_batch

from modelrepo_gen.components.speech_synthesis import example_mel, example_noise

COUNTS = [23, 14, 7, 3]


def _alone(outputs: tuple, item: int, length: int, axis: int = 2) -> torch.Tensor:
    return outputs[0][item].narrow(axis - 1, 0, length)


def test_tacotron2_stops_each_item_at_its_gate_and_batches_like_single_runs() -> None:
    module = module_of("tacotron2_mini")
    ids, counts = symbol_batch(COUNTS)
    stops = stop_items_apart(module, ids, counts)
    steps = module.decoder.max_decoder_steps
    assert len({s for s in stops if s is not None}) >= 2, stops  # at least two distinct stops
    with torch.no_grad():
        mel, lengths, stopped = module(ids, counts)
    expected_lengths = [s if s is not None else steps for s in stops]
    assert lengths.view(-1).tolist() == expected_lengths
    assert stopped.view(-1).tolist() == [s is not None for s in stops]
    assert mel.shape == (len(COUNTS), 80, max(expected_lengths))
    for i, count in enumerate(COUNTS):
        with torch.no_grad():
            one = module(ids[i : i + 1, :count], counts[i : i + 1])
        assert one[1].item() == expected_lengths[i] and one[2].item() == stopped[i].item()
        assert one[0].shape[2] == expected_lengths[i]
        torch.testing.assert_close(mel[i, :, : expected_lengths[i]], one[0][0], atol=1e-5, rtol=0)
        assert not mel[i, :, expected_lengths[i] :].any()  # frames after its stop are zero


def test_tacotron2_cut_at_max_decoder_steps_is_flagged() -> None:
    module = module_of("tacotron2_mini", max_decoder_steps=5)
    with torch.no_grad():
        module.decoder.gate_layer.bias.fill_(-100.0)  # a gate that never fires
        mel, lengths, stopped = module(*symbol_batch([9, 4]))
    assert mel.shape[2] == 5 and lengths.view(-1).tolist() == [5, 5]
    assert stopped.view(-1).tolist() == [False, False]


def test_tacotron2_scripted_runs_what_forward_runs() -> None:
    module = module_of("tacotron2_mini")
    ids, counts = symbol_batch(COUNTS)
    stop_items_apart(module, ids, counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module)
    with torch.no_grad():
        eager, compiled = module(ids, counts), scripted(ids, counts)
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_waveglow_inverts_its_flow_and_batches_like_single_runs() -> None:
    module = module_of("waveglow_mini")
    mel, lengths = example_mel(3, 0.4, 0, 80, 22050 / 256)
    noise = example_noise(lengths, 256, 0)
    with torch.no_grad():
        audio, audio_lengths = module(mel, lengths, noise)
    assert audio_lengths.view(-1).tolist() == (lengths.view(-1) * 256).tolist()
    for i, n in enumerate(lengths.view(-1).tolist()):
        with torch.no_grad():
            one, _ = module(mel[i : i + 1, :, :n], lengths[i : i + 1], noise[i : i + 1, : n * 256])
            # The training direction gives back the noise that made this audio.
            recovered = module.encode(one, mel[i : i + 1, :, :n])
        torch.testing.assert_close(audio[i, : n * 256], one[0], atol=1e-5, rtol=0)
        assert not audio[i, n * 256 :].any()
        torch.testing.assert_close(recovered[0], noise[i, : n * 256], atol=1e-4, rtol=0)
    # Noise beyond what the mel needs is ignored.
    longer = torch.cat((noise, torch.randn(3, 512)), dim=1)
    with torch.no_grad():
        torch.testing.assert_close(module(mel, lengths, longer)[0], audio, atol=0, rtol=0)


def test_waveglow_inverse_weights_are_the_matrix_inverse() -> None:
    module = module_of("waveglow_mini")
    for conv in module.convinv:
        weight, inverse = conv.weight.squeeze(2), conv.weight_inverse.squeeze(2)
        torch.testing.assert_close(inverse @ weight, torch.eye(weight.size(0)), atol=1e-5, rtol=0)
        assert "weight_inverse" not in conv.state_dict()  # derived, not a trained weight


def test_fastpitch_pace_sets_the_length_and_batches_like_single_runs() -> None:
    module = module_of("fastpitch_mini")
    ids, counts = symbol_batch(COUNTS)
    lengths = {}
    for pace in (0.5, 1.0, 2.0):
        with torch.no_grad():
            lengths[pace] = module(ids[:1], counts[:1], torch.tensor([[pace]]))[1].item()
    assert lengths[0.5] > 1.8 * lengths[1.0] > 3.2 * lengths[2.0] > 0, lengths
    paces = torch.tensor([[1.0], [0.8], [1.25], [2.0]])
    with torch.no_grad():
        mel, mel_lengths = module(ids, counts, paces)
    assert mel.shape[2] == mel_lengths.max().item()
    for i, count in enumerate(COUNTS):
        with torch.no_grad():
            one, one_length = module(ids[i : i + 1, :count], counts[i : i + 1], paces[i : i + 1])
        n = one_length.item()
        assert mel_lengths[i].item() == n
        torch.testing.assert_close(mel[i, :, :n], one[0], atol=1e-5, rtol=0)
        assert not mel[i, :, n:].any()


def test_hifigan_makes_hop_samples_per_frame_and_batches_like_single_runs() -> None:
    module = module_of("hifigan_mini")
    mel, lengths = example_mel(3, 0.4, 0, 80, 22050 / 256)
    with torch.no_grad():
        audio, audio_lengths = module(mel, lengths)
    assert audio.shape == (3, mel.shape[2] * 256)
    assert audio_lengths.view(-1).tolist() == (lengths.view(-1) * 256).tolist()
    for i, n in enumerate(lengths.view(-1).tolist()):
        with torch.no_grad():
            one, _ = module(mel[i : i + 1, :, :n], lengths[i : i + 1])
        torch.testing.assert_close(audio[i, : n * 256], one[0], atol=1e-6, rtol=0)
        assert not audio[i, n * 256 :].any()
