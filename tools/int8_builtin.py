"""Quantise the built-in model to int8 with NNCF, and measure what it costs and gains.

Calibration and validation use only the built-in model's training footage (the tier-A clips of
``tools/builtin/data_manifest.toml``, fetched and decoded by ``tools/builtin/fetch_data.py``),
split by clip: ``--calib`` clips give the calibration windows, ``--valid`` clips (held out) the
drop-frame PSNR (every second frame kept, the one in between rebuilt: windows of frames
t, t+2, t+4, t+6 predict t+3, as ``python -m vsflavr eval`` does).  ``../shared/footage`` is never read.

For each recipe it prints one JSON line: the held-out PSNR of fp32 and int8 and their
difference, and passes/s of both at 640x272 (fastest of ``--repeats`` interleaved passes, one
OpenVINO stream, this process's threads), and writes the int8 IR to ``--out/<recipe>.xml``.

    nice -n 19 python tools/int8_builtin.py --recipes mixed_float_gates mixed_float_gates_deconv
    nice -n 19 python tools/int8_builtin.py --recipes accuracy_control --max-drop 0.1
    nice -n 19 python tools/int8_builtin.py --eval ../shared/footage/bikes.mp4 --int8 RECIPE.xml

``--eval`` runs ``python -m vsflavr eval``'s measure (``vsflavr.evaluate.evaluate``, multi 2, inside
VapourSynth) on a clip twice, the built-in model through OpenVINO in fp32 and through the int8 IR,
and prints both summaries and the difference; int8 is not an option of ``flavr()``, so the tool
hands the filter its own backend.

Needs ``pip install nncf`` (the ``int8`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
from platformdirs import user_cache_dir

from vsflavr.backends.openvino import _converted
from vsflavr.checkpoint import load_checkpoint
from vsflavr.weights import BUILTIN_MODELS

FRAMES = Path(user_cache_dir("vsflavr-train")) / "frames"
CALIB_CLIPS = ("cockatoo", "cityCC0", "shepard_calais_1906")
VALID_CLIPS = ("motion", "realshort")
BENCH_SIZE = (272, 640)

Window = tuple[np.ndarray, np.ndarray, np.ndarray]
"""frames (1, 4, 3, H, W) float32 in 0..1, their channel mean (1, 3, 1, 1, 1), the target (3, H, W)."""


def shots(clip: str) -> Iterator[np.ndarray]:
    """The clip's shots as uint8 (N, H, W, 3), cropped to multiples of 8."""
    for seg in sorted((FRAMES / clip).glob("seg*.npy")):
        frames = np.load(seg)
        height, width = frames.shape[1] // 8 * 8, frames.shape[2] // 8 * 8
        yield frames[:, :height, :width]


def window(shot: np.ndarray, start: int, stride: int) -> Window:
    picked = shot[[start + stride * k for k in range(4)]]
    frames = (picked.astype(np.float32) / 255).transpose(0, 3, 1, 2)[None]
    mean = frames.transpose(0, 2, 1, 3, 4).mean(axis=(2, 3, 4), keepdims=True).astype(np.float32)
    target = shot[start + stride + stride // 2].astype(np.float32).transpose(2, 0, 1) / 255
    return np.ascontiguousarray(frames), mean, target


def windows(clips: tuple[str, ...], strides: tuple[int, ...], every: int) -> list[Window]:
    """Windows of every ``every``-th start in each shot of ``clips``, for each stride (2: drop-frame)."""
    found = []
    for clip in clips:
        for shot in shots(clip):
            for stride in strides:
                found += [window(shot, s, stride) for s in range(0, len(shot) - 3 * stride, every)]
    return found


def psnr(reference: np.ndarray, rebuilt: np.ndarray) -> float:
    mse = float(np.mean(np.square(reference.astype(np.float64) - np.clip(rebuilt, 0, 1))))
    return 100.0 if mse == 0 else min(100.0, 10 * math.log10(1 / mse))


def psnrs(compiled: Any, valid: Any) -> list[float]:
    request = compiled.create_infer_request()
    scores = []
    for frames, mean, target in valid:
        request.infer([frames, mean])
        scores.append(psnr(target, request.get_output_tensor(0).data[0, 0]))
    return scores


def mean_psnr(compiled: Any, valid: Any) -> float:
    return float(np.mean(psnrs(compiled, valid)))


def compile_cpu(model: Any, shape: tuple[int, int] | None = None) -> Any:
    model = model.clone()
    if shape is not None:
        model.reshape({0: [1, 4, 3, *shape], 1: [1, 3, 1, 1, 1]})
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    return ov.Core().compile_model(model, "CPU", config)


def speeds(models: dict[str, Any], repeats: int) -> dict[str, float]:
    """Passes/s of each model at :data:`BENCH_SIZE`, fastest of ``repeats`` interleaved passes."""
    height, width = BENCH_SIZE
    rng = np.random.default_rng(0)
    frames = rng.random((1, 4, 3, height, width), dtype=np.float32)
    mean = frames.transpose(0, 2, 1, 3, 4).mean(axis=(2, 3, 4), keepdims=True)
    requests = {name: compile_cpu(m, BENCH_SIZE).create_infer_request() for name, m in models.items()}
    best = dict.fromkeys(models, math.inf)
    for request in requests.values():
        request.infer([frames, mean])
    for _ in range(repeats):
        for name, request in requests.items():
            start = time.perf_counter()
            request.infer([frames, mean])
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: 1 / seconds for name, seconds in best.items()}


