#!/bin/sh
# bench/run.sh: strata's speed benchmark, all figures from one run on one
# machine (`make bench` runs it from the build directory).
#
# 1. Writes synthetic models (random weights, real shapes) once, cached in
#    ${STRATA_BENCH_DIR:-/tmp/strata-bench}: TinyLlama-1.1B in F32, F16 and
#    BF16, and two Llama-2-7B layers ("llama2-7b-2l") in F32 and F16, with
#    `strata synth` (or bench/synth_model when the binary lacks it).
# 2. Measures the machine's ceilings: the OpenBLAS SGEMM rate at each
#    shape's matmuls (bench/sgemm_rate) and the read bandwidth
#    (bench/read_bw).
# 3. Runs bench/fwd_speed on every model and prints a table: prefill
#    tokens/s and its ratio to the SGEMM ceiling (tokens/s x FLOPs per
#    token / SGEMM FLOP/s), decode tokens/s and its ratio to the read
#    bandwidth (weight bytes per token x tokens/s / read B/s), and RSS
#    after load against the file size, beside the targets.
#
# The machine may be shared: each program's run is followed by the share
# of the CPUs that other processes used meanwhile (figures taken while
# that is high are not worth much), and --wait-idle S waits up to S
# seconds for the machine to be idle (< 15% busy over 5 s) before starting.
#
# Usage: bench/run.sh [--quick] [--threads N] [--wait-idle S] [--builddir DIR]
# Environment: STRATA_BENCH_DIR (model cache and logs), STRATA_BUILDDIR
# (where strata and bench/ programs are; default the current directory).
set -eu

threads=2
quick=
wait_idle=0
builddir=${STRATA_BUILDDIR:-$(pwd)}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=--quick ;;
	--threads) [ $# -ge 2 ] || { echo "run.sh: --threads needs a value" >&2; exit 2; }
		threads=$2; shift ;;
	--wait-idle) [ $# -ge 2 ] || { echo "run.sh: --wait-idle needs a value" >&2; exit 2; }
		wait_idle=$2; shift ;;
	--builddir) [ $# -ge 2 ] || { echo "run.sh: --builddir needs a value" >&2; exit 2; }
		builddir=$2; shift ;;
	*) echo "usage: bench/run.sh [--quick] [--threads N] [--wait-idle S] [--builddir DIR]" >&2; exit 2 ;;
	esac
	shift
done

dir=${STRATA_BENCH_DIR:-/tmp/strata-bench}
strata=${STRATA_BIN:-$builddir/strata}
bin=$builddir/bench
for p in sgemm_rate read_bw fwd_speed; do
	[ -x "$bin/$p" ] || { echo "run.sh: $bin/$p not built (run 'make bench')" >&2; exit 1; }
done
mkdir -p "$dir"
logs=$dir/logs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$logs"

# ---- models (written once) ----
models="tinyllama:f32 tinyllama:f16 tinyllama:bf16 llama2-7b-2l:f32 llama2-7b-2l:f16"
for spec in $models; do
	shape=${spec%%:*}; dt=${spec#*:}
	f=$dir/$shape-$dt.gguf
	[ -s "$f" ] && continue
	echo "writing $f ..."
	rm -f "$f.tmp"
	if ! "$strata" synth "$f.tmp" --shape "$shape" --dtype "$dt" >"$logs/synth.log" 2>&1; then
		[ -x "$bin/synth_model" ] || { cat "$logs/synth.log" >&2; echo "run.sh: cannot write $f" >&2; exit 1; }
		echo "  ('strata synth' failed: $(tail -n 1 "$logs/synth.log"); using bench/synth_model)"
		rm -f "$f.tmp"
		"$bin/synth_model" "$f.tmp" --shape "$shape" --dtype "$dt"
	fi
	mv "$f.tmp" "$f"
done

# key=value lines from a log: val FILE KEY
val() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

ncpu=$(nproc 2>/dev/null || echo 1)
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
# busy and stolen jiffies of the whole machine so far
cpu_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }
# CPU seconds used by this script's finished children (`times` must run
# in this shell: a $(...) subshell would report its own, empty, totals)
own_cpu() { awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"; }
now() { date +%s.%N; }

run() { # run LOG CMD...: run, show and keep the output, note other CPU use
	log=$1; shift
	echo "\$ $*" | sed "s|$builddir/||g"
	times >"$logs/.times"; c0=$(own_cpu "$logs/.times"); j0=$(cpu_jiffies); t0=$(now)
	"$@" >"$log" 2>&1 || { cat "$log"; echo "run.sh: $1 failed (log $log)" >&2; exit 1; }
	j1=$(cpu_jiffies); t1=$(now); times >"$logs/.times"; c1=$(own_cpu "$logs/.times")
	cat "$log"
	echo "$j0 $j1 $c0 $c1 $t0 $t1" | awk -v n="$ncpu" -v hz="$hz" '{
		wall = $8 - $7; if (wall <= 0) wall = 1e-9
		other = (($3 - $1) / hz - ($6 - $5)) / (wall * n); if (other < 0) other = 0; if (other > 1) other = 1
		printf "  [%.1f s; other processes used %.0f%% of the %d CPUs meanwhile, steal %.0f%%]\n",
			wall, 100 * other, n, 100 * ($4 - $2) / hz / (wall * n)
		printf "other_cpu=%.3f\n", other > "/dev/stderr" }' 2>>"$log"
	echo
}

