#!/bin/sh
# cli: the strata binary end to end on the shared stories260K model:
# exit statuses, info for the three formats, greedy generation and
# perplexity against the golden files, errors that name the subject.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/cli"
rm -rf "$tmp" && mkdir -p "$tmp"

# json_num KEY: the number after "KEY": in the JSON on stdin
json_num() { sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p"; }
# close A B RELTOL: |A-B| <= RELTOL*|B|
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(a != "" && d <= t * m) }'; }

out=$("$S" --help); rc=$?
is "$rc" 0 "strata --help exits 0"
contains "$out" "generate" "help lists generate"
out=$("$S" synth --help); rc=$?
is "$rc" 0 "strata synth --help exits 0"
contains "$out" "baichuan-1b       32 layers, d 1536, 12 heads, 12 kv heads, ffn 4096, vocab 125696, baichuan, 1.29B params" \
	"synth --help lists the shapes with their parameter counts"
"$S" frobnicate >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 2 "unknown command exits 2"
contains "$(cat "$tmp/err")" "unknown command 'frobnicate'" "unknown command is named"
case $(cat "$tmp/err") in *"did you mean"*) r=suggested ;; *) r=none ;; esac
is "$r" none "no suggestion for a word far from every command"
"$S" calibrat >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 2 "mistyped command exits 2"
contains "$(cat "$tmp/err")" "unknown command 'calibrat'; did you mean 'calibrate'?" "mistyped command: did you mean"
"$S" exprot >/dev/null 2>"$tmp/err"
contains "$(cat "$tmp/err")" "did you mean 'export'?" "transposed letters: did you mean"
"$S" help evl >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 2 "help on a mistyped command exits 2"
contains "$(cat "$tmp/err")" "did you mean 'eval'?" "help on a mistyped command: did you mean"
"$S" </dev/null >"$tmp/out" 2>"$tmp/err"; rc=$?
is "$rc" 2 "strata alone without a terminal exits 2 (no command ran)"
contains "$(cat "$tmp/err")" "usage: strata" "... with the usage on stderr"
is "$(wc -c < "$tmp/out" | tr -d ' ')" 0 "... and nothing on stdout"
"$S" ppl --ctx abc a b >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 2 "bad option value exits 2"
contains "$(cat "$tmp/err")" "--ctx expects an integer" "bad option value is explained"
"$S" info "$tmp/nope.gguf" >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 1 "missing model exits 1"
contains "$(cat "$tmp/err")" "nope.gguf" "missing model error names the file"

printf 'GGUF\003\000\000\000\001' > "$tmp/trunc.gguf"
"$S" info "$tmp/trunc.gguf" >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 1 "truncated GGUF exits 1"
contains "$(cat "$tmp/err")" "trunc.gguf" "truncated GGUF error names the file"

