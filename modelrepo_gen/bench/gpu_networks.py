"""The networks of a built target=gpu repository, run on the GPU.

    python -m modelrepo_gen.bench.gpu_networks REPO [REPO ...] --output gpu_networks.md

Each TorchScript network (`pytorch_libtorch`) of each repository is loaded on CUDA and on the
CPU and fed the same inputs, made from its config.pbtxt at the manifest's parity shapes (rows
of different lengths) and at the timed shapes: the largest difference of every output over
each row's valid frames is compared with the build's own tolerance, and batch 1 and batch 8
(at most max_batch_size) are timed on both devices. An fp16 network is compared with its own
weights upcast to fp32 on the CPU, which is also what its CPU column times. Other networks
(ONNX) are listed as skipped. Needs torch, numpy and jinja2 (the tables' template) only, so it
runs on a GPU machine that has PyTorch and the repository but not the rest of the project.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch

from modelrepo_gen.core.resources import project_folder
from modelrepo_gen.core.templates import template_environment

FLOATS = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}
DTYPES = {**FLOATS, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64, "TYPE_BOOL": np.bool_}
# The exporter's fp16 wrappers (exporters/torchscript_exporter.py): their `module` is the
# network, which upcast to fp32 gives the reference an fp16 build is judged against.
HALF_WRAPPERS = ("HalfPrecision", "TracedHalfPrecision")
SYMBOLS_PER_SECOND = 15  # how the build reads `seconds` for networks that take symbol ids
DEFAULT_SHAPES = [
    {"batch": 1, "seconds": 1.3, "tokens": 9},
    {"batch": 3, "seconds": 2.7, "tokens": 31},
]


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: type
    dims: tuple[int, ...]


@dataclass(frozen=True)
class Network:
    repository: str
    name: str
    max_batch_size: int
    inputs: list[Tensor]
    outputs: list[Tensor]
    path: Path  # model.pt (TorchScript only)
    precision: str
    tolerance: float
    takes_tokens: bool  # the build measured it in tokens, not seconds


def parse_config(text: str) -> tuple[str, int, list[Tensor], list[Tensor]]:
    """(platform or backend, max_batch_size, inputs, outputs) of a config.pbtxt."""
    platform = re.search(r'^(?:platform|backend):\s*"([^"]+)"', text, re.M)
    batch = re.search(r"^max_batch_size:\s*(\d+)", text, re.M)
    tensors: dict[str, list[Tensor]] = {"input": [], "output": []}
    for kind, body in re.findall(r"^(input|output)\s*\{([^{}]*)\}", text, re.M):
        name = re.search(r'name:\s*"([^"]+)"', body).group(1)  # type: ignore[union-attr]
        dtype = re.search(r"data_type:\s*(\w+)", body).group(1)  # type: ignore[union-attr]
        dims = re.search(r"dims:\s*\[([^\]]*)\]", body).group(1)  # type: ignore[union-attr]
        shape = tuple(int(d) for d in dims.replace(",", " ").split())
        tensors[kind].append(Tensor(name, DTYPES.get(dtype, np.float32), shape))
    max_batch = int(batch.group(1)) if batch else 0
    return platform.group(1) if platform else "?", max_batch, tensors["input"], tensors["output"]


def find_key(tree: object, key: str) -> object:
    """The first value of `key` anywhere in the manifest's config (depth first), or None."""
    if isinstance(tree, dict):
        if key in tree and tree[key] is not None:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            if (found := find_key(item, key)) is not None:
                return found
    return None


