"""Whisper's timestamps: the rules that keep them well formed while decoding, and the segments
they mark in a decoded window, with how far the next window starts (the seek of Whisper's own
transcribe).

A timestamp token is any id from `timestamp_begin` up: id timestamp_begin + k is k x 0.02 s
into the window (SAMPLES_PER_STEP samples at 16 kHz). A window decoded with timestamps reads
<|t0|> text <|t1|><|t1'|> text <|t2|> ...: each pair of consecutive timestamps closes one
segment and opens the next. Where the window ends on a complete pair, the speech past the last
timestamp was cut off by the window's end: the next window starts at that timestamp, so no word
is split across windows and no sentence is left out.
"""

import numpy as np

SAMPLES_PER_STEP = 320  # 0.02 s at 16 kHz: two 10 ms mel frames per encoder position
MAX_INITIAL_STEP = 50  # the first timestamp is at most 1.0 s into a window (Whisper's default)


def apply_timestamp_rules(logits, generated, first_step, timestamp_begin, eos, no_timestamps):
    """Mask `logits` [rows, vocabulary] in place as Whisper's ApplyTimestampRules does, for
    rows whose tokens so far (prompt left out) are `generated`: the first token is a timestamp
    of at most 1 s, timestamps come in pairs (except right before end-of-text) and never go back,
    and a timestamp is taken whenever all timestamps together are likelier than any text token."""
    logits[:, no_timestamps] = -np.inf
    for row, seq in enumerate(generated):
        last = len(seq) >= 1 and seq[-1] >= timestamp_begin
        penultimate = len(seq) < 2 or seq[-2] >= timestamp_begin
        if last:
            if penultimate:  # a pair just closed: text (or the end) comes next
                logits[row, timestamp_begin:] = -np.inf
            else:  # a segment's text just ended: its closing timestamp (or the end)
                logits[row, :eos] = -np.inf
        stamps = [token for token in seq if token >= timestamp_begin]
        if stamps:  # never back in time, and never <|0.00|> twice
            lowest = stamps[-1] if last and not penultimate else stamps[-1] + 1
            logits[row, timestamp_begin:lowest] = -np.inf
    if first_step:
        logits[:, :timestamp_begin] = -np.inf
        logits[:, timestamp_begin + MAX_INITIAL_STEP + 1 :] = -np.inf
    shifted = logits - logits.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        logprobs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        stamp_logprob = np.log(np.exp(logprobs[:, timestamp_begin:]).sum(axis=1))
    text_logprob = logprobs[:, :timestamp_begin].max(axis=1)
    logits[stamp_logprob > text_logprob, :timestamp_begin] = -np.inf
    return logits


def window_segments(ids, timestamp_begin, window_length):
    """The segments of one decoded window, each (start, end, text ids) in samples from the
    window's start, and how many samples the next window moves on.

    `ids` are the window's tokens after the prompt, end-of-text left out; `timestamp_begin`
    None: decoded without timestamps, the whole window is one segment. Segments without text
    are left out."""
    if timestamp_begin is None:
        return ([(0, window_length, list(ids))] if ids else []), window_length

    def at(token, otherwise):
        """Where a timestamp token lies in the window (samples, within it); else `otherwise`."""
        if token < timestamp_begin:
            return otherwise
        return min((token - timestamp_begin) * SAMPLES_PER_STEP, window_length)

    stamps = [token >= timestamp_begin for token in ids]
    cuts = [i for i in range(1, len(ids)) if stamps[i - 1] and stamps[i]]
    ends_alone = stamps[-2:] == [False, True]  # text, then one timestamp: the window is done
    segments = []
    if cuts:
        if ends_alone:
            cuts.append(len(ids))
        begin = 0
        for cut in cuts:
            piece = ids[begin:cut]
            segments.append((at(piece[0], 0), at(piece[-1], window_length), piece))
            begin = cut
        advance = window_length if ends_alone else at(ids[begin - 1], window_length)
    else:  # one segment: it ends at its last timestamp, if it has one past the start
        times = [token for token, stamp in zip(ids, stamps) if stamp]
        end = at(times[-1], window_length) if times and times[-1] != timestamp_begin else None
        segments.append((0, end or window_length, ids))
        advance = window_length
    texts = [
        (start, max(start, end), [token for token in piece if token < timestamp_begin])
        for start, end, piece in segments
    ]
    return [segment for segment in texts if segment[2]], advance if advance > 0 else window_length
