#!/bin/sh
# mpi_eval.sh: wall time of `mpirun -np 2 strata eval --task ppl:FILE`
# (one thread a rank) against one process with one thread, same model,
# same tokens, interleaved rounds, median; checks that both print the
# same numbers.
#   sh bench/mpi_eval.sh [MODEL] [--tokens N] [--ctx L] [--rounds R]
# Default model: the TinyLlama-shaped BF16 model bench/peers.sh writes.
BIN=${STRATA_BIN:-./strata}
SHARED=${STRATA_SHARED:-../shared}
model=${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers/tinyllama-bf16.gguf
tokens=2048 ctx=512 rounds=3
case ${1:-} in -*|"") ;; *) model=$1; shift ;; esac
while [ $# -gt 0 ]; do
	case $1 in
	--tokens) tokens=$2; shift ;;
	--ctx) ctx=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	*) echo "usage: sh bench/mpi_eval.sh [MODEL] [--tokens N] [--ctx L] [--rounds R]" >&2; exit 2 ;;
	esac
	shift
done
text=$SHARED/data/text/tinystories-valid-1000.txt
[ -r "$model" ] || { echo "mpi_eval: no model $model (bench/peers.sh writes it)" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "mpi_eval: mpirun is needed (openmpi-bin)" >&2; exit 1; }
"$BIN" info --system | grep -q '^mpi: *Open MPI' || { echo "mpi_eval: strata was built without MPI" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
now() { date +%s.%N; }
set -- eval "$model" --task "ppl:$text" --max-tokens "$tokens" --ctx "$ctx" --threads 1 \
	--no-store --format csv
r=1
while [ "$r" -le "$rounds" ]; do
	t0=$(now)
	"$BIN" "$@" > "$dir/one.csv" 2> /dev/null || { echo "mpi_eval: one process failed" >&2; exit 1; }
	t1=$(now)
	mpirun --oversubscribe -np 2 "$BIN" "$@" > "$dir/two.csv" 2> /dev/null ||
		{ echo "mpi_eval: mpirun failed" >&2; exit 1; }
	t2=$(now)
	cmp -s "$dir/one.csv" "$dir/two.csv" || { echo "mpi_eval: the numbers differ" >&2; exit 1; }
	echo "$t0 $t1 $t2" >> "$dir/times"
	r=$((r + 1))
done
sed -n 2p "$dir/one.csv"
awk -v n="$tokens" '{ one[NR] = $2 - $1; two[NR] = $3 - $2 }
	function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
		if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((k + 1) / 2)] }
	END { o = med(one, NR); t = med(two, NR)
	      printf "one process x 1 thread: %.1f s (%.1f tok/s, whole command)\n", o, n / o
	      printf "mpirun -np 2 x 1 thread: %.1f s (%.1f tok/s)\n", t, n / t
	      printf "mpi_eval_speedup=%.2f  (same numbers)\n", o / t }' "$dir/times"
