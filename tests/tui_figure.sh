#!/bin/sh
# tui_figure: the workbench writes its view as a figure.  Through tmux:
# on the heatmap of a stored run, `w` asks for "[KIND] FILE" with a
# default under the working directory; Enter writes it (its least
# important cell has viridis' darkest colour, read back from the PNG);
# with two sites dropped they are outlined in the SVG; `a` then `w`
# defaults to the angular matrix; on Results `w` writes the perplexity
# chart of what was evaluated, and its Pareto chart of what was benched;
# a bad name is an error on the status bar; ranks of the open run
# against a compared one print strata compare's coefficients.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
P="$STRATA_BUILDDIR/tests/plot_probe"
tmp="$STRATA_BUILDDIR/tests/tmp/tui_figure"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"
unset STRATA_DB STRATA_TEST_CHUNK_DELAY_MS STRATA_MODEL
sock="strata-fig-$$"
TM="tmux -L $sock -f /dev/null"
trap '$TM kill-server 2>/dev/null' EXIT
trap '$TM kill-server 2>/dev/null; exit 1' INT TERM HUP

pane() { $TM capture-pane -p -t tui 2>/dev/null; }
keys() { $TM send-keys -t tui "$@"; }
typ() { $TM send-keys -t tui -l "$1"; }
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
sqlv() { "$S" sql --db "$db" --format tsv "$1" | sed -n 2p; }

if ! command -v tmux > /dev/null 2>&1; then
	skip_or_fail "tmux is not installed"
