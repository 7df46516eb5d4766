#!/bin/sh
# moe_peers.sh: a mixture of experts against llama.cpp, in one run on this
# machine: the OLMoE-1B-7B-shaped synthetic model (`strata synth --shape
# olmoe-1b-7b`, Q8_0 by default: 64 experts of width 1024, 8 a token, 16
# layers), decode and prefill in strata (bench/fwd_speed) and in llama.cpp
# (the node-llama-cpp package's prebuilt CPU build, bench/peers.mjs), in
# interleaved rounds, medians; the table ends with the issue's targets as
# ratios from this run (decode and prefill >= 1.0x llama.cpp).
#
#   sh bench/moe_peers.sh [--rounds N] [--threads N] [--dtype T] [--tokens N]
#                         (from a build directory)
#
# llama.cpp is installed from npm as bench/peers.sh does; the model is
# written once under ${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STRATA_BIN:-./strata}
rounds=3 threads=2 tokens=512 gen=32 dt=q8_0 shape=olmoe-1b-7b
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift ;;
	--threads) threads=$2; shift ;;
	--dtype) dt=$2; shift ;;
	--tokens) tokens=$2; shift ;;
	*) echo "usage: sh bench/moe_peers.sh [--rounds N] [--threads N] [--dtype T] [--tokens N]" >&2
	   exit 2 ;;
	esac
	shift
done
for p in "$BIN" bench/fwd_speed; do
	[ -x "$p" ] || { echo "moe_peers: $p is not built (run make bench first)" >&2; exit 1; }
done
DIR=${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers
LOG=$DIR/logs/moe-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOG" || exit 1
say() { echo "moe_peers: $*" >&2; }

. "$SRC/bench/peer_lib.sh"

f=$DIR/$shape-$dt.gguf
if [ ! -s "$f" ]; then
	say "writing $f"
	"$BIN" synth "$f" --shape "$shape" --dtype "$dt" >/dev/null || { say "synth failed"; exit 1; }
fi

file_rounds "$f"
echo
echo "$shape $dt, $threads threads, $tokens-token prefill, $gen decode steps, median of $rounds rounds"
engine_table
echo "moe_prefill_vs_llamacpp=$(ratio "$sp" "$lp") (target >= 1.0)"
echo "moe_decode_vs_llamacpp=$(ratio "$sd" "$ld") (target >= 1.0)"
echo "logs: $LOG"
