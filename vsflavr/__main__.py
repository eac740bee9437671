"""Command line: ``python -m vsflavr COMMAND ...`` (also installed as ``vsflavr``).

Each command is one small function taking the parsed arguments and returning the exit
status, plus an ``add_*`` function that declares its sub-parser; :func:`build_parser`
calls those.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import vapoursynth as vs

from .backends import resolve_device
from .bench import default_specs, parse_size, run_bench
from .checkpoint import CheckpointError, load_checkpoint
from .download import MULTIS, DownloadError, Source, download_weights, official_sources
from .errors import first_line
from .info import UNUSABLE, checkpoint_report, environment_report, weights_report
from .render.command import add_render
from .scenes import DEFAULT_THRESHOLD
from .weights import ENV_WEIGHTS_DIR, default_download_dir, user_weights_dir

logger = logging.getLogger("vsflavr")


def download(args: argparse.Namespace) -> int:
    """Download, verify and install the official checkpoints; 0 when every one is in place."""
    directory = args.dir or default_download_dir()
    multis = MULTIS if args.which == "all" else (int(args.which.removesuffix("x")),)
    if args.url and len(multis) > 1 and "{multi}" not in args.url:
        logger.error("vsflavr download: --url with 'all' needs a {multi} placeholder, e.g. .../FLAVR_{multi}x.pth")
        return 2
    failed = 0
    for multi in multis:
        sources = official_sources(multi)
        if args.url:
            sources.insert(0, Source("--url", args.url.replace("{multi}", str(multi))))
        try:
            download_weights(multi, directory, sources=sources, force=args.force, progress=not args.quiet)
        except DownloadError as exc:
            logger.error(
                "vsflavr download: no source gave a valid %s (%d tried); nothing saved", exc.file, len(exc.failures)
            )
            failed += 1
    return 1 if failed else 0


def add_download(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "download",
        help="download the official FLAVR checkpoints",
        description="Download the official FLAVR checkpoints, verify them and install them where vsflavr finds "
        "them. Sources are tried in order (--url first when given, then Google Drive, then the GitHub mirror) "
        "until one gives a valid checkpoint.",
    )
    p.add_argument(
        "which", nargs="?", default="all", choices=[f"{m}x" for m in MULTIS] + ["all"], help="which (default: all)"
    )
    p.add_argument("--dir", help=f"target directory (default: ${ENV_WEIGHTS_DIR}, else {user_weights_dir()})")
    p.add_argument("--url", help="another mirror to try first; {multi} in it becomes 2, 4 or 8")
    p.add_argument("--force", action="store_true", help="download again even if a valid file is there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=download)


def info(args: argparse.Namespace) -> int:
    """Print versions, CUDA devices, the checkpoints found and missing, and the default choice; 1 if one is unusable."""
    checkpoints = weights_report()
    print("\n".join([*environment_report(), "", *checkpoints]))
    return 1 if any(UNUSABLE in line for line in checkpoints) else 0


def add_info(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "info",
        help="versions, GPUs, and which checkpoints are found where",
        description="Print the versions of vsflavr and what it runs on, the CUDA devices torch sees, every "
        "directory searched for checkpoints with the files found there, what is missing and how to get it, and "
        "the checkpoint a default flavr(clip) call would use.",
    )
    p.set_defaults(run=info)


def check_weights(args: argparse.Namespace) -> int:
    """Print what a checkpoint holds; 1 with the loader's reason when it cannot be used."""
    try:
        print("\n".join(checkpoint_report(args.path)))
    except CheckpointError as exc:
        logger.error("vsflavr check-weights: %s", str(exc).splitlines()[0])
        return 1
    return 0


def add_check_weights(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "check-weights",
        help="load a checkpoint and print what it holds",
        description="Load a checkpoint with the filter's own loader and print its multi, encoder variant, widths "
        "and blocks, skip, parameter count, sha256 and metadata. Exit status 1 when it cannot be used.",
    )
    p.add_argument("path", help="the .pth file")
    p.set_defaults(run=check_weights)


def _optional(name: str, extra: str, command: str) -> ModuleType | None:
    """Import ``vsflavr.<name>``, or log which extra to install and return None when a package it needs is missing."""
    try:
        return importlib.import_module(f".{name}", __package__)
    except ImportError as exc:
        logger.error(
            "vsflavr %s: needs the Python package %s; install it with: pip install 'vsflavr[%s]'",
            command,
            (exc.name or "?").partition(".")[0],
            extra,
        )
        return None


