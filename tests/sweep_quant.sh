#!/bin/sh
# sweep_quant: `strata sweep --quant` on the shared stories260K model
# with a temporary store.  Each quantized point (rtn and gptq, q4_0)
# differs from the unquantized point of its mask, and equals what
# `strata quantize` of the same mask (same calibration chunks) and then
# `strata eval` / `strata ppl --ref` / `strata bench` of the file give:
# the sweep quantizes in memory with the same code, so the perplexity
# and KL agree to 1e-9 relative (they are the same arithmetic) and the
# bytes column is the file's weight bytes.  A second sweep is read back
# from the store, the unquantized points are never mixed with quantized
# ones, and usage errors.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/sweep_quant"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"

json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
# cell FILE METHOD K QUANT COLUMN: a cell of a sweep's TSV table
cell() {
	awk -F'\t' -v m="$2" -v k="$3" -v q="$4" -v c="$5" '
		NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		$1 == m && $2 == k && (q == "" || $(col["quant"]) == q) { print $(col[c]) }' "$1"
}
# close A B: |A - B| <= 1e-9 |B|
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d;
	m = b < 0 ? -b : b; exit !(a != "" && b != "" && d <= 1e-9 * m) }'; }
differ() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a != b) }'; }

if need model models/stories260K/stories260K.gguf &&
   need text data/text/tinystories-valid-1000.txt; then
	"$S" calibrate "$model" "$text" --db "$db" --samples 16 --seq-len 128 > /dev/null 2>&1
	is "$?" 0 "calibrate a run to sweep"
	run=$("$S" sql --db "$db" "SELECT max(id) FROM calib_runs" --format tsv | tail -1)

	sw() { "$S" sweep "$model" --db "$db" --run "$run" --task "ppl:$text" --task "kl:$text" \
		--ctx 128 --max-tokens 1000 --method attn --max 1 --format tsv "$@"; }
	sw > "$tmp/plain.tsv" 2> /dev/null
	is "$?" 0 "unquantized sweep"
	sw --quant rtn:4,gptq:q4_0:32 --bench --bench-ctx 32 --gen 4 > "$tmp/q.tsv" 2> "$tmp/q.err"
	is "$?" 0 "sweep --quant rtn:4,gptq:q4_0:32 --bench"
	is "$(head -1 "$tmp/q.tsv" | cut -f1-8 | tr '\t' ,)" "method,k,mask,params_removed,quant,bytes,ppl,nll" \
		"... columns quant and bytes"
	is "$(wc -l < "$tmp/q.tsv" | tr -d ' ')" 5 "... 4 points (2 quantizations x k = 0, 1)"
	is "$(cut -f5 "$tmp/q.tsv" | sed 1d | sort -u | tr '\n' ,)" "gptq:q4_0:32,rtn:q4_0:32," \
		"... named canonically"
	contains "$(cat "$tmp/q.err")" "[4/4] attn k=1 attn=2;mlp= gptq:q4_0:32" "... progress names the quantization"
	mask1=$(cell "$tmp/plain.tsv" attn 1 "" mask)
	for q in rtn:q4_0:32 gptq:q4_0:32; do
		for k in 0 1; do
			ok "$q k=$k: ppl differs from the unquantized point's" \
				differ "$(cell "$tmp/q.tsv" attn $k $q ppl)" "$(cell "$tmp/plain.tsv" attn $k "" ppl)"
		done
		ok "$q k=0: KL from the unquantized model is above 0.01" \
			awk -v v="$(cell "$tmp/q.tsv" attn 0 $q kl_mean)" 'BEGIN { exit !(v > 0.01) }'
		ok "$q k=0: fewer bytes than unquantized" \
			awk -v a="$(cell "$tmp/q.tsv" attn 0 $q bytes)" \
			'BEGIN { exit !(a > 0 && a < 1040128) }'
	done
	ok "gptq's KL below rtn's at k=0" awk -v g="$(cell "$tmp/q.tsv" attn 0 gptq:q4_0:32 kl_mean)" \
		-v r="$(cell "$tmp/q.tsv" attn 0 rtn:q4_0:32 kl_mean)" 'BEGIN { exit !(g < r) }'

	# the same point by strata quantize, then eval / ppl --ref / bench
	for q in rtn gptq; do
		f="$tmp/$q.gguf"
		"$S" quantize "$model" --quant $q --bits 4 --data "$text" --samples 16 --seq-len 128 \
			--mask "$mask1" --out "$f" --no-store > /dev/null 2>&1
		is "$?" 0 "strata quantize --quant $q --mask '$mask1'"
		e=$("$S" eval "$f" --db "$db" --task "ppl:$text" --ctx 128 --max-tokens 1000 --format json)
		is "$?" 0 "... strata eval on the file"
		ok "... its ppl equals the sweep's $q k=1 point (1e-9)" \
			close "$(echo "$e" | json_num value)" "$(cell "$tmp/q.tsv" attn 1 $q:q4_0:32 ppl)"
		kl=$("$S" ppl "$f" "$text" --ctx 128 --max-tokens 1000 --ref "$model" --format json | json_num kl_mean)
		ok "... its KL from the source equals the sweep's (1e-9)" \
			close "$kl" "$(cell "$tmp/q.tsv" attn 1 $q:q4_0:32 kl_mean)"
		b=$("$S" bench "$f" --db "$db" --ctx 32 --gen 4 --format json)
		is "$?" 0 "... strata bench on the file"
		is "$(echo "$b" | json_num weight_bytes)" "$(cell "$tmp/q.tsv" attn 1 $q:q4_0:32 bytes)" \
			"... its weight bytes are the sweep's bytes"
		ok "... decode speed measured" awk -v v="$(echo "$b" | json_num decode_tps)" 'BEGIN { exit !(v > 0) }'
	done

	# the store
	sw --quant rtn:4,gptq:q4_0:32 --bench --bench-ctx 32 --gen 4 > "$tmp/q2.tsv" 2> "$tmp/q2.err"
	is "$?" 0 "the quantized sweep again"
	is "$(grep -c '(from the store)' "$tmp/q2.err")" 4 "... every point from the store"
	is "$(cut -f1-11 "$tmp/q2.tsv")" "$(cut -f1-11 "$tmp/q.tsv")" "... the same figures"
	sw > "$tmp/plain2.tsv" 2> "$tmp/plain2.err"
	is "$(cat "$tmp/plain2.tsv")" "$(cat "$tmp/plain.tsv")" "the unquantized sweep is unchanged"
	is "$(grep -c '(from the store)' "$tmp/plain2.err")" 2 "... and read from the store"
	is "$("$S" sql --db "$db" --format tsv "SELECT count(*) FROM evals WHERE settings LIKE '%;quant=gptq:q4_0:32;qdata=%;qsamples=16;qseq=128;bytes=%'" | tail -1)" 4 \
		"gptq's evaluations are stored with its settings and calibration"
	is "$("$S" sql --db "$db" --format tsv "SELECT count(DISTINCT tasks) FROM sweeps" | tail -1)" 3 \
		"the sweep rows of each quantization are their own"
	sw --quant none,rtn:4 > "$tmp/n.tsv" 2> "$tmp/n.err"
	is "$(grep -c '(from the store)' "$tmp/n.err")" 4 "--quant none,rtn:4: both from the store"
	is "$(cell "$tmp/n.tsv" attn 1 none ppl)" "$(cell "$tmp/plain.tsv" attn 1 "" ppl)" "... none is the unquantized point"
	sw --quant rtn:4 --force > "$tmp/f.tsv" 2> /dev/null
	is "$(cell "$tmp/f.tsv" attn 1 rtn:q4_0:32 ppl)" "$(cell "$tmp/q.tsv" attn 1 rtn:q4_0:32 ppl)" \
		"--force quantizes again, to the same figures"

	# plot drops draws the unquantized points, never the newest quantized ones
	"$S" plot drops "$run" --db "$db" --metric kl --out "$tmp/d.svg" --format tsv > "$tmp/d.tsv" 2> "$tmp/d.err"
	is "$?" 0 "plot drops of the run"
	is "$(grep -c 'quant=' "$tmp/d.err")" 0 "... no quantized evaluation among its settings"

	# the workbench's results: quantization and bytes columns, quantized
	# points in the speed chart's frontier
	if command -v tmux > /dev/null 2>&1; then
		TM="tmux -L strata-sweep-quant-$$ -f /dev/null"
		$TM new-session -d -s tui -x 160 -y 45 \
			"env STRATA_SHARED='$STRATA_SHARED' TERM=xterm-256color '$S' tui '$model' --db '$db'; sleep 30"
		i=0
		until $TM capture-pane -p -t tui 2>/dev/null | grep -q "5 Results" || [ $i -ge 100 ]; do
			sleep 0.1; i=$((i + 1)); done
		$TM send-keys -t tui 5
		i=0
		until $TM capture-pane -p -t tui 2>/dev/null | grep -q "Pareto" || [ $i -ge 100 ]; do
			sleep 0.1; i=$((i + 1)); done
		p=$($TM capture-pane -p -t tui)
		$TM kill-server 2>/dev/null
		contains "$(echo "$p" | grep ' eval ')" "quant        bytes" "the results table has quant and bytes columns"
		contains "$(echo "$p" | grep -F 'attn=2;mlp= gptq:q4_0:32' | head -1)" \
			"$(cell "$tmp/q.tsv" attn 1 gptq:q4_0:32 bytes)" "... a gptq point with its bytes"
		contains "$(echo "$p" | grep -F 'Pareto')" "gptq:q4_0:32" "... and in the speed chart's frontier"
	else
		skip_or_fail "tmux is not installed"
	fi

	# usage
	# groups: 64 (the width of stories260K's rows) is made, 128 cannot divide them
	sw --quant gptq:4:64 > "$tmp/g64.tsv" 2> /dev/null
	is "$?" 0 "sweep --quant gptq:4:64"
	differ "$(cell "$tmp/g64.tsv" attn 1 gptq:q4_0:64 ppl)" "$(cell "$tmp/q.tsv" attn 1 gptq:q4_0:32 ppl)" &&
		differ "$(cell "$tmp/g64.tsv" attn 1 gptq:q4_0:64 ppl)" "$(cell "$tmp/plain.tsv" attn 1 "" ppl)"
	is "$?" 0 "... its point (group 64) differs from group 32's and from the unquantized one"
	sw --quant gptq:4:128 > /dev/null 2> "$tmp/g128.err"
	ok "--quant gptq:4:128 fails on rows of 64" [ $? -ne 0 ]
	contains "$(cat "$tmp/g128.err")" "which groups of 128 columns do not divide" "... naming the rows"
	sw --quant gptq:4:96 > /dev/null 2> "$tmp/e1"
	is "$?" 2 "--quant gptq:4:96 is a usage error"
	contains "$(cat "$tmp/e1")" "group '96'" "... naming the group"
	sw --quant awq:4:128 > /dev/null 2> "$tmp/e5"
	rc5=$?
	ok "--quant awq:4:128 is taken (awq groups of 128), then fails on rows of 64 ($rc5)" \
		[ "$rc5" -ne 0 -a "$rc5" -ne 2 ]
	contains "$(cat "$tmp/e5")" "which groups of 128 columns do not divide" "... naming the rows"
	sw --quant foo:4 > /dev/null 2> "$tmp/e2"
	is "$?" 2 "--quant foo:4: unknown method"
	sw --quant rtn:3 > /dev/null 2> "$tmp/e3"
	is "$?" 2 "--quant rtn:3: no such width"
	sw --quant-data "$text" > /dev/null 2> "$tmp/e4"
	is "$?" 2 "--quant-data without --quant"
fi
done_testing
