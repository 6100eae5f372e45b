"""Reading Triton's answers: its log lines and load-failure reasons, each as one clear line."""

from __future__ import annotations

import json

# Log lines that every start on a machine without a GPU prints; they explain nothing.
_HARMLESS_LOG_MARKERS = ("CudaDriverHelper", "NVML", "DCGM", "pinned memory", "CUDA driver")


def _log_message(line: str) -> str:
    """The text of one glog line (``E1122 03:12:55.7 2328 file.cc:642] "text"``)."""
    if "] " in line and line[:1] in "IWEF" and line[1:2].isdigit():
        text = line.split("] ", 1)[1].strip()
        if text.startswith('"') and text.endswith('"'):
            try:
                return json.loads(text)
            except ValueError:
                pass
        return text
    return line.strip()


def summarize_log_errors(log_text: str, max_lines: int = 6) -> str:
    """The error lines of a server log, one line, harmless GPU noise left out."""
    errors = []
    for line in log_text.splitlines():
        is_error = (line[:1] in "EF" and line[1:2].isdigit()) or line.lower().startswith("error")
        if is_error and not any(marker in line for marker in _HARMLESS_LOG_MARKERS):
            errors.append(_one_line(_log_message(line)))
    if not errors:  # e.g. the loader could not start the binary: the tail says why
        lines = log_text.split("\nUsage:", 1)[0].splitlines()  # a bad flag: not the usage
        errors = [line.strip() for line in lines if line.strip()]
    return "; ".join(errors[-max_lines:]) or "the server log is empty"


def last_activity(log_text: str) -> str:
    """The server's last log line, as ``last log line: ...``."""
    lines = [line for line in log_text.splitlines() if line.strip()]
    return f"last log line: {_one_line(_log_message(lines[-1]))}" if lines else "no log"


def _one_line(reason: str) -> str:
    """Triton's (possibly multi-line) reason as one line; a python traceback's 'At:' kept."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    if "At:" in lines:
        at = lines.index("At:")
        head, where = " ".join(lines[:at]), "; ".join(lines[at + 1 :])
        return f"{head} (at {where})" if where else head
    return " ".join(lines)


def states_by_model(index: list[dict]) -> dict[str, tuple[str, str]]:
    """One (state, reason) per model name; READY wins over other versions' states."""
    states: dict[str, tuple[str, str]] = {}
    for entry in index:
        state = (entry.get("state", ""), entry.get("reason", ""))
        if states.get(entry["name"], ("",))[0] != "READY":
            states[entry["name"]] = state
    return states


def load_failure_message(reasons: dict[str, str]) -> str:
    parts = [
        f"model '{name}' failed to load: {_one_line(reason) or 'no reason given'}"
        for name, reason in sorted(reasons.items())
    ]
    return "; ".join(parts)


_POLL_FAILED = "Poll failed for model directory '"


def unloaded_model_reasons(log_text: str) -> dict[str, str]:
    """Models whose folder Triton could not read (e.g. config.pbtxt does not parse), with why.

    Triton logs the protobuf parser's detail on the line before its own, unprefixed:
    ``[libprotobuf ERROR .../text_format.cc:337] Error parsing text-format ...: 3:14: ...``
    """
    reasons = {}
    previous = ""
    for line in log_text.splitlines():
        message = _log_message(line)
        if message.startswith(_POLL_FAILED):
            name, _, reason = message[len(_POLL_FAILED) :].partition("': ")
            if previous.startswith("[libprotobuf ERROR") and "] " in previous:
                reason = f"{reason}: {previous.split('] ', 1)[1].strip()}"
            reasons[name] = reason
        if line.strip():
            previous = line.strip()
    return reasons
