#!/bin/sh
# tui_figure: the workbench writes its view as a figure.  Through tmux:
# on the heatmap of a stored run, `w` asks for "[KIND] FILE" with a
# default under the working directory; Enter writes it (its least
# important cell has viridis' darkest colour, read back from the PNG);
# with two sites dropped they are outlined in the SVG; `a` then `w`
# defaults to the angular matrix; on Results `w` writes the perplexity
# chart of what was evaluated; a bad name is an error on the status bar.
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
     need text data/text/tinystories-valid-1000.txt; then
	model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
	text=$(cd "$(dirname "$text")" && pwd)/$(basename "$text")
	"$S" calibrate "$model" "$text" --db "$db" --samples 16 --seq-len 128 > /dev/null 2>&1
	is "$?" 0 "a calibration in the store"
	"$S" eval "$model" --db "$db" --task "ppl:$text" --ctx 128 --max-tokens 500 > /dev/null 2>&1 &&
	"$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$text" --ctx 128 --max-tokens 500 > /dev/null 2>&1
	is "$?" 0 "two evaluations in the store"
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
	typ "fig.gif"
	keys Enter
	ok "a .gif is refused on the status bar" wait_for ".svg, .pdf or .png" 5
	keys Q
	ok "quits" wait_for "EXITED rc=0" 10
fi
done_testing
