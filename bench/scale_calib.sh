#!/bin/sh
# scale_calib.sh: calibration of a model larger than memory, layer-major
# against token-major: wall time, peak RSS and the bytes read from disk
# (read_bytes of /proc/PID/io, a reaped child's counted in its parent's),
# each run after the page cache is dropped (as root; else said and not
# dropped), and those bytes per pass against the file's size.
#   sh bench/scale_calib.sh MODEL [--samples N] [--seq-len L] [--modes "layer token"]
# The target (issue: scale): layer-major peak RSS <= 3 GB and disk reads
# <= 1.2x the file size per pass.  Make the model with
#   strata synth /tmp/strata-bench/13b/llama2-13b-f16.gguf --shape llama2-13b --dtype f16
BIN=${STRATA_BIN:-./strata}
SHARED=${STRATA_SHARED:-../shared}
samples=4 seq=512 modes="layer token"
[ $# -ge 1 ] || { echo "usage: sh bench/scale_calib.sh MODEL [--samples N] [--seq-len L] [--modes \"layer token\"]" >&2; exit 2; }
model=$1
shift
while [ $# -gt 0 ]; do
	case $1 in
	--samples) samples=$2; shift ;;
	--seq-len) seq=$2; shift ;;
	--modes) modes=$2; shift ;;
	*) echo "usage: sh bench/scale_calib.sh MODEL [--samples N] [--seq-len L] [--modes \"layer token\"]" >&2; exit 2 ;;
	esac
	shift
done
text=$SHARED/data/text/tinystories-valid-1000.txt
[ -r "$model" ] || { echo "scale_calib: no model $model" >&2; exit 1; }
size=$(stat -c %s "$model")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mem=$(awk '/^MemAvailable:/ { print $2 * 1024 }' /proc/meminfo)
printf 'model %s: %.2f GB; MemAvailable %.2f GB; %s x %s tokens\n' "$model" \
	"$(echo "$size" | awk '{ print $1 / 1e9 }')" "$(echo "$mem" | awk '{ print $1 / 1e9 }')" "$samples" "$seq"
for mode in $modes; do
	if [ -w /proc/sys/vm/drop_caches ]; then
		sync
		echo 3 > /proc/sys/vm/drop_caches
	else
		echo "scale_calib: cannot drop the page cache (not root): reads may be lower" >&2
	fi
	# a shell of its own, so that its /proc/self/io holds the reaped strata's
	sh -c '
		t0=$(date +%s.%N)
		/usr/bin/time -f "%M" -o "$1/rss" "$2" calibrate "$3" "$4" --samples "$5" --seq-len "$6" \
			--"$7"-major --force --db "$1/$7.db" > "$1/$7.out" 2> "$1/$7.err"
		echo $? > "$1/rc"
		t1=$(date +%s.%N)
		echo "$t0 $t1" > "$1/time"
		awk "/^read_bytes:/ { print \$2 }" /proc/$$/io > "$1/read"' \
		sh "$dir" "$BIN" "$model" "$text" "$samples" "$seq" "$mode"
	rc=$(cat "$dir/rc")
	if [ "$rc" != 0 ]; then
		echo "scale_calib: $mode-major exited $rc:" >&2
		tail -3 "$dir/$mode.err" >&2
		continue
	fi
	# passes: layer-major reads the weights once a pass (as many chunks as the
	# memory budget holds); token-major once a chunk when the model does not
	# stay in the page cache
	group=$(grep -o 'layer-major passes: [0-9]* chunk' "$dir/$mode.err" | head -1 | awk '{ print $3 }')
	if [ "$mode" = layer ] && [ -n "$group" ]; then
		passes=$(( (samples + group - 1) / group ))
	else
		passes=$samples
	fi
	awk -v m="$mode" -v s="$size" -v p="$passes" -v n=$((samples * seq)) \
		-v rss="$(cat "$dir/rss")" -v rd="$(cat "$dir/read")" '
		{ t = $2 - $1 }
		END { printf "%s-major: %.1f s (%.1f tok/s), peak RSS %.2f GB, read %.2f GB = %.2f x the file in %d pass(es), %.2f x per pass\n",
			m, t, n / t, rss * 1024 / 1e9, rd / 1e9, rd / s, p, rd / s / p
		      printf "%s_rss_gb=%.3f\n%s_read_per_pass=%.3f\n%s_seconds=%.1f\n", m, rss * 1024 / 1e9, m, rd / s / p, m, t }' "$dir/time"
	grep -i 'layer-major\|pass' "$dir/$mode.err" | head -3 | sed 's/^/  stderr: /'
done
