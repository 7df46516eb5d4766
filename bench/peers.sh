#!/bin/sh
# peers.sh: strata against its peers, in one run on this machine:
# PyTorch (python3-torch from Debian, bench/torch_llama.py) and llama.cpp
# (the node-llama-cpp package's prebuilt CPU build, bench/peers.mjs), on
# TinyLlama-shaped synthetic models written by `strata synth`.  Rounds are
# interleaved (every engine and dtype once per round) and each figure is
# the median over the rounds; the table ends with the targets of the
# engine-speed work as ratios from this same run.
#
#   sh bench/peers.sh [--rounds N] [--threads N] [--quick]   (from a build directory)
#
# Missing peers are installed when possible (apt-get as root or through
# sudo for python3-torch; npm for node-llama-cpp) and the script says
# so; a peer that cannot be had is reported as "-".  Models and logs live
# under ${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STRATA_BIN:-./strata}
rounds=3 threads=2 tokens=512 gen=32 shape=tinyllama
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift ;;
	--threads) threads=$2; shift ;;
	--quick) rounds=1 gen=8 ;;
	*) echo "usage: sh bench/peers.sh [--rounds N] [--threads N] [--quick]" >&2; exit 2 ;;
	esac
	shift
done
for p in "$BIN" bench/fwd_speed bench/sgemm_rate bench/read_bw bench/mc_speed; do
	[ -x "$p" ] || { echo "peers: $p is not built (run make bench first, from the build directory)" >&2; exit 1; }
done
DIR=${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers
LOG=$DIR/logs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOG" || exit 1
dtypes="f32 f16 bf16 q8_0 q4_0"

say() { echo "peers: $*" >&2; }
sudo_cmd() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi; }

# ---- the peers ----
PY=/usr/bin/python3
have_torch() { [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; }
if ! have_torch; then
	say "installing python3-torch (Debian) for the PyTorch reference"
	sudo_cmd sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null' ||
		say "could not install python3-torch: PyTorch figures will be missing"
fi
have_torch && say "PyTorch $("$PY" -c 'import torch; print(torch.__version__)')"

. "$SRC/bench/peer_lib.sh"

# ---- the models ----
for dt in $dtypes; do
	f=$DIR/$shape-$dt.gguf
	[ -s "$f" ] && continue
	say "writing $f"
	"$BIN" synth "$f" --shape "$shape" --dtype "$dt" >/dev/null || { say "synth $dt failed"; exit 1; }
done
TEXT=${STRATA_SHARED:-$SRC/../shared}/data/text/tinystories-valid-1000.txt
HS=${STRATA_SHARED:-$SRC/../shared}/data/mc/hellaswag/hellaswag_val_full.txt

# ---- ceilings, once ----
say "GEMM ceilings (OpenBLAS, oneDNN) and read bandwidth"
bench/sgemm_rate --shape "$shape" --threads "$threads" --quick >"$LOG/sgemm.txt" 2>&1
sgemm=$(sed -n 's/^sgemm_gflops=//p' "$LOG/sgemm.txt" | tail -1)
dnnf32=$(sed -n 's/^onednn_f32_gflops=//p' "$LOG/sgemm.txt" | tail -1)
dnnbf16=$(sed -n 's/^onednn_bf16_gflops=//p' "$LOG/sgemm.txt" | tail -1)
bestf32=$(sed -n 's/^best_f32_gflops=//p' "$LOG/sgemm.txt" | tail -1)
bench/read_bw --threads "$threads" --quick >"$LOG/read_bw.txt" 2>&1
readbw=$(sed -n 's/^read_gbps=//p' "$LOG/read_bw.txt" | tail -1)

# ---- interleaved rounds ----
r=1
while [ "$r" -le "$rounds" ]; do
	say "round $r of $rounds"
	for dt in $dtypes; do
		f=$DIR/$shape-$dt.gguf
		bench/fwd_speed "$f" --threads "$threads" --ctx "$tokens" --gen "$gen" --reps 1 --last-logits \
			>"$LOG/strata-last-$dt-$r.txt" 2>&1
		bench/fwd_speed "$f" --threads "$threads" --ctx "$tokens" --no-decode --reps 1 \
			>"$LOG/strata-all-$dt-$r.txt" 2>&1
		have_llama && node "$SRC/bench/peers.mjs" "$LLAMA" "$f" "$threads" "$tokens" "$gen" 1 \
			>"$LOG/llama-$dt-$r.txt" 2>&1
	done
	if have_torch; then
		for dt in bf16 fp32; do
			"$PY" "$SRC/bench/torch_llama.py" --shape "$shape" --dtype "$dt" --tokens "$tokens" \
				--threads "$threads" --rounds 1 >"$LOG/torch-$dt-$r.txt" 2>&1
		done
	fi
	# calibration of 4 and of 8 x 512 tokens of TinyStories, bf16 model:
	# whole commands (calib_tps: load, tokenizing, store included) and the
	# steady rate of the 4 extra samples (calib_steady_tps), the figure held
	# against prefill as fwd_speed times it (after a warmup)
	if [ -r "$TEXT" ]; then
		for ns in 4 8; do
			t0=$(date +%s.%N)
			"$BIN" calibrate "$DIR/$shape-bf16.gguf" "$TEXT" --samples $ns --seq-len "$tokens" \
				--threads "$threads" --force --db "$LOG/store-$ns.db" >"$LOG/calib$ns-$r.txt" 2>&1
			t1=$(date +%s.%N)
			echo "$t0 $t1" >"$LOG/calib$ns-$r.time"
		done
		read a4 b4 <"$LOG/calib4-$r.time"
		read a8 b8 <"$LOG/calib8-$r.time"
		awk -v a4="$a4" -v b4="$b4" -v a8="$a8" -v b8="$b8" -v n=$((4 * tokens)) 'BEGIN {
			printf "calib_tps=%.2f\ncalib_steady_tps=%.2f\n", n / (b4 - a4), n / ((b8 - a8) - (b4 - a4)) }' \
			>"$LOG/calib-$r.txt"
		# what calibration spends beside the forward pass: observer,
		# tokenizer, store (bench/calib_cost, in one process)
		bench/calib_cost "$DIR/$shape-bf16.gguf" "$TEXT" --samples 4 --seq-len "$tokens" \
			--threads "$threads" >"$LOG/cost-$r.txt" 2>&1
	fi
	# HellaSwag as strata eval scores it (packed batches), timed without the load
	if [ -r "$HS" ]; then
		bench/mc_speed "$DIR/$shape-bf16.gguf" "$HS" --limit 16 --threads "$threads" \
			>"$LOG/hs-$r.txt" 2>&1
	fi
	r=$((r + 1))
