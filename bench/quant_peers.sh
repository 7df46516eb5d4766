#!/bin/sh
# quant_peers.sh: what `strata quantize` costs and what its Q4_0 file
# runs at, in one run on this machine.  The TinyLlama-shaped F32
# synthetic model (written once, as bench/peers.sh writes it) is quantized
# with `--quant Q` (default gptq) on --samples x --seq-len tokens of
# TinyStories (default 128 x 512), timed as a whole command; then the
# file's decode and prefill are measured in strata (bench/fwd_speed) and
# in llama.cpp (the node-llama-cpp package's prebuilt CPU build,
# bench/peers.mjs), on the same file, in interleaved rounds, medians.
#
#   sh bench/quant_peers.sh [--quant rtn|gptq|awq] [--type q4_0|q4_1|q8_0]
#        [--samples N] [--seq-len L] [--rounds N] [--threads N] [--out FILE]
#        [--src-dtype f32|bf16]   (from a build directory)
#
# --src-dtype bf16 quantizes the BF16 synthetic model instead (TinyLlama
# ships BF16): GPTQ's passes then run bf16 products (strata(1), QUANTIZE).
#
# --out FILE reuses (or keeps) the quantized file: without it the file is
# written under ${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers and replaced.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STRATA_BIN:-./strata}
quant=gptq type=q4_0 samples=128 seqlen=512 rounds=3 threads=2 tokens=512 gen=32 out= sdt=f32
while [ $# -gt 0 ]; do
	case $1 in
	--quant) quant=$2; shift ;;
	--type) type=$2; shift ;;
	--samples) samples=$2; shift ;;
	--seq-len) seqlen=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--threads) threads=$2; shift ;;
	--out) out=$2; shift ;;
	--src-dtype) sdt=$2; shift ;;
	*) echo "usage: sh bench/quant_peers.sh [--quant Q] [--type T] [--samples N] [--seq-len L] [--rounds N] [--threads N] [--out FILE] [--src-dtype f32|bf16]" >&2
	   exit 2 ;;
	esac
	shift
done
for p in "$BIN" bench/fwd_speed; do
	[ -x "$p" ] || { echo "quant_peers: $p is not built (run make bench first)" >&2; exit 1; }
done
DIR=${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers
LOG=$DIR/logs/quant-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOG" || exit 1
say() { echo "quant_peers: $*" >&2; }

. "$SRC/bench/peer_lib.sh"

src=$DIR/tinyllama-$sdt.gguf
if [ ! -s "$src" ]; then
	say "writing $src"
	"$BIN" synth "$src" --shape tinyllama --dtype "$sdt" >/dev/null || { say "synth failed"; exit 1; }
fi
TEXT=${STRATA_SHARED:-$SRC/../shared}/data/text/tinystories-valid-1000.txt
qs=-
if [ -n "$out" ] && [ -s "$out" ]; then
	say "reusing $out"
	f=$out
else
	f=${out:-$DIR/tinyllama-$quant-$type.gguf}
	say "quantizing: $quant $type, $samples x $seqlen tokens, $threads threads"
	t0=$(date +%s.%N)
	"$BIN" quantize "$src" --quant "$quant" --type "$type" --data "$TEXT" --samples "$samples" \
		--seq-len "$seqlen" --threads "$threads" --out "$f" --force --no-store \
		>"$LOG/quantize.txt" 2>&1 || { say "quantize failed (see $LOG/quantize.txt)"; exit 1; }
	t1=$(date +%s.%N)
	qs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
fi

file_rounds "$f"
echo
echo "tinyllama $quant $type ($f), $threads threads, median of $rounds rounds"
echo "quantize_seconds=$qs ($samples x $seqlen tokens; target for gptq 128 x 512: <= 600)"
engine_table
echo "quant_prefill_vs_llamacpp=$(ratio "$sp" "$lp")"
echo "quant_decode_vs_llamacpp=$(ratio "$sd" "$ld") (target >= 1.0)"
echo "logs: $LOG"
