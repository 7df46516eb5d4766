#!/bin/sh
# plot_cli: `strata plot` and `strata compare` end to end on the shared
# stories260K model with a temporary store holding two calibrations
# (TinyStories and C4 text) and a small sweep.  The heat map's cells are
# read back from the PNG and checked against viridis of their scores;
# the SVG is well-formed with one rectangle per cell; the PDF opens in
# pdfinfo; a sweep's points sit left to right by k and higher with ppl;
# the Pareto front is the one worked out from the KV bytes; the rank
# correlations equal the ones computed here from the stored ranks; every
# --format of compare; the figures' titles, axes, legends and colour
# bars name the metric, model, dataset and samples x seq-len, and the
# ranks figure prints the hand-computed coefficients (pdftotext); the
# experts kind says MoE is not there yet; usage errors.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
P="$STRATA_BUILDDIR/tests/plot_probe"
tmp="$STRATA_BUILDDIR/tests/tmp/plot_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"

sqlv() { "$S" sql --db "$db" --format tsv "$1" | sed -n 2p; }
field() { grep "^$1:" | sed 's/^[^:]*: *//'; }
# near RRGGBB RRGGBB: each channel within 2
near() {
	a=$1 b=$2
	[ ${#a} -eq 6 ] && [ ${#b} -eq 6 ] || return 1
	for i in 1 3 5; do
		x=$(printf '%d' "0x$(echo "$a" | cut -c$i-$((i + 1)))")
		y=$(printf '%d' "0x$(echo "$b" | cut -c$i-$((i + 1)))")
		d=$((x - y))
		[ "$d" -le 2 ] && [ "$d" -ge -2 ] || return 1
	done
}

if need model models/stories260K/stories260K.gguf &&
   need text data/text/tinystories-valid-1000.txt &&
   need c4 data/text/c4-en-train-00000-first1000.jsonl; then
	"$S" calibrate "$model" "$text" --db "$db" --samples 16 --seq-len 128 > /dev/null 2>&1 &&
	"$S" calibrate "$model" "$c4" --db "$db" --samples 16 --seq-len 128 > /dev/null 2>&1
	is "$?" 0 "two calibrations (TinyStories, C4) to plot"

	# ---- heatmap: every cell's colour is viridis of its importance ----
	"$S" plot heatmap 1 --db "$db" --out "$tmp/h.png" > "$tmp/h.txt" 2> "$tmp/h.err"
	is "$?" 0 "plot heatmap 1 --out h.png"
	is "$(field cells < "$tmp/h.txt")" 15 "... 15 cells (5 layers x attn, mlp, block)"
	is "$(field format < "$tmp/h.txt")" png "... a PNG"
	lo=$(sqlv "SELECT min(importance) FROM site_scores WHERE run = 1 AND metric = 'cos'")
	hi=$(sqlv "SELECT max(importance) FROM site_scores WHERE run = 1 AND metric = 'cos'")
	"$S" sql --db "$db" --format tsv "SELECT layer, site, importance FROM site_scores
		WHERE run = 1 AND metric = 'cos'" | sed 1d > "$tmp/cells.tsv"
	bad=0 cnt=0
	while IFS="$(printf '\t')" read -r layer site imp; do
		case $site in attn) col=0 ;; mlp) col=1 ;; *) col=2 ;; esac
		t=$(awk -v v="$imp" -v lo="$lo" -v hi="$hi" 'BEGIN { printf "%.9f", (v - lo) / (hi - lo) }')
		want=$("$P" viridis "$t")
		got=$("$P" cell "$tmp/h.png" 640 480 72 1 5 3 1 0 "$layer" "$col")
		near "$got" "$want" || { bad=$((bad + 1)); echo "# layer $layer $site: got $got, want $want"; }
		cnt=$((cnt + 1))
	done < "$tmp/cells.tsv"
	is "$cnt/$bad" "15/0" "every cell has the viridis colour of its 1 - cos (15 checked, 0 off)"
	lay=$(sqlv "SELECT layer FROM site_scores WHERE run = 1 AND metric = 'cos' ORDER BY importance LIMIT 1")
	site=$(sqlv "SELECT site FROM site_scores WHERE run = 1 AND metric = 'cos' ORDER BY importance LIMIT 1")
	case $site in attn) col=0 ;; mlp) col=1 ;; *) col=2 ;; esac
	is "$("$P" cell "$tmp/h.png" 640 480 72 1 5 3 1 0 "$lay" "$col")" 440154 \
		"the least important site ($site $lay) is viridis' darkest, #440154"

	# two runs side by side on one scale, the sites of a plan outlined
	"$S" plot heatmap 1 2 --db "$db" --method block -n 1 --out "$tmp/h2.png" > "$tmp/h2.txt"
	is "$?" 0 "plot heatmap 1 2 --method block -n 1"
	is "$(field panels < "$tmp/h2.txt")/$(field cells < "$tmp/h2.txt")" 2/30 "... 2 panels, 30 cells"
	is "$(field marked < "$tmp/h2.txt")" 6 "... a block (attn, mlp, block cells) outlined in each"
	"$S" plot heatmap 1 --db "$db" --mask 'attn=2,4;mlp=' --out "$tmp/hm.png" > "$tmp/hm.txt"
	is "$(field marked < "$tmp/hm.txt")" 2 "--mask attn=2,4 outlines 2 cells"

	# sizes, dpi, theme
	"$S" plot heatmap 1 --db "$db" --out "$tmp/big.png" --width 400 --height 300 --dpi 144 > /dev/null
	ok "--width 400 --height 300 --dpi 144 gives 800 x 600 pixels" \
		sh -c "'$P' pixel '$tmp/big.png' 799 599 > /dev/null && ! '$P' pixel '$tmp/big.png' 800 300 2> /dev/null"
	"$S" plot heatmap 1 --db "$db" --out "$tmp/dark.png" --theme dark --title "Layer importance" > /dev/null
	px=$("$P" pixel "$tmp/dark.png" 2 2)
	ok "--theme dark draws on a dark background ($px)" [ "$(printf '%d' "0x$(echo "$px" | cut -c1-2)")" -lt 64 ]

	# SVG: well-formed, one rectangle per cell; PDF: opens
	"$S" plot heatmap 1 --db "$db" --out "$tmp/h.svg" > /dev/null
	is "$?" 0 "plot heatmap 1 --out h.svg"
	ok "... well-formed XML" sh -c "'$P' xml '$tmp/h.svg' > /dev/null"
	cells=$(grep -cE 'stroke:none;fill-rule:nonzero;fill:rgb\([^)]*\);fill-opacity:1;" d="M [-0-9.]+ [-0-9.]+ L [-0-9.]+ [-0-9.]+ L [-0-9.]+ [-0-9.]+ L [-0-9.]+ [-0-9.]+ Z M [-0-9.]+ [-0-9.]+ "' "$tmp/h.svg")
	is "$cells" 15 "... with one filled rectangle per cell"
	is "$("$P" fills "$tmp/h.svg" 440154)" 1 "... one of them #440154 (the least important site)"
	is "$("$P" fills "$tmp/h.svg" fde725)" 1 "... one #fde725 (the most important)"
	"$S" plot heatmap 1 2 --db "$db" --out "$tmp/h.pdf" --width 500 --height 400 > /dev/null
	is "$?" 0 "plot heatmap --out h.pdf"
	if command -v pdfinfo > /dev/null 2>&1; then
		info=$(pdfinfo "$tmp/h.pdf" 2>&1)
		ok "pdfinfo opens it: one page" sh -c "echo '$info' | grep -Eq '^Pages: +1\$'"
		contains "$info" "500 x 400 pts" "... of 500 x 400 points"
	else
		skip_or_fail "pdfinfo (poppler-utils) is not installed"
	fi

	# ---- angular ----
	"$S" plot angular 1 --db "$db" --out "$tmp/a.png" > "$tmp/a.txt"
	is "$?" 0 "plot angular 1"
	is "$(field cells < "$tmp/a.txt")" 20 "... 5 first layers x spans 1..4"
	lo=$(sqlv "SELECT min(value) FROM scores WHERE run_id = 1 AND metric = 'angular_last'")
	l=$(sqlv "SELECT layer FROM scores WHERE run_id = 1 AND metric = 'angular_last' ORDER BY value LIMIT 1")
	sp=$(sqlv "SELECT span FROM scores WHERE run_id = 1 AND metric = 'angular_last' ORDER BY value LIMIT 1")
	is "$("$P" cell "$tmp/a.png" 640 480 72 1 5 4 1 0 "$l" $((sp - 1)))" 440154 \
		"the closest span (layer $l, $sp blocks) is the darkest cell"
	is "$("$P" cell "$tmp/a.png" 640 480 72 1 5 4 1 0 4 3)" d9d9d9 "a span past the last layer is grey"

	# ---- experts: not there yet, and says so ----
	err=$("$S" plot experts 1 --db "$db" --out "$tmp/e.png" 2>&1)
	is "$?" 1 "plot experts fails"
	contains "$err" "no expert statistics (MoE support is not there yet)" "... saying why"
	ok "... and draws nothing" test ! -e "$tmp/e.png"

	# ---- a sweep: drops and pareto ----
	"$S" sweep "$model" --db "$db" --run 1 --method attn,block --max 2 --task "ppl:$text" \
		--ctx 128 --max-tokens 500 --bench --bench-ctx 32 --gen 2 --format tsv > "$tmp/sw.tsv" 2>/dev/null
	is "$?" 0 "a sweep attn,block to k=2 with --bench"
	"$S" plot drops 1 --db "$db" --out "$tmp/d.svg" > "$tmp/d.txt"
	is "$?" 0 "plot drops 1"
	is "$(field series < "$tmp/d.txt")/$(field points < "$tmp/d.txt")" 2/6 "... 2 methods, 6 points"
	ok "... well-formed SVG" sh -c "'$P' xml '$tmp/d.svg' > /dev/null"
	# the attn markers (series 0, #0072b2): circles "M cx+r cy C ..."
	grep 'fill:rgb(0%,44.705882%,69.803922%)' "$tmp/d.svg" | grep ' C ' |
		sed 's/.* d="M \([-0-9.]*\) \([-0-9.]*\) .*/\1 \2/' > "$tmp/attn.xy"
	is "$(wc -l < "$tmp/attn.xy" | tr -d ' ')" 4 "3 attn points and the legend's marker"
	head -3 "$tmp/attn.xy" > "$tmp/attn3.xy"
	ok "the attn points go right by equal steps of k" awk '
		{ x[NR] = $1 } END { d1 = x[2] - x[1]; d2 = x[3] - x[2]; exit !(d1 > 0 && (d1 - d2) ^ 2 < 0.01) }' "$tmp/attn3.xy"
	ok "... and up as ppl grows" awk '{ y[NR] = $2 } END { exit !(y[1] > y[2] && y[2] > y[3]) }' "$tmp/attn3.xy"
	"$S" plot drops 1 --db "$db" --out "$tmp/d.png" --metric ppl > /dev/null
	is "$?" 0 "... and as a PNG"

	"$S" plot pareto 1 --db "$db" --speed kv --out "$tmp/p.png" > "$tmp/p.txt"
	is "$?" 0 "plot pareto 1 --speed kv"
	is "$(field points < "$tmp/p.txt")" 6 "... 6 points"
	# KV saving is 1/5 per attention dropped and per block; a block costs more
	# ppl than an attention, so the front is attn k = 0, 1, 2
	is "$(field front < "$tmp/p.txt")" 3 "... the Pareto front is attn k = 0, 1, 2"
	"$S" plot pareto 1 --db "$db" --speed decode --out "$tmp/p2.pdf" > /dev/null
	is "$?" 0 "plot pareto --speed decode as PDF"

	# ---- ranks and compare ----
	"$S" plot ranks 1 2 --db "$db" --out "$tmp/r.png" --format json > "$tmp/r.json"
	is "$?" 0 "plot ranks 1 2"
	# Spearman and Kendall from the stored ranks (no ties), computed here
	for s in attn mlp block; do
		"$S" sql --db "$db" --format tsv "SELECT a.rank, b.rank FROM scores a JOIN scores b
			ON b.layer = a.layer AND b.site = a.site AND b.metric = 'cos' AND b.run_id = 2
			WHERE a.run_id = 1 AND a.metric = 'cos' AND a.site = '$s'" | sed 1d > "$tmp/rk.$s"
		want=$(awk '{ a[NR] = $1; b[NR] = $2 }
			END { n = NR; for (i = 1; i <= n; i++) d += (a[i] - b[i]) ^ 2
			      rho = 1 - 6 * d / (n * (n * n - 1))
			      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) {
				s = (a[i] - a[j]) * (b[i] - b[j]); if (s > 0) c++; else if (s < 0) dd++ }
			      printf "%.6f %.6f", rho, (c - dd) / (n * (n - 1) / 2) }' "$tmp/rk.$s")
		got=$(tr ',' '\n' < "$tmp/r.json" | grep -E "\"(spearman|kendall)_$s\"" | sed 's/.*: *//; s/}//' |
			awk '{ printf "%s%.6f", (NR > 1 ? " " : ""), $1 }')
		is "$got" "$want" "$s: plot ranks prints Spearman and Kendall as computed by hand ($want)"
		"$S" compare 1 2 --db "$db" --format csv | awk -F, -v s="$s" '$1 == s && NF == 4 { printf "%.6f %.6f", $3, $4 }' > "$tmp/cmp.$s"
		is "$(cat "$tmp/cmp.$s")" "$want" "$s: compare prints the same"
		eval "want_$s=\"\$want\""
	done

	# ---- the figures stand alone: their text read back from PDFs ----
	if command -v pdftotext > /dev/null 2>&1; then
		# pdftxt FILE: the PDF's text, lines joined by '|'
		pdftxt() { pdftotext "$1" - 2> /dev/null | tr '\n' '|'; }
		"$S" plot ranks 1 2 --db "$db" --out "$tmp/r.pdf" > /dev/null
		t=$(pdftxt "$tmp/r.pdf")
		for s in attn mlp block; do
			eval "w=\$want_$s"
			w=$(echo "$w" | awk '{ printf "Spearman %.3f, Kendall %.3f", $1, $2 }')
			contains "$t" "$s: $w" "ranks: the figure prints $s's coefficients as computed by hand ($w)"
		done
		contains "$t" "rank in run 1 (tinystories-valid-1000.txt, 16 x 128 tokens)" \
			"... its axes name each run's dataset and samples x seq-len"
		contains "$t" "model stories260K.gguf" "... and the model"
		contains "$t" "by 1 - cos" "... and the metric"
		t=$(pdftxt "$tmp/h.pdf")
		contains "$t" "Importance (1 - cos) of attention, MLP and blocks" "heatmap: the title names the metric"
		contains "$t" "model stories260K.gguf, 16 x 128 tokens" "... the subtitle what both runs share: model, samples x seq-len"
		contains "$t" "run 1: tinystories-valid-1000.txt" "... each panel its dataset (run 1)"
		contains "$t" "run 2: c4-en-train-00000-first1000.jsonl" "... (run 2)"
		contains "$t" "importance (1 - cos of input and output)" "... the colour bar its quantity"
		"$S" plot heatmap 1 --db "$db" --out "$tmp/h1.pdf" > /dev/null
		contains "$(pdftxt "$tmp/h1.pdf")" \
			"model stories260K.gguf, calibrated on tinystories-valid-1000.txt, 16 x 128 tokens" \
			"... one run: model, dataset and samples x seq-len in the subtitle"
		"$S" plot heatmap 1 --db "$db" --title "Where stories260K can be cut" --out "$tmp/ht.pdf" > /dev/null
		t=$(pdftxt "$tmp/ht.pdf")
		contains "$t" "Where stories260K can be cut|" "--title replaces the title"
		case $t in *"Importance (1 - cos) of"*) ok "... the default one is gone" false ;;
		*) ok "... the default one is gone" true ;; esac
		"$S" plot angular 1 --db "$db" --out "$tmp/a.pdf" > /dev/null
		t=$(pdftxt "$tmp/a.pdf")
		contains "$t" "angular distance (angular_last)" "angular: the colour bar names the metric"
		contains "$t" "span n (blocks)|" "... the axes the span"
		"$S" plot drops 1 --db "$db" --out "$tmp/d.pdf" > /dev/null
		t=$(pdftxt "$tmp/d.pdf")
		contains "$t" "Perplexity against sites dropped" "drops: the title names the metric"
		contains "$t" "model stories260K.gguf, sites chosen by run 1's scores (tinystories-valid-1000.txt, 16 x 128 tokens)" \
			"... the subtitle the model, the calibration's dataset and samples x seq-len"
		contains "$t" "evaluation: ppl ctx=128;max_tokens=500" "... and the evaluation's settings"
		contains "$t" "|perplexity|" "... the y axis the metric"
		contains "$t" "|attn|" "... the legend the methods (attn)"
		contains "$t" "|block|" "... (block)"
		"$S" plot pareto 1 --db "$db" --speed kv --out "$tmp/p.pdf" > /dev/null
		t=$(pdftxt "$tmp/p.pdf")
		contains "$t" "KV-cache saving (fraction of the unmasked model's, ctx 32)" "pareto: the axis names the saving and its context"
		contains "$t" "|Pareto front|" "... the legend the front"
		contains "$t" "speed: ctx=32;gen=2;repeat=1" "... the subtitle the bench's settings"
	else
		skip_or_fail "pdftotext (poppler-utils) is not installed"
	fi

	# ---- drops of accuracy (a multiple-choice task) ----
	if need hs data/mc/hellaswag/hellaswag_val_full.txt; then
		"$S" sweep "$model" --db "$db" --run 1 --method attn,block --max 2 --task hellaswag \
			--limit 20 --format tsv > "$tmp/acc.tsv" 2> /dev/null
		is "$?" 0 "a hellaswag sweep (20 items) of the same run"
		"$S" plot drops 1 --db "$db" --metric acc --out "$tmp/acc.svg" > "$tmp/acc.txt"
		is "$?/$(field metric < "$tmp/acc.txt")/$(field points < "$tmp/acc.txt")" 0/acc/6 \
			"plot drops --metric acc: 6 points"
		# attn's points (circles in #0072b2) stand as high as their accuracy
		grep 'fill:rgb(0%,44.705882%,69.803922%)' "$tmp/acc.svg" | grep ' C ' | head -3 |
			sed 's/.* d="M \([-0-9.]*\) \([-0-9.]*\) .*/\2/' > "$tmp/acc.y"
		awk -F'\t' '$1 == "attn" { print $5 }' "$tmp/acc.tsv" > "$tmp/acc.v"
		ok "... each attn point's height follows its accuracy ($(tr '\n' ' ' < "$tmp/acc.v"))" \
			awk 'NR == FNR { v[NR] = $1; next } { y[FNR] = $1 }
			     END { for (i = 1; i <= 3; i++) for (j = 1; j <= 3; j++)
				     if ((v[i] > v[j]) != (y[i] < y[j] - 0.01)) exit 1 }' "$tmp/acc.v" "$tmp/acc.y"
		if command -v pdftotext > /dev/null 2>&1; then
			"$S" plot drops 1 --db "$db" --metric acc --out "$tmp/acc.pdf" > /dev/null
			t=$(pdftotext "$tmp/acc.pdf" - 2> /dev/null | tr '\n' '|')
			contains "$t" "Accuracy against sites dropped" "... titled with the metric"
			contains "$t" "evaluation: hellaswag ctx=2048;limit=20" "... and naming the task"
		fi
	fi

	# ---- drops of another metric (KL), pareto of the prefill speed ----
	"$S" sweep "$model" --db "$db" --run 1 --method attn,block --max 2 --task "kl:$text" \
		--ctx 128 --max-tokens 500 --format tsv > /dev/null 2>&1
	is "$?" 0 "a KL sweep of the same run"
	"$S" plot drops 1 --db "$db" --metric kl --out "$tmp/kl.pdf" > "$tmp/kl.txt"
	is "$?" 0 "plot drops 1 --metric kl"
	is "$(field metric < "$tmp/kl.txt")/$(field series < "$tmp/kl.txt")/$(field points < "$tmp/kl.txt")" \
		kl_mean/2/6 "... the mean KL of 2 methods, 6 points"
	"$S" plot pareto 1 --db "$db" --speed prefill --out "$tmp/pp.pdf" > "$tmp/pp.txt"
	is "$?/$(field speed < "$tmp/pp.txt")/$(field points < "$tmp/pp.txt")" 0/prefill/6 \
		"plot pareto --speed prefill: 6 points (the KL sweep adds none to the ppl front)"
	if command -v pdftotext > /dev/null 2>&1; then
		t=$(pdftotext "$tmp/kl.pdf" - 2> /dev/null | tr '\n' '|')
		contains "$t" "KL divergence against sites dropped" "... the KL figure's title names it"
		contains "$t" "KL divergence from the unmasked model (mean, nats)" "... and its y axis"
		contains "$t" "evaluation: kl ctx=128;max_tokens=500" "... and its evaluation"
		t=$(pdftotext "$tmp/pp.pdf" - 2> /dev/null | tr '\n' '|')
		contains "$t" "prefill speedup over the unmasked model (x, ctx 32)" "... the prefill front's axis names it"
	else
		skip_or_fail "pdftotext (poppler-utils) is not installed"
	fi

	"$S" compare 1 2 --db "$db" --max 3 > "$tmp/c.txt"
	is "$?" 0 "compare 1 2 --max 3"
	contains "$(cat "$tmp/c.txt")" "spearman" "... text: the correlation table"
	contains "$(cat "$tmp/c.txt")" "dropped_a" "... and the overlap table"
	is "$(awk '$1 == "attn" && NF == 6' "$tmp/c.txt" | wc -l | tr -d ' ')" 3 "... k = 1..3 for attn"
	"$S" compare 1 2 --db "$db" --max 2 --format tsv > "$tmp/c.tsv"
	is "$(head -1 "$tmp/c.tsv" | tr '\t' ,)" "site,n,spearman,kendall" "tsv: the correlations' header"
	is "$(sed -n 7p "$tmp/c.tsv" | tr '\t' ,)" "site,k,overlap,fraction,dropped_a,dropped_b" \
		"... a blank line, then the overlap's"
	is "$(awk -F'\t' '$1 == "joint" && NF == 4 { print $2 }' "$tmp/c.tsv")" 10 "joint ranks 10 sublayers"
	"$S" compare 1 2 --db "$db" --format json > "$tmp/c.json"
	contains "$(cat "$tmp/c.json")" '"correlations": [' "json: one object with the correlations"
	contains "$(cat "$tmp/c.json")" '"overlap": [' "... and the overlap"
	if command -v python3 > /dev/null 2>&1; then
		ok "... that parses as JSON" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/c.json"
	fi
	# a run against itself: perfect agreement
	"$S" compare 1 1 --db "$db" --max 2 --format csv > "$tmp/self.csv"
	is "$(awk -F, 'NF == 4 && $1 != "site" { print $3 "/" $4 }' "$tmp/self.csv" | sort -u)" "1/1" \
		"a run against itself: every rho and tau is 1"
	is "$(awk -F, 'NF == 6 && $1 != "site" { print $4 }' "$tmp/self.csv" | sort -u)" 1 "... every overlap is whole"
	# overlap from the drop lists
	dl=$(awk -F'\t' '$1 == "mlp" && $2 == 2 { n = split($5, a, ","); split($6, b, ","); c = 0
		for (i = 1; i <= n; i++) for (j in b) if (a[i] == b[j]) c++; print c "/" $3 }' "$tmp/c.tsv")
	is "${dl%/*}" "${dl#*/}" "mlp k=2: the overlap is what the two drop lists share ($dl)"

	# ---- usage and errors ----
	"$S" plot --db "$db" > /dev/null 2>&1
	is "$?" 2 "no kind is a usage error"
	err=$("$S" plot pie 1 --db "$db" --out "$tmp/x.png" 2>&1)
	is "$?" 2 "an unknown kind is a usage error"
	contains "$err" "pie" "... naming it"
	"$S" plot heatmap 1 --db "$db" > /dev/null 2>&1
	is "$?" 2 "no --out is a usage error"
	err=$("$S" plot heatmap 1 --db "$db" --out "$tmp/x.gif" 2>&1)
	is "$?" 2 "a .gif is a usage error"
	contains "$err" ".svg, .pdf or .png" "... naming the formats"
	err=$("$S" plot heatmap 99 --db "$db" --out "$tmp/x.png" 2>&1)
	is "$?" 1 "an unknown run fails"
	contains "$err" "99" "... naming it"
	"$S" plot ranks 1 --db "$db" --out "$tmp/x.png" > /dev/null 2>&1
	is "$?" 2 "ranks of one run is a usage error"
	err=$("$S" plot drops 2 --db "$db" --out "$tmp/x.png" 2>&1)
	is "$?" 1 "drops of a run without a sweep fails"
	contains "$err" "no sweep point" "... saying so"
	"$S" compare 1 --db "$db" > /dev/null 2>&1
	is "$?" 2 "compare needs two runs"
	"$S" plot heatmap 1 --db "$db" --theme sepia --out "$tmp/x.png" > /dev/null 2>&1
	is "$?" 2 "an unknown theme is a usage error"
fi
done_testing