done


echo
echo "strata vs peers: $shape shape, $tokens-token prefill, $threads threads, median of $rounds round(s)"
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
"$BIN" info --system 2>/dev/null | sed 's/^/  /'
printf '%-6s %12s %12s %12s %12s %12s %12s\n' dtype strata_last strata_all llama_pf strata_dec llama_dec torch_pf
for dt in $dtypes; do
	tp=-
	case $dt in bf16) tp=$(med "torch-bf16-*.txt" prefill_tps) ;; f32) tp=$(med "torch-fp32-*.txt" prefill_tps) ;; esac
	printf '%-6s %12s %12s %12s %12s %12s %12s\n' "$dt" \
		"$(med "strata-last-$dt-*.txt" prefill_tps)" "$(med "strata-all-$dt-*.txt" prefill_tps)" \
		"$(med "llama-$dt-*.txt" prefill_tps)" "$(med "strata-last-$dt-*.txt" decode_tps)" \
		"$(med "llama-$dt-*.txt" decode_tps)" "$tp"
done
calib=$(med "calib-*.txt" calib_tps)
calibs=$(med "calib-*.txt" calib_steady_tps)
hs=$(med "hs-*.txt" hs_items_per_s)
hst=$(med "hs-*.txt" hs_tokens_per_s)
echo "GEMM ceilings (GFLOP/s): OpenBLAS sgemm ${sgemm:--}, oneDNN f32 ${dnnf32:--}, oneDNN bf16 ${dnnbf16:--}; read bandwidth: ${readbw:--} GB/s"
echo "calibration (bf16, 4 x $tokens): $calib tok/s for the whole command, $calibs tok/s steady (8 - 4 samples); hellaswag (bf16): $hs items/s, $hst tok/s"
echo
echo "targets (ratios from this run):"
bf=$(med "strata-last-bf16-*.txt" prefill_tps)
echo "  BF16 prefill / PyTorch bf16:     $(ratio "$bf" "$(med "torch-bf16-*.txt" prefill_tps)")  (>= 1.0)"
echo "  BF16 prefill / llama.cpp BF16:   $(ratio "$bf" "$(med "llama-bf16-*.txt" prefill_tps)")  (>= 3)"
echo "  F16 prefill / BF16 prefill:      $(ratio "$(med "strata-last-f16-*.txt" prefill_tps)" "$bf")  (>= 0.9)"
echo "  Q8_0 prefill / BF16 prefill:     $(ratio "$(med "strata-last-q8_0-*.txt" prefill_tps)" "$bf")  (>= 0.9)"
f32tps=$(med "strata-all-f32-*.txt" prefill_tps)
fpt=$(val "$LOG/strata-all-f32-1.txt" flops_per_token)
f32rate=$(awk -v t="$f32tps" -v f="${fpt:-0}" 'BEGIN { if (t == "-") print "-"; else printf "%.1f", t * f / 1e9 }')
echo "  F32 prefill GFLOP/s / best F32 GEMM: $(ratio "$f32rate" "${bestf32:--}")  (>= 0.8)"
echo "  calibration (steady) / BF16 all-logits prefill: $(ratio "$calibs" "$(med "strata-all-bf16-*.txt" prefill_tps)")  (>= 0.9; whole command: $(ratio "$calib" "$(med "strata-all-bf16-*.txt" prefill_tps)"))"
for k in observer tokenizer store; do
	echo "  calibration's $k / its forward pass: $(med "cost-*.txt" ${k}_share) wall, $(med "cost-*.txt" ${k}_cpu_share) CPU time  (<= 0.05)"
done
echo "  calibration's observer, steady (a chunk after the first): $(med "cost-*.txt" observer_steady_share)"
echo "  calibration's observer, its own time over the forward's: $(med "cost-*.txt" observer_self_share)  (<= 0.05)"
echo "  hellaswag tok/s / BF16 all-logits prefill: $(ratio "$hst" "$(med "strata-all-bf16-*.txt" prefill_tps)")  (>= 0.6)"
for dt in f16 bf16 q8_0; do
	bytes=$(val "$LOG/strata-last-$dt-1.txt" decode_weight_bytes)
	dec=$(med "strata-last-$dt-*.txt" decode_tps)
	bw=$(awk -v b="${bytes:-0}" -v t="$dec" 'BEGIN { if (t == "-") print "-"; else printf "%.2f", b * t / 1e9 }')
	echo "  decode $dt: $(ratio "$bw" "${readbw:--}") of read bandwidth (>= 0.8), $(ratio "$dec" "$(med "llama-$dt-*.txt" decode_tps)") x llama.cpp (>= 1.0)"
done
echo "(raw output: $LOG)"
