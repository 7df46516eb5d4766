# peer_lib.sh: what bench/peers.sh and bench/moe_peers.sh share (sourced
# after LOG and say are set): llama.cpp through the node-llama-cpp
# package's prebuilt CPU build, installed from npm when missing, and the
# round files' medians.
LLAMA=${STRATA_BENCH_DIR:-/tmp/strata-bench}/llamacpp
PKGS="node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1"
have_llama() { [ -f "$LLAMA/node_modules/node-llama-cpp/package.json" ] &&
	[ -f "$LLAMA/node_modules/@node-llama-cpp/linux-x64/package.json" ]; }
if ! have_llama && command -v npm >/dev/null 2>&1; then
	say "installing $PKGS from npm for the llama.cpp reference"
	mkdir -p "$LLAMA"
	npm install --prefix "$LLAMA" --no-save --no-audit --no-fund --omit=optional \
		--loglevel=error $PKGS >"$LOG/npm.log" 2>&1 || say "npm install failed (see $LOG/npm.log)"
fi
have_llama || say "llama.cpp is not available: its figures will be missing"

# val FILE KEY: the last KEY=value of FILE
val() { sed -n "s/^.*$2=\([0-9.e+-]*\).*/\1/p" "$1" 2>/dev/null | tail -1; }
# med PATTERN KEY: median of KEY over the round files under $LOG matching PATTERN
med() {
	for f in $LOG/$1; do val "$f" "$2"; done | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'
}
# ratio A B: A / B to two places, "-" when either is missing
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

# file_rounds FILE: ROUNDS interleaved rounds of strata (bench/fwd_speed,
# last logits) and llama.cpp (peers.mjs) on FILE, THREADS threads, a
# TOKENS-token prefill and GEN decode steps; then sp sd lp ld hold the
# medians (prefill and decode tokens/s of strata, then of llama.cpp)
file_rounds() {
	r=1
	while [ "$r" -le "$rounds" ]; do
		say "round $r of $rounds"
		bench/fwd_speed "$1" --threads "$threads" --ctx "$tokens" --gen "$gen" --reps 1 \
			--last-logits >"$LOG/strata-$r.txt" 2>&1
		have_llama && node "$SRC/bench/peers.mjs" "$LLAMA" "$1" "$threads" "$tokens" "$gen" 1 \
			>"$LOG/llama-$r.txt" 2>&1
		r=$((r + 1))
	done
	sp=$(med 'strata-*.txt' prefill_tps) sd=$(med 'strata-*.txt' decode_tps)
	lp=$(med 'llama-*.txt' prefill_tps) ld=$(med 'llama-*.txt' decode_tps)
}
# engine_table: the medians of file_rounds as a table
engine_table() {
	printf '%-10s %12s %12s\n' engine prefill/s decode/s
	printf '%-10s %12s %12s\n' strata "$sp" "$sd"
	printf '%-10s %12s %12s\n' llama.cpp "$lp" "$ld"
}