def export_onnx(args: argparse.Namespace) -> int:
    """Export a checkpoint to ONNX and check the file in onnxruntime; 1 when it is off by more than the tolerance."""
    export = _optional("export", "onnx", "export-onnx")
    if export is None:
        return 2
    if (args.height is None) != (args.width is None):
        logger.error("vsflavr export-onnx: give both --height and --width, or neither for a dynamic size")
        return 2
    size = None if args.height is None else (args.height, args.width)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
        opset = export.DEFAULT_OPSET if args.opset is None else args.opset
        logger.info("exporting %s to ONNX (opset %d); this takes a while", args.checkpoint, opset)
        export.export_onnx(checkpoint, args.out, fp16=args.fp16, size=size, opset=opset)
    except (CheckpointError, ValueError) as exc:
        logger.error("vsflavr export-onnx: %s", str(exc).splitlines()[0])
        return 1
    precision = "fp16" if args.fp16 else "fp32"
    shape = "H, W" if size is None else f"{size[0]}, {size[1]}"
    n_out = 3 * checkpoint.architecture.n_outputs
    logger.info(
        "wrote %s: %s, input %r (1, 12, %s), output %r (1, %d, %s)",
        args.out,
        precision,
        export.INPUT_NAME,
        shape,
        export.OUTPUT_NAME,
        n_out,
        shape,
    )
    sizes = [size] if size is not None else export.VERIFY_SIZES
    tolerance = export.TOLERANCE[precision]
    failed = False
    for check in export.verify_onnx(args.out, checkpoint, sizes, progress=not args.quiet):
        ok = check.max_abs_diff <= tolerance
        failed |= not ok
        logger.info(
            "onnxruntime vs torch at %dx%d: max abs diff %.3g (%s, tolerance %g)",
            check.width,
            check.height,
            check.max_abs_diff,
            "ok" if ok else "TOO LARGE",
            tolerance,
        )
    return 1 if failed else 0


