#!/usr/bin/env bash
# Streaming latency and capacity benchmark (issue 4's "Must show"): starts `chorus serve` with
# the embedded default model, streams a synthesized clip of several utterances in real time,
# first alone and then N at once, and prints the latency statistics `chorus stream` reports.
#
#   tools/bench/stream.sh [CONCURRENCY...]      (default: 1 2 4 8 12 16)
#   SERVE_FLAGS="--encoder-batch 1" tools/bench/stream.sh 16    (server flags, e.g. no batching)
#
# The clip: five sentences spoken by espeak-ng, each followed by 1 s of silence, at 16 kHz.
# Run on a quiet machine (pause training: kill -STOP its pid) and compare in one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-./bin/chorus}
ADDR=127.0.0.1:50599
HTTP=127.0.0.1:8599
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; wait $srv 2>/dev/null || true; rm -rf "$work"' EXIT

i=0
for s in "the quick brown fox jumps over the lazy dog" \
         "she sells sea shells by the sea shore" \
         "a journey of a thousand miles begins with a single step" \
         "please call stella and ask her to bring these things with her from the store" \
         "the rain in spain stays mainly in the plain"; do
  espeak-ng -v en-us -s 160 -w "$work/raw$i.wav" "$s"
  sox "$work/raw$i.wav" -r 16000 -c 1 -b 16 "$work/utt$i.wav" pad 0 1
  i=$((i+1))
done
sox "$work"/utt*.wav "$work/clip.wav"
echo "clip: $(soxi -D "$work/clip.wav") s, 5 utterances"

"$BIN" serve --addr "$ADDR" --http "$HTTP" ${SERVE_FLAGS:-} >"$work/serve.log" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null && break; sleep 0.2; done

for n in "${@:-1 2 4 8 12 16}"; do
  for c in $n; do
    echo "== concurrency $c"
    "$BIN" stream "$work/clip.wav" --addr "$ADDR" --realtime --no-interim=false --concurrency "$c" 2>&1 | tail -3
  done
done
