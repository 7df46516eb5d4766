# llamacpp_lib.sh: llama.cpp for the shell tests that compare with it
# (sourced after tap.sh).  llama.cpp comes as the node-llama-cpp npm
# package's prebuilt CPU build, installed once under
# $STRATA_BUILDDIR/tests/llamacpp; without node/npm or the network the
# test skips, or fails under CI=true.  Sets PREFIX and defines
# llamacpp_ppl, llamacpp_driver, llamacpp_ppl_long and llamacpp_greedy.
mkdir -p "${STRATA_BUILDDIR:-.}/tests/llamacpp" || exit 1
PREFIX=$(cd "${STRATA_BUILDDIR:-.}/tests/llamacpp" && pwd) # node resolves from an absolute path
LLAMACPP_PKGS="node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1"

case $(uname -m) in x86_64) ;; *) skip_all "the prebuilt llama.cpp here is for x86_64 only" ;; esac
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	skip_all "node and npm are needed for llama.cpp (node-llama-cpp)"

llamacpp_installed() { [ -f "$PREFIX/node_modules/@node-llama-cpp/linux-x64/package.json" ] &&
		       [ -f "$PREFIX/node_modules/node-llama-cpp/package.json" ]; }
# the tests that need it run in parallel (make -j): one installs, under a
# lock (flock, util-linux), and the others wait for it
if ! llamacpp_installed; then
	(
		flock 9
		llamacpp_installed ||
			npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --omit=optional \
				--loglevel=error $LLAMACPP_PKGS >"${STRATA_BUILDDIR:-.}/tests/npm-llamacpp.log" 2>&1
	) 9> "$PREFIX.lock"
	llamacpp_installed || {
		sed 's/^/# /' "${STRATA_BUILDDIR:-.}/tests/npm-llamacpp.log" | tail -5
		skip_all "npm install of $LLAMACPP_PKGS failed (see tests/npm-llamacpp.log)"
	}
fi

# llamacpp_ppl MODEL TEXT ERRFILE: llama.cpp's perplexity of TEXT (one window)
llamacpp_ppl() {
	node "${STRATA_SRCDIR:-.}/tests/llamacpp.mjs" "$PREFIX" "$1" "$2" 2> "$3" |
		grep -o '"ppl": *[0-9.e+-]*' | sed 's/.*: *//'
}

# llamacpp_greedy MODEL PROMPTFILE N ERRFILE: N greedy token ids, comma-separated
llamacpp_greedy() {
	node "${STRATA_SRCDIR:-.}/tests/llamacpp.mjs" "$PREFIX" "$1" "$2" "$3" 2> "$4" |
		sed -n 's/.*"greedy": *\[\([0-9,]*\)\].*/\1/p'
}

# llamacpp_driver: builds tests/llamacpp_ppl.c once, against the headers
# of the llama.cpp release node-llama-cpp ships (its git bundle) and its
# libllama; fails (the log in $PREFIX.build.log) without git or a compiler
LLAMACPP_BINS=$PREFIX/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
llamacpp_driver() {
	[ -x "$PREFIX/llamacpp_ppl" ] && return 0
	(
		flock 9
		[ -x "$PREFIX/llamacpp_ppl" ] || {
			rm -rf "$PREFIX/src" &&
			git clone -q --no-checkout "$PREFIX/node_modules/node-llama-cpp/llama/gitRelease.bundle" \
				"$PREFIX/src" &&
			git -C "$PREFIX/src" checkout -q HEAD -- include ggml/include &&
			${CC:-cc} -O2 -I"$PREFIX/src/include" -I"$PREFIX/src/ggml/include" \
				"${STRATA_SRCDIR:-.}/tests/llamacpp_ppl.c" -o "$PREFIX/llamacpp_ppl.tmp" \
				"$LLAMACPP_BINS"/libllama.*.so "$LLAMACPP_BINS"/libggml.*.so \
				"$LLAMACPP_BINS"/libggml-base.so -Wl,-rpath,"$LLAMACPP_BINS" -lm &&
			mv "$PREFIX/llamacpp_ppl.tmp" "$PREFIX/llamacpp_ppl"
		} > "$PREFIX.build.log" 2>&1
	) 9> "$PREFIX.lock"
	[ -x "$PREFIX/llamacpp_ppl" ]
}

# llamacpp_ppl_long MODEL TEXT CTX MAXTOK ERRFILE: llama.cpp's perplexity
# of TEXT's first MAXTOK tokens over strata's windows of CTX, through
# libllama itself (llamacpp_driver; fast enough for long texts)
llamacpp_ppl_long() {
	"$PREFIX/llamacpp_ppl" "$LLAMACPP_BINS" "$1" "$2" "$3" "$4" 2> "$5" |
		grep -o '"ppl": *[0-9.e+-]*' | sed 's/.*: *//'
}

# ---- strata beside llama.cpp on one file: the caller sets S (strata),
# WORK (a scratch folder holding short.txt, the text, and prompt.txt,
# "Once upon a time") ----

# within A B TOL: the relative difference of A and B below TOL (both numbers)
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d;
	exit !(a + 0 > 0 && b + 0 > 0 && d / a < t) }'; }
# rel A B: their relative difference, printed
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; r = 1; if (a > 0) r = d / a; printf "%.2e", r }'; }
# strata_ppl MODEL [MASK]: strata's perplexity of short.txt (one window)
strata_ppl() {
	"$S" eval "$1" ${2:+--mask "$2"} --task "ppl:$WORK/short.txt" --ctx 512 --no-store \
		--format json 2> "$WORK/eval.err" |
		tr -d '\n' | grep -o '"metric": *"ppl", *"value": *[0-9.e+-]*' | sed 's/.*: *//'
}
# strata_greedy MODEL: the ids strata generate gives after the prompt (its
# ids, BOS included, left out)
strata_greedy() {
	n_prompt=$("$S" generate "$1" -p "Once upon a time" -n 1 --format json 2> /dev/null |
		   sed -n 's/.*"prompt_tokens": *\([0-9]*\).*/\1/p')
	"$S" generate "$1" -p "Once upon a time" -n 20 --format json 2> "$WORK/gen.err" |
		sed -n 's/.*"ids": *\[\([0-9, ]*\)\].*/\1/p' | tr -d ' ' |
		cut -d, -f$((${n_prompt:-0} + 1))-
}
# agree_with_llamacpp NAME MODEL: llama.cpp's perplexity of short.txt
# equals strata's within 1e-4 and its 20 greedy tokens are strata's (4
# checks); sets st to strata's perplexity
agree_with_llamacpp() {
	lc=$(llamacpp_ppl "$2" "$WORK/short.txt" "$WORK/node.err")
	[ -n "$lc" ] || sed 's/^/# /' "$WORK/node.err" | tail -3
	st=$(strata_ppl "$2")
	echo "# $1: llama.cpp ppl $lc, strata $st, relative difference $(rel "${lc:-0}" "${st:-0}")"
	ok "$1: llama.cpp's perplexity $lc is strata's $st (1e-4)" within "${lc:-0}" "${st:-0}" 1e-4
	lg=$(llamacpp_greedy "$2" "$WORK/prompt.txt" 20 "$WORK/node.err")
	sg=$(strata_greedy "$2")
	ok "$1: 20 greedy tokens from llama.cpp" [ -n "$lg" ]
	is "$sg" "$lg" "$1: strata's 20 greedy tokens are llama.cpp's"
}