def names(model: Any, test: Callable[[Any], bool]) -> list[str]:
    return [op.get_friendly_name() for op in model.get_ops() if test(op)]


def gates(model: Any) -> list[str]:
    """The squeeze-and-excitation gates: their 1x1x1 convolutions (and bias adds)."""
    return names(model, lambda op: ".attn_layer." in op.get_friendly_name())


def ends(model: Any) -> list[str]:
    """The first and last convolutions, the time-fusing 1x1 convolution, and the adds onto the blend."""
    keep = ("encoder.stem.0/", "outconv.1/", "feature_fuse.")
    return names(
        model,
        lambda op: any(k in op.get_friendly_name() for k in keep) or op.get_friendly_name().startswith("aten::add/"),
    )


def centring(model: Any) -> list[str]:
    """The subtraction of the frames' mean, the network's first operation."""
    return names(model, lambda op: op.get_type_name() == "Subtract")


def recipe_options(name: str, model: Any, nncf: Any) -> dict[str, Any]:
    """NNCF ``quantize`` options of a named recipe."""
    mixed = {"preset": nncf.QuantizationPreset.MIXED, "model_type": None}
    float_gate_types = ["Sigmoid", "Multiply", "ReduceMean"]
    if name == "default":
        return {}
    if name == "mixed":
        return mixed
    if name == "mixed_float_gates":
        scope = nncf.IgnoredScope(names=gates(model) + ends(model), types=float_gate_types, validate=False)
        return {**mixed, "ignored_scope": scope}
    if name == "mixed_float_gates_deconv":
        types = [*float_gate_types, "ConvolutionBackpropData"]
        scope = nncf.IgnoredScope(names=gates(model) + ends(model), types=types, validate=False)
        return {**mixed, "ignored_scope": scope}
    if name == "mixed_float_gates_overflow":
        scope = nncf.IgnoredScope(names=gates(model) + ends(model), types=float_gate_types, validate=False)
        params = nncf.quantization.advanced_parameters.AdvancedQuantizationParameters(
            overflow_fix=nncf.quantization.advanced_parameters.OverflowFix.ENABLE
        )
        return {**mixed, "ignored_scope": scope, "advanced_parameters": params}
    if name == "mixed_float_gates_input":
        # The accuracy-control ranking put the input's quantiser (before the mean is subtracted) first by far.
        scope = nncf.IgnoredScope(
            names=[*gates(model), *ends(model), *centring(model)], types=float_gate_types, validate=False
        )
        return {**mixed, "ignored_scope": scope}
    if name == "mixed_float_gates_bias_correction":
        scope = nncf.IgnoredScope(names=gates(model) + ends(model), types=float_gate_types, validate=False)
        return {**mixed, "ignored_scope": scope, "fast_bias_correction": False}
    raise ValueError(f"unknown recipe {name!r}")


def evaluate_footage(clip_path: str, int8_paths: list[Path], frames: int | None, out: Path) -> None:
    """Drop-frame PSNR of the built-in model on a clip in OpenVINO fp32 and with each int8 IR, through ``vsflavr.flavr``.

    The fp32 figure is kept in ``out`` (it does not change) and read back by later runs.
    """
    from dataclasses import dataclass

    import vsflavr
    from vsflavr.backends import OpenVINOBackend
    from vsflavr.backends import openvino as ov_backend
    from vsflavr.evaluate import evaluate, open_rgbs, summary

    @dataclass(frozen=True, kw_only=True)
    class IRBackend(OpenVINOBackend):
        """OpenVINO running a given IR (fp32 plugin precision: the int8 parts run in int8 all the same)."""

        ir: Path | None = None

        def forward(self, model: Any) -> Any:
            if self.ir is None:
                return super().forward(model)
            cache = Path(user_cache_dir("vsflavr")) / "openvino"
            return ov_backend._Networks(ov, ov.Core().read_model(self.ir), "fp32", 1, cache)

    clip = open_rgbs(clip_path, frames)
    kept = out / f"fp32_{Path(clip_path).stem}_{frames or 'all'}.json"
    runs: list[tuple[str, Path | None]] = [] if kept.is_file() else [("fp32", None)]
    runs += [(path.stem, path) for path in int8_paths]
    means = json.loads(kept.read_text()) if kept.is_file() else {}
    for label, ir in runs:
        vsflavr.select_backend = lambda *args, ir=ir, **kwargs: IRBackend(precision="fp32", ir=ir)
        start = time.perf_counter()
        result = evaluate(clip, 2, weights="builtin", device="cpu", precision="fp32", sc_threshold=0.12)
        means[label] = {"psnr": result.mean("psnr", "flavr"), "ssim": result.mean("ssim", "flavr")}
        print(f"# {label} ({time.perf_counter() - start:.0f} s)")
        print("\n".join(summary(result)), flush=True)
        if ir is None:
            out.mkdir(parents=True, exist_ok=True)
            kept.write_text(json.dumps({"fp32": means["fp32"]}))
        else:
            drop = means["fp32"]["psnr"] - means[label]["psnr"]
            print(json.dumps({"clip": clip_path, "int8": label, "fp32_psnr": round(means["fp32"]["psnr"], 3),
                              "int8_psnr": round(means[label]["psnr"], 3), "drop_db": round(drop, 3)}), flush=True)


