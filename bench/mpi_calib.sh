#!/bin/sh
# mpi_calib.sh: calibration throughput of `mpirun -np 2 strata calibrate`
# (one thread a rank) against one process with one thread, same model,
# same data, interleaved rounds, median; the target is >= 1.7x.
#   sh bench/mpi_calib.sh [MODEL] [--samples N] [--seq-len L] [--rounds R]
# Default model: the TinyLlama-shaped BF16 model bench/peers.sh writes.
BIN=${STRATA_BIN:-./strata}
SHARED=${STRATA_SHARED:-../shared}
model=${STRATA_BENCH_DIR:-/tmp/strata-bench}/peers/tinyllama-bf16.gguf
samples=4 seq=512 rounds=3
case ${1:-} in -*|"") ;; *) model=$1; shift ;; esac
while [ $# -gt 0 ]; do
	case $1 in
	--samples) samples=$2; shift ;;
	--seq-len) seq=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	*) echo "usage: sh bench/mpi_calib.sh [MODEL] [--samples N] [--seq-len L] [--rounds R]" >&2; exit 2 ;;
	esac
	shift
done
text=$SHARED/data/text/tinystories-valid-1000.txt
[ -r "$model" ] || { echo "mpi_calib: no model $model (bench/peers.sh writes it)" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "mpi_calib: mpirun is needed (openmpi-bin)" >&2; exit 1; }
"$BIN" info --system | grep -q '^mpi: *Open MPI' || { echo "mpi_calib: strata was built without MPI" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
now() { date +%s.%N; }
r=1
while [ "$r" -le "$rounds" ]; do
	t0=$(now)
	"$BIN" calibrate "$model" "$text" --samples "$samples" --seq-len "$seq" --threads 1 --force \
		--db "$dir/one.db" > /dev/null 2>&1 || { echo "mpi_calib: one process failed" >&2; exit 1; }
	t1=$(now)
	mpirun --oversubscribe -np 2 "$BIN" calibrate "$model" "$text" --samples "$samples" \
		--seq-len "$seq" --threads 1 --force --db "$dir/two.db" > /dev/null 2>&1 ||
		{ echo "mpi_calib: mpirun failed" >&2; exit 1; }
	t2=$(now)
	echo "$t0 $t1 $t2" >> "$dir/times"
	r=$((r + 1))
done
awk -v n=$((samples * seq)) '{ one[NR] = $2 - $1; two[NR] = $3 - $2 }
	function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
		if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((k + 1) / 2)] }
	END { o = med(one, NR); t = med(two, NR)
	      printf "one process x 1 thread: %.1f s (%.1f tok/s, whole command)\n", o, n / o
	      printf "mpirun -np 2 x 1 thread: %.1f s (%.1f tok/s)\n", t, n / t
	      printf "mpi_speedup=%.2f  (>= 1.7)\n", o / t }' "$dir/times"