def read_repository(root: Path) -> tuple[list[Network], list[str], dict]:
    """The repository's networks, the lines naming what is skipped, and its manifest."""
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    networks, skipped = [], []
    for config in sorted(root.glob("*/config.pbtxt")):
        text, name = config.read_text(), config.parent.name
        platform, max_batch, inputs, outputs = parse_config(text)
        if platform in ("ensemble", "python"):
            continue
        if platform != "pytorch_libtorch":
            skipped.append(f"{root.name}/{name}: {platform}, not TorchScript")
            continue
        filename = re.search(r'default_model_filename:\s*"([^"]+)"', text)
        versions = sorted(
            (p for p in config.parent.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        path = versions[-1] / (filename.group(1) if filename else "model.pt")
        info = manifest.get("models", {}).get(name, {})
        precision, tolerance = info.get("precision", "fp32"), float(info.get("tolerance", 1e-4))
        tokens = any("tokens" in entry for entry in info.get("parity", []))
        args = (root.name, name, max_batch, inputs, outputs, path, precision, tolerance, tokens)
        networks.append(Network(*args))
    return networks, skipped, manifest


def make_inputs(
    network: Network, config: dict, batch: int, seconds: float, tokens: int, id_limit: int,
    seed: int, ragged: bool = True,
) -> list[np.ndarray]:  # fmt: skip
    """Inputs of the declared types and dims: every -1 axis `seconds` long in its tensor's unit
    (samples, frames or symbols; tokens for a token network), rows after the first shorter when
    `ragged`, zero past their length, and each length input ([1] integer) holding its row's."""
    rate = float(find_key(config, "sample_rate") or 16000)
    stride, hop = find_key(config, "window_stride"), find_key(config, "hop_length")
    frames = 1 / float(stride) if stride else rate / float(hop) if hop else 100.0

    def full(spec: Tensor) -> int:
        if network.takes_tokens:
            return tokens
        floating = spec.dtype in FLOATS.values()
        unit = (rate if len(spec.dims) == 1 else frames) if floating else SYMBOLS_PER_SECOND
        return max(1, round(seconds * unit))

    rng = np.random.default_rng(seed)
    # The length inputs count the first variable-length input's rows.
    counted = full(next((t for t in network.inputs if -1 in t.dims), network.inputs[0]))
    lengths = np.full(batch, counted, dtype=np.int64)
    if ragged and batch > 1:
        lengths[1:] = rng.integers(max(1, counted // 2), counted + 1, batch - 1)
    arrays = []
    for spec in network.inputs:
        n = full(spec)
        shape = (batch, *(n if d == -1 else d for d in spec.dims))
        valid = np.ones(shape, dtype=bool)
        if -1 in spec.dims:
            axes = (n if d == -1 else 1 for d in spec.dims)
            valid &= (np.arange(n)[None, :] < lengths[:, None]).reshape(batch, *axes)
        if spec.dtype in FLOATS.values():
            array = rng.standard_normal(shape) * valid
        elif spec.dims == (1,):  # a length or a count
            array = lengths.reshape(batch, 1)
        elif "MASK" in spec.name:
            array = valid
        elif "TYPE" in spec.name:
            array = np.zeros(shape)
        else:  # ids: below the smallest embedding table; 0 (padding) past the row's length
            array = rng.integers(1, id_limit, shape) * valid
        arrays.append(array.astype(spec.dtype))
    return arrays


def id_limit(module: torch.nn.Module) -> int:
    """Ids every embedding table of the network takes: below its smallest one's rows."""
    rows = [p.shape[0] for n, p in module.named_parameters() if "embed" in n and p.dim() == 2]
    return min((r for r in rows if r >= 3), default=100)


def run(module: torch.nn.Module, arrays: list[np.ndarray], device: str) -> list[np.ndarray]:
    tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]
    with torch.inference_mode():
        result = module(*tensors)
    result = [result] if isinstance(result, torch.Tensor) else list(result)
    return [r.float().cpu().numpy() if r.is_floating_point() else r.cpu().numpy() for r in result]


def max_error(
    network: Network, ref: list[np.ndarray], got: list[np.ndarray]
) -> tuple[str, float, float]:
    """(worst output, max abs error, relative error) over each row's valid frames: an output
    with a -1 axis is cut at the reference's length output (the build's parity does the same)."""
    lengths = [r for t, r in zip(network.outputs, ref) if t.dims == (1,) and "LENGTH" in t.name]
    worst = ("", 0.0, 0.0)
    for spec, r, g in zip(network.outputs, ref, got):
        if r.shape != g.shape:
            return spec.name + " (shape)", float("inf"), float("inf")
        r, g = r.astype(np.float64), g.astype(np.float64)
        if -1 in spec.dims and len(lengths) == 1:
            axis = spec.dims.index(-1) + 1
            mask = np.arange(r.shape[axis]) < lengths[0].reshape(-1, *[1] * (r.ndim - 1))
            mask = np.moveaxis(mask, -1, axis) if axis != r.ndim - 1 else mask
            r, g = r * mask, g * mask
        error = float(np.max(np.abs(r - g), initial=0.0))
        error = error if np.isfinite(error) else float("inf")
        relative = error / max(1.0, float(np.max(np.abs(r), initial=0.0)))
        worst = max(worst, (spec.name, error, relative), key=lambda w: w[2])
    return worst


def median_seconds(
    module: torch.nn.Module, arrays: list[np.ndarray], device: str, repeats: int, budget: float
) -> float:
    """Median of up to `repeats` timed calls (at least 3, stopping after `budget` seconds),
    after three untimed ones: TorchScript's executor optimises a graph on its first calls. A
    call copies its inputs to the device and its outputs back, as a server's call does."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: list[float] = []
    while len(times) < 6 or (len(times) < repeats + 3 and sum(times[3:]) < budget):
        start = time.perf_counter()
        run(module, arrays, device)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def cpu_reference(path: Path, precision: str) -> tuple[torch.nn.Module, str]:
    """The network on the CPU, an fp16 one with its weights upcast to fp32: HalfPrecision hands
    its inputs to `module` in order; TracedHalfPrecision's traced call may reorder them, but it
    casts only floating inputs (ids stay), so that whole wrapper runs upcast."""
    module = torch.jit.load(str(path), map_location="cpu").eval()
    kind = getattr(module, "original_name", "")
    if precision != "fp16" or kind not in HALF_WRAPPERS:
        return module, f"CPU {precision}"
    return (module.module if kind == "HalfPrecision" else module).float(), "CPU fp32"


def check_network(
    net: Network, manifest: dict, device: str, args: argparse.Namespace
) -> tuple[dict, list[dict]]:
    """(parity figures, timing figures per timed batch) of one network."""
    config = manifest.get("config", {})
    on_device = torch.jit.load(str(net.path), map_location=device).eval()
    reference, label = cpu_reference(net.path, net.precision)
    limit = id_limit(reference)
    tokens = int(args.tokens or find_key(config, "max_seq_length") or 128)
    timed = [1, min(8, net.max_batch_size or 1)]
    parity_shapes = config.get("parity_shapes", DEFAULT_SHAPES)
    shapes = [(s["batch"], s["seconds"], s.get("tokens", 9), True) for s in parity_shapes]
    shapes += [(b, args.seconds, tokens, False) for b in dict.fromkeys(timed)]
    worst, rows = ("", 0.0, 0.0), []
    for i, (batch, seconds, length, ragged) in enumerate(shapes):
        arrays = make_inputs(net, config, batch, seconds, length, limit, 1000 + i, ragged)
        try:
            expected = run(reference, arrays, "cpu")
        except RuntimeError:  # an upcast that does not run (fp16 casts inside): as built
            if label == f"CPU {net.precision}":
                raise
            reference, label = torch.jit.load(str(net.path)).eval(), f"CPU {net.precision}"
            expected = run(reference, arrays, "cpu")
        error = max_error(net, expected, run(on_device, arrays, device))
        worst = max(worst, error, key=lambda w: w[2])
        if ragged:
            continue
        gpu = median_seconds(on_device, arrays, device, args.repeats, args.budget)
        cpu = median_seconds(reference, arrays, "cpu", args.repeats, args.budget)
        size = f"{length} tokens" if net.takes_tokens else f"{seconds:g} s"
        rows.append({"network": net, "batch": batch, "size": size, "gpu_s": gpu, "cpu_s": cpu})
    parity = {
        "network": net,
        "reference": label,
        "shapes": len(shapes),
        "output": worst[0],
        "error": worst[1],
        "relative_error": worst[2],
        "ok": worst[2] <= net.tolerance,
    }
    return parity, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repositories", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, help="markdown file for the tables")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed length (audio, symbols)")
    parser.add_argument("--tokens", type=int, help="timed tokens (default: max_seq_length)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per timing, at most")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the whole path")
    parser.add_argument("--tf32", action="store_true", help="let fp32 use TF32 (default: off)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        why = "no NVIDIA GPU is visible, or this torch is built without CUDA"
        print(f"error: CUDA is not available ({why}): nothing to run on", file=sys.stderr)
        return 2
    # Strict fp32 by default, so fp32 parity means fp32 (cuDNN otherwise convolves in TF32).
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    figures: dict = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "CPU (dry run)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "tf32": args.tf32,
        "date": str(date.today()),
        "parity": [],
        "timing": [],
        "skipped": [],
    }
    for root in args.repositories:
        networks, skips, manifest = read_repository(root)
        figures["skipped"] += skips
        for net in networks:
            print(f"{root.name}/{net.name} ({net.precision})", flush=True)
            try:
                parity, rows = check_network(net, manifest, args.device, args)
            except Exception as error:  # one broken network must not hide the others' figures
                traceback.print_exc()  # the whole story in the log; its last line in the table
                last = (str(error).strip().splitlines() or [""])[-1]
                why = f"{type(error).__name__}: {last.removeprefix('RuntimeError: ')}"
                parity, rows = {"network": net, "failed": why, "ok": False}, []
            figures["parity"].append(parity)
            figures["timing"] += rows
    environment = template_environment(project_folder("templates"), {})
    text = environment.get_template("gpu_networks.md.j2").render(**figures)
    print(text)
    if args.output:
        args.output.write_text(text)
    failed = not all(row["ok"] for row in figures["parity"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
