#!/bin/sh
# sweep_cli: `strata sweep` end to end on the shared stories260K model
# with a temporary store: each row's mask is the plan `strata plan`
# makes for (method, k), its ppl is what `strata ppl --mask` computes,
# k = 0 has KL 0, a repeated sweep is read back from the store, a wider
# one computes only the new points, --bench gives the KV bytes the mask
# implies, and usage errors.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/sweep_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"

json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
# cell METHOD K COLUMN: a cell of the TSV table in $tmp/s.csv
cell() {
	awk -F'\t' -v m="$1" -v k="$2" -v c="$3" '
		NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		$1 == m && $2 == k { print $(col[c]) }' "$tmp/s.csv"
}

if need model models/stories260K/stories260K.gguf &&
   need text data/text/tinystories-valid-1000.txt; then
	"$S" calibrate "$model" "$text" --db "$db" --samples 16 --seq-len 128 > /dev/null 2>&1
	is "$?" 0 "calibrate a run to sweep"
	run=$("$S" sql --db "$db" "SELECT max(id) FROM calib_runs" --format tsv | tail -1)

	sw() { "$S" sweep "$model" --db "$db" --run "$run" --task "ppl:$text" --task "kl:$text" \
		--ctx 128 --max-tokens 1000 --format tsv "$@"; }
	sw --method attn,block --max 2 > "$tmp/s.csv" 2> "$tmp/s.err"
	is "$?" 0 "sweep attn,block to k=2"
	is "$(wc -l < "$tmp/s.csv" | tr -d ' ')" 7 "... a header and 6 rows"
	is "$(head -1 "$tmp/s.csv" | tr '\t' ,)" "method,k,mask,params_removed,ppl,nll,kl_mean,kl_p99,top1_agree" "... columns"
	ref0=$("$S" ppl "$model" "$text" --ctx 128 --max-tokens 1000 --format json | json_num ppl)
	is "$(cell attn 0 ppl)" "$ref0" "k=0 ppl is the unmasked model's"
	is "$(cell block 0 ppl)" "$ref0" "... for every method"
	is "$(cell attn 0 kl_mean)" 0 "k=0 KL is 0"
	is "$(cell attn 0 top1_agree)" 1 "k=0 top-1 agreement is 1"
	for m in attn block; do
		for k in 1 2; do
			mask=$("$S" plan "$run" --db "$db" --method $m -n $k --format json | grep -o '"mask": *"[^"]*"' | sed 's/.*: *"//; s/"$//')
			got=$(cell $m $k mask)
			is "$got" "$mask" "$m k=$k drops what strata plan chooses ($mask)"
			ref=$("$S" ppl "$model" "$text" --mask "$mask" --ctx 128 --max-tokens 1000 --format json | json_num ppl)
			is "$(cell $m $k ppl)" "$ref" "$m k=$k ppl equals strata ppl --mask"
		done
	done
	ok "attn k=2 ppl $(cell attn 2 ppl) < block k=2 ppl $(cell block 2 ppl) (attention is more redundant)" \
		awk -v a="$(cell attn 2 ppl)" -v b="$(cell block 2 ppl)" 'BEGIN { exit !(a < b) }'
	ok "KL grows with k for attn" awk -v a="$(cell attn 1 kl_mean)" -v b="$(cell attn 2 kl_mean)" 'BEGIN { exit !(0 < a && a < b) }'
	is "$(grep -c 'from the store' "$tmp/s.err")" 1 "only block k=0 (the same empty mask as attn k=0) came from the store"

	sw --method attn,block --max 2 > "$tmp/s2.csv" 2> "$tmp/s2.err"
	is "$(cat "$tmp/s2.csv")" "$(cat "$tmp/s.csv")" "a repeated sweep prints the same table"
	is "$(grep -c 'from the store' "$tmp/s2.err")" 6 "... every point read back from the store"
	sw --method attn,block --max 3 > "$tmp/s3.csv" 2> "$tmp/s3.err"
	is "$(grep -c 'from the store' "$tmp/s3.err")" 6 "a wider sweep reads the 6 known points"
	is "$(grep -c '^strata sweep: \[' "$tmp/s3.err")" 8 "... and computes the 2 new ones"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM evals" --format tsv | tail -1)" 14 "7 distinct masks x 2 tasks evaluated"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM sweeps" --format tsv | tail -1)" 8 "8 sweep points recorded"
	is "$("$S" sql --db "$db" "SELECT value FROM sweep_list WHERE method = 'attn' AND k = 0 AND metric = 'ppl'" --format tsv | tail -1 | cut -c1-10)" \
		"$(echo "$ref0" | cut -c1-10)" "sweep_list joins points to their evaluations"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM plan_list WHERE method = 'attn'" --format tsv | tail -1)" 4 "the plans are stored (attn k=0..3)"

	"$S" sweep "$model" --db "$db" --run "$run" --method block --max 2 --bench --bench-ctx 32 --gen 4 --format tsv > "$tmp/b.csv" 2>/dev/null
	is "$?" 0 "sweep --bench without tasks"
	kv=$(awk -F"\t" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "kv_bytes") c = i; next } $2 == 2 { print $c }' "$tmp/b.csv")
	# 5 layers, 4 heads of 8 dims (k and v, F32) for 32 positions; block k=2 keeps 3 layers
	is "$kv" $((3 * 2 * 4 * 8 * 4 * 32)) "block k=2 runs with the KV cache of 3 layers"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM benches" --format tsv | tail -1)" 3 "3 speed measurements stored"
	"$S" sweep "$model" --db "$db" --run "$run" --method block --max 2 --bench --bench-ctx 32 --gen 4 --format csv > /dev/null 2> "$tmp/b2.err"
	is "$(grep -c 'from the store' "$tmp/b2.err")" 3 "a repeated --bench sweep reuses the measurements"

	# a layer-major point on a terminal: its progress line says the layer, rising with it
	if command -v script > /dev/null 2>&1; then
		script -qec "'$S' sweep '$model' --db '$db' --run '$run' --task 'ppl:$text' --ctx 128 --force \
			--max-tokens 1000 --method attn --max 1 --layer-major --format tsv" /dev/null < /dev/null \
			2>&1 | tr '\r' '\n' > "$tmp/tty.out"
		contains "$(cat "$tmp/tty.out")" "attn k=0 ppl:$text  17.8%  layer 1/5" \
			"layer-major sweep on a terminal: after layer 1 of 5, a fifth of the first call's 889 tokens"
		contains "$(cat "$tmp/tty.out")" "attn k=1 ppl:$text 100.0%  layer 5/5" "... all after layer 5, each point"
	fi
	"$S" sweep "$model" --db "$db" --method attn --task "ppl:$text" > /dev/null 2>&1
	is "$?" 2 "no --run is a usage error"
	err=$("$S" sweep "$model" --db "$db" --run "$run" --method sideways --task "ppl:$text" 2>&1)
	is "$?" 2 "an unknown method is a usage error"
	contains "$err" "sideways" "... naming it"
	# the paper's preset: each task with its shots; boolq runs, rte's rows are missing
	err=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" sweep "$model" --db "$db" --run "$run" \
		--method attn --max 1 --suite llm-drop --limit 1 2>&1)
	is "$?" 1 "sweep --suite llm-drop stops at a task whose data is missing"
	contains "$err" "data/mc/rte/validation.jsonl' is missing" "... naming the file"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM evals WHERE task = 'boolq' AND settings = 'ctx=2048;limit=1'" \
		--format tsv | tail -1)" 1 "... after boolq (0-shot) was evaluated and stored"
	err=$("$S" sweep "$model" --db "$db" --run "$run" --suite nope 2>&1)
	is "$?" 2 "an unknown suite is a usage error"
	err=$("$S" sweep "$model" --db "$db" --run 999 --task "ppl:$text" 2>&1)
	is "$?" 1 "an unknown run fails"
	contains "$err" "999" "... naming it"
	"$S" synth "$tmp/other.gguf" --shape tiny > /dev/null 2>&1
	err=$("$S" sweep "$tmp/other.gguf" --db "$db" --run "$run" --task "ppl:$text" 2>&1)
	is "$?" 1 "a run of another model is refused"
	contains "$err" "another model" "... saying so"
	"$S" sweep "$model" --db "$db" --run "$run" --method mlp --max 9 --task "ppl:$text" --ctx 128 --max-tokens 300 --format csv > "$tmp/m.csv" 2> "$tmp/m.err"
	is "$(wc -l < "$tmp/m.csv" | tr -d ' ')" 7 "--max beyond the layer count stops at 5 MLPs"
	contains "$(cat "$tmp/m.err")" "at most 5" "... and says so"

	# two ppl files: columns named by file, each point joined to its own
	# evaluations only (not another file's, settings' or task's)
	wiki="$STRATA_SHARED/data/text/wikitext-2-test.raw"
	"$S" eval "$model" --db "$db" --task "ppl:$text" --ctx 128 --max-tokens 700 --mask attn=1 > /dev/null 2>&1
	two() { "$S" sweep "$model" --db "$db" --run "$run" --method attn --max 1 --task "ppl:$text" \
		--task "ppl:$wiki" --ctx 128 --max-tokens 400 "$@" 2> /dev/null; }
	two --format csv > "$tmp/two.csv"
	is "$?" 0 "a sweep with two ppl files"
	is "$(head -1 "$tmp/two.csv")" \
		"method,k,mask,params_removed,ppl:tinystories-valid-1000.txt:ppl,ppl:tinystories-valid-1000.txt:nll,ppl:wikitext-2-test.raw:ppl,ppl:wikitext-2-test.raw:nll" \
		"... names each file's columns"
	is "$(two --format json | grep -o '"ppl:[a-z0-9.-]*:ppl"' | sort -u | wc -l | tr -d ' ')" 2 \
		"... and --format json keeps both"
	mask1=$(awk -F, 'NR == 3 { print $3 }' "$tmp/two.csv")
	canon() { echo "$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")"; }
	tk="ppl:$(canon "$text") ppl:$(canon "$wiki")"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM sweep_list WHERE k = 1 AND tasks = '$tk' AND metric = 'ppl'" --format tsv | tail -1)" 2 \
		"sweep_list: one ppl row per file for the point ($mask1), not the other evaluations of its mask"
	is "$("$S" sql --db "$db" "SELECT group_concat(task, ' ') FROM (SELECT task FROM sweep_list WHERE k = 1 AND tasks = '$tk' AND metric = 'ppl' ORDER BY task)" --format tsv | tail -1)" \
		"ppl:tinystories-valid-1000.txt ppl:wikitext-2-test.raw" "... its task column names the file"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM eval_list WHERE mask = '$mask1' AND metric = 'ppl'" --format tsv | tail -1)" 3 \
		"(the mask has three ppl evaluations in the store)"
	# a sweep's tasks are stored with their files' canonical paths, whatever was typed
	rtext=$(realpath --relative-to="$tmp" "$text" 2> /dev/null) || rtext=$text
	(cd "$tmp" && "$S" sweep "$model" --db "$db" --run "$run" --method attn --max 1 --task "ppl:$rtext" \
		--ctx 128 --max-tokens 400 > /dev/null 2>&1)
	is "$?" 0 "a sweep with a relative data path ($rtext)"
	is "$("$S" sql --db "$db" "SELECT group_concat(DISTINCT tasks) FROM sweeps WHERE tasks LIKE 'ppl:%' AND tasks NOT LIKE '% %'" --format tsv | tail -1)" \
		"ppl:$(canon "$text")" "... is stored under the file's canonical path, as the other sweeps of that file"
fi
done_testing
