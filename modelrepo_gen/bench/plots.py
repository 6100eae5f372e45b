"""The benchmark's figures: served throughput and latency against concurrency, per family.

One PNG per family the run measured (plots/<family>.png under --output). On the left, what each
served pipeline gets through per second at each concurrency (dynamic batching on and off where
both were measured) and, dashed in the same colour, the same work in-process without a server;
dotted, the peer users would run instead where the run measured one (piper-tts); on the right,
its median (solid) and 99th-percentile (dotted) latency. The markdown report links them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PLOTS = "plots"

# (concurrency, throughput, latency p50 s or None, latency p99 s or None)
Row = tuple[int, float, "float | None", "float | None"]


@dataclass
class Pipeline:
    """One pipeline's lines in a figure."""

    served: dict[str, list[Row]]  # label (e.g. its batching mode) -> rows
    in_process: float | None = None  # throughput of the same work without a server
    peer: tuple[str, float] | None = None  # what users would run instead: (name, throughput)


@dataclass
class Figure:
    name: str  # the file's stem
    title: str
    unit: str  # of the throughput axis
    pipelines: dict[str, Pipeline] = field(default_factory=dict)


def _rows(rows: Iterable[dict], throughput: str) -> list[Row]:
    return sorted(
        (
            int(r["concurrency"]),
            float(r[throughput]),
            r.get("latency_p50_s"),
            r.get("latency_p99_s"),
        )
        for r in rows
        if r.get(throughput) is not None
    )


def _by_batching(rows: list[dict], throughput: str) -> dict[str, list[Row]]:
    def mode(row: dict) -> str:
        return str(row.get("dynamic_batching", "default"))

    return {
        f"batching {m}": _rows((r for r in rows if mode(r) == m), throughput)
        for m in sorted({mode(r) for r in rows})
    }


def figures(results: dict) -> list[Figure]:
    """The figures a run's results hold data for."""
    drawn = []
    serving = results.get("serving")
    if serving and serving.get("load"):
        asr = Figure("ctc_asr", f"CTC ASR: {serving['model']}", "audio seconds per second")
        baselines = [b["throughput_audio_s_per_s"] for b in serving.get("in_process", {}).values()]
        asr.pipelines["asr_quartznet"] = Pipeline(
            _by_batching(serving["load"], "throughput_audio_s_per_s"),
            max(baselines) if baselines else None,
        )
        drawn.append(asr)
    speed = results.get("whisper", {}).get("speed", {})
    if speed.get("status") == "ok":
        whisper = Figure("whisper", f"Whisper: {results['whisper']['model']}", "audio s per s")
        whisper.pipelines["asr_whisper"] = Pipeline(
            {"served": _rows(speed["served"], "throughput_audio_s_per_s")},
            max(1 / row["rtf"] for row in speed["in_process"]),
        )
        drawn.append(whisper)
    if results.get("nlp", {}).get("pipelines"):
        nlp = Figure("nlp", "NLP pipelines", "requests per second")
        for pipeline in results["nlp"]["pipelines"]:
            nlp.pipelines[pipeline["pipeline"]] = Pipeline(
                _by_batching(pipeline["served"], "requests_per_s"),
                float(pipeline["in_process"]["requests_per_s"]),
            )
        drawn.append(nlp)
    speech = Figure("speech", "Speech synthesis", "audio seconds per second")
    voices = [("tts_piper", results.get("speech", {}))]
    voices += [(chain["pipeline"], chain) for chain in results.get("speech_chains", [])]
    for name, part in voices:
        measured = part.get("speed", {})
        if measured.get("status") == "ok":
            peer = measured.get("piper_tts")
            speech.pipelines[name] = Pipeline(
                {"served": _rows(measured["served"], "speed")},
                float(measured["in_process"]["speed"]),
                ("piper-tts", float(peer["speed"])) if peer else None,
            )
    if speech.pipelines:
        drawn.append(speech)
    return drawn


def draw(results: dict, output: Path) -> list[Path]:
    """Write every figure the results hold data for; their paths, relative to `output`."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen on a server
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    (output / PLOTS).mkdir(parents=True, exist_ok=True)
    colours = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    written = []
    for figure in figures(results):
        plot, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        values = []
        for index, (name, pipeline) in enumerate(figure.pipelines.items()):
            colour = colours[index % len(colours)]
            for mode, (label, rows) in enumerate(pipeline.served.items()):
                marker = "o^sv"[mode % 4]
                served = f"{name} {label}" if len(figure.pipelines) > 1 else label
                concurrency = [row[0] for row in rows]
                throughput = [row[1] for row in rows]
                left.plot(concurrency, throughput, f"{marker}-", color=colour, label=served)
                values += throughput
                for column, line, percentile in ((2, "-", "p50"), (3, ":", "p99")):
                    points = [(row[0], row[column] * 1000) for row in rows if row[column]]
                    if points:
                        right.plot(
                            *zip(*points),
                            f"{marker}{line}",
                            color=colour,
                            label=f"{served} {percentile}",
                        )
            if pipeline.in_process is not None:
                label = f"{name} in-process" if len(figure.pipelines) > 1 else "in-process"
                left.axhline(pipeline.in_process, linestyle="--", color=colour, label=label)
                values.append(pipeline.in_process)
            if pipeline.peer is not None:
                peer, value = pipeline.peer
                left.axhline(value, linestyle=":", color=colour, label=f"{peer} (peer)")
                values.append(value)
        # Pipelines tens of times apart (FastPitch and Tacotron 2, say) each stay readable.
        spread = max(values) / max(min(values), 1e-9) if values else 1
        if spread > 20:
            left.set_yscale("log")
        else:
            left.set_ylim(0, max(values, default=1) * 1.1)
        title = figure.title
        if len(figure.pipelines) == 1 and figure.name in ("nlp", "speech"):
            title = f"{title}: {next(iter(figure.pipelines))}"
        left.set(title=title, xlabel="concurrent requests", ylabel=figure.unit)
        right.set(title="Latency", xlabel="concurrent requests", ylabel="milliseconds")
        right.set_ylim(bottom=0)
        for axis in (left, right):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # concurrencies are counts
            axis.grid(alpha=0.3)
            if axis.lines:
                axis.legend(fontsize="small")
        path = Path(PLOTS) / f"{figure.name}.png"
        plot.savefig(output / path, dpi=100)
        pyplot.close(plot)
        written.append(path)
    return written
