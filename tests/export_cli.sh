#!/bin/sh
# export_cli: `strata export` on the shared stories260K model (5 layers,
# GGUF and Hugging Face forms): the report, perplexity of each export
# equal to the masked original's (strata ppl, same digits), the deci
# architecture for attention/MLP drops, LLM-Drop's drop lists in
# config.json, KV bytes of the export equal to the masked original's
# (strata bench), a mask taken from a plan of a stored calibration run
# (equal to strata plan's), the export recorded in the store, a file
# size limit (ulimit -f) leaving nothing at PATH, --force, and bad input
# (mask out of range, unknown format, bogus dtype, missing --out,
# cross-format export) refused with clear messages.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/export_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
export STRATA_DB="$tmp/store.db"

json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
json_str() { grep -o "\"$1\": *\"[^\"]*\"" | head -1 | sed 's/.*: *"//; s/"$//'; }

if need model models/stories260K/stories260K.gguf && need hf models/stories260K/hf &&
   need text data/text/tinystories-valid-1000.txt; then
	ppl() { "$S" ppl "$@" "$text" --max-tokens 300 --format json | json_num ppl; }

	"$S" export "$model" --mask 'attn=1,3;mlp=2,3' --out "$tmp/d.gguf" --format gguf \
		--format json > "$tmp/d.json" 2> "$tmp/d.err"
	is "$?" 0 "export gguf with attention and MLP drops exits 0"
	is "$(json_str arch < "$tmp/d.json")" deci "the report says deci"
	is "$(json_num n_layer < "$tmp/d.json")" 4 "block 3 (both sites) removed: 4 layers"
	is "$(json_str mask < "$tmp/d.json")" "attn=1,3;mlp=2-3" "the mask in canonical form"
	contains "$(cat "$tmp/d.err")" "1 layer(s) keep attention but lose the MLP: written with an all-zero FFN of width 1 (1024 bytes" \
		 "a note: layer 2 (attention kept, MLP dropped) gets a zero FFN of 4 x 64 floats for llama.cpp"
	ok "the file exists" test -f "$tmp/d.gguf"
	is "$(ppl "$tmp/d.gguf")" "$(ppl "$model" --mask 'attn=1,3;mlp=2,3')" \
	   "ppl of the deci export = ppl of the masked original"
	is "$("$S" info "$tmp/d.gguf" --format json | json_str arch)" deci "strata info: arch deci"

	"$S" export "$model" --mask 'block=1,3' --out "$tmp/b.gguf" --format json > "$tmp/b.json"
	is "$?" 0 "export gguf with block drops exits 0"
	is "$(json_str arch < "$tmp/b.json")" llama "block drops keep llama"
	is "$(json_num n_layer < "$tmp/b.json")" 3 "3 layers left"
	is "$(ppl "$tmp/b.gguf")" "$(ppl "$model" --mask 'block=1,3')" \
	   "ppl of the block export = ppl of the masked original"
	# stories260K: per layer attn 64 + 64*64*2 + 64*32*2 = 12352, mlp 64 + 3*64*172 = 33088 (F32)
	is "$(json_num params_in < "$tmp/b.json")" 260032 "params_in (stories260K)"
	is "$(json_num params < "$tmp/b.json")" $((260032 - 2 * (12352 + 33088))) \
	   "params = params_in - 2 blocks of 12352 + 33088"
	is "$("$S" info "$tmp/b.gguf" --format json | json_num params)" \
	   "$(json_num params < "$tmp/b.json")" "strata info of the export agrees"
	bi=$(json_num bytes_in < "$tmp/b.json"); bo=$(json_num bytes < "$tmp/b.json")
	ok "the file is smaller by at least the dropped bytes ($bi -> $bo)" \
	   test $((bi - bo)) -ge $((2 * 4 * (12352 + 33088)))
	kv() { "$S" bench "$@" --ctx 64 --gen 0 --repeat 1 --no-store --format json | json_num kv_bytes; }
	is "$(kv "$tmp/d.gguf")" "$(kv "$model" --mask 'attn=1,3;mlp=2,3')" \
	   "KV bytes of the deci export = those of the masked original"
	is "$(kv "$tmp/d.gguf")" $((2 * 3 * 4 * 8 * 4 * 64)) "3 attention layers of KV at ctx 64"
	is "$("$S" bench "$tmp/d.gguf" --ctx 64 --gen 0 --repeat 1 --no-store --format json | json_num attn_kept)" \
	   3 "strata bench of the export: attn_kept 3 (its absent sites count as dropped)"

	"$S" export "$hf" --mask 'attn=1,3;mlp=2,3' --out "$tmp/h" --format hf --format json \
		--dtype f32 > "$tmp/h.json" 2> "$tmp/h.err"
	is "$?" 0 "export hf exits 0"
	cfg=$(tr -d ' \n' < "$tmp/h/config.json")
	# block 3 is removed whole, layer 4 becomes 3: attention gone from 1, MLP from 2
	contains "$cfg" '"drop_attn_list":[1]' "config.json: drop_attn_list [1]"
	contains "$cfg" '"drop_mlp_list":[2]' "config.json: drop_mlp_list [2]"
	contains "$cfg" '"num_hidden_layers":4' "config.json: 4 layers"
	ok "tokenizer.json copied" cmp -s "$hf/tokenizer.json" "$tmp/h/tokenizer.json"
	is "$(ppl "$tmp/h")" "$(ppl "$hf" --mask 'attn=1,3;mlp=2,3')" \
	   "ppl of the hf export = ppl of the masked original"

	# modes follow the umask, as for any file a user writes (not 0700)
	mode() { stat -c %a "$1"; }
	for um in 022 077 002; do
		(umask $um && "$S" export "$model" --mask 'attn=1' --out "$tmp/u$um" --format hf \
			--no-store > /dev/null && "$S" export "$model" --mask 'attn=1' \
			--out "$tmp/u$um.gguf" --no-store > /dev/null)
		d=$(printf '%o' $((0777 & ~0$um))) f=$(printf '%o' $((0666 & ~0$um)))
		is "$(mode "$tmp/u$um")" "$d" "umask $um: the hf directory is $d"
		is "$(mode "$tmp/u$um/config.json") $(mode "$tmp/u$um/model.safetensors") $(mode "$tmp/u$um/tokenizer.json")" \
		   "$f $f $f" "umask $um: config.json, model.safetensors and tokenizer.json are $f"
		is "$(mode "$tmp/u$um.gguf")" "$f" "umask $um: the gguf file is $f"
	done

	# a GGUF source as hf: tokenizer.json converted, q/k rows reordered
	"$S" export "$model" --mask 'attn=1,3;mlp=2,3' --out "$tmp/g2h" --format hf --no-store \
		> /dev/null
	is "$?" 0 "export of the gguf model as hf exits 0"
	tokdesc() { "$S" info "$1" --format json | grep -o '"tokenizer": *"[^"]*"'; }
	is "$(tokdesc "$tmp/g2h")" "$(tokdesc "$hf")" \
	   "strata info describes its tokenizer as the HF original's"
	is "$(ppl "$tmp/g2h")" "$(ppl "$hf" --mask 'attn=1,3;mlp=2,3')" \
	   "ppl of the gguf->hf export = ppl of the masked HF original"

	# the store has both
	"$S" sql "select format || ' ' || mask || ' ' || params from exports order by id" \
		--format csv > "$tmp/sql.csv"
	contains "$(cat "$tmp/sql.csv")" "gguf attn=1,3;mlp=2-3" "the store records the gguf export"
	contains "$(cat "$tmp/sql.csv")" "hf attn=1,3;mlp=2-3" "the store records the hf export"
	# writing a path again (relative, from another directory) replaces its record
	n0=$("$S" sql "select count(*) from exports" --format tsv | tail -1)
	(cd "$tmp" && "$S" export "$model" --mask attn=2 --out again.gguf > /dev/null &&
	 "$S" export "$model" --mask attn=3 --out ./again.gguf --force > /dev/null)
	is "$?" 0 "an export written again with --force"
	is "$("$S" sql "select count(*) from exports" --format tsv | tail -1)" $((n0 + 1)) \
		"... has one record, not one per write"
	is "$("$S" sql "select mask || ' ' || path from exports where path like '%again.gguf'" --format tsv | tail -1)" \
		"attn=3;mlp= $(cd "$tmp" && pwd -P)/again.gguf" "... the newest, under its absolute path"
	# on a terminal the progress line says what the last phases do
	if command -v script > /dev/null 2>&1; then
		script -qc "'$S' export '$model' --mask attn=3 --out '$tmp/again.gguf' --force" /dev/null \
			| tr '\r' '\n' > "$tmp/tty.txt"
		contains "$(cat "$tmp/tty.txt")" "export: hashing" "on a terminal, export names the hashing phase"
		contains "$(cat "$tmp/tty.txt")" "export: recording in the store" "... and the recording"
	fi

	# a mask from a plan of a stored run
	"$S" calibrate "$model" "$text" --samples 4 --seq-len 64 --format json > "$tmp/cal.json" 2>/dev/null
	run=$(json_num run < "$tmp/cal.json")
	ok "calibration run stored ($run)" test -n "$run"
	want=$("$S" plan "$run" --method attn -n 2 --format json | json_str mask)
	"$S" export --run "$run" --method attn -n 2 --out "$tmp/p.gguf" --format json > "$tmp/p.json"
	is "$?" 0 "export --run exits 0"
	is "$(json_str mask < "$tmp/p.json")" "$want" "export --run uses strata plan's mask ($want)"
	is "$(json_str model < "$tmp/p.json")" "$(cd "$(dirname "$model")" && pwd -P)/$(basename "$model")" \
	   "the run's model is the default (its canonical path, as stored)"

	# a file size limit: the export fails and leaves nothing at PATH
	(ulimit -f 200; "$S" export "$model" --mask attn=1 --out "$tmp/cut.gguf" --no-store) \
		> /dev/null 2> "$tmp/cut.err"
	is "$?" 1 "export under ulimit -f 200 exits 1"
	contains "$(cat "$tmp/cut.err")" "cut.gguf" "the error names the file"
	ok "nothing at PATH" test ! -e "$tmp/cut.gguf"
	ok "no temporary left" test -z "$(ls "$tmp" | grep cut.gguf)"
	(ulimit -f 200; "$S" export "$hf" --mask attn=1 --out "$tmp/cuthf" --format hf --no-store) \
		> /dev/null 2>&1
	is "$?" 1 "hf export under ulimit -f 200 exits 1"
	ok "no directory at PATH, no temporary" test -z "$(ls "$tmp" | grep cuthf)"

	# an existing file
	"$S" export "$model" --mask attn=1 --out "$tmp/b.gguf" --no-store > /dev/null 2> "$tmp/ex.err"
	is "$?" 1 "an existing PATH is refused"
	contains "$(cat "$tmp/ex.err")" "already exists" "... saying it exists"
	"$S" export "$model" --mask attn=1 --out "$tmp/b.gguf" --force --no-store > /dev/null
	is "$?" 0 "--force replaces it"
	is "$("$S" info "$tmp/b.gguf" --format json | json_num n_layer)" 5 "... with the new export"

	# bad input
	"$S" export "$model" --mask 'attn=7' --out "$tmp/x.gguf" 2> "$tmp/e1"
	is "$?" 2 "a mask out of range is a usage error"
	contains "$(cat "$tmp/e1")" "out of range" "... saying it is out of range"
	"$S" export "$model" --mask attn=1 --out "$tmp/x" --format onnx 2> "$tmp/e2"
	is "$?" 2 "an unknown format is a usage error"
	contains "$(cat "$tmp/e2")" "unknown format 'onnx'" "... naming it"
	"$S" export "$model" --mask attn=1 --out "$tmp/x" --dtype bogus 2> "$tmp/e3"
	is "$?" 2 "--dtype bogus is a usage error"
	contains "$(cat "$tmp/e3")" "unknown dtype 'bogus'" "... naming it"
	"$S" export "$model" --mask attn=1 2> "$tmp/e4"
	is "$?" 2 "no --out is a usage error"
	"$S" export "$hf" --mask attn=1 --out "$tmp/x.gguf" 2> "$tmp/e5"
	is "$?" 1 "an hf source cannot become gguf"
	contains "$(cat "$tmp/e5")" "GGUF form" "... the message says why"
	"$S" export "$hf" --mask attn=1 --out "$tmp/x" --format hf --dtype q8_0 2> "$tmp/e6"
	is "$?" 2 "q8_0 for hf is a usage error"
	ok "none of the refused exports wrote anything" test ! -e "$tmp/x" -a ! -e "$tmp/x.gguf"
fi
done_testing