elif need model models/stories260K/stories260K.gguf &&
     need text data/text/tinystories-valid-1000.txt &&
     need c4 data/text/c4-en-train-00000-first1000.jsonl; then
	model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
	text=$(cd "$(dirname "$text")" && pwd)/$(basename "$text")
	"$S" calibrate "$model" "$text" --db "$db" --samples 16 --seq-len 128 > /dev/null 2>&1
	is "$?" 0 "a calibration in the store"
	"$S" eval "$model" --db "$db" --task "ppl:$text" --ctx 128 --max-tokens 500 > /dev/null 2>&1 &&
	"$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$text" --ctx 128 --max-tokens 500 > /dev/null 2>&1
	is "$?" 0 "two evaluations in the store"
	# benches with the workbench's settings, for its Pareto chart
	"$S" bench "$model" --db "$db" --ctx 128,512 --gen 32 --repeat 5 > /dev/null 2>&1 &&
	"$S" bench "$model" --db "$db" --mask 'attn=2' --ctx 128,512 --gen 32 --repeat 5 > /dev/null 2>&1
	is "$?" 0 "two benches in the store"
	$TM new-session -d -s tui -x 110 -y 32 -c "$tmp" \
		"env STRATA_SHARED='$STRATA_SHARED' TERM=xterm-256color '$S' tui '$model' --db '$db' 2> '$tmp/stderr'; echo EXITED rc=\$?; sleep 60"
	ok "the workbench opens on the run's heatmap" wait_for "Heatmap  run 1:" 30

	keys w
	ok "w asks for the figure, the default under the working directory" \
		wait_for "heatmap strata-heatmap-run1.svg" 5
	keys C-u
	typ "heatmap fig.png"
	keys Enter
	ok "Enter writes it" wait_for "wrote fig.png (heatmap)" 10
	ok "... into the working directory" test -s "$tmp/fig.png"
	lay=$(sqlv "SELECT layer FROM site_scores WHERE run = 1 AND metric = 'cos' ORDER BY importance LIMIT 1")
	site=$(sqlv "SELECT site FROM site_scores WHERE run = 1 AND metric = 'cos' ORDER BY importance LIMIT 1")
	case $site in attn) col=0 ;; mlp) col=1 ;; *) col=2 ;; esac
	is "$("$P" cell "$tmp/fig.png" 640 480 72 1 5 3 1 0 "$lay" "$col")" 440154 \
		"the least important site ($site $lay) is viridis' darkest in the figure"

	# drop attn 0 and mlp 0 (cursor starts on layer 0 attn): outlined in the SVG
	keys Space l Space
	ok "two sites dropped" wait_for "mask: attn=0;mlp=0" 5
	keys w C-u
	typ "fig.svg"
	keys Enter
	ok "a file name alone takes the kind shown (heatmap)" wait_for "wrote fig.svg (heatmap)" 10
	ok "... well-formed SVG" sh -c "'$P' xml '$tmp/fig.svg' > /dev/null"
	outlines=$(grep -c 'stroke-width:2.5;stroke-linecap:butt;stroke-linejoin:miter;stroke:rgb(89' "$tmp/fig.svg")
	is "$outlines" 3 "... and attn 0, mlp 0 and block 0 outlined"
	is "$(grep -c 'stroke-width:2;stroke-linecap:butt;stroke-linejoin:miter;stroke:rgb(89' "$tmp/fig.svg")" 1 \
		"... with the outline's legend"

	keys a
	ok "the angular view" wait_for "d(l" 5
	keys w
	ok "... defaults to an angular figure" wait_for "angular strata-angular-run1.svg" 5
	keys C-u
	typ "ang.pdf"
	keys Enter
	ok "... written as PDF" wait_for "wrote ang.pdf (angular)" 10
	ok "... a PDF file" sh -c "head -c 5 '$tmp/ang.pdf' | grep -q '%PDF-'"

	keys 5
	ok "the results screen" wait_for "Results" 5
	keys w
	ok "w there defaults to the perplexity chart" wait_for "drops strata-drops.svg" 5
	keys C-u
	typ "drops.png"
	keys Enter
	ok "... written" wait_for "wrote drops.png (drops)" 10
	ok "... a PNG" test -s "$tmp/drops.png"

	keys w C-u
	typ "pareto par.pdf"
	keys Enter
	ok "the results screen offers the Pareto chart too" wait_for "wrote par.pdf (pareto)" 10
	if command -v pdftotext > /dev/null 2>&1; then
		t=$(pdftotext "$tmp/par.pdf" - 2> /dev/null | tr '\n' '|')
		contains "$t" "Decode speedup against perplexity" "... titled with what it plots"
		contains "$t" "decode speedup over the unmasked model (x)" "... its axes named"
		contains "$t" "|Pareto front|" "... the front in the legend"
		contains "$t" "|unmasked|" "... beside the unmasked model"
		contains "$t" "model stories260K.gguf; perplexity on tinystories-valid-1000.txt" \
			"... the model and the evaluation's data in the subtitle"
	else
		skip_or_fail "pdftotext (poppler-utils) is not installed"
	fi

	keys w C-u
	typ "fig.gif"
	keys Enter
	ok "a .gif is refused on the status bar" wait_for ".svg, .pdf or .png" 5

	# ranks: the open run against a compared one
	keys 3 a
	ok "back on the heatmap, importance shown" wait_for "Heatmap  run 1:" 5
	keys w C-u
	typ "ranks r.pdf"
	keys Enter
	ok "ranks with nothing compared says what to do" wait_for "add one with c on Home first" 5
	"$S" calibrate "$model" "$c4" --db "$db" --samples 16 --seq-len 128 > /dev/null 2>&1
	is "$?" 0 "a second calibration (C4) in the store"
	keys 1
	ok "Home lists both runs" wait_for "Calibration runs, newest first (2)" 10
	keys c 3
	ok "c compares run 2 beside run 1" wait_for "r2 blk" 10
	keys w C-u
	typ "ranks r.pdf"
	keys Enter
	ok "the ranks figure is written" wait_for "wrote r.pdf (ranks)" 10
	if command -v pdftotext > /dev/null 2>&1; then
		t=$(pdftotext "$tmp/r.pdf" - 2> /dev/null | tr '\n' '|')
		"$S" compare 1 2 --db "$db" --format csv > "$tmp/cmp.csv"
		for s in attn mlp block; do
			w=$(awk -F, -v s="$s" '$1 == s && NF == 4 { printf "%s: Spearman %.3f, Kendall %.3f", s, $3, $4 }' "$tmp/cmp.csv")
			contains "$t" "$w" "... printing strata compare's coefficients ($w)"
		done
	else
		skip_or_fail "pdftotext (poppler-utils) is not installed"
	fi
	keys Q
	ok "quits" wait_for "EXITED rc=0" 10
fi
done_testing
