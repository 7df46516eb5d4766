#!/bin/sh
# fuzz/run.sh: the fuzz harnesses of tests/fuzz.
#   run.sh          replay every corpus once (what `make check` runs; with
#                   gcc the harnesses have a small driver of their own)
#   run.sh SECONDS  fuzz each target for SECONDS with libFuzzer (configure
#                   --enable-fuzz CC=clang; `make fuzz FUZZ_SECONDS=60`)
# The corpus of each target is its committed seeds (tests/fuzz/corpus/T)
# plus matching files of the shared assets, found at run time.
. "$STRATA_SRCDIR/tests/tap.sh"
secs=${1:-}
bin="$STRATA_BUILDDIR/tests/fuzz"
work="$STRATA_BUILDDIR/tests/tmp/fuzz"
sm="$STRATA_SHARED/models/stories260K"
sd="$STRATA_SHARED/data/text"

extras() { # the shared files that seed target $1
	case $1 in
	gguf) echo "$sm/stories260K.gguf" ;;
	safetensors) echo "$sm/hf/model.safetensors" ;;
	config) echo "$sm/hf/config.json" ;;
	tokenizer_json) echo "$sm/hf/tokenizer.json $STRATA_SHARED/models/llama2-tokenizer/tokenizer.json" ;;
	llama2c) echo "$sm/stories260K.bin $sm/tok512.bin" ;;
	dataset) ;; # the shared texts are large: the seeds cover each kind
	encode) echo "$sd/wikitext-2-test.raw" ;;
	esac
}

for t in gguf safetensors config tokenizer_json llama2c dataset mask encode; do
	files=
	for f in "$STRATA_SRCDIR/tests/fuzz/corpus/$t"/* $(extras $t); do
		[ -r "$f" ] && files="$files $f"
	done
	if [ -z "$secs" ]; then
		# shellcheck disable=SC2086
		out=$("$bin/fuzz_$t" $files 2>&1); rc=$?
		is "$rc" 0 "fuzz_$t replays its corpus ($(echo $files | wc -w) inputs)"
		[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -20 | sed 's/^/# /'
	else
		if ! "$bin/fuzz_$t" -help=1 2>&1 | grep -q libFuzzer; then
			echo "not ok - fuzz_$t is not built with libFuzzer: ./configure --enable-fuzz CC=clang"
			exit 1
		fi
		rm -rf "$work/$t" && mkdir -p "$work/$t"
		# shellcheck disable=SC2086
		cp $files "$work/$t/" 2>/dev/null
		"$bin/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
			-artifact_prefix="$work/$t-" "$work/$t" > "$work/$t.log" 2>&1
		rc=$?
		is "$rc" 0 "fuzz_$t ran ${secs}s without a finding (log: $work/$t.log)"
	fi
done
done_testing
