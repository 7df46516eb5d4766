#!/bin/sh
# compute_cli: the bf16 prefill mode (STRATA_COMPUTE=bf16, bf16 x bf16
# products summed in float) agrees with the f32 mode on stories260K
# exported to BF16: perplexity within 1%, every cos score within 2e-3,
# and the same first 4 sites to drop (highest cos) per method; layer-major
# passes there (calibrate, eval ppl/kl) hold bf16 hidden states (a spilled
# file half the size).  The f32
# mode on the F32 original stays exactly on the golden file (cli.sh,
# calib_cli.sh).
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/compute_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
unset STRATA_DB STRATA_COMPUTE

json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
# cos_lines: "site layer value" for every cos score in calibrate's JSON
cos_lines() {
	tr '{' '\n' | grep '"metric": *"cos"' |
	sed -n 's/.*"layer": *\([0-9]*\).*"site": *"\([a-z]*\)".*"value": *\([-0-9.eE+]*\).*/\2 \1 \3/p'
}
# first4 SITE < lines: the 4 layers of SITE with the highest cos, in order
first4() { awk -v s="$1" '$1 == s' | sort -k3,3gr -k2,2n | head -4 | awk '{ printf "%s ", $2 }'; }

if need model models/stories260K/stories260K.gguf &&
   need text data/text/tinystories-valid-1000.txt; then
	"$S" export "$model" --out "$tmp/bf16.gguf" --dtype bf16 --no-store > /dev/null; rc=$?
	is "$rc" 0 "export --dtype bf16 exits 0"

	for m in f32 bf16; do
		STRATA_COMPUTE=$m "$S" ppl "$tmp/bf16.gguf" "$text" --ctx 256 --max-tokens 4096 \
			--format json > "$tmp/ppl-$m.json"
		STRATA_COMPUTE=$m "$S" calibrate "$tmp/bf16.gguf" "$text" --db "$tmp/$m.db" \
			--samples 16 --seq-len 128 --format json | cos_lines | sort > "$tmp/cos-$m"
	done
	a=$(json_num ppl < "$tmp/ppl-f32.json"); b=$(json_num ppl < "$tmp/ppl-bf16.json")
	ok "ppl in bf16 mode ($b) within 1% of f32 mode ($a)" \
		awk -v a="$a" -v b="$b" 'BEGIN { d = (b - a) / a; if (d < 0) d = -d; exit !(a > 0 && d <= 0.01) }'
	ok "ppl differs at all (the bf16 path ran: $a vs $b)" test "$a" != "$b"
	ok "calibrate gave cos scores" test -s "$tmp/cos-f32"
	is "$(wc -l < "$tmp/cos-bf16" | tr -d ' ')" "$(wc -l < "$tmp/cos-f32" | tr -d ' ')" \
		"as many cos scores in both modes"
	paste "$tmp/cos-f32" "$tmp/cos-bf16" > "$tmp/pairs"
	is "$(awk '$1 != $4 || $2 != $5' "$tmp/pairs" | wc -l | tr -d ' ')" 0 "the same sites in both modes"
	worst=$(awk '{ d = $3 - $6; if (d < 0) d = -d; if (d > w) w = d } END { printf "%g", w + 0 }' "$tmp/pairs")
	ok "every cos score within 2e-3 (worst $worst)" awk -v w="$worst" 'BEGIN { exit !(w != "" && w <= 2e-3) }'
	for s in attn mlp block; do
		is "$(first4 $s < "$tmp/cos-bf16")" "$(first4 $s < "$tmp/cos-f32")" \
			"$s: the same first 4 sites to drop"
	done
	# bf16 mode, layer-major: the hidden states held as bf16, a spilled pass's file half
	# the f32 one, its scores the in-memory bf16 pass's, near token-major's
	for m in f32 bf16; do
		STRATA_COMPUTE=$m "$S" calibrate "$tmp/bf16.gguf" "$text" --db "$tmp/lm-$m.db" \
			--samples 64 --seq-len 128 --layer-major --mem-budget 1M --format json 2> "$tmp/sp-$m.err" |
			cos_lines | sort > "$tmp/cos-sp-$m"
	done
	STRATA_COMPUTE=bf16 "$S" calibrate "$tmp/bf16.gguf" "$text" --db "$tmp/lm-mem.db" \
		--samples 64 --seq-len 128 --layer-major --format json 2> /dev/null | cos_lines | sort > "$tmp/cos-mem"
	STRATA_COMPUTE=bf16 "$S" calibrate "$tmp/bf16.gguf" "$text" --db "$tmp/lm-tok.db" \
		--samples 64 --seq-len 128 --token-major --format json 2> /dev/null | cos_lines | sort > "$tmp/cos-tok"
	mb() { sed -n 's/.*spilled to a temporary file of \([0-9]*\) MB.*/\1/p' "$1"; }
	f=$(mb "$tmp/sp-f32.err"); h=$(mb "$tmp/sp-bf16.err")
	contains "$(cat "$tmp/sp-bf16.err")" "MB (bf16)" "bf16 mode: the spilled activations are bf16"
	ok "... the file half the f32 mode's ($h of ${f:-?} MB)" \
		awk -v f="${f:-0}" -v h="${h:-0}" 'BEGIN { d = 2 * h - f; exit !(f > 0 && d >= -1 && d <= 1) }'
	# (one chunk a call against all 64 in one: the bf16 products' blocking differs;
	# test_calib has the same calls spilled and in memory to the bit)
	paste "$tmp/cos-mem" "$tmp/cos-sp-bf16" > "$tmp/pairs-mem"
	worst=$(awk '$1 == $4 && $2 == $5 { d = $3 - $6; if (d < 0) d = -d; if (d > w) w = d; n++ }
		END { if (n < 10) print 1; else printf "%g", w + 0 }' "$tmp/pairs-mem")
	ok "... its scores within 1e-5 of the in-memory bf16 layer-major pass's (worst $worst)" \
		awk -v w="$worst" 'BEGIN { exit !(w <= 1e-5) }'
	paste "$tmp/cos-tok" "$tmp/cos-sp-bf16" > "$tmp/pairs-lm"
	worst=$(awk '$1 == $4 && $2 == $5 { d = $3 - $6; if (d < 0) d = -d; if (d > w) w = d; n++ }
		END { if (n < 10) print 1; else printf "%g", w + 0 }' "$tmp/pairs-lm")
	ok "... within 2e-3 of token-major bf16 (worst $worst)" awk -v w="$worst" 'BEGIN { exit !(w <= 2e-3) }'
	# eval ppl/kl in bf16 mode, layer-major: the streams held as bf16, a spilled pass's
	# file half the f32 one, ppl and KL within 2e-3 of token-major bf16's
	val() { tr '{' '\n' | grep "\"metric\": \"$1\"" | grep -o '"value": *[^,}]*' | head -1 | sed 's/.*: *//'; }
	ev() { # MODE OUT ARGS...
		m=$1 o=$2; shift 2
		STRATA_COMPUTE=$m "$S" eval "$tmp/bf16.gguf" --task "ppl:$text" --task "kl:$text" --mask 'attn=1' \
			--ctx 128 --max-tokens 16000 --no-store --format json "$@" > "$tmp/$o.json" 2> "$tmp/$o.err"
	}
	ev f32 ev-sp-f32 --layer-major --mem-budget 2M
	ev bf16 ev-sp-bf16 --layer-major --mem-budget 2M
	ev bf16 ev-tok-bf16 --token-major
	f=$(mb "$tmp/ev-sp-f32.err" | head -1); h=$(mb "$tmp/ev-sp-bf16.err" | head -1)
	contains "$(cat "$tmp/ev-sp-bf16.err")" "MB (bf16)" "eval, bf16 mode, layer-major: the spilled streams are bf16"
	ok "... ppl's file half the f32 mode's ($h of ${f:-?} MB)" \
		awk -v f="${f:-0}" -v h="${h:-0}" 'BEGIN { d = 2 * h - f; exit !(f > 2 && d >= -1 && d <= 1) }'
	for k in ppl kl_mean; do
		a=$(val $k < "$tmp/ev-sp-bf16.json"); b=$(val $k < "$tmp/ev-tok-bf16.json")
		ok "... $k $a within 2e-3 of token-major bf16's $b" \
			awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b > 0 && d <= 2e-3 * b) }'
	done
	# --compute on the command line: part of the evaluation's cache key
	db="$tmp/key.db"
	for m in f32 bf16 auto ggml; do
		"$S" eval "$tmp/bf16.gguf" --task "ppl:$text" --ctx 256 --max-tokens 2048 \
			--compute $m --db "$db" --format json > "$tmp/eval-$m.json" 2> "$tmp/eval-$m.err"
		is "$?" 0 "eval --compute $m exits 0"
	done
	nev=$("$S" sql --db "$db" "SELECT count(*) FROM evals WHERE task = 'ppl'" --format csv | tail -1)
	is "$nev" 3 "f32, bf16 and ggml are three stored evaluations, auto is one of them ($nev rows)"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM evals WHERE task = 'ppl' AND settings LIKE '%compute=bf16%'" --format csv | tail -1)" 1 \
		"the bf16 one says so in its settings"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM evals WHERE task = 'ppl' AND settings LIKE '%compute=ggml%'" --format csv | tail -1)" 1 \
		"the ggml one (llama.cpp's arithmetic) says so in its settings"
	pa=$(json_num value < "$tmp/eval-auto.json")
	ok "auto's ppl is the f32 or the bf16 one ($pa)" sh -c "grep -q '\"value\": *$pa' '$tmp/eval-f32.json' '$tmp/eval-bf16.json'"
	"$S" eval "$tmp/bf16.gguf" --task "ppl:$text" --compute fp8 > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "--compute fp8 is a usage error"
	contains "$(cat "$tmp/err")" "--compute expects f32, bf16, auto or ggml" "the error names the modes"
	# a calibration run is keyed by the mode too
	for m in f32 bf16 f32; do
		"$S" calibrate "$tmp/bf16.gguf" "$text" --samples 2 --seq-len 64 --compute $m \
			--db "$tmp/runs.db" --format json > /dev/null 2> "$tmp/cal-$m.err"
	done
	is "$("$S" sql --db "$tmp/runs.db" "SELECT group_concat(compute, ',') FROM (SELECT compute FROM calib_runs ORDER BY id)" --format csv | tail -1 | tr -d '"')" \
		"f32,bf16" "calibrate --compute f32 and bf16 are two runs, f32 again is served from the store"
	contains "$(cat "$tmp/cal-f32.err")" "cached" "the second f32 calibration says it was cached"
	contains "$("$S" info --system --compute bf16)" "compute:               bf16" "info --system shows the mode"
	contains "$("$S" info --system --compute ggml)" "q4_0_ggml:" "info --system names the ggml mode's kernels"
	contains "$("$S" info --system --compute ggml)" "compute:               ggml" "... and shows the mode"
fi
done_testing
