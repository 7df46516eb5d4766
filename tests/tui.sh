#!/bin/sh
# tui: the workbench driven for real through tmux (send-keys, capture-pane)
# with a temporary store and the shared stories260K model.  Session 1
# (100x30, 256 colours): calibrate 16 x 128 tokens, the heatmap against
# `strata scores` and the golden cosines, toggling sites against
# `strata plan --mask`, a plan, evaluation against `strata eval` and the
# store (and served from the store the second time), resizing, a
# read-only SQL query, help, quitting.  Session 2 (80x24, TERM=vt100,
# NO_COLOR=1): the monochrome glyph ramp, no colour codes, a bad model
# path shown as an error, cancel and resume of a calibration.  Session 7:
# runs calibrated with relative model paths, opened from another
# directory (one loads, one whose model is gone names the stored path
# it tried).  Session 8: with ppl of two files in the store, the results
# chart names the one it plots and its axis spans only that file's
# values.  Every wait polls the pane with a timeout; the tmux server is
# always killed.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/tui"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"
unset STRATA_DB STRATA_TEST_CHUNK_DELAY_MS STRATA_MODEL
sock="strata-tui-$$"
TM="tmux -L $sock -f /dev/null"
trap '$TM kill-server 2>/dev/null' EXIT
trap '$TM kill-server 2>/dev/null; exit 1' INT TERM HUP

pane() { $TM capture-pane -p -t tui 2>/dev/null; }
keys() { $TM send-keys -t tui "$@"; }
typ() { $TM send-keys -t tui -l "$1"; }
# wait_for TEXT [SECONDS]: poll the pane until it shows TEXT
wait_for() {
	i=0
	lim=$(( ${2:-20} * 10 ))
	while [ $i -lt $lim ]; do
		case $(pane) in *"$1"*) return 0 ;; esac
		sleep 0.1
		i=$((i + 1))
	done
	echo "# timed out waiting for '$1'; the pane:"
	pane | sed 's/^/#   /'
	return 1
}
# wait_gone TEXT: poll until the pane no longer shows TEXT
wait_gone() {
	i=0
	while [ $i -lt 200 ]; do
		case $(pane) in *"$1"*) ;; *) return 0 ;; esac
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
# wait_line N TEXT: poll until line N of the pane shows TEXT (a redraw
# after a resize puts the mask on the body's last line)
wait_line() {
	i=0
	while [ $i -lt 200 ]; do
		case $(pane | sed -n "$1p") in *"$2"*) return 0 ;; esac
		sleep 0.1
		i=$((i + 1))
	done
	echo "# timed out waiting for '$2' on line $1; the pane:"
	pane | sed 's/^/#   /'
	return 1
}
# line_with TEXT: the first pane line containing TEXT
line_with() { pane | grep -F -- "$1" | head -1; }
sqlv() { "$S" sql --db "$db" --format csv "$1" | sed -n 2p; }
g6() { awk -v v="$1" 'BEGIN { printf "%.6g", v }'; }
# heat_rows: "layer attn mlp block" from the heatmap's layer rows
heat_rows() { # (a leading '<' is the overview's mark of a row in view)
	pane | awk '{ if ($1 == "<") { $1 = ""; $0 = $0 } }
		    $1 ~ /^[0-9]+$/ && $2 ~ /^x?[0-9]\.[0-9]+$/ { print $1, $2, $3, $4 }'
}

# no terminal: the usage as before, and tui refuses
out=$("$S" < /dev/null 2>&1 | head -1)
contains "$out" "usage: strata" "strata alone without a terminal prints the usage (scripts do not hang)"
"$S" tui < /dev/null > "$tmp/notty.out" 2> "$tmp/notty.err"; rc=$?
is "$rc" 1 "strata tui without a terminal exits 1"
contains "$(cat "$tmp/notty.err")" "needs a terminal" "... saying it needs a terminal"

if ! command -v tmux > /dev/null 2>&1; then
	skip_or_fail "tmux is not installed"
