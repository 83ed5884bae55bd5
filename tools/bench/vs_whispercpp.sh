#!/usr/bin/env bash
# Engine benchmark against whisper.cpp (issue 2): rounds of whisper-bench (default and
# llamafile builds) and `chorus bench`, back to back on the same seeded random weights, 2
# threads. Prints one line per program per round; compare ratios within a round.
#
#   WCPP=/path/to/whisper.cpp tools/bench/vs_whispercpp.sh DIMS ROUNDS
#
# Setup (once): build whisper.cpp's whisper-bench with cmake twice (build-default, and
# build-llamafile with -DGGML_LLAMAFILE=ON), then
#   chorus models random --dims DIMS --out random-DIMS
#   chorus models export --model random-DIMS --out ggml-random-DIMS-f16.bin --f16
set -euo pipefail
cd "$(dirname "$0")/../.."
dims=${1:-tiny}
rounds=${2:-3}
WCPP=${WCPP:-/work/wcpp}
model=$WCPP/ggml-random-$dims-f16.bin
BIN=${BIN:-./bin/chorus}
for r in $(seq "$rounds"); do
  for b in default llamafile; do
    out=$("$WCPP/src/build-$b/bin/whisper-bench" -m "$model" -t 2 2>&1)
    enc=$(grep -oP 'encode time = +\K[0-9.]+' <<<"$out" | tail -1)
    dec=$(grep -oP 'decode time = .*\( +\K[0-9.]+(?= ms per run)' <<<"$out" | tail -1)
    echo "round $r whisper.cpp-$b encoder_ms $enc decode_ms_per_token $dec"
  done
  j=$("$BIN" bench --dims "$dims" --threads 2 --runs 3 --json)
  echo "round $r chorus encoder_ms $(jq -r .encoder_ms <<<"$j") decode_ms_per_token $(jq -r .decode_ms_per_token <<<"$j")"
done
