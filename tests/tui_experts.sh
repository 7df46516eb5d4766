#!/bin/sh
# tui_experts: the workbench's layers x experts heatmap of a mixture of
# experts' run (olmoe-tiny), driven through tmux: E opens it from the
# heatmap, every cell is the frequency `strata scores --experts` prints
# (%.3g), the cursor's expert is spelled out as that command prints it
# (%.6g), with its rank in the layer; t cycles the statistic, E returns;
# a dense run refuses E by name.  Every wait polls with a timeout; the
# tmux server is always killed.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/tui_experts"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"
unset STRATA_DB STRATA_TEST_CHUNK_DELAY_MS STRATA_MODEL
export STRATA_COMPUTE=f32
sock="strata-tuix-$$"
TM="tmux -L $sock -f /dev/null"
trap '$TM kill-server 2>/dev/null' EXIT
trap '$TM kill-server 2>/dev/null; exit 1' INT TERM HUP

pane() { $TM capture-pane -p -t tui 2>/dev/null; }
keys() { $TM send-keys -t tui "$@"; }
wait_for() {
	i=0
	while [ $i -lt $(( ${2:-20} * 10 )) ]; do
		case $(pane) in *"$1"*) return 0 ;; esac
		sleep 0.1
		i=$((i + 1))
	done
	echo "# timed out waiting for '$1'; the pane:"
	pane | sed 's/^/#   /'
	return 1
}
line_with() { pane | grep -F -- "$1" | head -1; }
g() { awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'; }
start() { # start MODEL
	$TM kill-server 2>/dev/null && sleep 0.3
	$TM new-session -d -s tui -x 120 -y 30 \
		"env TERM=xterm-256color '$S' tui '$1' --db '$db' 2> '$tmp/stderr'; echo EXITED rc=\$?; sleep 60"
}

if ! command -v tmux > /dev/null 2>&1; then
	skip_or_fail "tmux is not installed"
elif need text data/text/tinystories-valid-1000.txt; then
	f="$tmp/olmoe.gguf"
	"$S" synth "$f" --shape olmoe-tiny > /dev/null 2>&1
	"$S" calibrate "$f" "$text" --samples 6 --seq-len 32 --db "$db" > /dev/null 2>&1
	"$S" scores 1 --experts --db "$db" --format csv > "$tmp/ex.csv"
	is "$(sed 1d "$tmp/ex.csv" | wc -l | tr -d ' ')" 24 "the run has 24 experts' statistics"
	col() { awk -F, -v l="$1" -v e="$2" -v c="$3" 'NR > 1 && $3 == l && $4 == e { print $c }' "$tmp/ex.csv"; }

	start "$f"
	ok "the workbench opens the run's heatmap" wait_for "Heatmap  run 1:" 30
	keys E
	ok "E opens the layers x experts map" wait_for "Experts  run 1:"
	contains "$(line_with "Experts  run 1")" "routing frequency" "... of the routing frequency"
	contains "$(line_with "Experts  run 1")" "6 chunks" "... over the run's 6 chunks"
	want=$(for l in 0 1 2; do
		printf '%4d' "$l"
		for e in 0 1 2 3 4 5 6 7; do printf ' %s' "$(g %.3g "$(col "$l" "$e" 6)")"; done
		echo
	done | awk '{ $1 = $1; print }')
	got=$(pane | awk '$1 ~ /^[0-2]$/ && NF == 9 { $1 = $1; print }')
	is "$got" "$want" "every cell is the frequency strata scores --experts prints (%.3g)"
	check_cursor() { # LAYER EXPERT
		contains "$(line_with "layer $1 expert $2:")" \
			"freq $(g %.6g "$(col "$1" "$2" 6)") (se $(g %.6g "$(col "$1" "$2" 7)"))  gate $(g %.6g "$(col "$1" "$2" 8)") (se $(g %.6g "$(col "$1" "$2" 9)"))" \
			"cursor on layer $1 expert $2: freq and gate with their errors as strata scores"
		contains "$(line_with "wnorm ")" \
			"norm $(g %.6g "$(col "$1" "$2" 10)") (se $(g %.6g "$(col "$1" "$2" 11)"))  wnorm $(g %.6g "$(col "$1" "$2" 12)") (se $(g %.6g "$(col "$1" "$2" 13)"))" \
			"... and both norms"
	}
	check_cursor 0 0
	rank=$(awk -F, 'NR > 1 && $3 == 0 { v[$4] = $6 } END { r = 1; for (e = 0; e < 8; e++) if (v[e] < v[0]) r++; print r }' "$tmp/ex.csv")
	contains "$(line_with "rank ")" "rank $rank of 8 in the layer by freq" "... and its rank in layer 0 by frequency"
	keys j l l
	ok "the cursor moves" wait_for "layer 1 expert 2:"
	check_cursor 1 2
	keys t
	ok "t shows the gate weight" wait_for "mean gate weight when routed"
	got=$(pane | awk '$1 == "2" && NF == 9 { print $2 }')
	is "$got" "$(g %.3g "$(col 2 0 8)")" "... layer 2 expert 0's cell is its gate"
	keys t t t
	ok "t cycles back to the frequency" wait_for "routing frequency"
	keys E
	ok "E returns to the importance heatmap" wait_for "importance = 1 - cos"

	# a dense model's run has none
	d="$tmp/dense.gguf"
	"$S" synth "$d" --shape tiny > /dev/null 2>&1
	"$S" calibrate "$d" "$text" --samples 2 --seq-len 32 --db "$db" > /dev/null 2>&1
	start "$d"
	ok "a dense model's run opens" wait_for "Heatmap  run 2:" 30
	keys E
	ok "E says it has no expert statistics" wait_for "no expert statistics"
	keys q
fi
done_testing
