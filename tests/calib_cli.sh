#!/bin/sh
# calib_cli: calibrate, plan, runs, scores and sql end to end on the
# shared stories260K model with a temporary store: the paper's cosines
# against the golden file, the cache, --force, every plan method with
# its predicted effect computed here from the hyperparameters, read-only
# SQL, bad masks, Ctrl-C, a crash, and --resume giving the same scores
# as an uninterrupted run.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/calib_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"
unset STRATA_DB STRATA_TEST_CANCEL_AFTER STRATA_TEST_KILL_AFTER STRATA_TEST_CHUNK_DELAY_MS

# json_num KEY / json_str KEY: the first value of KEY in the JSON on stdin
json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
json_field() { grep -o "\"$1\": *[^,}]*" | head -1 | sed 's/.*: *//'; }
# cos_lines: "site layer value" for every cos score in calibrate's JSON
cos_lines() {
	tr '{' '\n' | grep '"metric": *"cos"' |
	sed -n 's/.*"layer": *\([0-9]*\).*"site": *"\([a-z]*\)".*"value": *\([-0-9.eE+]*\).*/\2 \1 \3/p'
}
# golden_lines FILE: the same from the golden file's arrays
golden_lines() {
	for s in attn mlp block; do
		tr -d ' \n' < "$1" | sed "s/.*\"$s\":\[\([^]]*\)\].*/\1/" | tr ',' '\n' |
		awk -v s="$s" 'NF { print s, NR - 1, $1 }'
	done
}
# scores_of: the "scores" array of calibrate's JSON, one object per line
scores_of() { sed 's/.*"scores": *\[//' | tr '{' '\n' | grep value; }
sqlv() { "$S" sql --db "$db" --format csv "$1" | sed -n 2p; }