if [ "$wait_idle" -gt 0 ]; then
	start=$(now)
	while :; do
		j0=$(cpu_jiffies); sleep 5; j1=$(cpu_jiffies)
		busy=$(echo "$j0 $j1" | awk -v n="$ncpu" -v hz="$hz" '{ printf "%.2f", ($3 - $1) / hz / (5 * n) }')
		awk -v b="$busy" 'BEGIN { exit !(b < 0.15) }' && break
		if awk -v a="$start" -v b="$(now)" -v w="$wait_idle" 'BEGIN { exit !(b - a > w) }'; then
			echo "run.sh: machine still $busy busy after ${wait_idle}s; measuring anyway"
			break
		fi
	done
fi

echo "== strata bench: $(uname -n), $(nproc) cores online, $threads threads, $(date -u +%Y-%m-%dT%H:%MZ) =="
grep -m1 'model name' /proc/cpuinfo 2>/dev/null || true
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo

# ---- ceilings ----
run "$logs/sgemm-tinyllama.txt" "$bin/sgemm_rate" --threads "$threads" --shape tinyllama $quick
run "$logs/sgemm-llama2-7b-2l.txt" "$bin/sgemm_rate" --threads "$threads" --shape llama2-7b-2l $quick
run "$logs/read_bw.txt" "$bin/read_bw" --threads "$threads" $quick
# OpenBLAS 0.3.21 does not know recent AVX-512 CPUs (AMD Zen 4/5) and
# picks its Haswell (AVX2) kernels, as it does when OPENBLAS_CORETYPE says
# so; show what its AVX-512 kernels would give, for information only (the
# ratios use the rate strata actually gets in this environment).
alt_sg=
if grep -q 'avx512f' /proc/cpuinfo 2>/dev/null &&
   grep -q '(core Haswell)' "$logs/sgemm-tinyllama.txt"; then
	run "$logs/sgemm-tinyllama-skylakex.txt" env OPENBLAS_CORETYPE=SkylakeX \
		"$bin/sgemm_rate" --threads "$threads" --shape tinyllama $quick
	alt_sg=$(val "$logs/sgemm-tinyllama-skylakex.txt" sgemm_gflops)
fi
read_gbps=$(val "$logs/read_bw.txt" read_gbps)
# the same over a mapped model file (page-cache pages, as the engine reads
# weights), for information: the ratios use the plain buffer's figure
run "$logs/read_bw-mapped.txt" "$bin/read_bw" --threads "$threads" $quick \
	--file "$dir/tinyllama-f32.gguf"

# ---- the engine ----
for spec in $models; do
	shape=${spec%%:*}; dt=${spec#*:}
	extra=
	case $shape in llama2-7b-2l) extra=--no-decode ;; esac
	if [ -z "$extra" ]; then
		# the host's memory bandwidth drifts by 10-20% over minutes (other
		# tenants): measure it again right before each decode run
		"$bin/read_bw" --threads "$threads" --quick --mib 1024 >"$logs/read_bw-$shape-$dt.txt" 2>&1
		echo "(read bandwidth just before: $(val "$logs/read_bw-$shape-$dt.txt" read_gbps) GB/s)"
	fi
	run "$logs/fwd-$shape-$dt.txt" "$bin/fwd_speed" "$dir/$shape-$dt.gguf" \
		--threads "$threads" --ctx 512 $extra $quick
