# parquet.sh: the Parquet reader on files DuckDB and the Rust Arrow
# writer write at test time (tests/data/parquet/gen.mjs and
# gen_arrow.mjs, 5000 rows): every layout of the committed fixtures plus
# zstd with page v2 and several row groups of 2048 rows, every value
# checked by tests/test_parquet.  The writers come from npm:
# @duckdb/node-api (DuckDB's prebuilt native library) and parquet-wasm
# with apache-arrow, installed once under $STRATA_BUILDDIR/tests/duckdb;
# without node/npm or the network the test skips, or fails under CI=true.
. "${STRATA_SRCDIR:-.}/tests/tap.sh"

SRC=${STRATA_SRCDIR:-.}
BUILD=${STRATA_BUILDDIR:-.}
PREFIX=$BUILD/tests/duckdb
WORK=$BUILD/tests/tmp/parquet-duckdb
PKGS="@duckdb/node-api@1.5.6-r.1 parquet-wasm@0.8.0 apache-arrow@21.2.0"

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	skip_all "node and npm are needed for DuckDB (@duckdb/node-api)"
installed() { [ -f "$PREFIX/node_modules/@duckdb/node-api/package.json" ] &&
	      [ -f "$PREFIX/node_modules/parquet-wasm/package.json" ] &&
	      [ -f "$PREFIX/node_modules/apache-arrow/package.json" ] &&
	      ls "$PREFIX"/node_modules/@duckdb/node-bindings-*/package.json >/dev/null 2>&1; }
if ! installed; then
	mkdir -p "$PREFIX"
	npm install --prefix "$PREFIX" --no-save --no-audit --no-fund \
		--loglevel=error $PKGS >"$BUILD/tests/npm-duckdb.log" 2>&1
	installed || {
		sed 's/^/# /' "$BUILD/tests/npm-duckdb.log" | tail -5
		skip_all "npm install of $PKGS failed (see tests/npm-duckdb.log)"
	}
fi

rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
{ node "$SRC/tests/data/parquet/gen.mjs" "$PREFIX" "$WORK" 5000 all &&
  node "$SRC/tests/data/parquet/gen_arrow.mjs" "$PREFIX" "$WORK" 5000; } 2> "$WORK/gen.err" || {
	sed 's/^/# /' "$WORK/gen.err" | tail -5
	n=$((n + 1)); echo "not ok $n - DuckDB and the Arrow writer write the test files"
	done_testing; exit 1
}
exec "$BUILD/tests/test_parquet" "$WORK"