if need model models/stories260K/stories260K.gguf &&
   need text data/text/tinystories-valid-1000.txt &&
   need golden golden/stories260K-cos-tinystories-16x128.json; then
	cal() { "$S" calibrate "$model" "$text" --db "$db" "$@"; }

	# ---- the paper's metric against the golden file ----
	cal --samples 16 --seq-len 128 --format json > "$tmp/c1.json" 2> "$tmp/c1.err"; rc=$?
	is "$rc" 0 "calibrate 16x128 exits 0"
	is "$(json_num run < "$tmp/c1.json")" 1 "its run id is 1 in a new store"
	is "$(json_num tokens < "$tmp/c1.json")" 2048 "it used 16 x 128 = 2048 tokens"
	is "$(json_field cached < "$tmp/c1.json")" false "a first calibration is not cached"
	cos_lines < "$tmp/c1.json" | sort > "$tmp/got"
	golden_lines "$golden" | sort > "$tmp/want"
	is "$(wc -l < "$tmp/got" | tr -d ' ')" 15 "15 cos scores (5 layers x attn, mlp, block)"
	for s in attn mlp block; do
		worst=$(paste -d' ' "$tmp/got" "$tmp/want" |
			awk -v s="$s" '$1 == s && $4 == s && $2 == $5 { d = $3 - $6; if (d < 0) d = -d; if (d > m) m = d; n++ }
				       END { if (n != 5) print "missing"; else print (m <= 1e-5 ? "ok" : m) }')
		is "$worst" ok "$s cos of every layer equals the golden value within 1e-5"
	done
	is "$(tr '{' '\n' < "$tmp/c1.json" | grep -c '"metric": *"angular_last"')" 14 \
	   "angular_last for every span (5 + 4 + 3 + 2 spans)"

	# ---- the cache and --force ----
	cal --samples 16 --seq-len 128 --format json > "$tmp/c2.json" 2> "$tmp/c2.err"; rc=$?
	is "$rc" 0 "the same calibration again exits 0"
	is "$(json_field cached < "$tmp/c2.json")" true "... and is served from the store (cached)"
	is "$(json_num run < "$tmp/c2.json")" 1 "... as run 1"
	contains "$(cat "$tmp/c2.err")" "cached" "... saying so on stderr"
	is "$(scores_of < "$tmp/c2.json")" "$(scores_of < "$tmp/c1.json")" "... with the same scores"
	out=$(cal --samples 16 --seq-len 128 2> /dev/null)
	contains "$out" "cached:  true" "the text output says cached too"
	cal --samples 16 --seq-len 128 --force --format json > "$tmp/c3.json"; rc=$?
	is "$rc" 0 "--force exits 0"
	is "$(json_num run < "$tmp/c3.json")" 2 "--force recomputes as a new run"
	is "$(json_field cached < "$tmp/c3.json")" false "... not cached"
	is "$(scores_of < "$tmp/c3.json")" "$(scores_of < "$tmp/c1.json")" "... with identical scores"
	out=$(cal --samples 16 --seq-len 128 --format csv 2> /dev/null)
	is "$(echo "$out" | head -1 | cut -d, -f1-4)" "run,cached,pass,metric" "calibrate csv header"
	is "$(echo "$out" | sed -n 2p | cut -d, -f1-2)" "2,1" "calibrate csv rows: the newest run, cached"

	# ---- runs, scores, sql ----
	out=$("$S" runs --db "$db" --format csv); rc=$?
	is "$rc" 0 "runs exits 0"
	# a terminal: the table fits $COLUMNS, long paths elided in the middle;
	# not a terminal: whole values, whatever the width
	if command -v script > /dev/null 2>&1; then
		COLUMNS=140 script -qc "'$S' runs --db '$db'" /dev/null | tr -d '\r' > "$tmp/runs.tty"
		is "$(awk '{ if (length($0) > m) m = length($0) } END { print (m <= 140) }' "$tmp/runs.tty")" 1 \
			"runs on a 140-column terminal fits in 140 columns"
		contains "$(cat "$tmp/runs.tty")" "260K.gguf" "... keeping the end of the model's path"
		contains "$(cat "$tmp/runs.tty")" "..." "... eliding its middle"
	fi
	COLUMNS=120 "$S" runs --db "$db" > "$tmp/runs.txt"
	contains "$(cat "$tmp/runs.txt")" "models/stories260K/stories260K.gguf" "runs into a pipe prints whole paths"
	is "$(echo "$out" | head -1 | cut -d, -f1-2)" "run,status" "runs csv: the run id is the first column"
	is "$(echo "$out" | sed 1d | cut -d, -f1 | tr '\n' ' ')" "2 1 " "runs lists the newest first"
	is "$(echo "$out" | sed -n 2p | cut -d, -f2)" "done" "runs shows the status"
	out=$(STRATA_DB="$db" "$S" runs)
	contains "$out" "tinystories-valid-1000.txt" "STRATA_DB selects the store"
	out=$("$S" scores 1 --db "$db" --format csv); rc=$?
	is "$rc" 0 "scores exits 0"
	is "$(echo "$out" | sed 1d | wc -l | tr -d ' ')" 15 "scores: 15 cos rows by default"
	is "$(echo "$out" | awk -F, 'NR > 1 && $4 == "mlp" && $5 == 3 { print $7 }')" \
	   "$(sqlv "SELECT value FROM scores WHERE run_id = 1 AND site = 'mlp' AND layer = 3 AND metric = 'cos'")" \
	   "scores csv equals the stored value"
	is "$("$S" scores 1 --db "$db" --metric angular_all --format csv | sed 1d | wc -l | tr -d ' ')" 14 \
	   "scores --metric angular_all: 14 spans"
	is "$("$S" scores 1 --db "$db" --metric all --format csv | sed 1d | wc -l | tr -d ' ')" 43 \
	   "scores --metric all: 15 + 14 + 14"
	out=$("$S" scores 1 --db "$db" --format json)
	contains "$out" '"importance":' "scores json has the importance"
	"$S" scores 99 --db "$db" > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "scores of a missing run exits 1"
	contains "$(cat "$tmp/err")" "no calibration run 99" "... naming it"
	is "$(sqlv "SELECT count(*) FROM calib_runs")" 2 "sql: two runs"
	is "$(sqlv "SELECT count(*) FROM layer_scores WHERE run = 1")" 5 "sql: layer_scores has a row per layer"
	is "$(sqlv "SELECT run FROM latest_runs")" 2 "sql: latest_runs gives the newest run"
	out=$("$S" sql --db "$db" "SELECT layer, attn_cos FROM layer_scores WHERE run = 1 ORDER BY layer")
	is "$(echo "$out" | head -1 | tr -s ' ')" "layer attn_cos" "sql text output has a header"
	"$S" sql --db "$db" "DELETE FROM scores" > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "sql refuses a write without --write"
	contains "$(cat "$tmp/err")" "--write" "... pointing at --write"
	is "$(sqlv "SELECT count(*) FROM scores WHERE run_id = 1")" 43 "... and the scores are intact"
	"$S" sql --db "$db" "PRAGMA query_only = 0" > /dev/null 2>&1; rc=$?
	is "$rc" 1 "sql refuses to lift query_only"
	"$S" sql --db "$db" --write "CREATE TABLE notes (run INTEGER, note TEXT)"; rc=$?
	is "$rc" 0 "sql --write runs a write"
	is "$(sqlv "SELECT count(*) FROM sqlite_master WHERE name = 'notes'")" 1 "... which changed the store"
	# fts3_tokenizer() hands out an address, and with --write took one (a forged one crashed)
	"$S" sql --db "$db" "SELECT hex(fts3_tokenizer('simple'))" > "$tmp/out" 2> "$tmp/err"; rc=$?
	is "$rc" 1 "sql refuses fts3_tokenizer()"
	contains "$(cat "$tmp/err")" "fts3_tokenizer() is not allowed" "... saying so"
	"$S" sql --db "$db" --write "SELECT fts3_tokenizer('x', X'0102030405060708');
		CREATE VIRTUAL TABLE f USING fts3(a, tokenize=x)" > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "sql --write refuses fts3_tokenizer() too (no crash)"
	contains "$(cat "$tmp/err")" "fts3_tokenizer() is not allowed" "... saying so"
	# a store with a damaged middle page is refused by every command, never written
	bad="$tmp/damaged.db"
	cp "$db" "$bad"
	"$S" sql --db "$bad" --write "CREATE TABLE pad (x);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
		INSERT INTO pad SELECT printf('%0200d', i) FROM n"
	pg=$(( $(wc -c < "$bad") / 4096 / 2 ))
	printf '%064d' 0 | dd of="$bad" bs=1 seek=$(( (pg - 1) * 4096 )) conv=notrunc 2> /dev/null
	cp "$bad" "$tmp/damaged.copy"
	"$S" runs --db "$bad" > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "runs refuses a store with page $pg damaged"
	contains "$(cat "$tmp/err")" "damaged.db' is damaged" "... naming it"
	contains "$(cat "$tmp/err")" ".recover" "... and how to recover it"
	"$S" sql --db "$bad" "SELECT count(*) FROM calib_runs" > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "sql refuses it"
	cal --db "$bad" --samples 2 --seq-len 32 --force > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "calibrate --force refuses it"
	contains "$(cat "$tmp/err")" "is damaged" "... saying so"
	"$S" eval "$model" --db "$bad" --task "ppl:$text" --ctx 32 --max-tokens 64 > "$tmp/out" \
		2> "$tmp/err"; rc=$?
	is "$rc" 1 "eval refuses it too (a damaged store is an error, not a cache to skip)"
	contains "$(cat "$tmp/err")" "store '$bad' is damaged" "... saying so"
	contains "$(cat "$tmp/err")" "--no-store" "... and that --no-store measures without it"
	is "$(wc -c < "$tmp/out" | tr -d ' ')" 0 "... printing no result"
	"$S" bench "$model" --db "$bad" --ctx 16 --gen 2 --repeat 1 > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "bench refuses it"
	"$S" eval "$model" --db "$bad" --no-store --task "ppl:$text" --ctx 32 --max-tokens 64 > /dev/null \
		2> "$tmp/err"; rc=$?
	is "$rc" 0 "eval --no-store measures without it"
	ok "... and no command wrote to it" cmp -s "$bad" "$tmp/damaged.copy"
	"$S" sql --db "$tmp/none.db" "SELECT 1" > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "sql on a missing store exits 1"
	contains "$(cat "$tmp/err")" "none.db" "... naming it"
	ok "... without creating it" [ ! -e "$tmp/none.db" ]

	# ---- plans ----
	# stories260K: d_model 64, 8 heads of 8, 4 KV heads, FFN 172
	D=64 q=64 kv=32 F=172
	attn_p=$((D + D * q + 2 * D * kv + q * D)) mlp_p=$((D + 3 * D * F))
	attn_f=$((2 * (D * q + 2 * D * kv + q * D))) mlp_f=$((2 * 3 * D * F))
	plan() { "$S" plan 1 --db "$db" "$@"; }
	# the most redundant sites per the golden cosines: attn 2, 4, 3, 1, 0; mlp 3, 2, 1, 0, 4;
	# blocks 2, 3, 4, 1, 0; joint: attn 2, attn 4, attn 3, attn 1, mlp 3
	for case in "attn 2 attn=2,4;mlp= 2 0" "mlp 2 attn=;mlp=2-3 0 2" \
		    "block 2 attn=2-3;mlp=2-3 2 2" "joint 5 attn=1-4;mlp=3 4 1"; do
		set -- $case
		out=$(plan --method "$1" -n "$2" --format json); rc=$?
		is "$rc" 0 "plan --method $1 -n $2 exits 0"
		is "$(echo "$out" | sed -n 's/.*"mask": *"\([^"]*\)".*/\1/p')" "$3" "plan $1: mask $3"
		is "$(echo "$out" | json_num params_removed)" $(($4 * attn_p + $5 * mlp_p)) "plan $1: parameters removed"
		is "$(echo "$out" | json_num kv_bytes_per_token)" $(($4 * 2 * kv * 4)) "plan $1: KV bytes per token saved"
		is "$(echo "$out" | json_num flops_per_token)" $(($4 * attn_f + $5 * mlp_f)) "plan $1: FLOPs per token saved"
	done
	out=$(plan --method attn -n 2)
	contains "$out" "attn=2,4;mlp=" "plan text prints the mask"
	contains "$out" "   1  attn       2  0.02787" "plan text lists the drops with importance 1 - cos"
	out=$(plan --method block -n 2)
	is "$(echo "$out" | sed -n 's/^mask: *//p')" "block=2-3" "plan text names whole blocks as block= (for people)"
	is "$(echo "$out" | sed -n 's/^canonical: *//p')" "attn=2-3;mlp=2-3" "... beside the canonical form the store keeps"
	is "$(plan --mask 'block=2-3;attn=0' | sed -n 's/^mask: *//p')" "block=2-3;attn=0" "block= and a lone site together"
	is "$(plan --method attn -n 2 | grep -c '^canonical:')" 0 "no canonical line when there is no whole block"
	is "$(plan --method attn -n 2 --keep-last 1 --format json | sed -n 's/.*"mask": *"\([^"]*\)".*/\1/p')" \
	   "attn=2-3;mlp=" "--keep-last 1 spares the last layer"
	is "$(plan --method attn -n 2 --keep-first 3 --format json | sed -n 's/.*"mask": *"\([^"]*\)".*/\1/p')" \
	   "attn=3-4;mlp=" "--keep-first 3 spares the first three layers"
	plan --method attn -n 5 --keep-first 1 > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "a plan that does not fit the guards fails"
	contains "$(cat "$tmp/err")" "cannot drop 5" "... saying why"
	out=$(plan --method contiguous -n 2); rc=$?
	is "$rc" 0 "plan --method contiguous exits 0"
	range=$(echo "$out" | sed -n 's/^range: *layers \([0-9]*\)-\([0-9]*\) (inclusive)$/\1 \2/p')
	set -- $range
	is "$(($2 - $1 + 1))" 2 "contiguous prints an inclusive range of 2 blocks"
	contains "$out" "attn=$1-$2;mlp=$1-$2" "... and drops exactly that range"
	is "$(plan --method contiguous -n 2 --format json | json_num range_first)" "$1" "... range_first in json"
	out=$(plan --method attn -n 2 --format csv)
	is "$(echo "$out" | head -1)" "plan,run,method,mask,step,site,layer,importance" "plan csv header"
	is "$(echo "$out" | sed 1d | wc -l | tr -d ' ')" 2 "plan csv has a row per drop"
	out=$(plan --method attn -n 2 --iterative --format json 2> "$tmp/err"); rc=$?
	is "$rc" 0 "plan --iterative exits 0"
	contains "$(cat "$tmp/err")" "kept as run" "... keeping its passes as a run"
	is "$(echo "$out" | sed 's/.*"drops"://' | json_num layer)" 2 "... its first drop is the one-shot choice (attn 2)"
	is "$(echo "$out" | json_num attn_dropped) $(echo "$out" | json_num mlp_dropped)" "2 0" \
	   "... and it drops two attention sublayers, no MLP"
	plan --method attn -n 2 --iterative > /dev/null 2> "$tmp/err"
	contains "$(cat "$tmp/err")" "(cached)" "the same iterative plan again reuses its run"
	is "$(sqlv "SELECT count(*) FROM iter_drops")" 2 "iter_drops holds its two steps"

	# relative paths are stored canonical: runs work from any directory
	adb=$(cd "$tmp" && pwd -P)/strata.db
	mdir=$(cd "$(dirname "$model")" && pwd -P)
	tabs=$(cd "$(dirname "$text")" && pwd -P)/$(basename "$text")
	# the data too, relative to the model's directory where realpath can say how
	trel=$(realpath --relative-to="$mdir" "$tabs" 2> /dev/null) || trel=$tabs
	(cd "$mdir" && "$S" calibrate "./$(basename "$model")" "$trel" --db "$adb" --samples 4 \
		--seq-len 64 > /dev/null 2>&1)
	is "$?" 0 "calibrate with a relative model path (data: $trel)"
	rrun=$(sqlv "SELECT max(id) FROM calib_runs")
	is "$(sqlv "SELECT model FROM run_list WHERE run = $rrun")" "$mdir/$(basename "$model")" \
		"... the store holds its canonical path"
	is "$(sqlv "SELECT dataset FROM run_list WHERE run = $rrun")" "$tabs" \
		"... and the data's canonical path"
	(cd "$tmp" && "$S" plan "$rrun" --db "$adb" --method attn -n 1 --iterative > /dev/null 2> "$tmp/rel.err")
	is "$?" 0 "plan --iterative from another directory reopens it"
	contains "$(cat "$tmp/rel.err")" "loading $mdir/" "... saying which path it loaded"

	# ---- masks by hand ----
	out=$(plan --mask 'attn=4,3;mlp=1' --format json); rc=$?
	is "$rc" 0 "plan --mask exits 0"
	is "$(echo "$out" | sed -n 's/.*"mask": *"\([^"]*\)".*/\1/p')" "attn=3-4;mlp=1" "... printing the canonical form"
	is "$(echo "$out" | json_num params_removed)" $((2 * attn_p + mlp_p)) "... and its effect"
	plan --mask 'attn=9' > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "a mask with a layer out of range is rejected (exit 2)"
	contains "$(cat "$tmp/err")" "position 6" "... with the position of the error"
	plan --mask 'attn=1,x' > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "a mask with bad syntax is rejected"
	contains "$(cat "$tmp/err")" "position 8" "... with the position of the error"
	is "$(sqlv "SELECT count(*) FROM plan_list WHERE method = 'attn' AND n = 2 AND iterative = 0 AND keep_first = 0 AND keep_last = 0")" 1 \
	   "the same plan asked several times is stored once"
	is "$(sqlv "SELECT mask FROM plan_list WHERE method = 'mlp'")" "attn=;mlp=2-3" "plan_list shows a plan's mask"

	# ---- interruption and --resume ----
	cal --samples 16 --seq-len 64 --format json > "$tmp/fresh64.json"
	env STRATA_TEST_CANCEL_AFTER=5 "$S" calibrate "$model" "$text" --db "$db" --samples 16 --seq-len 64 \
		--force > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "a cancelled calibration exits 1"
	contains "$(cat "$tmp/err")" "cancelled after 5 of 16 chunks" "... saying how far it got"
	run=$(sqlv "SELECT max(id) FROM calib_runs")
	is "$(sqlv "SELECT status || ' ' || chunks_done FROM calib_runs WHERE id = $run")" "cancelled 5" \
	   "... the run is marked cancelled with its 5 chunks"
	is "$(sqlv "SELECT count(DISTINCT chunk) FROM calib_chunks WHERE run_id = $run")" 5 "... which are stored"
	cal --samples 16 --seq-len 64 --format json > "$tmp/res.json" 2> "$tmp/err"; rc=$?
	is "$rc" 0 "the same command again (no --resume) exits 0"
	contains "$(cat "$tmp/err")" "resuming run $run at chunk 6" "... resuming by default, after the last finished chunk"
	contains "$(cat "$tmp/err")" "--force starts over" "... saying so, and how to start over"
	is "$(json_num run < "$tmp/res.json")" "$run" "... in the same run"
	is "$(scores_of < "$tmp/res.json")" "$(scores_of < "$tmp/fresh64.json")" \
	   "... giving the same scores as an uninterrupted run"

	env STRATA_TEST_CANCEL_AFTER=3 "$S" calibrate "$model" "$text" --db "$db" --samples 16 --seq-len 64 \
		--force > /dev/null 2> "$tmp/err"
	contains "$(cat "$tmp/err")" "the same command continues it" "a cancelled calibration says the same command continues it"
	crun=$(sqlv "SELECT max(id) FROM calib_runs")
	cal --samples 16 --seq-len 64 --force --format json > "$tmp/forced.json" 2> "$tmp/err"
	ok "--force starts over instead (run $(json_num run < "$tmp/forced.json"), not $crun)" \
		[ "$(json_num run < "$tmp/forced.json")" -gt "$crun" ]
	is "$(grep -c resuming "$tmp/err")" 0 "... without resuming"

	# Ctrl-C for real: SIGINT while chunks are being computed
	env STRATA_TEST_CHUNK_DELAY_MS=150 "$S" calibrate "$model" "$text" --db "$db" --samples 16 \
		--seq-len 32 > /dev/null 2> "$tmp/err" &
	pid=$!
	i=0
	while [ $i -lt 100 ] && [ "$(sqlv "SELECT count(*) FROM calib_runs WHERE seq_len = 32 AND chunks_done >= 2")" != 1 ]; do
		sleep 0.1; i=$((i + 1))
	done
	kill -INT $pid
	wait $pid; rc=$?
	is "$rc" 1 "Ctrl-C stops a calibration cleanly (exit 1)"
	contains "$(cat "$tmp/err")" "cancelled after" "... saying it was cancelled"
	st=$(sqlv "SELECT status, chunks_done FROM calib_runs WHERE seq_len = 32")
	is "${st%,*}" cancelled "... the run is marked cancelled"
	ok "... keeping its finished chunks (${st#*,})" [ "${st#*,}" -ge 2 ] && [ "${st#*,}" -lt 16 ]
	cal --samples 16 --seq-len 32 --resume --format json > "$tmp/res32.json" 2> /dev/null; rc=$?
	is "$rc" 0 "the interrupted run resumes"
	cal --samples 16 --seq-len 32 --force --format json > "$tmp/fresh32.json" 2> /dev/null
	is "$(scores_of < "$tmp/res32.json")" "$(scores_of < "$tmp/fresh32.json")" \
	   "... to the same scores as an uninterrupted run"

	# a crash (SIGKILL) after 3 chunks: the store stays consistent and resumable
	(env STRATA_TEST_KILL_AFTER=3 "$S" calibrate "$model" "$text" --db "$db" --samples 8 \
		--seq-len 48 > /dev/null 2>&1; exit $?) 2> /dev/null; rc=$?
	is "$rc" 137 "a calibration killed with SIGKILL dies (137)"
	is "$(sqlv "SELECT status || ' ' || chunks_done FROM calib_runs WHERE seq_len = 48")" "running 3" \
	   "... leaving its run marked running with 3 chunks"
	is "$(sqlv "PRAGMA integrity_check")" ok "... in a store that passes integrity_check"
	cal --samples 8 --seq-len 48 --resume --format json > "$tmp/res48.json" 2> "$tmp/err"; rc=$?
	is "$rc" 0 "--resume continues the crashed run"
	contains "$(cat "$tmp/err")" "at chunk 4" "... from its 4th chunk"
	cal --samples 8 --seq-len 48 --force --format json > "$tmp/fresh48.json" 2> /dev/null
	is "$(scores_of < "$tmp/res48.json")" "$(scores_of < "$tmp/fresh48.json")" \
	   "... to the same scores as an uninterrupted run"

	# ---- two writers at once ----
	cal --samples 12 --seq-len 40 --force > "$tmp/w1" 2>&1 &
	p1=$!
	cal --samples 12 --seq-len 41 --force > "$tmp/w2" 2>&1 &
	p2=$!
	wait $p1; r1=$?
	wait $p2; r2=$?
	is "$r1 $r2" "0 0" "two calibrations writing to one store at once both succeed"
	is "$(sqlv "SELECT count(*) FROM calib_runs WHERE seq_len IN (40, 41) AND status = 'done'")" 2 \
	   "... and both runs are done"

	# ---- the store refuses files that are not its own ----
	printf 'not a database, just text\n' > "$tmp/foreign.db"
	cp "$tmp/foreign.db" "$tmp/foreign.orig"
	"$S" runs --db "$tmp/foreign.db" > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 1 "a text file as the store is refused"
	contains "$(cat "$tmp/err")" "foreign.db" "... naming it"
	contains "$(cat "$tmp/err")" "not a strata store" "... saying what is wrong"
	ok "... and it is not modified" cmp -s "$tmp/foreign.db" "$tmp/foreign.orig"

	# ---- --until-stable: stop once the plan is stable over the chunks ----
	cal --samples 64 --seq-len 64 --until-stable --method attn -n 2 --format json \
		> "$tmp/st.json" 2> "$tmp/st.err"; rc=$?
	is "$rc" 0 "--until-stable --method attn -n 2 runs"
	stc=$(json_num chunks < "$tmp/st.json")
	ok "... and stops before the 64 chunks asked for, not before 8 ($stc)" \
		[ "${stc:-0}" -ge 8 ] && [ "${stc:-64}" -lt 64 ]
	contains "$(cat "$tmp/st.err")" "stopped after chunk $stc of 64" "... saying where"
	contains "$(cat "$tmp/st.err")" "bootstrap resamples" "... and why"
	strun=$(json_num run < "$tmp/st.json")
	is "$(sqlv "SELECT status || '|' || stop_rule || '|' || chunks_done FROM calib_runs WHERE id = $strun")" \
	   "done|stable 0.95 attn -n 2|$stc" "the store keeps it done, with its rule and its chunks"
	contains "$(sqlv "SELECT stopped FROM calib_runs WHERE id = $strun")" "after chunk $stc of 64" \
		"... and when and why it stopped"
	contains "$("$S" runs --db "$db" | awk -v r="$strun" '$1 == r')" "$stc/64 stable" \
		"strata runs shows its chunks as stopped by the rule"
	# its scores are those of a plain run over the same chunks
	cal --samples "$stc" --seq-len 64 --format json > "$tmp/stn.json" 2> /dev/null
	is "$(scores_of < "$tmp/st.json")" "$(scores_of < "$tmp/stn.json")" \
	   "its scores equal a plain run of $stc chunks"
	# the stability it stopped at, recomputed from the stored chunks
	share=$(sqlv "SELECT stopped FROM calib_runs WHERE id = $strun" | sed -n 's/.* in \([0-9.]*\)% of.*/\1/p')
	ok "... stopped at a stability of at least 95% ($share%)" \
		awk -v s="${share:-0}" 'BEGIN { exit !(s >= 95) }'
	cal --samples 64 --seq-len 64 --until-stable --method attn -n 2 --format json \
		> "$tmp/st2.json" 2> "$tmp/st2.err"
	is "$(json_num run < "$tmp/st2.json")" "$strun" "the same rule again is served from the store"
	contains "$(cat "$tmp/st2.err")" "cached" "... saying so"
	# spilled layer-major: passes short enough for the rule to stop at the same chunk
	cal --samples 64 --seq-len 64 --until-stable --method attn -n 2 --layer-major --mem-budget 1M \
		--force --format json > "$tmp/stl.json" 2> "$tmp/stl.err"
	sp=$(sed -n 's/.*layer-major passes: \([0-9]*\) chunks a pass, [0-9]* at a time, the activations spilled.*/\1/p' "$tmp/stl.err")
	ok "--until-stable, spilled layer-major: passes of ${sp:-?} chunks (8 or two calls), not 64" \
		test "${sp:-64}" -ge 8 -a "${sp:-64}" -lt 64
	is "$(json_num chunks < "$tmp/stl.json")" "$stc" "... stopping after the same chunk ($stc)"
	cal --samples 64 --seq-len 64 --until-stable 0.999 --method attn -n 2 --format json \
		> "$tmp/st3.json" 2> "$tmp/st3.err"; rc=$?
	is "$rc" 0 "--until-stable 0.999 (a space before the share) is a rule of its own"
	ok "... a new run" [ "$(json_num run < "$tmp/st3.json")" != "$strun" ]
	is "$(sqlv "SELECT stop_rule FROM calib_runs WHERE id = $(json_num run < "$tmp/st3.json")")" \
	   "stable 0.999 attn -n 2" "... keyed by its share"
	c3=$(json_num chunks < "$tmp/st3.json")
	ok "... which needs at least as many chunks ($c3 >= $stc)" [ "${c3:-0}" -ge "$stc" ]
	cal --samples 64 --until-stable --method attn > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "--until-stable without -n is a usage error"
	contains "$(cat "$tmp/err")" "--method M and -n K" "... naming what it needs"
	cal --samples 64 --until-stable=1.5 --method attn -n 2 > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "a share above 1 is a usage error"
	cal --samples 64 --method attn -n 2 > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "--method without --until-stable is a usage error"

	# ---- the observer's sums (compute/kernels' dot_f64, cos_f64) are the scalar path's, bit for bit ----
	cal --samples 4 --seq-len 100 --force --format json > "$tmp/avx.json" 2> /dev/null
	STRATA_CALIB_PORTABLE=1 cal --samples 4 --seq-len 100 --force --format json > "$tmp/port.json" 2> /dev/null
	is "$(scores_of < "$tmp/avx.json")" "$(scores_of < "$tmp/port.json")" \
	   "the observer's sums on this CPU's kernel path equal the scalar path's bit for bit"
	# widths and token counts that are no multiple of a vector: the tails
	"$S" synth "$tmp/odd.gguf" --shape odd-tiny > /dev/null
	odd() { "$S" calibrate "$tmp/odd.gguf" "$text" --db "$db" --samples 3 --seq-len 37 --force --format json "$@" 2> /dev/null; }
	odd > "$tmp/odd-avx.json"
	STRATA_CALIB_PORTABLE=1 odd > "$tmp/odd-port.json"
	is "$(scores_of < "$tmp/odd-avx.json" | wc -l)" 30 "odd-tiny (width 42, 37 tokens a chunk): 12 cos and 18 angular values"
	is "$(scores_of < "$tmp/odd-avx.json")" "$(scores_of < "$tmp/odd-port.json")" \
	   "... the kernel path's sums equal the scalar path's there too"

	# ---- layer-major passes: the token-major scores, to rounding ----
	# vals FILE: "site layer metric span value" of every score
	vals() { tr '{' '\n' < "$1" | grep '"value"' | sed 's/[",:]/ /g' |
		 awk '{ for (i = 1; i < NF; i++) v[$i] = $(i + 1); print v["site"], v["layer"], v["metric"], v["span"] + 0, v["value"] }'; }
	# same_within A B TOL: every value of A within TOL (relative) of B's
	same_within() {
		vals "$1" > "$tmp/va"; vals "$2" > "$tmp/vb"
		[ "$(wc -l < "$tmp/va")" -gt 15 ] && [ "$(wc -l < "$tmp/va")" = "$(wc -l < "$tmp/vb")" ] &&
		paste -d' ' "$tmp/va" "$tmp/vb" | awk -v tol="$3" '{ d = $5 - $10; if (d < 0) d = -d
			m = $5 < 0 ? -$5 : $5; if ($1 != $6 || $2 != $7 || d > tol * (m > 1e-12 ? m : 1)) bad++ }
			END { exit bad > 0 }'
	}
	cal --samples 16 --seq-len 96 --token-major --format json > "$tmp/tm.json" 2> /dev/null
	cal --samples 16 --seq-len 96 --layer-major --force --format json > "$tmp/lm.json" 2> "$tmp/lm.err"; rc=$?
	is "$rc" 0 "--layer-major runs"
	contains "$(cat "$tmp/lm.err")" "layer-major passes: 16 chunks a pass" "... all 16 chunks in one pass"
	ok "... with the token-major scores within 1e-6" same_within "$tmp/lm.json" "$tmp/tm.json" 1e-6
	contains "$(cat "$tmp/lm.err")" "layer-major: 1 pass over the weights for 16 chunks (5 layer loads" \
		"... reading each layer's weights once"
	# more chunks than the budget holds: one pass, the streams in a temporary file
	mkdir "$tmp/spilldir"
	TMPDIR="$tmp/spilldir" cal --samples 16 --seq-len 96 --layer-major --mem-budget 3M --force \
		--format json > "$tmp/lm2.json" 2> "$tmp/lm2.err"
	g=$(sed -n 's/.*layer-major passes: 16 chunks a pass, \([0-9]*\) at a time, the activations spilled to a temporary file of [0-9]* MB.*/\1/p' "$tmp/lm2.err")
	ok "--mem-budget 3M: 16 chunks a pass, ${g:-?} at a time (the last call fewer), spilled to a temporary file" \
		test "${g:-16}" -lt 16 -a "${g:-0}" -gt 1 -a $((16 % ${g:-16})) -ne 0
	contains "$(cat "$tmp/lm2.err")" "layer-major: 1 pass over the weights for 16 chunks (5 layer loads" \
		"... reading each layer's weights once all the same"
	ok "... with the same scores" same_within "$tmp/lm2.json" "$tmp/tm.json" 1e-6
	ok "... leaving no file behind" [ -z "$(ls -A "$tmp/spilldir")" ]
	TMPDIR="$tmp/spilldir" cal --samples 16 --seq-len 96 --layer-major --mem-budget 1M --force \
		--format json > "$tmp/lm5.json" 2> "$tmp/lm5.err"
	g1=$(sed -n 's/.*layer-major passes: 16 chunks a pass, \([0-9]*\) at a time, the activations spilled.*/\1/p' "$tmp/lm5.err")
	ok "--mem-budget 1M: 16 chunks a pass, ${g1:-?} at a time, spilled" test "${g1:-16}" -lt "${g:-0}"
	ok "... with the same scores" same_within "$tmp/lm5.json" "$tmp/tm.json" 1e-6
	# killed after 3 chunks of a spilled pass: resumed at the 4th, the same scores
	(env TMPDIR="$tmp/spilldir" STRATA_TEST_KILL_AFTER=3 "$S" calibrate "$model" "$text" --db "$db" \
		--samples 16 --seq-len 98 --layer-major --mem-budget 1M > /dev/null 2>&1; exit $?) 2> /dev/null; rc=$?
	is "$rc" 137 "a spilled layer-major calibration killed with SIGKILL dies (137)"
	is "$(sqlv "SELECT status || ' ' || chunks_done FROM calib_runs WHERE seq_len = 98")" "running 3" \
	   "... keeping 3 chunks"
	ok "... and no temporary file" [ -z "$(ls -A "$tmp/spilldir")" ]
	cal --samples 16 --seq-len 98 --layer-major --mem-budget 1M --resume --format json \
		> "$tmp/lmk.json" 2> "$tmp/lmk.err"
	contains "$(cat "$tmp/lmk.err")" "at chunk 4 of 16" "... resumes at chunk 4"
	contains "$(cat "$tmp/lmk.err")" "13 chunks a pass, ${g1:-?} at a time" "... spilling the 13 left"
	cal --samples 16 --seq-len 98 --token-major --force --format json > "$tmp/tmk.json" 2> /dev/null
	ok "... to the uninterrupted token-major scores within 1e-6" same_within "$tmp/lmk.json" "$tmp/tmk.json" 1e-6
	# synthetic models: sliding windows and local RoPE (gemma3), experts (mixtral)
	for shape in gemma3-tiny mixtral-tiny; do
		"$S" synth "$tmp/$shape.gguf" --shape $shape > /dev/null
		"$S" calibrate "$tmp/$shape.gguf" "$text" --db "$db" --samples 12 --seq-len 80 --token-major \
			--format json > "$tmp/$shape-tm.json" 2> /dev/null
		"$S" calibrate "$tmp/$shape.gguf" "$text" --db "$db" --samples 12 --seq-len 80 --layer-major \
			--mem-budget 1M --force --format json > "$tmp/$shape-sp.json" 2> "$tmp/$shape.err"
		contains "$(cat "$tmp/$shape.err")" "the activations spilled" "$shape: a spilled layer-major pass"
		ok "... with the token-major scores within 1e-6" same_within "$tmp/$shape-sp.json" "$tmp/$shape-tm.json" 1e-6
		# iterative: every re-scoring pass layer-major, the token-major passes
		"$S" calibrate "$tmp/$shape.gguf" "$text" --db "$db" --samples 6 --seq-len 64 --token-major \
			--iterative joint -n 2 --format json > "$tmp/$shape-itm.json" 2> /dev/null
		"$S" calibrate "$tmp/$shape.gguf" "$text" --db "$db" --samples 6 --seq-len 64 --layer-major \
			--mem-budget 1M --iterative joint -n 2 --force --format json > "$tmp/$shape-isp.json" \
			2> "$tmp/$shape-i.err"
		contains "$(cat "$tmp/$shape-i.err")" "layer-major passes: 6 chunks a pass" \
			"$shape: iterative, layer-major passes"
		ok "... every pass's scores within 1e-6 of the token-major ones" \
			same_within "$tmp/$shape-isp.json" "$tmp/$shape-itm.json" 1e-6
	done
	# cancelled in the middle of a pass, it keeps the chunks it reported and resumes
	STRATA_TEST_CANCEL_AFTER=3 cal --samples 16 --seq-len 97 --layer-major > /dev/null 2>&1; rc=$?
	is "$rc" 1 "a layer-major calibration cancelled after chunk 3 stops (exit 1)"
	is "$(sqlv "SELECT status || ' ' || chunks_done FROM calib_runs WHERE seq_len = 97")" "cancelled 3" \
	   "... keeping 3 chunks"
	cal --samples 16 --seq-len 97 --layer-major --format json > "$tmp/lmr.json" 2> "$tmp/lmr.err"
	contains "$(cat "$tmp/lmr.err")" "at chunk 4 of 16" "... and resumes layer-major at chunk 4"
	cal --samples 16 --seq-len 97 --token-major --force --format json > "$tmp/tmr.json" 2> /dev/null
	ok "... to the uninterrupted token-major scores within 1e-6" same_within "$tmp/lmr.json" "$tmp/tmr.json" 1e-6
	STRATA_TEST_MEMAVAIL_MIB=1 cal --samples 16 --seq-len 96 --force --format json \
		> "$tmp/lm3.json" 2> "$tmp/lm3.err"
	contains "$(cat "$tmp/lm3.err")" "larger than the memory available" \
		"a model larger than the memory available gets layer-major passes by itself"
	contains "$(cat "$tmp/lm3.err")" "released after it" "... releasing each layer's weights"
	ok "... with the same scores" same_within "$tmp/lm3.json" "$tmp/tm.json" 1e-6
	STRATA_TEST_MEMAVAIL_MIB=1 cal --samples 16 --seq-len 96 --token-major --force \
		> /dev/null 2> "$tmp/lm4.err"
	ok "--token-major refuses it" sh -c "! grep -q layer-major '$tmp/lm4.err'"
	cal --layer-major --token-major > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "--layer-major with --token-major is a usage error"
	cal --mem-budget 12Q > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "a bad --mem-budget is a usage error"
	contains "$(cat "$tmp/err")" "512M or 2G" "... showing the form"

	# usage errors
	cal --iterative attn > /dev/null 2> "$tmp/err"; rc=$?
	is "$rc" 2 "--iterative without -n is a usage error"
	"$S" plan 1 --db "$db" -n 2 > /dev/null 2>&1; rc=$?
	is "$rc" 2 "plan without --method is a usage error"
fi
done_testing