done

# ---- summary ----
echo "== summary ($threads threads; SGEMM ceiling and read bandwidth measured above) =="
printf '%-14s %-5s %10s %9s %10s %8s %9s %12s %10s %8s %7s\n' model dtype "prefill/s" "/SGEMM" \
	"decode/s" "BW GB/s" "/readBW" "RSS@load MB" "file MB" "RSS/file" "others"
for spec in $models; do
	shape=${spec%%:*}; dt=${spec#*:}
	log=$logs/fwd-$shape-$dt.txt
	sg=$(val "$logs/sgemm-$shape.txt" sgemm_gflops)
	bw_now=
	[ -f "$logs/read_bw-$shape-$dt.txt" ] && bw_now=$(val "$logs/read_bw-$shape-$dt.txt" read_gbps)
	awk -v shape="$shape" -v dt="$dt" -v sg="$sg" -v bw0="$read_gbps" -v bw1="$bw_now" \
	    -v ptps="$(val "$log" prefill_tps)" -v fpt="$(val "$log" flops_per_token)" \
	    -v dtps="$(val "$log" decode_tps)" -v wb="$(val "$log" decode_weight_bytes)" \
	    -v rss="$(val "$log" rss_after_load)" -v fb="$(val "$log" file_bytes)" \
	    -v oc="$(val "$log" other_cpu)" 'BEGIN {
		pr = ptps * fpt / (sg * 1e9)
		bw = bw1 + 0 > bw0 + 0 ? bw1 : bw0  # the higher: the stricter ratio
		if (dtps != "") {
			d = sprintf("%10.2f %8.1f", dtps, bw)
			dr = sprintf("%9.2f", wb * dtps / (bw * 1e9))
		} else { d = sprintf("%10s %8s", "-", "-"); dr = sprintf("%9s", "-") }
		printf "%-14s %-5s %10.2f %9.2f %s %s %12.1f %10.1f %8.4f %6.0f%%\n", shape, dt, ptps, pr,
			d, dr, rss / 1e6, fb / 1e6, rss / fb, 100 * oc
	}'
done
echo "(BW: the higher of the read bandwidth measured above and just before that decode run;"
echo " others: share of the CPUs used by other processes during that model's run)"
echo "targets: prefill >= 0.80 of the SGEMM ceiling; decode >= 0.80 of the read bandwidth;"
echo "         F16/BF16 prefill >= F32 prefill; RSS after load << file size (weights mapped)"
for shape in tinyllama llama2-7b-2l; do
	base=$(val "$logs/fwd-$shape-f32.txt" prefill_tps)
	for dt in f16 bf16; do
		[ -f "$logs/fwd-$shape-$dt.txt" ] || continue
		awk -v s="$shape" -v d="$dt" -v a="$(val "$logs/fwd-$shape-$dt.txt" prefill_tps)" -v b="$base" \
			'BEGIN { printf "%s: %s prefill / f32 prefill = %.2f (target >= 1.00)\n", s, d, a / b }'
	done
done
echo "read bandwidth over a mapped model file: $(val "$logs/read_bw-mapped.txt" read_gbps) GB/s"
echo "SGEMM ceiling: tinyllama $(val "$logs/sgemm-tinyllama.txt" sgemm_gflops) GFLOP/s," \
	"llama2-7b-2l $(val "$logs/sgemm-llama2-7b-2l.txt" sgemm_gflops) GFLOP/s; read bandwidth $read_gbps GB/s"
[ -z "$alt_sg" ] || echo "(OpenBLAS runs its Haswell kernels here; OPENBLAS_CORETYPE is '${OPENBLAS_CORETYPE:-}'." \
	"With OPENBLAS_CORETYPE=SkylakeX, AVX-512 kernels, tinyllama SGEMM: $alt_sg GFLOP/s)"
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "logs: $logs"
