# llamacpp.sh: strata's GGUF exports run in llama.cpp itself -- a block
# drop as a plain llama file, attention and MLP drops as deci (layer 0
# without attention included) -- with the perplexity llama.cpp computes
# equal to strata's on the same text (relative 1e-5: both compute in F32).
# llama.cpp comes as the node-llama-cpp npm package's prebuilt CPU build,
# installed once under $STRATA_BUILDDIR/tests/llamacpp; without node/npm
# or the network the test skips, or fails under CI=true.
. "${STRATA_SRCDIR:-.}/tests/tap.sh"

SRC=${STRATA_SRCDIR:-.}
BUILD=${STRATA_BUILDDIR:-.}
S=${STRATA_BIN:-./strata}
PREFIX=$BUILD/tests/llamacpp
WORK=$BUILD/tests/tmp/llamacpp
PKGS="node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1"

need model models/stories260K/stories260K.gguf || { done_testing; exit $?; }
need text data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
case $(uname -m) in x86_64) ;; *) skip_all "the prebuilt llama.cpp here is for x86_64 only" ;; esac
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	skip_all "node and npm are needed for llama.cpp (node-llama-cpp)"

installed() { [ -f "$PREFIX/node_modules/@node-llama-cpp/linux-x64/package.json" ] &&
	      [ -f "$PREFIX/node_modules/node-llama-cpp/package.json" ]; }
if ! installed; then
	mkdir -p "$PREFIX"
	npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --omit=optional \
		--loglevel=error $PKGS >"$BUILD/tests/npm-llamacpp.log" 2>&1
	installed || {
		sed 's/^/# /' "$BUILD/tests/npm-llamacpp.log" | tail -5
		skip_all "npm install of $PKGS failed (see tests/npm-llamacpp.log)"
	}
fi

rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
export STRATA_DB="$WORK/store.db"
head -c 600 "$text" > "$WORK/short.txt"
num() { grep -o "\"$1\": *[0-9.e+-]*" | head -1 | sed 's/.*: *//'; }
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d / a < 1e-5) }'; }

for mk in "" "block=1,3" "attn=1,3" "mlp=1,3" "attn=0;mlp=3" "attn=0,2;mlp=2-3"; do
	f="$WORK/x$(echo "$mk" | tr -c 'a-z0-9\n' '_').gguf"
	"$S" export "$model" --mask "$mk" --out "$f" --format gguf > /dev/null 2> "$WORK/export.err"
	ok "export '$mk'" [ -s "$f" ]
	arch=$("$S" info "$f" --format json 2> /dev/null | grep -o '"arch": *"[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/')
	lc=$(node "$SRC/tests/llamacpp.mjs" "$PREFIX" "$f" "$WORK/short.txt" 2> "$WORK/node.err" | num ppl)
	ok "llama.cpp loads and runs it ($arch)" [ -n "$lc" ]
	[ -n "$lc" ] || sed 's/^/# /' "$WORK/node.err" | tail -3
	st=$("$S" eval "$f" --task "ppl:$WORK/short.txt" --ctx 512 --no-store --format json 2> /dev/null |
	     tr -d '\n' | grep -o '"metric": *"ppl", *"value": *[0-9.e+-]*' | sed 's/.*: *//')
	ok "'$mk': llama.cpp's perplexity $lc equals strata's $st" close "${lc:-0}" "${st:-1}"
done
done_testing