if need gguf models/stories260K/stories260K.gguf && need bin models/stories260K/stories260K.bin &&
   need hf models/stories260K/hf/config.json && need text data/text/tinystories-valid-1000.txt &&
   need greedy golden/stories260K-greedy.json && need pplg golden/stories260K-ppl-tinystories-ctx256-8192tok.json; then
	hf=$(dirname "$hf")
	for m in "$gguf" "$bin" "$hf"; do
		out=$("$S" info "$m" --format json); rc=$?
		is "$rc" 0 "info $(basename "$m") exits 0"
		is "$(echo "$out" | json_num n_layer)" 5 "info $(basename "$m"): 5 layers"
		is "$(echo "$out" | json_num d_model)" 64 "info $(basename "$m"): d_model 64"
		is "$(echo "$out" | json_num n_head_kv)" 4 "info $(basename "$m"): 4 kv heads"
		is "$(echo "$out" | json_num d_ff)" 172 "info $(basename "$m"): ffn 172"
		is "$(echo "$out" | json_num n_vocab)" 512 "info $(basename "$m"): vocab 512"
		echo "$out" | json_num params >> "$tmp/params"
	done
	is "$(sort -u "$tmp/params" | wc -l)" 1 "all three forms have the same parameter count"
	out=$("$S" info "$gguf" --format json)
	contains "$out" '"rms_eps": 1e-05,' "json numbers in their shortest exact form (1e-05, not 1.0000000000000001e-5)"
	contains "$out" '"rope_theta": 10000.0,' "a whole real stays a real in json"
	out=$("$S" info "$gguf" --format csv)
	is "$(echo "$out" | head -1 | cut -d, -f1-3)" "path,format,arch" "info csv header"
	is "$(echo "$out" | sed -n 2p | cut -d, -f2-3)" "gguf,llama" "info csv row"
	out=$("$S" info "$gguf")
	contains "$out" "n_layer:" "info text has 'key: value' lines"

	want=$(tr -d ' \n' < "$greedy" | sed 's/.*"greedy_ids":\[\([0-9,]*\)\].*/\1/')
	for m in "$gguf" "$bin" "$hf"; do
		got=$("$S" generate "$m" -p "Once upon a time" -n 40 --format json | tr -d ' ' |
		      sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/')
		is "$got" "$want" "greedy ids of $(basename "$m") equal the golden 40 tokens"
	done
	out=$("$S" generate "$gguf" -p "Once upon a time" -n 40)
	contains "$out" "Once upon a time, there was a little girl named Lily. She loved to play outside in the park." "greedy text"
	a=$("$S" generate "$gguf" -p "Once" -n 30 --temp 1 --seed 7)
	b=$("$S" generate "$gguf" -p "Once" -n 30 --temp 1 --seed 7)
	is "$a" "$b" "sampling with a seed is reproducible"

	wppl=$(json_num ppl < "$pplg"); wnll=$(json_num nll < "$pplg")
	for m in "$gguf" "$bin" "$hf"; do
		for t in 1 2; do
			out=$("$S" ppl "$m" "$text" --ctx 256 --max-tokens 8192 --threads $t --format json); rc=$?
			is "$rc" 0 "ppl $(basename "$m") threads $t exits 0"
			is "$(echo "$out" | json_num tokens)" 8192 "ppl $(basename "$m") threads $t scores 8192 tokens"
			got=$(echo "$out" | json_num ppl)
			ok "ppl $(basename "$m") threads $t = $got (golden $wppl, 1e-4 relative)" close "$got" "$wppl" 1e-4
			got=$(echo "$out" | json_num nll)
			ok "nll $(basename "$m") threads $t = $got (golden $wnll)" close "$got" "$wnll" 1e-4
		done
	done
	out=$("$S" ppl "$gguf" "$text" --ctx 256 --max-tokens 2048 --mask 'attn=0;mlp=4' --format csv)
	is "$(echo "$out" | head -1)" "tokens,nll,ppl,nll_stderr,ctx,mask" "ppl csv header"
	contains "$(echo "$out" | sed -n 2p)" ',attn=0;mlp=4' "ppl csv row carries the canonical mask"
	base=$("$S" ppl "$gguf" "$text" --ctx 256 --max-tokens 2048 --format json | json_num ppl)
	ev=$("$S" eval "$gguf" --task "ppl:$text" --ctx 256 --max-tokens 2048 --no-store --format csv 2>/dev/null |
	    awk -F, '$2 == "ppl" { print $3 }')
	is "$ev" "$base" "strata eval prints the same shortest form as strata ppl"
	base_csv=$("$S" ppl "$gguf" "$text" --ctx 256 --max-tokens 2048 --format csv | sed -n 2p | cut -d, -f3)
	is "$base_csv" "$base" "csv and json print the same shortest exact number"
	ok "... which reads back as the double printed with 17 digits" awk -v a="$base" -v b="$(awk -v v="$base" 'BEGIN { printf "%.17g", v }')" 'BEGIN { exit !(a + 0 == b + 0) }'
	dropped=$(echo "$out" | sed -n 2p | cut -d, -f3)
	ok "dropping attn 0 and mlp 4 raises ppl ($base -> $dropped)" awk -v a="$base" -v b="$dropped" 'BEGIN { exit !(b > a) }'
	"$S" ppl "$gguf" "$text" --mask 'attn=9' >/dev/null 2>"$tmp/err"; rc=$?
	is "$rc" 2 "out-of-range mask exits 2"
	contains "$(cat "$tmp/err")" "position 6" "mask error gives the position"
	"$S" ppl "$gguf" "$tmp/none.txt" >/dev/null 2>"$tmp/err"; rc=$?
	is "$rc" 1 "missing text file exits 1"
	contains "$(cat "$tmp/err")" "none.txt" "missing text file is named"
fi

"$S" synth "$tmp/tiny.gguf" --shape tiny --dtype q8_0; rc=$?
is "$rc" 0 "synth tiny q8_0 exits 0"
out=$("$S" info "$tmp/tiny.gguf" --format json)
is "$(echo "$out" | json_num n_layer)" 2 "synthetic model has 2 layers"
contains "$out" '"dtype": "q8_0"' "synthetic model's weights are q8_0"
"$S" synth "$tmp/x.gguf" --shape nope >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 2 "unknown synth shape exits 2"
ok "no file left behind by a failed synth" [ ! -e "$tmp/x.gguf" ]
"$S" generate "$tmp/tiny.gguf" -p "the" -n 5 >/dev/null; rc=$?
is "$rc" 0 "generate runs on a synthetic q8_0 model"
done_testing
