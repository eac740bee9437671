#!/usr/bin/env bash
# Encode a vsflavr script's output with x264 and x265, piped through vspipe as y4m.
#   examples/encode.sh movie.mkv                                   # examples/flavr_2x.vpy
#   examples/encode.sh movie.mkv -a weights=weights/FLAVR_8x.pth   # more vspipe arguments
#   SCRIPT=examples/film_to_5994.vpy examples/encode.sh film.mkv
# Writes out_x264.mkv and out_x265.hevc here.  Audio is not in the pipe: mux it back, e.g.
#   ffmpeg -i out_x265.hevc -i movie.mkv -map 0:v -map 1:a? -c copy out.mkv
set -euo pipefail

src=$(realpath "${1:?usage: examples/encode.sh SOURCE_VIDEO [VSPIPE_ARGUMENTS...]}")  # vspipe runs the script from its own folder
shift
script=${SCRIPT:-$(dirname "$0")/flavr_2x.vpy}

# H.264, 8-bit for every player (the script's output has the source's format and depth).
vspipe -c y4m -a "src=$src" "$@" "$script" - |
    x264 --demuxer y4m --preset slow --crf 18 --output-depth 8 -o out_x264.mkv -

# HEVC, 10-bit (an 8-bit source is widened, a 10-bit one kept).
vspipe -c y4m -a "src=$src" "$@" "$script" - |
    x265 --y4m --preset slow --crf 18 --output-depth 10 -o out_x265.hevc -
