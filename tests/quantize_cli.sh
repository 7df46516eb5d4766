#!/bin/sh
# quantize_cli: `strata quantize` on the shared stories260K model.
# Calibration on the first half of tinystories-valid-1000.txt, every
# figure on the second half (held-out text the calibration never saw):
# at 4 bits (q4_0) GPTQ and AWQ are closer to the unquantized model than
# plain rounding (KL from it, strata ppl --ref; AWQ's perplexity lower
# too), at 8 bits GPTQ and AWQ too, and
# 8 bits closer than 4; the files load back in strata (info, ppl); a
# drop mask gives a deci file measured against the masked original; the
# settings are in the file's metadata and the file in the store's
# exports; synthetic qwen3, olmo2, gemma2 and phi3 shapes quantize with the
# same ordering and AWQ's folding keeps their function; a cancel leaves
# nothing; bad settings and too little calibration data are refused
# naming the format or the layer.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/quantize_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
export STRATA_DB="$tmp/store.db"

json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
json_str() { grep -o "\"$1\": *\"[^\"]*\"" | head -1 | sed 's/.*: *"//; s/"$//'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

need model models/stories260K/stories260K.gguf || { done_testing; exit $?; }
need text data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
lines=$(wc -l < "$text")
head -n $((lines / 2)) "$text" > "$tmp/calib.txt"
tail -n +$((lines / 2 + 1)) "$text" > "$tmp/held.txt"
cal="--data $tmp/calib.txt --samples 64 --seq-len 256"

# q NAME MASK ARGS...: quantize into $tmp/NAME.gguf
q() {
	name=$1 mk=$2
	shift 2
	"$S" quantize "$model" --mask "$mk" --out "$tmp/$name.gguf" --format json "$@" \
		> "$tmp/$name.json" 2> "$tmp/$name.err"
}
# kl NAME MASK: KL(original under MASK || NAME) per token of the held-out text
kl() {
	"$S" ppl "$tmp/$1.gguf" "$tmp/held.txt" --ctx 256 --max-tokens 8192 --ref "$model" \
		--ref-mask "$2" --format json 2> /dev/null > "$tmp/$1.ppl"
	json_num kl_mean < "$tmp/$1.ppl"
}

for mk in "" "attn=3;mlp=1"; do
	tag=$(echo "m$mk" | tr -c 'a-z0-9\n' '_')
	for b in 4 8; do
		q "rtn$b$tag" "$mk" --quant rtn --bits $b
		is "$?" 0 "rtn $b-bit '$mk' exits 0"
		q "gptq$b$tag" "$mk" --quant gptq --bits $b --act-order $cal
		is "$?" 0 "gptq $b-bit '$mk' exits 0"
		q "awq$b$tag" "$mk" --quant awq --bits $b $cal
		is "$?" 0 "awq $b-bit '$mk' exits 0"
		eval "r$b=\$(kl rtn$b$tag \"\$mk\") g$b=\$(kl gptq$b$tag \"\$mk\") a$b=\$(kl awq$b$tag \"\$mk\")"
	done
	echo "# '$mk' KL from the original: rtn4 $r4 gptq4 $g4 awq4 $a4; rtn8 $r8 gptq8 $g8 awq8 $a8"
	[ -n "$mk" ] || { r4_m=$r4 g4_m=$g4; }
	ok "'$mk' 4-bit: GPTQ's KL $g4 below RTN's $r4" lt "$g4" "$r4"
	ok "'$mk' 4-bit: AWQ's KL $a4 below RTN's $r4" lt "$a4" "$r4"
	ok "'$mk' 8-bit: GPTQ's KL $g8 below RTN's $r8" lt "$g8" "$r8"
	ok "'$mk' 8-bit: AWQ's KL $a8 below RTN's $r8" lt "$a8" "$r8"
	for b in 4 8; do
		pa=$(json_num ppl < "$tmp/awq$b$tag.ppl") pr=$(json_num ppl < "$tmp/rtn$b$tag.ppl")
		ok "'$mk' $b-bit: AWQ's held-out perplexity $pa below RTN's $pr" lt "$pa" "$pr"
	done
	ok "'$mk' 8 bits closer than 4 (RTN $r8 < $r4)" lt "$r8" "$r4"
	ok "'$mk' the 4-bit GPTQ file loads: a finite perplexity" \
		lt "$(json_num ppl < "$tmp/gptq4$tag.ppl")" 1e9
	is "$(json_num quantized < "$tmp/gptq4$tag.json")" \
		"$([ -z "$mk" ] && echo 30 || echo 24)" "'$mk' q/k/v/o/gate/up of every kept site in q4_0"
	is "$(json_num f16_fallback < "$tmp/gptq4$tag.json")" \
		"$([ -z "$mk" ] && echo 5 || echo 4)" "'$mk' ffn_down (rows of 172) written F16"
	contains "$(cat "$tmp/gptq4$tag.err")" "written F16" "'$mk' the F16 fallback is said"
done
is "$(json_str arch < "$tmp/gptq4mattn_3_mlp_1.json")" deci "attention/MLP drops give deci"
is "$(json_num norms_rescaled < "$tmp/awq4m.json")" 10 "AWQ folded scales into 10 norms"
is "$(json_num norms_rescaled < "$tmp/gptq4m.json")" 0 "GPTQ leaves the norms"
info=$("$S" info "$tmp/gptq4m.gguf" --format json 2>&1)
contains "$info" '"arch": "llama"' "strata info reads the 4-bit file"
contains "$(strings "$tmp/gptq4m.gguf" | head -c 20000)" "strata.quantize.settings" \
	"the settings are in the file's metadata"
lt "$(stat -c %s "$tmp/rtn4m.gguf")" "$(stat -c %s "$tmp/rtn8m.gguf")" &&
lt "$(stat -c %s "$tmp/rtn8m.gguf")" "$(stat -c %s "$model")"
is "$?" 0 "q4_0 file < q8_0 file < the F32 source"
nrec=$("$S" sql "SELECT count(*) FROM exports WHERE dtype = 'q4_0'" --format csv 2>/dev/null | tail -1)
ok "the 4-bit files are recorded in the store's exports ($nrec)" [ "${nrec:-0}" -eq 6 ]

# q4_1 (a scale and an offset per block): GPTQ and AWQ below plain
# rounding into q4_1, and q4_1's rounding below q4_0's
for qm in rtn gptq awq; do
	q "${qm}q41" "" --quant $qm --type q4_1 $([ $qm = rtn ] || echo "$cal")
	is "$?" 0 "$qm q4_1 exits 0"
	eval "k41_$qm=\$(kl ${qm}q41 '')"
done
echo "# q4_1 KL from the original: rtn $k41_rtn gptq $k41_gptq awq $k41_awq"
ok "q4_1: GPTQ's KL $k41_gptq below RTN's $k41_rtn" lt "$k41_gptq" "$k41_rtn"
ok "q4_1: AWQ's KL $k41_awq below RTN's $k41_rtn" lt "$k41_awq" "$k41_rtn"
ok "q4_1's plain rounding $k41_rtn below q4_0's $r4_m" lt "$k41_rtn" "$r4_m"
is "$(json_str dtype < "$tmp/gptqq41.json")" q4_1 "the report names q4_1"
# GPTQ's scale search (the default) against the format's rule
q gptq4ns "" --quant gptq --bits 4 --act-order --no-search $cal
is "$?" 0 "gptq --no-search exits 0"
kns=$(kl gptq4ns '')
echo "# q4_0 GPTQ KL: scale search $g4_m, the format's rule $kns"
ok "q4_0: GPTQ with the scale search ($g4_m) below without it ($kns)" lt "$g4_m" "$kns"
contains "$(strings "$tmp/gptq4ns.gguf" | head -c 20000)" "act_order no_search" \
	"--no-search is in the file's settings"
"$S" quantize "$model" --quant awq --no-search $cal --out "$tmp/e.gguf" 2> "$tmp/e.err"
is "$?" 2 "--no-search with awq: usage error"
"$S" quantize "$model" --type q4_1 --bits 8 --out "$tmp/e.gguf" 2> "$tmp/e.err"
is "$?" 2 "--type q4_1 --bits 8: usage error"

# Hugging Face directories (format/hfquant.h): AutoGPTQ's layout from
# q4_0 (sym) and q4_1 (integer zero points), AutoAWQ's GEMM layout;
# strata loads them back (dequantized at load) with the logits of the
# GGUF file quantized the same way: KL from it ~1e-12 (f32 sums in a
# different order) for q4_0, and for q4_1 within the fp16 rounding of
# the GGUF block's offset m = -d z (the hf file holds z exactly).
hq() { # NAME GGUF-TWIN MASK ARGS...: quantize into $tmp/NAME, KL from the twin
	name=$1 twin=$2 mk=$3
	shift 3
	"$S" quantize "$model" --mask "$mk" --format hf --out "$tmp/$name" --no-store --format json \
		"$@" > "$tmp/$name.json" 2> "$tmp/$name.err" || sed 's/^/# /' "$tmp/$name.err"
	"$S" ppl "$tmp/$name" "$tmp/held.txt" --ctx 256 --max-tokens 4096 --compute f32 \
		--ref "$tmp/$twin.gguf" --format json 2> /dev/null | json_num kl_mean
}
kr=$(hq hrtn rtn4m "" --quant rtn)
ok "hf gptq from rtn q4_0: the logits of the q4_0 GGUF (KL $kr)" lt "${kr:-1}" 1e-9
kd=$(hq hrtnd rtn4mattn_3_mlp_1 "attn=3;mlp=1" --quant rtn)
ok "hf gptq with drops (LLM-Drop's config): the logits of the deci GGUF (KL $kd)" lt "${kd:-1}" 1e-9
ka=$(hq hawq awq4m "" --quant awq $cal)
ok "hf awq (GEMM) from awq q4_0: the logits of the q4_0 GGUF (KL $ka)" lt "${ka:-1}" 1e-9
q gptq41iz "" --quant gptq --type q4_1 --int-zero $cal
kg=$(hq hgptq41 gptq41iz "" --quant gptq --type q4_1 $cal)
ok "hf gptq from q4_1: the q4_1 --int-zero GGUF's logits up to its fp16 offsets (KL $kg)" \
	lt "${kg:-1}" 1e-4
cfg=$(tr -d ' \n' < "$tmp/hrtn/config.json")
contains "$cfg" '"quant_method":"gptq"' "config.json: quant_method gptq"
contains "$cfg" '"sym":true' "... sym from q4_0"
contains "$cfg" '"checkpoint_format":"gptq"' "... AutoGPTQ's v1 checkpoint format"
contains "$(tr -d ' \n' < "$tmp/hgptq41/config.json")" '"sym":false' "... not sym from q4_1"
cfg=$(tr -d ' \n' < "$tmp/hawq/config.json")
contains "$cfg" '"quant_method":"awq"' "awq's config.json: quant_method awq"
contains "$cfg" '"version":"gemm"' "... version gemm"
is "$(json_str format < "$tmp/hawq.json")" awq "--quant awq writes the awq layout by default"
hdr=$(head -c 20000 "$tmp/hrtn/model.safetensors" | strings | head -c 20000)
contains "$hdr" 'model.layers.0.self_attn.q_proj.qweight":{"dtype":"I32","shape":[8,64]' \
	"q_proj.qweight: I32 [in/8, out]"
contains "$hdr" 'model.layers.0.self_attn.q_proj.qzeros":{"dtype":"I32","shape":[2,8]' \
	"q_proj.qzeros: I32 [groups, out/8]"
contains "$hdr" 'model.layers.0.self_attn.q_proj.g_idx":{"dtype":"I32","shape":[64]' \
	"q_proj.g_idx: I32 [in]"
contains "$(head -c 20000 "$tmp/hawq/model.safetensors" | strings)" \
	'model.layers.0.self_attn.q_proj.qweight":{"dtype":"I32","shape":[64,8]' \
	"awq q_proj.qweight: I32 [in, out/8]"
"$S" quantize "$model" --bits 8 --format hf --out "$tmp/e.hf" 2> "$tmp/e.err"
is "$?" 2 "--format hf --bits 8: usage error"
"$S" quantize "$model" --hf-format awq --out "$tmp/e.gguf" 2> "$tmp/e.err"
is "$?" 2 "--hf-format without --format hf: usage error"

# other families (synthetic): AWQ's folding keeps the function (q8_0 next
# to it), GPTQ and AWQ below plain rounding at 4 bits -- q/k norms
# (qwen3), no pre-norms (olmo2: no scales for q/k/v, gate/up), Gemma 2's
# norms, GeGLU and soft-caps, Phi-3's fused q/k/v and gate/up (quantized
# as their views, written back fused)
head -c 20000 "$tmp/held.txt" > "$tmp/held-short.txt"
for sh in qwen3-tiny olmo2-tiny gemma2-tiny phi3-tiny; do
	"$S" synth "$tmp/$sh.gguf" --shape "$sh" > /dev/null 2>&1
	for qa in "rtn 4" "gptq 4" "awq 4" "awq 8"; do
		set -- $qa
		"$S" quantize "$tmp/$sh.gguf" --quant "$1" --bits "$2" --data "$tmp/calib.txt" \
			--samples 16 --seq-len 128 --out "$tmp/$sh-$1$2.gguf" --no-store \
			> /dev/null 2>&1
		eval "k_$1$2=\$(\"\$S\" ppl \"\$tmp/\$sh-\$1\$2.gguf\" \"\$tmp/held-short.txt\" --ctx 128 \
			--ref \"\$tmp/\$sh.gguf\" --format json 2> /dev/null | json_num kl_mean)"
	done
	echo "# $sh KL: rtn4 $k_rtn4 gptq4 $k_gptq4 awq4 $k_awq4 awq8 $k_awq8"
	ok "$sh: GPTQ's KL $k_gptq4 below RTN's $k_rtn4" lt "$k_gptq4" "$k_rtn4"
	ok "$sh: AWQ's KL $k_awq4 below RTN's $k_rtn4" lt "$k_awq4" "$k_rtn4"
	ok "$sh: AWQ at q8_0 next to the original ($k_awq8)" lt "$k_awq8" 0.001
done

# a cancel (as Ctrl-C) after two layers leaves nothing
STRATA_TEST_CANCEL_AFTER=2 "$S" quantize "$model" --quant gptq $cal --out "$tmp/c.gguf" \
	--no-store > /dev/null 2> "$tmp/c.err"
ok "cancelled: exits nonzero" [ $? -ne 0 ]
ok "cancelled: no file and no temporary" [ -z "$(ls "$tmp" | grep '^c\.gguf')" ]

# refused
# --group 128 on a synthetic model whose widths 128 divides: one scale a
# group (test_quant checks the blocks), GPTQ closer to the original than
# plain rounding (KL), and the Hugging Face directory (group_size 128)
# read back by strata computes what the GGUF does
"$S" synth "$tmp/wide.gguf" --shape wide-tiny > /dev/null
gcal="--data $tmp/calib.txt --samples 8 --seq-len 128"
"$S" quantize "$tmp/wide.gguf" --quant rtn --group 128 --out "$tmp/w-rtn128.gguf" --no-store \
	> /dev/null 2>&1
is "$?" 0 "rtn --group 128 exits 0"
"$S" quantize "$tmp/wide.gguf" --quant gptq --group 128 $gcal --out "$tmp/w-gptq128.gguf" \
	--format json --no-store > "$tmp/w-gptq128.json" 2> /dev/null
is "$?" 0 "gptq --group 128 exits 0"
ok "the group is in the file's settings (strata.quantize.settings)" \
	grep -q -a "gptq bits=4 type=q4_0 group=128" "$tmp/w-gptq128.gguf"
# GPTQ's Hessian tiles, Cholesky blocks and row tasks are fixed in size:
# the same file for any thread count
for t in 1 3; do
	"$S" quantize "$tmp/wide.gguf" --quant gptq --group 128 $gcal --threads $t \
		--out "$tmp/w-gptq128-t$t.gguf" --no-store > /dev/null 2>&1
	ok "gptq --group 128 on $t thread(s): the same bytes as on the default threads" \
		cmp -s "$tmp/w-gptq128-t$t.gguf" "$tmp/w-gptq128.gguf"
done
wkl() {
	"$S" ppl "$tmp/$1.gguf" "$tmp/held-short.txt" --ctx 128 --max-tokens 2048 --ref "$tmp/wide.gguf" \
		--format json 2> /dev/null | json_num kl_mean
}
kr=$(wkl w-rtn128) kg=$(wkl w-gptq128)
ok "group 128: GPTQ's KL $kg below RTN's $kr" lt "$kg" "$kr"
"$S" quantize "$tmp/wide.gguf" --quant gptq --group 128 $gcal --out "$tmp/w-hf128" --format hf \
	--no-store > /dev/null 2>&1
is "$?" 0 "gptq --group 128 --format hf exits 0"
contains "$(cat "$tmp/w-hf128/config.json")" '"group_size": 128' "config.json has group_size 128"
wppl() {
	"$S" ppl "$1" "$tmp/held-short.txt" --ctx 128 --max-tokens 2048 --compute f32 --format json \
		2> /dev/null | json_num ppl
}
pg=$(wppl "$tmp/w-gptq128.gguf") ph=$(wppl "$tmp/w-hf128")
ok "group 128: the hf directory's perplexity $ph is the GGUF's $pg (within 1e-5)" \
	awk -v a="$ph" -v b="$pg" 'BEGIN { d = (a - b) / b; exit !(a > 0 && d < 1e-5 && d > -1e-5) }'
# AWQ in groups of 128: scales and clipping searched group-wise, one
# scale a group in the GGUF blocks, closer to the original than plain
# rounding in the same groups; its AutoAWQ GEMM directory (group_size
# 128) computes what the GGUF does
"$S" quantize "$tmp/wide.gguf" --quant awq --group 128 $gcal --out "$tmp/w-awq128.gguf" \
	--no-store > /dev/null 2>&1
is "$?" 0 "awq --group 128 exits 0"
ok "... the group is in the file's settings" \
	grep -q -a "awq bits=4 type=q4_0 group=128" "$tmp/w-awq128.gguf"
ka=$(wkl w-awq128)
echo "# wide-tiny group 128 KL: rtn $kr gptq $kg awq $ka"
ok "group 128: AWQ's KL $ka below RTN's $kr" lt "$ka" "$kr"
"$S" quantize "$tmp/wide.gguf" --quant awq --group 128 $gcal --out "$tmp/w-awqhf128" --format hf \
	--no-store > /dev/null 2>&1
is "$?" 0 "awq --group 128 --format hf exits 0"
cfg=$(tr -d ' \n' < "$tmp/w-awqhf128/config.json")
contains "$cfg" '"group_size":128' "awq's config.json has group_size 128"
contains "$cfg" '"version":"gemm"' "... AutoAWQ's GEMM version"
pa=$(wppl "$tmp/w-awq128.gguf") pah=$(wppl "$tmp/w-awqhf128")
ok "group 128: the awq directory's perplexity $pah is the GGUF's $pa (within 1e-5)" \
	awk -v a="$pah" -v b="$pa" 'BEGIN { d = (a - b) / b; exit !(a > 0 && d < 1e-5 && d > -1e-5) }'

# a BF16 source in bf16 passes (--compute bf16, on any CPU): AWQ scores
# its candidates with bf16 products (the module's weights as bf16, the
# group's own error from the bf16 difference), still below plain rounding,
# and the same bytes on 1 and 3 threads
"$S" synth "$tmp/wide-bf16.gguf" --shape wide-tiny --dtype bf16 > /dev/null
for qa in "rtn" "awq $gcal"; do
	set -- $qa
	"$S" quantize "$tmp/wide-bf16.gguf" --compute bf16 --quant $qa --out "$tmp/wb-$1.gguf" \
		--no-store > /dev/null 2>&1
	is "$?" 0 "bf16 source, --compute bf16: $1 exits 0"
done
bkl() {
	"$S" ppl "$tmp/$1.gguf" "$tmp/held-short.txt" --ctx 128 --max-tokens 2048 \
		--ref "$tmp/wide-bf16.gguf" --format json 2> /dev/null | json_num kl_mean
}
kbr=$(bkl wb-rtn) kba=$(bkl wb-awq)
echo "# wide-tiny bf16 KL: rtn $kbr awq (bf16 scores) $kba"
ok "bf16 passes: AWQ's KL $kba below RTN's $kbr" lt "$kba" "$kbr"
"$S" quantize "$tmp/wide-bf16.gguf" --compute bf16 --quant awq $gcal --threads 1 \
	--out "$tmp/wb-awq-t1.gguf" --no-store > /dev/null 2>&1
ok "bf16 passes: AWQ on 1 thread writes the same bytes as on the default threads" \
	cmp -s "$tmp/wb-awq-t1.gguf" "$tmp/wb-awq.gguf"

"$S" quantize "$model" --quant gptq --data "$tmp/calib.txt" --samples 1 --seq-len 16 \
	--out "$tmp/e.gguf" --no-store > /dev/null 2> "$tmp/e.err"
ok "16 calibration tokens for 64 columns: refused" [ $? -ne 0 ]
contains "$(cat "$tmp/e.err")" "layer 0 (blk.0.attn_q.weight): 16 calibration tokens for 64" \
	"the error names the layer and the weight"
"$S" quantize "$model" --quant gptq --damp 0 --data "$tmp/calib.txt" --samples 1 --seq-len 64 \
	--out "$tmp/e.gguf" --no-store > /dev/null 2> "$tmp/e.err"
contains "$(cat "$tmp/e.err")" "layer 0: blk.0.attn_q.weight: the Hessian of its 64 inputs is not positive definite" \
	"a singular Hessian without damping names the layer"
"$S" quantize "$model" --group 96 --out "$tmp/e.gguf" 2> "$tmp/e.err"
is "$?" 2 "--group 96: usage error"
contains "$(cat "$tmp/e.err")" "groups of 32, 64 or 128 columns" "it names the groups there are"
"$S" quantize "$model" --quant awq --group 128 $cal --out "$tmp/e.gguf" --no-store 2> "$tmp/e.err"
contains "$(cat "$tmp/e.err")" "layer 0: 'blk.0.attn_output.weight' has rows of 64, which groups of 128 columns do not divide" \
	"awq --group 128 on rows of 64: refused naming the layer and the weight"
"$S" quantize "$model" --quant rtn --group 128 --out "$tmp/e.gguf" --no-store 2> "$tmp/e.err"
contains "$(cat "$tmp/e.err")" "layer 0: 'blk.0.attn_q.weight' has rows of 64, which groups of 128 columns do not divide" \
	"a group that does not divide a row names the layer and the weight"
"$S" quantize "$model" --bits 3 --out "$tmp/e.gguf" 2> "$tmp/e.err"
is "$?" 2 "--bits 3: usage error"
"$S" quantize "$model" --quant awq --out "$tmp/e.gguf" 2> "$tmp/e.err"
contains "$(cat "$tmp/e.err")" "needs calibration text" "awq without --data: refused"
ok "nothing written by the refused runs" [ ! -e "$tmp/e.gguf" ]
"$S" quantize "$model" --quant rtn --out "$tmp/rtn4m.gguf" --no-store 2> "$tmp/e.err"
contains "$(cat "$tmp/e.err")" "already exists (overwrite it with --force)" \
	"an existing file is refused before any work"
if need hf models/stories260K/hf; then
	"$S" quantize "$hf" --quant rtn --out "$tmp/e.gguf" --no-store 2> "$tmp/e.err"
	contains "$(cat "$tmp/e.err")" "needs a GGUF source" "a Hugging Face source is refused"
fi
done_testing