def add_export_onnx(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "export-onnx",
        help="export a checkpoint to ONNX (for vs-mlrt, onnxruntime, TensorRT)",
        description="Export a checkpoint to ONNX with vs-mlrt's layout: input 'frames' (1, 12, H, W), the four RGB "
        "frames I-1, I0, I1, I2 in 0..1 stacked along the channels; output 'interpolated' (1, 3*(multi-1), H, W). "
        "H and W must be multiples of 8 and are dynamic unless --height/--width are given. The file is then run "
        "in onnxruntime next to the PyTorch network on random frames, and the largest difference is printed.",
    )
    p.add_argument("checkpoint", help="the .pth file")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights, input and output (default float32)")
    p.add_argument("--height", type=int, help="a fixed frame height, a multiple of 8 (with --width)")
    p.add_argument("--width", type=int, help="a fixed frame width, a multiple of 8 (with --height)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18, the lowest PyTorch's exporter writes itself)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=export_onnx)


def evaluate_clip(args: argparse.Namespace) -> int:
    """Score FLAVR, blending and repetition at rebuilding dropped frames of a clip; print the summary."""
    evaluate = _optional("evaluate", "eval", "eval")
    if evaluate is None:
        return 2
    try:
        clip = evaluate.open_rgbs(args.clip, args.frames)
        options = {
            "weights": args.weights,
            "device": _device(args.device),
            "precision": args.precision,
            "sc_threshold": args.sc_threshold,
            "progress": not args.quiet,
        }
        if args.twos:
            result = evaluate.evaluate_twos(clip, **options)
        else:
            result = evaluate.evaluate(clip, args.multi, **options)
    except (vs.Error, ValueError) as exc:
        logger.error("vsflavr eval: %s", str(exc).strip().splitlines()[0])
        return 1
    print("\n".join(evaluate.summary(result)))
    if args.csv:
        evaluate.write_csv(result, args.csv)
        logger.info("wrote %s", args.csv)
    if args.plot:
        evaluate.plot_psnr(result, args.plot, title=Path(args.clip).name)
        logger.info("wrote %s", args.plot)
    return 0


def _device(text: str | None) -> int | str | None:
    """``--device`` as flavr() takes it: a GPU index as an int, anything else as it is."""
    return int(text) if text is not None and text.isdigit() else text


def add_eval(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "eval",
        help="measure FLAVR on your own clip against frame blending and repetition",
        description="Keep every K-th frame of a clip, rebuild the others with FLAVR, frame blending and frame "
        "repetition, and print the mean PSNR (RGB, 0..255 scale) and SSIM of each against the dropped originals. "
        "Gaps that span a scene cut of the original clip are left out of the means.",
    )
    p.add_argument("clip", help="a video file BestSource can open")
    p.add_argument(
        "--weights",
        help="a checkpoint file or directory, 'official' or 'builtin' (the built-in model for --multi; "
        "default: the search)",
    )
    p.add_argument("--multi", type=int, default=2, help="keep one frame in K and rebuild the rest (default 2)")
    p.add_argument("--frames", type=int, help="use only the first N frames of the clip")
    p.add_argument(
        "--twos",
        action="store_true",
        help="measure dedup instead: hold every even frame twice (light noise on the copy), rebuild the odd "
        "frames with flavr(multi=1, dedup=True), and score them next to the held copies and blending",
    )
    p.add_argument("--csv", help="write per-frame scores to this CSV file")
    p.add_argument("--plot", help="write a PNG plot of PSNR over time to this file")
    p.add_argument("--device", help="GPU index, 'cuda:N' or 'cpu' (default: the first GPU, else the CPU)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "bf16", "int8"],
        help="as flavr()'s precision (default auto: fp16 on a GPU, bf16 on CPUs with native bf16, else fp32; "
        "int8: the built-in 2x model on the CPU)",
    )
    p.add_argument(
        "--sc-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"scene cut threshold on the original clip (default {DEFAULT_THRESHOLD}), as flavr()'s sc_threshold",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=evaluate_clip)


def bench(args: argparse.Namespace) -> int:
    """Time the official fp32 forward pass and vsflavr's backends on the same inputs; 0 when all ran."""
    try:
        device = resolve_device(_device(args.device))
        sizes = [parse_size(size) for size in args.size]
    except ValueError as exc:
        logger.error("vsflavr bench: %s", exc)
        return 2
    if args.repeats < 1 or min(args.multi) < 2:
        logger.error("vsflavr bench: --repeats must be >= 1 and --multi >= 2")
        return 2
    return run_bench(
        sizes=sizes,
        multis=args.multi,
        specs=args.backends or default_specs(device),
        device=device,
        repeats=args.repeats,
        weights=args.weights,
        out=sys.stdout,
    )


def add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "bench",
        help="measure the speed of each backend against the official code",
        description="Run the official-style forward pass (fp32, batch 1, no tricks) and each vsflavr backend on "
        "the same synthetic frames, and print per backend: forward passes per second (of the fastest timed pass), "
        "output frames per second "
        "at the chosen multi, the first pass's seconds (compilation included), peak memory of a pass, the largest "
        "difference from the fp32 output, and the speed-up. The network is the official architecture with random "
        "weights unless --weights is given; speed does not depend on the weights.",
    )
    p.add_argument("--size", nargs="+", default=["256x256"], metavar="WxH", help="frame sizes (default: 256x256)")
    p.add_argument("--multi", nargs="+", type=int, default=[2], metavar="N", help="rate factors (default: 2)")
    p.add_argument(
        "--backends",
        nargs="+",
        metavar="NAME:PRECISION",
        help="backends to measure, as the filter's backend and precision, e.g. torch:bf16 compile:fp32 trt:fp16 "
        "(default: torch:fp32 torch:bf16 on the CPU, and openvino:fp32 openvino:bf16 where OpenVINO is installed; "
        "torch:fp16 torch:bf16 on a GPU)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        help="a checkpoint, or 'builtin' for the built-in model that makes --multi, instead of random "
        "official-size weights",
    )
    p.add_argument("--repeats", type=int, default=2, help="timed passes per backend after the first (default: 2)")
    p.add_argument("--device", help="'cpu', a GPU index or 'cuda:N' (default: the first GPU, else the CPU)")
    p.set_defaults(run=bench)


DOCS = "docs/cli.md"
"""The page of the documentation with a section per command (the section's anchor is the command's name)."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each ``add_*`` function adds one and sets ``run`` to its function.

    Each command's ``--help`` ends with the section of :data:`DOCS` that explains it.
    """
    parser = argparse.ArgumentParser(
        prog="python -m vsflavr",
        description="FLAVR frame interpolation for VapourSynth",
        epilog=f"Documentation: README.md and docs/ in vsflavr's repository; every command: {DOCS}",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_download(commands)
    add_bench(commands)
    add_info(commands)
    add_check_weights(commands)
    add_export_onnx(commands)
    add_eval(commands)
    add_render(commands)
    for name, command in commands.choices.items():
        command.epilog = f"Documentation: {DOCS}#{name}"
    return parser


@contextmanager
def _log_to_stderr() -> Iterator[None]:
    """Show the ``vsflavr`` logger's lines on stderr while a command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    with _log_to_stderr():
        try:
            return int(args.run(args))
        except Exception as exc:  # a command ends with one line, never a traceback
            logger.error("vsflavr %s: %s", args.command, first_line(exc))
            logger.debug("the failure in full", exc_info=True)
            return 1


if __name__ == "__main__":
    sys.exit(main())
