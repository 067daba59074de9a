"""Embedding throughput: the default extractor against VGG16 at 224 px, same runtime, same run.

    python bench/bench_embed.py                  # sizes 96/128/224, torch eager + onnxruntime
    python bench/bench_embed.py --threads 1 2    # each thread count in turn
    python bench/bench_embed.py --sizes 128 --rounds 1 --seconds 3   # a quick check

The prototype embedded every image with VGG16 (ImageNet, ``fc2``: 4096 floats) at 224x224.
This measures, in one process and interleaved round by round (so a change in the machine's
load hits every model alike):

* the default extractor (``settings.extractor``, EfficientNet-Lite + its pooling) as the embed
  stage runs it: the lookup vector and the kind vector (a second pass of the grey input), and
  the lookup pass alone beside it at each input size, its CNN run by onnxruntime (the product's
  runtime) and by torch eager (the same network, ``embed.efficientnet_lite``);
* VGG16 up to ``fc2``, defined here in plain torch (no torchvision), random weights (timing
  does not depend on them), at 224 px, in torch eager and exported to onnxruntime;
* the per-image preprocessing the embed stage does before the CNN (decode, canonicalise,
  model input, hashes), on real tiles and sheets from Debian's crawl-tiles-data.

Both runtimes get the same number of threads (``--threads 1 2`` times each count in turn;
default: the extractor's). The report gives images/s (wall clock) and images per CPU-second
(less sensitive to other load), the ratio to VGG16@224 in the same runtime and thread count
(target: >= 60x), and how far the two runtimes' vectors differ.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _common import CRAWL_TILES, Report, add_report_arguments

VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M")
VGG16_LAYERS += (512, 512, 512, "M")
TARGET_RATIO = 60.0  # issue 15: >= 60x in the same runtime and thread count


@dataclass
class Timing:
    """Accumulated batches of one configuration."""

    images: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    batch_walls: list[float] = field(default_factory=list)

    def add(self, images: int, wall: float, cpu: float) -> None:
        self.images += images
        self.wall += wall
        self.cpu += cpu
        self.batch_walls.append(wall)

    @property
    def per_second(self) -> float:
        return self.images / self.wall if self.wall else float("nan")

    @property
    def per_cpu_second(self) -> float:
        return self.images / self.cpu if self.cpu else float("nan")


@dataclass
class Config:
    model: str
    runtime: str
    threads: int
    size: int
    run: Callable[[np.ndarray], np.ndarray]
    batch: np.ndarray
    timing: Timing = field(default_factory=Timing)


def vgg16_fc2():  # type: ignore[no-untyped-def]
    """VGG16 (configuration D) up to the ReLU after ``fc2``: the prototype's 4096-d feature."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYERS:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    model = nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(512 * 7 * 7, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
    )
    torch.manual_seed(0)
    return model.eval()


