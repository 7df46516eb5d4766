# llamacpp_lib.sh: llama.cpp for the shell tests that compare with it
# (sourced after tap.sh).  llama.cpp comes as the node-llama-cpp npm
# package's prebuilt CPU build, installed once under
# $STRATA_BUILDDIR/tests/llamacpp; without node/npm or the network the
# test skips, or fails under CI=true.  Sets PREFIX and defines
# llamacpp_ppl and llamacpp_greedy.
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