def install(path: Path) -> None:
    """Save the int8 IR at ``path`` as :data:`~vsflavr.backends.openvino.INT8_MODEL`, marked with the weights it
    was made from (vsflavr refuses it for any other weights) and the recipe (the file's stem)."""
    from vsflavr.backends.openvino import INT8_MODEL
    from vsflavr.backends.tensorrt import weights_checksum

    network = ov.Core().read_model(path)
    network.set_rt_info(weights_checksum(load_checkpoint(BUILTIN_MODELS[2]).model), ["vsflavr", "weights_sha256"])
    network.set_rt_info(f"tools/int8_builtin.py --recipes {path.stem}", ["vsflavr", "made_by"])
    ov.save_model(network, INT8_MODEL, compress_to_fp16=False)
    print(f"wrote {INT8_MODEL} and {INT8_MODEL.with_suffix('.bin')}")


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=["mixed_float_gates"])
    parser.add_argument("--calib-every", type=int, default=6, help="one calibration window per N frames")
    parser.add_argument("--valid-every", type=int, default=4, help="one validation window per N frames")
    parser.add_argument("--subset", type=int, default=300, help="NNCF subset_size")
    parser.add_argument("--max-drop", type=float, default=0.1, help="accuracy_control: dB the int8 model may lose")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(user_cache_dir("vsflavr")) / "int8-trials")
    parser.add_argument("--eval", metavar="CLIP", help="measure an int8 IR (--int8) against fp32 on a clip instead")
    parser.add_argument("--int8", type=Path, nargs="*", default=[], help="the int8 IRs for --eval")
    parser.add_argument("--frames", type=int, help="--eval: only the first N frames")
    parser.add_argument("--install", type=Path, help="make this int8 IR vsflavr's precision='int8' (INT8_MODEL)")
    args = parser.parse_args()
    if args.install:
        install(args.install)
        return
    if args.eval:
        evaluate_footage(args.eval, args.int8, args.frames, args.out)
        return
    import nncf

    model = load_checkpoint(BUILTIN_MODELS[2]).model.eval()
    fp32 = _converted(ov, model, Path(user_cache_dir("vsflavr")) / "openvino")
    calib = windows(CALIB_CLIPS, (1, 2), args.calib_every)
    valid = windows(VALID_CLIPS, (2,), args.valid_every)
    dataset = nncf.Dataset(calib, lambda w: [w[0], w[1]])
    fp32_psnr = mean_psnr(compile_cpu(fp32), valid)
    print(json.dumps({"calib_windows": len(calib), "valid_windows": len(valid), "fp32_psnr": round(fp32_psnr, 3)}))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.recipes:
        start = time.perf_counter()
        if name == "accuracy_control":
            options = recipe_options("mixed_float_gates", fp32, nncf)
            validation = nncf.Dataset(valid, lambda w: [w[0], w[1]])
            int8 = nncf.quantize_with_accuracy_control(
                fp32,
                dataset,
                validation,
                validation_fn=lambda compiled, items: (float(np.mean(v := psnrs(compiled, items))), v),
                max_drop=args.max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                subset_size=args.subset,
                **options,
            )
        else:
            int8 = nncf.quantize(fp32, dataset, subset_size=args.subset, **recipe_options(name, fp32, nncf))
        seconds = time.perf_counter() - start
        ov.save_model(int8, args.out / f"{name}.xml", compress_to_fp16=False)
        int8_psnr = mean_psnr(compile_cpu(int8), valid)
        speed = speeds({"fp32": fp32, "int8": int8}, args.repeats)
        print(
            json.dumps(
                {
                    "recipe": name,
                    "quantize_s": round(seconds, 1),
                    "int8_psnr": round(int8_psnr, 3),
                    "drop_db": round(fp32_psnr - int8_psnr, 3),
                    "fp32_passes_s": round(speed["fp32"], 3),
                    "int8_passes_s": round(speed["int8"], 3),
                    "speedup": round(speed["int8"] / speed["fp32"], 2),
                    "fake_quantize": sum(op.get_type_name() == "FakeQuantize" for op in int8.get_ops()),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