def onnx_session(path: Path, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def export_vgg(model, target: Path) -> Path:  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 224, 224),),
            str(target),
            input_names=["input"],
            output_names=["fc2"],
            dynamic_axes={"input": {0: "batch"}, "fc2": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return target


def real_inputs(size: int, count: int) -> np.ndarray:
    """Model inputs made the embed stage's way from real 32x32 tiles (random if none)."""
    from PIL import Image

    from ogasearch.embed.preprocess import canonicalise, prepare_canonical

    inputs: list[np.ndarray] = []
    sheet = CRAWL_TILES / "main.png"
    if sheet.is_file():
        with Image.open(sheet) as opened:
            atlas = opened.convert("RGBA")
        for y in range(0, atlas.height - 31, 32):
            for x in range(0, atlas.width - 31, 32):
                tile = atlas.crop((x, y, x + 32, y + 32))
                if tile.getbbox() is None:
                    continue
                inputs.append(prepare_canonical(canonicalise(tile).image, size))
                if len(inputs) == count:
                    return np.stack(inputs)
    rng = np.random.default_rng(0)
    extra = rng.standard_normal((count - len(inputs), 3, size, size)).astype(np.float32)
    return np.concatenate([np.stack(inputs), extra]) if inputs else extra


def time_once(config: Config) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    config.run(config.batch)
    config.timing.add(len(config.batch), time.perf_counter() - wall, time.process_time() - cpu)


def build_configs(
    args: argparse.Namespace, workdir: Path, threads: int
) -> tuple[list[Config], dict[int, float]]:
    """Every (model, runtime, size) to time with ``threads`` threads, and the largest
    torch-vs-onnxruntime difference of the default extractor's vectors by size."""
    import torch

    from ogasearch.embed.efficientnet_lite import load_model
    from ogasearch.embed.extractors import OnnxEfficientNet
    from ogasearch.settings import load_settings

    settings = load_settings()
    default = default_extractor(args)
    configs: list[Config] = []
    differences: dict[int, float] = {}
    net = load_model(default.variant) if "torch" in args.runtimes else None

    def in_torch(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        def run(x: np.ndarray) -> np.ndarray:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                return fn(x)

        return run

    for size in args.sizes:
        extractor = OnnxEfficientNet(
            default.variant,
            size,
            models_dir=settings.data / "models",
            pooling=default.pooling,
            threads=threads,
        )
        batch = real_inputs(size, args.batch)
        name = extractor.name + (" (default)" if size == default.input_size else "")
        if "onnx" in args.runtimes:
            # what the embed stage runs: the lookup vector and the kind vector (a second pass
            # of the grey input); the lookup pass alone is timed beside it
            def stage(x: np.ndarray, extractor: OnnxEfficientNet = extractor) -> np.ndarray:
                return extractor.embed_with_kind(x)[0]

            configs.append(Config(name, "onnxruntime", threads, size, stage, batch))
            configs.append(
                Config(
                    f"{extractor.name} lookup pass only",
                    "onnxruntime",
                    threads,
                    size,
                    extractor.embed,
                    batch,
                )
            )
        if net is not None:

            def eager(x: np.ndarray, extractor: OnnxEfficientNet = extractor) -> np.ndarray:
                maps = net.features(torch.from_numpy(np.ascontiguousarray(x)))
                return extractor.pool({k: v.numpy() for k, v in maps.items()}, x)

            configs.append(Config(name, "torch eager", threads, size, in_torch(eager), batch))
            if "onnx" in args.runtimes:
                a, b = extractor.embed(batch[:8]), in_torch(eager)(batch[:8])
                differences[size] = float(np.abs(a - b).max())
    vgg = vgg16_fc2()
    vgg_batch = real_inputs(224, args.batch)
    if "onnx" in args.runtimes:
        path = workdir / "vgg16-fc2.onnx"
        if not path.exists():
            export_vgg(vgg, path)
        session = onnx_session(path, threads)
        configs.append(
            Config(
                "VGG16 fc2",
                "onnxruntime",
                threads,
                224,
                lambda x: session.run(None, {"input": x})[0],
                vgg_batch,
            )
        )
    if "torch" in args.runtimes:
        configs.append(
            Config(
                "VGG16 fc2",
                "torch eager",
                threads,
                224,
                in_torch(lambda x: vgg(torch.from_numpy(x)).numpy()),
                vgg_batch,
            )
        )
    return configs, differences


def default_extractor(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ogasearch.embed.extractors import OnnxEfficientNet, get_extractor
    from ogasearch.settings import load_settings

    settings = load_settings()
    default = get_extractor(args.extractor or settings.extractor, settings.data / "models")
    if not isinstance(default, OnnxEfficientNet):
        raise SystemExit(f"{default.name}: only EfficientNet extractors are benchmarked here")
    return default


def preprocessing(count: int) -> list[tuple[str, int, float]]:
    """Per-image cost of the embed stage's work before the CNN, on real PNGs (one core)."""
    from PIL import Image

    from ogasearch.embed.preprocess import (
        canonicalise,
        pixel_hash,
        prepare_canonical,
        structure_hash,
    )
    from ogasearch.extract.images import open_image
    from ogasearch.settings import Limits

    sheet_path = CRAWL_TILES / "main.png"
    if not sheet_path.is_file():
        return []
    limits = Limits()
    with Image.open(sheet_path) as opened:
        atlas = opened.convert("RGBA")
    tiles: list[bytes] = []
    for y in range(0, atlas.height - 31, 32):
        for x in range(0, atlas.width - 31, 32):
            tile = atlas.crop((x, y, x + 32, y + 32))
            if tile.getbbox() is not None and len(tiles) < count:
                out = io.BytesIO()
                tile.resize((64, 64), Image.Resampling.NEAREST).save(out, "PNG")  # a 2x upload
                tiles.append(out.getvalue())
    rows: list[tuple[str, int, float]] = []

    def per_image(label: str, n: int, fn: Callable[[], object]) -> None:
        started = time.perf_counter()
        fn()
        rows.append((label, n, (time.perf_counter() - started) / n * 1000))

    decoded: list[Image.Image] = []

    def decode() -> None:
        for data in tiles:
            with open_image(io.BytesIO(data), limits) as im:
                decoded.append(im.copy())

    per_image("decode PNG (64x64 tile, open_image)", len(tiles), decode)
    canon: list[Image.Image] = []
    per_image(
        "canonicalise (undo 2x, crop)",
        len(decoded),
        lambda: canon.extend(canonicalise(im).image for im in decoded),
    )
    per_image(
        "model input 128 px (prepare_canonical)",
        len(canon),
        lambda: [prepare_canonical(c, 128) for c in canon],
    )
    per_image(
        "pixel_hash + structure_hash",
        len(canon),
        lambda: [(pixel_hash(c), structure_hash(c)) for c in canon],
    )
    sheet_bytes = sheet_path.read_bytes()
    per_image(
        f"decode the whole sheet {atlas.width}x{atlas.height} (open_image)",
        3,
        lambda: [open_image(io.BytesIO(sheet_bytes), limits).close() for _ in range(3)],
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extractor", help="Extractor name (default: settings.extractor).")
    parser.add_argument("--sizes", type=int, nargs="+", help="Input sizes (default 96 128 224).")
    parser.add_argument(
        "--runtimes", nargs="+", choices=["onnx", "torch"], default=["onnx", "torch"]
    )
    parser.add_argument("--batch", type=int, default=32, help="Images per batch.")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        help="Thread counts to run both runtimes with (default: the extractor's).",
    )
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds.")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="Seconds per configuration per round."
    )
    parser.add_argument("--preprocess-images", type=int, default=300)
    add_report_arguments(parser)
    args = parser.parse_args()
    args.sizes = args.sizes or [96, 128, 224]
    report = Report("Embedding throughput", args, depends=["src/ogasearch/embed"])
    report.target(ratio_vs_vgg16=TARGET_RATIO)
    default = default_extractor(args)
    thread_counts = args.threads or [default.session.get_session_options().intra_op_num_threads]
    configs: list[Config] = []
    differences: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        for threads in thread_counts:
            more, diff = build_configs(args, Path(tmp), threads)
            configs += more
            differences.update(diff)
        for config in configs:  # warm up: first runs allocate and pick kernels
            config.run(config.batch)
        for _ in range(args.rounds):
            for config in configs:
                deadline = time.perf_counter() + args.seconds
                time_once(config)  # at least one batch (VGG16 may take longer than the slot)
                while time.perf_counter() < deadline:
                    time_once(config)
    vgg = {(c.runtime, c.threads): c.timing for c in configs if c.model.startswith("VGG16")}
    rows = []
    for c in configs:
        base = vgg.get((c.runtime, c.threads))
        compare = base is not None and not c.model.startswith("VGG16")
        rows.append(
            (
                c.model,
                c.runtime,
                c.threads,
                c.size,
                c.timing.images,
                f"{c.timing.per_second:.1f}",
                f"{c.timing.per_cpu_second:.1f}",
                f"{c.timing.per_second / base.per_second:.1f}x" if compare else "",
                f"{c.timing.per_cpu_second / base.per_cpu_second:.1f}x" if compare else "",
            )
        )
    report.line(
        f"Batch {args.batch}, {args.rounds} interleaved rounds of {args.seconds:g} s per"
        f" configuration, {os.cpu_count()} CPUs. Inputs are real 32x32 tiles prepared as the"
        " embed stage does; VGG16 has random weights. images/CPU-s counts this process's CPU"
        " time (idle spinning of runtime threads included)."
    )
    report.line()
    report.table(
        [
            "model",
            "runtime",
            "threads",
            "input px",
            "images",
            "images/s",
            "images/CPU-s",
            "vs VGG16@224",
            "vs VGG16@224 per CPU-s",
        ],
        rows,
    )
    default_runs: dict[str, dict[str, object]] = {}  # by thread count
    for c in configs:
        if "(default)" not in c.model or c.runtime != "onnxruntime":
            continue
        base = vgg.get(("onnxruntime", c.threads))
        if base is None:
            continue
        ratio = c.timing.per_second / base.per_second
        cpu_ratio = c.timing.per_cpu_second / base.per_cpu_second
        verdict = "met" if ratio >= TARGET_RATIO else f"missed by {TARGET_RATIO / ratio:.2f}x"
        default_runs[str(c.threads)] = {
            "model": c.model.replace(" (default)", ""),
            "input_px": c.size,
            "images_per_s": round(c.timing.per_second, 2),
            "vgg16_images_per_s": round(base.per_second, 2),
            "ratio_vs_vgg16": round(ratio, 2),
            "ratio_per_cpu_second": round(cpu_ratio, 2),
        }
        report.line(
            f"Target: the default extractor >= {TARGET_RATIO:g}x VGG16@224 in the same runtime"
            f" (onnxruntime, {c.threads} thread{'s' if c.threads > 1 else ''}): {ratio:.1f}x in"
            f" images/s, {verdict}"
            f" ({cpu_ratio:.1f}x per CPU-second)."
        )
    report.record(default_onnxruntime_by_threads=default_runs)
    if differences:
        worst = ", ".join(f"{s} px {d:.1e}" for s, d in sorted(differences.items()))
        report.line(f"Largest |torch - onnxruntime| in a vector component: {worst}.")
    report.line()
    pre = preprocessing(args.preprocess_images)
    if pre:
        report.line("Preprocessing before the CNN, per image, one core (real tiles, 2x upscaled):")
        report.line()
        report.table(["step", "images", "ms/image"], [(s, n, f"{ms:.2f}") for s, n, ms in pre])
    report.finish()


if __name__ == "__main__":
    main()
