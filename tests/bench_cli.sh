#!/bin/sh
# bench_cli: `strata bench` on the shared stories260K model (5 layers,
# 4 KV heads of dim 8, context 2048 in its GGUF): the JSON fields, KV bytes computed
# here from the hyperparameters (empty mask, 2 of 5 attention layers
# dropped, every block dropped), the mask echoed in canonical form,
# weight bytes falling with dropped sites, positive speeds, a bad mask
# and a context beyond the model's.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/bench_cli"
rm -rf "$tmp" && mkdir -p "$tmp"

json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
json_str() { grep -o "\"$1\": *\"[^\"]*\"" | head -1 | sed 's/.*: *"//; s/"$//'; }
positive() { awk -v x="$1" 'BEGIN { exit !(x + 0 > 0) }'; }

if need model models/stories260K/stories260K.gguf; then
	b() { "$S" bench "$model" --repeat 2 --gen 8 --format json "$@"; }

	b --ctx 64,256 > "$tmp/e.json" 2> "$tmp/e.err"; rc=$?
	is "$rc" 0 "bench with no mask exits 0"
	for f in mask ctx prefill_tps_64 prefill_tps_256 prefill_tps_256_min \
		 prefill_tps_256_max decode_tps decode_tps_min decode_tps_max \
		 weight_bytes kv_bytes kv_bytes_64 kv_expected kv_check rss_peak repeat; do
		contains "$(cat "$tmp/e.json")" "\"$f\":" "json has $f"
	done
	is "$(json_str mask < "$tmp/e.json")" "attn=;mlp=" "the empty mask is printed in canonical form"
	is "$(json_num kv_bytes < "$tmp/e.json")" $((2 * 5 * 4 * 8 * 4 * 256)) \
	   "kv_bytes at the largest context = 2 x 5 x 4 x 8 x 4 x 256"
	is "$(json_num kv_bytes_64 < "$tmp/e.json")" $((2 * 5 * 4 * 8 * 4 * 64)) \
	   "kv_bytes_64 = 2 x 5 x 4 x 8 x 4 x 64"
	is "$(grep -o '"kv_check": *[a-z]*' "$tmp/e.json" | sed 's/.*: *//')" true "the kv check passed"
	for f in prefill_tps_64 prefill_tps_256 prefill_tps_256_min decode_tps decode_tps_min rss_peak; do
		v=$(json_num $f < "$tmp/e.json")
		ok "$f is a positive number ($v)" positive "$v"
	done
	w0=$(json_num weight_bytes < "$tmp/e.json")
	# stories260K: F32, tied embeddings; weights from the hyperparameters
	# d=64 ff=172 vocab=512 layers=5 q=64 kv=32:
	# emb 512*64 + out_norm 64 + 5 x (2*64 + 64*64*2 + 64*32*2 + 3*64*172)
	is "$w0" $(( 4 * (512 * 64 + 64 + 5 * (2 * 64 + 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 172)) )) \
	   "weight_bytes of the whole model, computed from its shapes"

	b --ctx 64,256 --mask 'attn=1,0' > "$tmp/a.json" 2> "$tmp/a.err"; rc=$?
	is "$rc" 0 "bench --mask attn=1,0 exits 0"
	is "$(json_str mask < "$tmp/a.json")" "attn=0-1;mlp=" "the mask it ran is printed in canonical form"
	k0=$(json_num kv_bytes < "$tmp/e.json"); k1=$(json_num kv_bytes < "$tmp/a.json")
	is "$((k0 - k1))" "$((k0 * 2 / 5))" "dropping attn=0-1 reduces kv_bytes by exactly 2/5"
	is "$(json_num attn_kept < "$tmp/a.json")" 3 "attn_kept is 3"
	is "$(json_num weight_bytes < "$tmp/a.json")" $((w0 - 2 * 4 * (64 + 64 * 64 * 2 + 64 * 32 * 2))) \
	   "weight_bytes drops by two attention sublayers (norm, wq, wk, wv, wo)"

	b --ctx 64,256 --mask 'block=0-4' > "$tmp/b.json" 2> "$tmp/b.err"; rc=$?
	is "$rc" 0 "bench --mask block=0-4 exits 0"
	is "$(json_num kv_bytes < "$tmp/b.json")" 0 "every block dropped: kv_bytes 0"
	is "$(json_str mask < "$tmp/b.json")" "attn=0-4;mlp=0-4" "... with the mask printed"
	is "$(json_num weight_bytes < "$tmp/b.json")" $((4 * (512 * 64 + 64))) \
	   "... and only the embedding and final norm counted as read"
	ok "... and speeds still positive" positive "$(json_num prefill_tps_256 < "$tmp/b.json")"

	b --mask 'attn=9' > "$tmp/bad.json" 2> "$tmp/bad.err"; rc=$?
	is "$rc" 2 "a mask naming layer 9 of 5 exits 2"
	contains "$(cat "$tmp/bad.err")" "mask" "... with a message about the mask"
	b --mask 'attn=x' > /dev/null 2> "$tmp/bad2.err"; rc=$?
	is "$rc" 2 "an unparsable mask exits 2"
	b --ctx 0 > /dev/null 2>&1; rc=$?
	is "$rc" 2 "--ctx 0 exits 2"
	b --ctx 64,abc > /dev/null 2>&1; rc=$?
	is "$rc" 2 "--ctx 64,abc exits 2"

	nctx=$("$S" info "$model" --format json | json_num n_ctx)
	is "$nctx" 2048 "stories260K's GGUF says its context is 2048"
	big=$((nctx * 2))
	b --ctx 128,$big --repeat 1 > "$tmp/big.json" 2> "$tmp/big.err"; rc=$?
	is "$rc" 0 "--ctx $big beyond the model's $nctx runs (clipped)"
	contains "$(cat "$tmp/big.err")" "--ctx $big clipped to the model's context $nctx" \
		 "... with a warning naming both lengths"
	is "$(json_num kv_bytes < "$tmp/big.json")" $((2 * 5 * 4 * 8 * 4 * nctx)) \
	   "... and kv_bytes at the model's context"
	contains "$(cat "$tmp/big.json")" "\"prefill_tps_$nctx\":" "... reported as ctx $nctx"
	is "$(json_num kv_ctx < "$tmp/big.json")" "$nctx" "... and kv_ctx is $nctx"

	"$S" bench "$model" --repeat 1 --gen 4 --ctx 32 --format csv > "$tmp/c.csv" 2>&1; rc=$?
	is "$rc" 0 "--format csv exits 0"
	is "$(wc -l < "$tmp/c.csv" | tr -d ' ')" 2 "... header and one row"
	"$S" bench "$model" --repeat 1 --gen 4 --ctx 32 > "$tmp/t.txt" 2>&1; rc=$?
	is "$rc" 0 "text format exits 0"
	is "$(awk '$1 == "kv_bytes:" { print $2 }' "$tmp/t.txt")" $((2 * 5 * 4 * 8 * 4 * 32)) "... and prints kv_bytes"
	is "$(grep -c ETA "$tmp/t.txt")" 0 "... with no progress line when stderr is not a terminal"
	if command -v script > /dev/null 2>&1; then
		script -qc "'$S' bench '$model' --repeat 2 --gen 4 --ctx 32 --no-store" /dev/null > "$tmp/tty.txt"
		contains "$(tr '\r' '\n' < "$tmp/tty.txt" | grep '^.*bench ')" "ETA" \
			"on a terminal, bench shows its progress with an ETA"
		script -qc "'$S' eval '$model' --task 'ppl:$STRATA_SHARED/data/text/tinystories-valid-1000.txt' --ctx 64 --max-tokens 500 --no-store" /dev/null > "$tmp/ttye.txt"
		contains "$(cat "$tmp/ttye.txt")" "ETA" "... and eval too"
		contains "$(cat "$tmp/ttye.txt")" "/500 tokens" "... counting its tokens"
		if need hs data/mc/hellaswag/hellaswag_val_full.txt; then
			script -qc "'$S' eval '$model' --task hellaswag --limit 40 --no-store" /dev/null > "$tmp/ttym.txt"
			contains "$(tr '\r' '\n' < "$tmp/ttym.txt" | grep 'hellaswag .*ETA' | tail -1)" "40/40 items" \
				"... and a multiple-choice eval counts its items"
		fi
	fi
	b --gen 0 --ctx 16 > "$tmp/g0.json" 2>&1; rc=$?
	is "$rc" 0 "--gen 0 exits 0"
	is "$(grep -c decode_tps "$tmp/g0.json")" 0 "... and reports no decode speed"
	is "$(json_num gen < "$tmp/g0.json")" 0 "... with gen 0"
	"$S" bench /nonexistent.gguf > /dev/null 2> "$tmp/nf.err"; rc=$?
	is "$rc" 1 "a missing model exits 1"
	contains "$(cat "$tmp/nf.err")" "/nonexistent.gguf" "... naming the file"

	# every measurement is stored; --cached reads the newest back
	db="$tmp/bench.db"; rm -f "$db"*
	"$S" bench "$model" --db "$db" --mask 'attn=0-1' --repeat 1 --gen 4 --ctx 32,64 --format json > "$tmp/m1.json" 2>/dev/null
	is "$?" 0 "bench with --db"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM benches" --format tsv | tail -1)" 1 "... the measurement is stored"
	is "$("$S" sql --db "$db" "SELECT value FROM bench_list WHERE metric = 'kv_bytes' AND ctx = 64" --format tsv | tail -1)" \
		"$(json_num kv_bytes < "$tmp/m1.json")" "... with its KV bytes"
	is "$("$S" sql --db "$db" "SELECT mask || ' ' || settings FROM benches" --format tsv | tail -1)" \
		"attn=0-1;mlp= ctx=32,64;gen=4;repeat=1;threads=$(json_num threads < "$tmp/m1.json")" "... keyed by mask and settings"
	"$S" bench "$model" --db "$db" --mask 'attn=0-1' --repeat 1 --gen 4 --ctx 32,64 --format json --cached > "$tmp/m2.json" 2>"$tmp/m2.err"
	contains "$(cat "$tmp/m2.err")" "from the store" "--cached reads it back"
	is "$(json_num prefill_tps_64 < "$tmp/m2.json")" "$(json_num prefill_tps_64 < "$tmp/m1.json")" "... with the stored figures"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM benches" --format tsv | tail -1)" 1 "... and measures nothing new"
	"$S" bench "$model" --db "$db" --mask 'attn=0-1' --repeat 1 --gen 4 --ctx 32 --cached --format json > /dev/null 2>"$tmp/m3.err"
	is "$(cat "$tmp/m3.err")" "" "--cached with other contexts measures"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM benches" --format tsv | tail -1)" 2 "... and stores it"
	"$S" bench "$model" --db "$db" --repeat 1 --gen 4 --ctx 32 --no-store > /dev/null 2>&1
	is "$("$S" sql --db "$db" "SELECT count(*) FROM benches" --format tsv | tail -1)" 2 "--no-store stores nothing"
fi
done_testing