elif need model models/stories260K/stories260K.gguf &&
     need text data/text/tinystories-valid-1000.txt &&
     need golden golden/stories260K-cos-tinystories-16x128.json; then
	start() { # start WIDTH HEIGHT ENV...: the workbench in a new session
		w=$1 h=$2; shift 2
		$TM kill-server 2>/dev/null && sleep 0.3
		$TM new-session -d -s tui -x "$w" -y "$h" \
			"env STRATA_SHARED='$STRATA_SHARED' $* '$S' tui '$model' --db '$db' 2> '$tmp/stderr'; echo EXITED rc=\$?; sleep 60"
	}

	# ---- session 1: 100x30, 256 colours ----
	start 100 30 TERM=xterm-256color
	ok "with a model and no run it opens on Calibrate, one key from starting" wait_for "[ Start ]"
	contains "$(line_with "Data ")" "tinystories-valid-1000.txt" "the default data is TinyStories valid"
	keys k k Enter C-u 128 Enter k Enter C-u 16 Enter
	ok "samples and sequence length are set" wait_for "16 x 128 = 2048 tokens"
	# the compute mode (--compute): shown, and m cycles auto -> f32 -> bf16 -> auto;
	# auto keeps F32 weights in f32
	contains "$(line_with "compute:")" "compute: f32 (auto;" "the Calibrate screen shows the compute mode"
	keys m
	ok "m switches it to f32" wait_for "compute: f32 (f32;"
	keys m
	ok "... then bf16" wait_for "compute: bf16 (bf16;"
	keys m
	ok "... and back to auto" wait_for "compute: f32 (auto;"
	keys r
	ok "the calibration runs and opens its heatmap" wait_for "Heatmap  run 1:" 30
	contains "$(line_with "Heatmap  run")" "16x128" "the heatmap names the run and its settings"

	# the map against strata scores (same store) and the golden cosines
	"$S" scores 1 --db "$db" --format csv > "$tmp/scores.csv"
	awk -F, 'NR > 1 { v[$4 " " $5] = $7 } END {
		for (l = 0; l < 5; l++) printf "%d %.4f %.4f %.4f\n", l, 1 - v["attn " l], 1 - v["mlp " l], 1 - v["block " l] }' \
		"$tmp/scores.csv" > "$tmp/want_heat"
	heat_rows > "$tmp/got_heat"
	is "$(cat "$tmp/got_heat")" "$(cat "$tmp/want_heat")" "every heatmap cell is 1 - cos as strata scores prints it"
	worst=$(for s in attn mlp block; do
			tr -d ' \n' < "$golden" | sed "s/.*\"$s\":\[\([^]]*\)\].*/\1/" | tr ',' '\n' |
			awk -v s="$s" 'NF { print s, NR - 1, $1 }'
		done | awk -v f="$tmp/got_heat" 'BEGIN { while ((getline l < f) > 0) { split(l, a, " "); g["attn " a[1]] = a[2]; g["mlp " a[1]] = a[3]; g["block " a[1]] = a[4] } }
			{ d = (1 - $3) - g[$1 " " $2]; if (d < 0) d = -d; if (d > m) m = d; n++ }
			END { print (n == 15 && m <= 0.00006) ? "ok" : "off by " m " over " n }')
	is "$worst" ok "the 15 cells equal the golden 1 - cos (to the 4 decimals shown)"
	# the cursor's cell, exactly as strata scores prints it
	row() { awk -F, -v s="$1" -v l="$2" 'NR > 1 && $4 == s && $5 == l' "$tmp/scores.csv"; }
	check_cursor() { # SITE LAYER
		r=$(row "$1" "$2")
		v=$(echo "$r" | cut -d, -f7) se=$(echo "$r" | cut -d, -f8)
		contains "$(line_with "layer $2 $1:")" "cos $(g6 "$v")  importance $(g6 "$(awk -v v="$v" 'BEGIN { printf "%.17g", 1 - v }')")  stderr $(g6 "$se")" \
			"cursor on layer $2 $1: cos, importance and stderr as strata scores"
		contains "$(line_with "rank ")" "rank $(echo "$r" | cut -d, -f10) of 5 among $1 sites" "... and its rank"
		contains "$(line_with "rank ")" "interval $(echo "$r" | cut -d, -f11)-$(echo "$r" | cut -d, -f12)" "... and its bootstrap interval"
	}
	check_cursor attn 0
	keys j j l
	wait_for "layer 2 mlp:" 5
	check_cursor mlp 2
	keys G l
	wait_for "layer 4 block:" 5
	check_cursor block 4

	# toggling sites: the canonical mask and the what-if panel against strata plan --mask
	contains "$(line_with "params removed")" "params removed  0" "nothing dropped: no parameters removed"
	keys g h h j j Space l Space j l Space
	ok "attn 2, mlp 2 and block 3 dropped: the canonical mask" wait_for "mask: attn=2-3;mlp=2-3"
	"$S" plan 1 --db "$db" --mask 'attn=2-3;mlp=2-3' --format json > "$tmp/plan.json"
	jn() { grep -o "\"$1\": *[0-9]*" "$tmp/plan.json" | sed 's/.*: *//'; }
	contains "$(line_with "params removed")" "params removed  $(jn params_removed)" "what-if: parameters removed as strata plan --mask"
	contains "$(line_with "KV bytes/token")" "KV bytes/token  $(jn kv_bytes_per_token)" "what-if: KV bytes per token as strata plan --mask"
	contains "$(line_with "FLOPs/token")" "FLOPs/token     $(jn flops_per_token)" "what-if: FLOPs per token as strata plan --mask"
	contains "$(line_with "mlp, ")" "dropped 2 attn, 2 mlp, 2 blocks" "what-if: the sites dropped"
	# predicted speedups: matmul FLOPs of every layer plus the output head (2 x d_model x vocab),
	# and the weight bytes strata bench reports with and without the mask
	all=$("$S" plan 1 --db "$db" --mask 'block=0-4' --format json | grep -o '"flops_per_token": *[0-9]*' | sed 's/.*: *//')
	is "$(line_with "speedup (FLOPs)" | sed 's/.*speedup (FLOPs) //')" \
	   "$(awk -v a="$all" -v d="$(jn flops_per_token)" 'BEGIN { t = a + 2 * 64 * 512; printf "%.3fx", t / (t - d) }')" \
	   "what-if: the speedup the FLOPs predict"
	wb() { "$S" bench "$model" --ctx 16 --gen 0 --repeat 1 --db "$tmp/other.db" --format json "$@" 2> /dev/null | grep -o '"weight_bytes": *[0-9]*' | sed 's/.*: *//'; }
	is "$(line_with "speedup (bytes)" | sed 's/.*speedup (bytes) //')" \
	   "$(awk -v a="$(wb)" -v b="$(wb --mask 'attn=2-3;mlp=2-3')" 'BEGIN { printf "%.3fx", a / b }')" \
	   "what-if: the speedup the weight bytes predict (strata bench's weight_bytes)"
	ok "the heatmap marks dropped cells" sh -c "$TM capture-pane -p -t tui | grep -q 'x0\\.'"
	keys 4
	ok "4 shows the Toggle screen" wait_for " Toggle  run 1:"
	is "$(pane | awk '$1 == "2" || $1 == "0" { print $1, gsub(/\[x\]/, "") }' | tr '\n' ' ')" "0 0 2 3 " \
	   "layer 2 has attn, mlp and so its block marked [x]; layer 0 nothing"
	contains "$(line_with "params removed")" "params removed  $(jn params_removed)" "the what-if panel is there too"
	keys 3
	ok "3 returns to the heatmap" wait_for "Heatmap  run 1:"

	# evaluate: the result in place, in the store, and equal to strata eval
	keys e
	# (a long path shows its end: the prompt scrolls to the cursor)
	ok "e asks for the file, TinyStories valid by default" wait_for "evaluate ppl and KL on: "
	contains "$(line_with "evaluate ppl and KL on: ")" "/$(basename "$text")" "... $(basename "$text")"
	keys Enter
	ok "the evaluation finishes in the background" wait_for "evaluated mask 'attn=2-3;mlp=2-3'" 30
	ppl_db=$(sqlv "SELECT value FROM eval_list WHERE mask = 'attn=2-3;mlp=2-3' AND task LIKE 'ppl:%' AND metric = 'ppl'")
	kl_db=$(sqlv "SELECT value FROM eval_list WHERE mask = 'attn=2-3;mlp=2-3' AND task LIKE 'kl:%' AND metric = 'kl_mean'")
	is "$(sqlv "SELECT settings FROM evals WHERE task = 'ppl'")" "ctx=256;max_tokens=8192" "the store keeps the eval settings"
	is "$(sqlv "SELECT data_sha256 FROM evals WHERE task = 'ppl'")" "$(sha256sum "$text" | cut -d' ' -f1)" "... and the data's sha256"
	contains "$(line_with "ppl ")" "ppl $(awk -v v="$ppl_db" 'BEGIN { printf "%.4f", v }')" "the ppl shown is the stored one"
	contains "$(line_with "kl ")" "kl $(awk -v v="$kl_db" 'BEGIN { printf "%.6f", v }')" "the KL shown is the stored one"
	cli=$("$S" eval "$model" --task "ppl:$text" --ctx 256 --max-tokens 8192 --mask 'attn=2-3;mlp=2-3' \
		--db "$tmp/other.db" --format csv 2> /dev/null | awk -F, '$2 == "ppl" { print $3 }')
	is "$(g6 "$ppl_db")" "$(g6 "$cli")" "the stored ppl equals strata eval's, computed in another store"
	"$S" eval "$model" --task "ppl:$text" --ctx 256 --max-tokens 8192 --mask 'attn=2-3;mlp=2-3' \
		--db "$db" --format csv > /dev/null 2> "$tmp/eval.err"
	contains "$(cat "$tmp/eval.err")" "from the store" "strata eval finds the workbench's result under the same key"
	# the baseline: the unmasked model's ppl, evaluated with it, and the difference
	ppl_base=$(sqlv "SELECT value FROM eval_list WHERE mask = '' AND task LIKE 'ppl%' AND metric = 'ppl'")
	ok "e evaluates the unmasked model too ($ppl_base)" test -n "$ppl_base"
	contains "$(line_with "  base ")" "base $(awk -v v="$ppl_base" 'BEGIN { printf "%.4f", v }')" \
	   "the what-if panel shows the baseline ppl"
	contains "$(line_with "  base ")" "$(awk -v a="$ppl_db" -v b="$ppl_base" 'BEGIN { printf "%+.4f", a - b }')" \
	   "... and the difference"
	# bench: in the background, into the store
	keys b
	ok "b benches the mask in the background" wait_for "bench of mask 'attn=2-3;mlp=2-3' done" 30
	tps=$(sqlv "SELECT value FROM bench_list WHERE mask = 'attn=2-3;mlp=2-3' AND metric = 'decode_tps'")
	contains "$(line_with "decode ")" "decode $(awk -v v="$tps" 'BEGIN { printf "%.0f", v }') tok/s" "the decode speed shown is the stored one"
	contains "$(sqlv "SELECT settings FROM benches")" "ctx=128,512;gen=32;repeat=5;threads=" "the store keeps the bench settings (5 repeats)"
	is "$(sqlv "SELECT group_concat(ctx, ' ') FROM bench_list WHERE mask <> '' AND metric = 'prefill_tps'")" "128 512" "prefill measured at 128 and 512 tokens"
	is "$(sqlv "SELECT group_concat(ctx, ' ') FROM bench_list WHERE mask <> '' AND metric = 'kv_bytes'")" "128 512" "... and the KV bytes at both"
	mm=$(sqlv "SELECT CAST(round(min) AS INTEGER) || ' ' || CAST(round(max) AS INTEGER) FROM bench_list WHERE mask <> '' AND metric = 'decode_tps'")
	contains "$(line_with "  min ")" "min ${mm% *}  max ${mm#* }" "the decode speed's min and max over the repeats are shown"
	btps=$(sqlv "SELECT value FROM bench_list WHERE mask = '' AND metric = 'decode_tps'")
	ok "b measures the unmasked model too ($btps tok/s)" test -n "$btps"
	contains "$(pane | grep -F "  base $(awk -v v="$btps" 'BEGIN { printf "%.0f", v }')  ")" "%" \
	   "the what-if panel shows the baseline decode speed and the difference"
	# strata bench --cached reads the workbench's measurement (one definition of the rows)
	"$S" bench "$model" --mask 'attn=2-3;mlp=2-3' --ctx 128,512 --gen 32 --repeat 5 --cached \
		--db "$db" --format json > "$tmp/bench.json" 2> "$tmp/bench.err"
	contains "$(cat "$tmp/bench.err")" "from the store" "strata bench --cached finds the workbench's bench"
	is "$(grep -o '"kv_bytes": *[0-9]*' "$tmp/bench.json" | sed 's/.*: *//')" \
	   "$(sqlv "SELECT CAST(value AS INTEGER) FROM bench_list WHERE metric = 'kv_bytes' AND ctx = 512")" \
	   "... with its KV bytes"
	is "$(sqlv "SELECT count(*) FROM benches")" 2 "... and measures nothing new (the mask and the baseline)"
	# back to the same mask later: served from the store at once
	keys u
	ok "u restores every site" wait_for "mask: attn=;mlp="
	contains "$(line_with "ppl ")" "(stored)" "the unmasked model's ppl is there: e measured it as the baseline"
	contains "$(pane)" "the unmasked model: the baseline" "... and is said to be the baseline"
	keys g h h j j Space l Space j l Space
	ok "the same mask again ..." wait_for "mask: attn=2-3;mlp=2-3"
	contains "$(line_with "ppl ")" "(stored)" "... shows its ppl from the store without evaluating"

	# a plan, kept in the store as strata plan keeps it
	keys p
	ok "p asks for a plan" wait_for "plan (METHOD K"
	keys C-u
	typ "joint 3"
	keys Enter
	ok "p joint 3 applies a plan" wait_for "plan joint 3:"
	is "$(sqlv "SELECT count(*) FROM plans WHERE method = 'joint' AND n = 3")" 1 "the plan is in the store"
	want=$("$S" plan 1 --db "$db" --method joint -n 3 --format json | grep -o '"mask": *"[^"]*"' | sed 's/.*: *"//; s/"$//')
	contains "$(pane)" "mask: $want" "its mask is strata plan's ($want)"

	# a sweep by the CLI: its unmasked point is the workbench's empty mask
	"$S" sweep "$model" --run 1 --method attn --max 1 --task "ppl:$text" --task "kl:$text" \
		--ctx 256 --max-tokens 8192 --db "$db" --format csv > "$tmp/sweep.csv" 2> /dev/null
	ppl0=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "ppl") c = i } $1 == "attn" && $2 == 0 { print $c }' "$tmp/sweep.csv")
	keys u
	ok "u: nothing dropped" wait_for "mask: attn=;mlp="
	contains "$(line_with "ppl ")" "ppl $(awk -v v="$ppl0" 'BEGIN { printf "%.4f", v }') (stored)" \
	   "the unmasked model's ppl comes from strata sweep's stored k=0 point"
	keys p C-u
	typ "joint 3"
	keys Enter
	ok "the plan again" wait_for "mask: $want"

	# the mouse (SGR reports, as xterm sends them): a click selects a cell, a second drops it
	click() { typ "$(printf '\033[<0;%d;%dM' "$1" "$2")"; typ "$(printf '\033[<0;%d;%dm' "$1" "$2")"; }
	is "$($TM display -p -t tui '#{mouse_any_flag}')" 1 "the workbench asks the terminal for mouse reports"
	click 18 6
	ok "a click on a heatmap cell moves the cursor there" wait_for "layer 1 mlp:"
	click 18 6
	ok "a second click drops that site" wait_for "mlp=1"
	click 18 6
	ok "a third restores it" wait_for "mask: $want"
	# 256 colours: the legend is ten distinct cells of increasing luminance (viridis)
	lum=$($TM capture-pane -e -p -t tui | sed -n 3p | grep -o '48;5;[0-9]*' | sed 's/48;5;//' |
	      awk 'function lv(k) { return k ? 55 + 40 * k : 0 }
		   { i = $1 - 16; l = 0.2126 * lv(int(i / 36)) + 0.7152 * lv(int(i / 6) % 6) + 0.0722 * lv(i % 6)
		     n++; if (l <= p) bad++; p = l }
		   END { print n, bad + 0 }')
	is "$lum" "10 0" "256 colours: the legend's 10 cells rise in luminance"

	# resize: the state is kept
	$TM resize-window -t tui -x 80 -y 24
	ok "after resizing to 80x24 the heatmap is redrawn to fit, with the same mask" wait_line 22 "mask: $want"
	contains "$(pane | sed -n 2p)" "Heatmap  run 1:" "... on the same screen"
	is "$(heat_rows | sed 's/x//g')" "$(cat "$tmp/want_heat")" "... and the same cells"
	$TM resize-window -t tui -x 120 -y 40
	ok "and again at 120x40, with the same mask" wait_line 38 "mask: $want"
	is "$(heat_rows | sed 's/x//g')" "$(cat "$tmp/want_heat")" "... and the same cells"

	# SQL, read-only
	click 63 1
	ok "a click on the SQL tab opens it" wait_for "SQL (read-only)"
	keys i C-u
	typ "SELECT count(*) AS n_evals, max(task) AS last_task FROM evals"
	keys Enter
	ok "the query's result is shown" wait_for "n_evals"
	is "$(pane | awk '$1 == "n_evals" && $2 == "last_task" { getline; print $1, $2 }')" "$(sqlv "SELECT count(*) || ' ' || max(task) FROM evals")" \
	   "the grid shows the count the store has"
	n_evals=$(sqlv "SELECT count(*) FROM evals")
	keys i C-u
	typ "DELETE FROM evals"
	keys Enter
	ok "a write is refused and shown as an error" wait_for "would change the store"
	is "$(sqlv "SELECT count(*) FROM evals")" "$n_evals" "... and the store keeps its $n_evals evaluations"

	# results, help, home, quit
	keys 5
	ok "5 shows the results with the chart" wait_for "ppl vs layers dropped"
	contains "$(pane)" "attn=2-3;mlp=2-3" "the evaluation is in the results table"
	contains "$(pane)" "a=attn" "the sweep's attn line is in the chart's legend"
	keys ?
	ok "? shows the help generated from the key table" wait_for "Everywhere"
	contains "$(pane)" "drop / restore the site under the cursor" "the help lists Space"
	keys q 1
	ok "1 shows Home with the run" wait_for "Calibration runs, newest first (1)"
	keys q
	ok "q on Home quits" wait_for "EXITED rc=0"
	is "$(sqlv "SELECT status || ' ' || chunks_done || ' ' || tokens FROM calib_runs WHERE id = 1")" "done 16 2048" \
	   "the store has the finished run"
	is "$(sqlv "SELECT count(DISTINCT task) FROM evals WHERE mask = 'attn=2-3;mlp=2-3'")" 2 "... the ppl and kl evaluations"
	is "$(cat "$tmp/stderr")" "" "nothing was written to stderr"
	is "$(sqlv "PRAGMA integrity_check")" ok "the store passes SQLite's integrity check"

	# ---- session 2: 80x24, vt100, NO_COLOR; strata alone, model and store from the environment ----
	$TM kill-server 2>/dev/null && sleep 0.3
	$TM new-session -d -s tui -x 80 -y 24 \
		"env STRATA_SHARED='$STRATA_SHARED' TERM=vt100 NO_COLOR=1 STRATA_TEST_CHUNK_DELAY_MS=300 STRATA_TEST_STEP_DELAY_MS=100 STRATA_MODEL='$model' STRATA_DB='$db' '$S' 2> '$tmp/stderr'; echo EXITED rc=\$?; sleep 60"
	ok "strata alone on a vt100 with NO_COLOR opens the workbench on the model's run" wait_for "Heatmap  run 1:"
	contains "$(pane)" "  ..::--==++**##%%@@ " "the legend is the monochrome glyph ramp"
	max=$(awk '{ for (i = 2; i <= 4; i++) if ($i > m) m = $i } END { print m }' "$tmp/want_heat")
	min=$(awk 'BEGIN { m = 9 } { for (i = 2; i <= 4; i++) if ($i < m) m = $i } END { print m }' "$tmp/want_heat")
	contains "$(pane)" "@ $max" "the most important cell carries the brightest glyph '@'"
	contains "$(pane)" "  $min" "the least important cell the blank glyph"
	is "$($TM capture-pane -e -p -t tui | grep -c "$(printf '\033')\[[0-9;]*[34][0-7]m")" 0 "no colour codes are drawn"
	# a bad model path is an error in the status bar, and the interface
	# lives on; the path is longer than the screen is wide, yet the file
	# name shows
	keys 1 o C-u
	typ "$tmp/a-directory-deep-enough-to-push-the-name-past-eighty-columns/no-such-model.gguf"
	keys Enter
	ok "a bad model path shows as an error" wait_for "error: "
	contains "$(line_with "error:")" "no-such-model.gguf" "... naming the path"
	printf 'GGUF\003\000\000\000this is not a model' > "$tmp/corrupt.gguf"
	keys o C-u
	typ "$tmp/corr"
	keys Tab
	# (the prompt shows the end of a line wider than the screen)
	ok "Tab completes the path" wait_for "/tui/corrupt.gguf"
	keys Enter
	ok "a corrupt model file shows as an error" wait_for "corrupt.gguf"
	contains "$(line_with "error:")" "corrupt.gguf" "... on the status bar"
	keys 3
	ok "... and the workbench goes on" wait_for "Heatmap  run 1:"
	# cancel keeps the finished chunks; starting again resumes
	keys 2 g j Enter C-u 8 Enter j Enter C-u 64 Enter
	ok "calibrate 8 x 64" wait_for "8 x 64 = 512 tokens"
	keys r
	ok "it runs in the background with progress" wait_for "calibrate chunk "
	contains "$(pane)" "tok/s" "the progress shows tokens per second"
	keys x
	ok "x cancels it" wait_for "cancelled after" 10
	is "$(sqlv "SELECT status FROM calib_runs WHERE id = 2")" cancelled "the run is kept as cancelled"
	done2=$(sqlv "SELECT chunks_done FROM calib_runs WHERE id = 2")
	ok "with its finished chunks ($done2 of 8)" test "$done2" -ge 1 -a "$done2" -lt 8
	keys r
	ok "starting again resumes and finishes" wait_for "Heatmap  run 2:" 20
	contains "$(pane)" "(resumed)" "... saying it resumed"
	is "$(sqlv "SELECT status || ' ' || chunks_done FROM calib_runs WHERE id = 2")" "done 8" "the resumed run is done with 8 chunks"
	# compare: run 1 as a column beside run 2
	keys 1
	ok "Home lists both runs" wait_for "Calibration runs, newest first (2)"
	keys j c 3
	ok "c adds run 1 to compare: a column in the heatmap" wait_for "r1 blk"
	# (numbers 4-6 of layer 0's row: monochrome cells put a glyph before each value)
	is "$(pane | awk '$1 == "0" { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]\.[0-9]+$/ && ++k >= 4) printf "%s ", $i }')" \
	   "$(awk '$1 == 0 { printf "%s %s %s ", $2, $3, $4 }' "$tmp/want_heat")" \
	   "the compare columns hold run 1's attn, mlp and block importance"
	# a bench shows its progress and x cancels it, storing nothing
	keys Space
	ok "Space drops a site" wait_for "mask: attn="
	m2=$(line_with "mask: " | sed 's/.*mask: //; s/ .*//')
	keys b
	ok "b benches with a progress bar" wait_for "bench: measuring"
	keys x
	ok "x cancels the bench" wait_for "bench of mask '$m2' cancelled; nothing was stored" 10
	is "$(sqlv "SELECT count(*) FROM benches WHERE mask = '$m2'")" 0 "... and the store has no bench of it"
	keys b
	ok "b again measures it in full" wait_for "bench of mask '$m2' done" 30
	is "$(sqlv "SELECT count(*) FROM bench_list WHERE mask = '$m2' AND metric = 'prefill_tps'")" 2 "... stored"
	keys Q
	ok "Q quits" wait_for "EXITED rc=0"
	is "$(sqlv "PRAGMA integrity_check")" ok "the store still passes the integrity check"

	# ---- session 3: a 128-layer model scrolls, with an overview; 8 colours ----
	"$STRATA_BUILDDIR/tests/tui_deep" "$tmp/deep.gguf" 128
	small=$model
	model="$tmp/deep.gguf"
	start 100 30 TERM=screen
	ok "a 128-layer model without a run opens on Calibrate" wait_for "128 layers"
	keys k Enter C-u 16 Enter k Enter C-u 2 Enter r
	ok "its calibration opens a heatmap" wait_for "Heatmap  run 3:" 30
	is "$(pane | awk '$1 == "<" && $2 ~ /^[0-9]+$/' | wc -l | tr -d ' ')" 4 \
	   "the overview (21 rows of about 6 layers) marks the 4 rows that hold layers 0-20"
	is "$(heat_rows | head -1 | cut -d' ' -f1) $(heat_rows | tail -1 | cut -d' ' -f1)" "0 20" "layers 0-20 are in view"
	esc=$(printf '\033')
	is "$($TM capture-pane -e -p -t tui | grep -c "48;5;")" 0 "8 colours (TERM=screen): no 256-colour cells"
	is "$($TM capture-pane -e -p -t tui | sed -n 3p | grep -o "$esc\[4[0-7]m" | sort -u | wc -l | tr -d ' ')" 6 \
	   "... the legend uses the six backgrounds of the 8-colour ramp"
	keys G
	ok "G scrolls to the last layer" wait_for "layer 127 attn:"
	is "$(heat_rows | head -1 | cut -d' ' -f1) $(heat_rows | tail -1 | cut -d' ' -f1)" "107 127" "layers 107-127 are in view"
	is "$(pane | awk '$1 == "<"' | wc -l | tr -d ' ')" 4 "the overview follows (its rows 17-20 hold layers 103-127)"
	r3=$("$S" scores 3 --db "$db" --format csv | awk -F, '$4 == "attn" && $5 == 127 { print $7 }')
	contains "$(line_with "layer 127 attn:")" "cos $(g6 "$r3")" "the deepest layer's cos as strata scores"
	keys a
	ok "the angular matrix of 127 spans" wait_for "d(127, 1) = "
	keys Q
	ok "Q quits" wait_for "EXITED rc=0"

	# ---- session 4: another process holds the store locked; --no-mouse ----
	model=$small
	$TM kill-server 2>/dev/null && sleep 0.3
	$TM new-session -d -s tui -x 100 -y 30 \
		"env STRATA_SHARED='$STRATA_SHARED' TERM=xterm-256color STRATA_TEST_BUSY_WAIT_MS=8000 '$S' tui '$model' --db '$db' --no-mouse 2> '$tmp/stderr'; echo EXITED rc=\$?; sleep 60"
	ok "the workbench opens the model's newest run" wait_for "Heatmap  run 2:"
	is "$($TM display -p -t tui '#{mouse_any_flag}')" 0 "--no-mouse: no mouse reports asked of the terminal"
	hold() { # hold the store's write lock until killed
		"$STRATA_BUILDDIR/tests/store_hold" "$db" 120 > "$tmp/hold.out" 2>&1 &
		hold_pid=$!
		i=0; while [ $i -lt 50 ] && ! grep -q locked "$tmp/hold.out"; do sleep 0.1; i=$((i + 1)); done
	}
	n_evals=$(sqlv "SELECT count(*) FROM evals")
	# the lock is freed while the evaluation waits: it is stored then
	keys g Space
	ok "a site dropped" wait_for "mask: attn=0;mlp="
	hold
	ok "another process holds the write lock" grep -q locked "$tmp/hold.out"
	keys e
	wait_for "evaluate ppl and KL on: " > /dev/null
	keys Enter
	ok "the evaluation waits for the store, saying so" wait_for "waiting: the store is locked by another process" 30
	keys ?
	ok "... and the interface answers meanwhile" wait_for "Everywhere"
	keys q
	kill $hold_pid; wait $hold_pid 2> /dev/null
	ok "when the lock is freed the result is stored" wait_for "evaluated mask 'attn=0;mlp='" 20
	is "$(sqlv "SELECT count(*) FROM evals")" $((n_evals + 2)) "... its ppl and kl"
	# the lock outlasts the wait: the figures show, with an error, and nothing is lost
	keys l Space
	ok "another site dropped" wait_for "mask: attn=0;mlp=0"
	hold
	keys e
	wait_for "evaluate ppl and KL on: " > /dev/null
	keys Enter
	ok "a lock held past the wait is an error on the status bar" wait_for "NOT stored" 40
	contains "$(line_with "error:")" "locked" "... saying the store is locked"
	ok "the figures are shown all the same" sh -c "$TM capture-pane -p -t tui | grep -q 'ppl [0-9]'"
	is "$(sqlv "SELECT count(*) FROM evals")" $((n_evals + 2)) "the store is as it was"
	kill $hold_pid; wait $hold_pid 2> /dev/null
	keys e
	wait_for "evaluate ppl and KL on: " > /dev/null
	keys Enter
	# the last attempt's message ("evaluated mask ..., NOT stored") must
	# go before the new one is looked for: it starts with the same words
	wait_gone "NOT stored"
	ok "once freed, e evaluates and stores it" wait_for "evaluated mask 'attn=0;mlp=0'" 30
	is "$(sqlv "SELECT count(*) FROM evals")" $((n_evals + 4)) "... its ppl and kl"
	keys Q
	ok "Q quits" wait_for "EXITED rc=0"
	is "$(cat "$tmp/stderr")" "" "nothing was written to stderr"
	is "$(sqlv "PRAGMA integrity_check")" ok "the store passes the integrity check"

	# ---- session 5: no model at the start (none by default either) ----
	mkdir -p "$tmp/noshared"
	$TM kill-server 2>/dev/null && sleep 0.3
	$TM new-session -d -s tui -x 100 -y 30 \
		"env STRATA_SHARED='$tmp/noshared' TERM=xterm-256color '$S' tui --db '$db' 2> '$tmp/stderr'; echo EXITED rc=\$?; sleep 60"
	ok "without a model, Home lists the store's runs at once (no r needed)" \
	   wait_for "Calibration runs, newest first (3)"
	# SQL: Enter runs the query shown, and the keys are the screen's again
	keys 6
	ok "the SQL screen says Enter runs the query" wait_for "Enter runs it, i edits it"
	keys Enter
	ok "Enter runs the query shown (no editor first)" wait_for "3 rows"
	contains "$(pane | sed -n 6p)" "3 done" "... its grid starts with run 3"
	keys ?
	ok "after a query, ? is the help, not text in the query" wait_for "Everywhere"
	keys NPage NPage
	ok "the help lists s, the heatmap's colour scale" wait_for "colour scale: global / per column / rank" 5
	keys q
	wait_for "SQL (read-only)" > /dev/null
	keys i C-u
	typ "DELETE FROM evals"
	keys Enter
	ok "a write is refused ..." wait_for "the workbench only reads it"
	contains "$(line_with "to write")" "to write, in a shell: strata sql --write --db" "... saying how to make it from the shell"
	# the heatmap of run 2, comparing run 1: attn, mlp and block of both
	keys 1
	wait_for "Calibration runs, newest first (3)" > /dev/null
	keys j j c k Enter
	ok "Enter on run 2 opens its heatmap, comparing run 1" wait_for "Heatmap  run 2:" 20
	contains "$(line_with "layer  attn")" "r1 attn  r1 mlp   r1 blk" "compare columns for run 1's attn, mlp and block"
	is "$(pane | awk '$1 == "0" { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]\.[0-9]+$/ && ++k >= 4) printf "%s ", $i }')" \
	   "$(awk '$1 == 0 { printf "%s %s %s ", $2, $3, $4 }' "$tmp/want_heat")" \
	   "... holding run 1's importances"
	# colour scales: count the cells of the ramp's top colour in the five layer rows
	top=$($TM capture-pane -e -p -t tui | sed -n 3p | grep -o '48;5;[0-9]*' | tail -1)
	n_top() { $TM capture-pane -e -p -t tui | sed -n 5,9p | grep -o "$top" | wc -l | tr -d ' '; }
	contains "$(pane | sed -n 3p)" "scale: global (s)" "the legend names the scale: global"
	g=$(n_top)
	ok "global: one range for all, few cells at the top colour ($g of 30)" test "$g" -lt 6
	keys s
	ok "s: each column its own range" wait_for "scale: per column"
	is "$(n_top)" 6 "... every one of the 6 columns has its top cell in the top colour"
	keys s
	ok "s again: rank within the column" wait_for "scale: rank within the column"
	is "$(n_top)" 6 "... the first of each column's ranks in the top colour"
	ramp0=$($TM capture-pane -e -p -t tui | sed -n 3p | grep -o '48;5;[0-9]*' | head -1)
	is "$($TM capture-pane -e -p -t tui | sed -n 5,9p | grep -o "$ramp0" | wc -l | tr -d ' ')" 6 \
	   "... and the last in the bottom colour"
	keys s
	ok "and back to global" wait_for "scale: global (s)"
	# a dropped cell and the cursor keep their colour
	cells() { $TM capture-pane -e -p -t tui | sed -n 5p | grep -o '48;5;[0-9]*' | wc -l | tr -d ' '; }
	is "$(cells)" 6 "layer 0: six coloured cells"
	keys g h h Space
	ok "Space drops layer 0's attn" wait_for "mask: attn=0;mlp="
	is "$(cells)" 6 "... which keeps its colour, marked x"
	contains "$(pane | sed -n 5p)" "x0." "... the x before its value"
	keys u
	# results: one data file named, distinct keys, the Pareto point labelled
	keys 5
	ok "5 shows the results" wait_for "ppl vs layers dropped"
	contains "$(pane)" "ppl vs layers dropped, tinystories-valid" "the chart names its data file"
	contains "$(pane)" "decode tok/s vs ppl, tinystories-valid-1000.txt" "... the speed chart too"
	contains "$(pane)" "a=attn h=by hand" "distinct keys: h for masks made by hand, not m as mlp"
	base=$(sqlv "SELECT value FROM eval_list WHERE mask = '' AND task LIKE 'ppl%' AND metric = 'ppl' AND settings = 'ctx=256;max_tokens=8192'")
	contains "$(pane)" " $(g6 "$base") |" "the bottom label is the unmasked model's stored ppl ($(g6 "$base"))"
	# the workbench measures the unmasked model beside the mask, so the best
	# ppl (point 1) is the unmasked one when it is on the front
	ok "the Pareto points are listed, 1 = the best ppl" sh -c "printf '%s' '$(pane | tr -d "'")' | grep -Eq 'Pareto [0-9]+ of [0-9]+: 1 (none|attn=0;mlp=)'"
	# (a chart row holds the label 1 right of the speed chart's axis, which
	# is '|', or '+' on the row of the middle tick: measured speeds move the
	# point between rows)
	n1=$(pane | awk -F'[|+]' 'NF == 3 && $3 ~ /(^|[^0-9])1([^0-9]|$)/' | wc -l | tr -d ' ')
	ok "... and point 1 is labelled in the chart ($n1 rows)" test "$n1" -ge 1
	keys Q
	ok "Q quits" wait_for "EXITED rc=0"
	is "$(cat "$tmp/stderr")" "" "nothing was written to stderr"

	# ---- session 6: a calibration that stops once its plan is stable ----
	db="$tmp/stable.db"
	start 100 30 TERM=xterm-256color
	ok "the Calibrate form has a stopping rule, off by default" wait_for "Stop       after every chunk"
	keys k k k Enter C-u 64 Enter j Enter C-u 64 Enter j Enter
	typ "attn 2"
	keys Enter
	ok "METHOD N sets it (share 0.95)" wait_for "when the plan 'attn -n 2' is the same in 95% of resamples"
	keys Enter C-u
	typ "attn 0"
	keys Enter
	ok "a bad rule is an error naming the form" wait_for "stop rule: expected METHOD N"
	contains "$(line_with "Stop ")" "'attn -n 2'" "... and leaves the rule as it was"
	keys r
	ok "the calibration stops early, saying so" wait_for "stopped after" 30
	got=$(sqlv "SELECT stop_rule || '|' || status FROM calib_runs WHERE id = 1")
	is "$got" "stable 0.95 attn -n 2|done" "... stored done, with its rule"
	stc=$(sqlv "SELECT chunks_done FROM calib_runs WHERE id = 1")
	cli=$("$S" calibrate "$model" "$text" --samples 64 --seq-len 64 --until-stable --method attn -n 2 \
		--db "$tmp/stable-cli.db" --format json 2> /dev/null | grep -o '"chunks": *[0-9]*' | sed 's/.*: *//')
	is "$stc" "$cli" "... after as many chunks as strata calibrate --until-stable ($cli)"
	keys 2 G k Enter C-u Enter
	ok "an empty rule removes it" wait_for "Stop       after every chunk"
	keys Q
	ok "Q quits" wait_for "EXITED rc=0"
	is "$(cat "$tmp/stderr")" "" "nothing was written to stderr"

	# ---- session 7: runs whose models were given relative, opened from elsewhere ----
	db="$tmp/moved.db"
	mdl=$(cd "$tmp" && pwd -P)/models
	mkdir -p "$mdl" "$tmp/elsewhere" "$tmp/noshared"
	cp "$model" "$mdl/m.gguf"
	"$S" synth "$mdl/gone.gguf" --shape tiny > /dev/null 2>&1
	(cd "$mdl" && "$S" calibrate ./m.gguf "$text" --samples 4 --seq-len 64 --db "$db" > /dev/null 2>&1 &&
	 "$S" calibrate ./gone.gguf "$text" --samples 4 --seq-len 64 --db "$db" > /dev/null 2>&1)
	is "$?" 0 "two runs calibrated with relative model paths"
	rm -f "$mdl/gone.gguf"
	$TM kill-server 2>/dev/null && sleep 0.3
	$TM new-session -d -s tui -x 200 -y 30 -c "$tmp/elsewhere" \
		"env STRATA_SHARED='$tmp/noshared' TERM=xterm-256color '$S' tui --db '$db' 2> '$tmp/stderr'; echo EXITED rc=\$?; sleep 60"
	ok "another directory: Home lists both runs" wait_for "Calibration runs, newest first (2)"
	keys Enter
	ok "a run whose model is gone names the stored path it tried" \
	   wait_for "run 2: cannot open its model at the stored path $mdl/gone.gguf"
	keys j Enter
	ok "a run whose model was given as ./m.gguf opens from another directory" wait_for "Heatmap  run 1:"
	contains "$(pane | head -1)" "m.gguf" "... its model open (from the canonical path the store holds)"
	keys Q
	ok "Q quits" wait_for "EXITED rc=0"
	is "$(cat "$tmp/stderr")" "" "nothing was written to stderr"

	# ---- session 8: the results chart keeps to one data file and settings ----
	db="$tmp/mixed.db"
	wiki="$STRATA_SHARED/data/text/wikitext-2-test.raw"
	"$S" calibrate "$model" "$text" --samples 4 --seq-len 64 --db "$db" > /dev/null 2>&1
	for mk in "" attn=2 attn=2,4; do
		"$S" eval "$model" --task "ppl:$text" --ctx 256 --max-tokens 8192 ${mk:+--mask $mk} --db "$db" > /dev/null 2>&1
		"$S" eval "$model" --task "ppl:$wiki" --ctx 256 --max-tokens 2048 ${mk:+--mask $mk} --db "$db" > /dev/null 2>&1
	done
	is "$(sqlv "SELECT count(*) FROM evals")" 6 "three masks evaluated on two files"
	start 160 40 TERM=xterm-256color
	wait_for "Heatmap  run 1:" > /dev/null
	keys 5
	ok "with two files in the store, the chart names the one it shows" \
	   wait_for "ppl vs layers dropped, tinystories-valid-1000.txt (ctx=256;max_tokens=8192) +o"
	tmin=$(sqlv "SELECT min(value) FROM eval_list WHERE task = 'ppl:tinystories-valid-1000.txt' AND metric = 'ppl'")
	tmax=$(sqlv "SELECT max(value) FROM eval_list WHERE task = 'ppl:tinystories-valid-1000.txt' AND metric = 'ppl'")
	# the ppl chart's value labels: a number before the axis ('|', '+' at a tick)
	is "$(pane | awk '/^ *[0-9][0-9.e+-]* [|+]/ { print $1 }' | sed -n '1p;$p' | tr '\n' ' ')" \
	   "$(g6 "$tmax") $(g6 "$tmin") " "its axis spans that file's ppl only (no WikiText value, 130 and up)"
	keys Q
	ok "Q quits" wait_for "EXITED rc=0"
	is "$(cat "$tmp/stderr")" "" "nothing was written to stderr"
fi
done_testing
