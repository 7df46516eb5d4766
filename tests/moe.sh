# moe.sh: each mixture-of-experts tiny shape (strata synth --shape
# mixtral-tiny, qwen2moe-tiny, olmoe-tiny, qwen3moe-tiny, deepseek-tiny,
# granitemoe-tiny: every feature of the family on) checked against
# llama.cpp itself: perplexity of a text
# within 1e-4 (relative) of strata's and 20 greedy tokens identical; the
# MoE sublayer is the mlp site (a calibration scores it, a dropped mlp
# changes the perplexity); a block drop exports as gguf and llama.cpp's
# perplexity of it is strata's of the masked model (1e-4), other drops
# as gguf are refused by name; the model, an mlp drop (drop lists) and
# an Expert Drop as Hugging Face directories (transformers' per-expert
# names) give strata the perplexity of the masked gguf (1e-5), and a
# config missing a field or with dense layers is refused by name; an
# Expert Drop (two experts a layer)
# exports as gguf with fewer experts and llama.cpp's perplexity of it is
# strata's of the masked model (1e-4), uneven counts refused as gguf but
# written as hf (each layer's count in config.json, the masked gguf's
# perplexity 1e-5) (DeepSeek's
# leading dense layer: its experts refused by name, its block drop run by
# llama.cpp with no dense layer left); expert statistics of a calibration
# (qwen2moe-tiny, deepseek-tiny) and the plans made of them, export --run
# --method expert and sweep --method expert through those plans; and the
# experts in 16-bit and quantized dtypes against llama.cpp (5e-3: llama.cpp
# rounds the activations of such weights, strata multiplies in f32).
# llama.cpp comes from tests/llamacpp_lib.sh (under CI=true its absence
# fails the test).
. "${STRATA_SRCDIR:-.}/tests/tap.sh"

SRC=${STRATA_SRCDIR:-.}
BUILD=${STRATA_BUILDDIR:-.}
S=${STRATA_BIN:-./strata}
WORK=$BUILD/tests/tmp/moe
# shape:architecture:experts:used:leading dense layers
SHAPES=${STRATA_MOE_SHAPES:-"mixtral-tiny:llama:4:2:0 qwen2moe-tiny:qwen2moe:6:2:0
	olmoe-tiny:olmoe:8:2:0 qwen3moe-tiny:qwen3moe:8:2:0 deepseek-tiny:deepseek:8:2:1
	granitemoe-tiny:granitemoe:6:2:0"}

need text data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
. "$SRC/tests/llamacpp_lib.sh"

rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
export STRATA_DB="$WORK/store.db"
export STRATA_COMPUTE=f32 # exact f32 products in prefill whatever the CPU
head -c 600 "$text" > "$WORK/short.txt"
printf 'Once upon a time' > "$WORK/prompt.txt"

info_json() { "$S" info "$1" --format json 2>&1; }

for sa in $SHAPES; do
	shape=${sa%%:*} rest=${sa#*:}
	want=${rest%%:*} rest=${rest#*:}
	n_exp=${rest%%:*} rest=${rest#*:}
	n_used=${rest%%:*} lead=${rest#*:}
	f="$WORK/$shape.gguf"

	"$S" synth "$f" --shape "$shape" > /dev/null 2> "$WORK/synth.err"
	ok "$shape: synth writes it" [ -s "$f" ]
	inf=$(info_json "$f")
	contains "$inf" "\"arch\": \"$want\"" "$shape: architecture $want"
	contains "$inf" "\"n_expert\": $n_exp, \"n_expert_used\": $n_used" \
		"$shape: info shows $n_exp experts, $n_used used"

	agree_with_llamacpp "$shape" "$f"

	# the MoE sublayer is the mlp site
	sd=$(strata_ppl "$f" "mlp=0,1,2")
	ok "$shape: dropping every MoE mlp site changes the perplexity ($st -> $sd)" \
		sh -c '[ -n "$1" ] && ! awk -v a="$1" -v b="$2" "BEGIN { d = a - b; if (d < 0) d = -d; exit !(d / a < 1e-2) }"' \
		_ "${sd:-}" "${st:-0}"

	# a block drop exports as gguf with its experts, and llama.cpp runs it
	bd="$WORK/$shape-block1.gguf"
	"$S" export "$f" --mask "block=1" --format gguf --out "$bd" > /dev/null 2> "$WORK/export.err"
	ok "$shape: block drop exported" [ -s "$bd" ]
	contains "$(info_json "$bd")" "\"n_layer\": 2" "$shape: the block drop has 2 layers"
	lc=$(llamacpp_ppl "$bd" "$WORK/short.txt" "$WORK/node.err")
	st=$(strata_ppl "$f" "block=1")
	echo "# $shape block=1: llama.cpp ppl $lc, strata (masked) $st, relative difference $(rel "${lc:-0}" "${st:-0}")"
	ok "$shape: llama.cpp's perplexity of the block drop $lc is strata's masked $st (1e-4)" \
		within "${lc:-0}" "${st:-0}" 1e-4
	# an Expert Drop exports as gguf with fewer experts a layer, and
	# llama.cpp's perplexity of it is strata's of the masked model
	# (experts of the layers that have them: DeepSeek's layer 0 is dense)
	if [ "$lead" -gt 0 ]; then
		xm="expert=1:1,3;2:0,2" xu="expert=1:1,3;2:2"
	else
		xm="expert=0:1,3;1:0,2;2:2-3" xu="expert=0:1,3;1:0,2;2:2"
	fi
	xd="$WORK/$shape-xdrop.gguf"
	"$S" export "$f" --mask "$xm" --format gguf --out "$xd" > /dev/null 2> "$WORK/export.err"
	ok "$shape: expert drop exported" [ -s "$xd" ]
	contains "$(info_json "$xd")" "\"n_expert\": $((n_exp - 2)), \"n_expert_used\": $n_used" \
		"$shape: the expert drop has $((n_exp - 2)) experts a layer"
	lc=$(llamacpp_ppl "$xd" "$WORK/short.txt" "$WORK/node.err")
	[ -n "$lc" ] || sed 's/^/# /' "$WORK/node.err" | tail -3
	sx=$(strata_ppl "$f" "$xm")
	echo "# $shape $xm: llama.cpp ppl $lc, strata (masked) $sx, relative difference $(rel "${lc:-0}" "${sx:-0}")"
	ok "$shape: llama.cpp's perplexity of the expert drop $lc is strata's masked $sx (1e-4)" \
		within "${lc:-0}" "${sx:-0}" 1e-4
	ok "$shape: dropping experts changes the perplexity ($st -> $sx)" \
		sh -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "${sx:-}" "${st:-}"
	"$S" export "$f" --mask "$xu" --format gguf --out "$WORK/x.gguf" \
		> /dev/null 2> "$WORK/export.err"
	contains "$(cat "$WORK/export.err")" "a GGUF file has one expert_count for every layer (llama.cpp's); drop as many experts in each layer, or export with --format hf" \
		"$shape: layers keeping different expert counts are refused as gguf, pointing at hf"
	# ... and export as hf, each layer's count in config.json: strata's
	# perplexity of the directory is the masked gguf's
	ud="$WORK/$shape-hf-uneven"
	"$S" export "$f" --mask "$xu" --format hf --out "$ud" > /dev/null 2> "$WORK/export.err"
	case $want in
	llama|granitemoe) xk=num_local_experts ;;
	deepseek) xk=n_routed_experts ;;
	*) xk=num_experts ;;
	esac
	if [ "$lead" -gt 0 ]; then
		xl="0, $((n_exp - 2)), $((n_exp - 1))"
	else
		xl="$((n_exp - 2)), $((n_exp - 2)), $((n_exp - 1))"
	fi
	contains "$(tr -d ' \n' < "$ud/config.json")" "\"${xk}_per_layer\":[$(echo "$xl" | tr -d ' ')]" \
		"$shape: the uneven hf export's config.json has ${xk}_per_layer [$xl]"
	contains "$(info_json "$ud")" "\"n_expert_per_layer\": [$xl]" \
		"$shape: info shows its experts a layer [$xl]"
	su=$(strata_ppl "$ud")
	sg=$(strata_ppl "$f" "$xu")
	ok "$shape: the uneven hf export's perplexity $su is the masked gguf's $sg (1e-5)" \
		within "${sg:-0}" "${su:-0}" 1e-5
	ok "$shape: ... and differs from the even drop's $sx" \
		sh -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "${su:-}" "${sx:-}"
	"$S" export "$f" --mask "expert=1:0-$((n_exp - 2))" --format gguf --out "$WORK/x.gguf" \
		> /dev/null 2> "$WORK/export.err"
	contains "$(cat "$WORK/export.err")" "keeps 1 of layer 1's $n_exp experts, but a token is routed to $n_used" \
		"$shape: fewer experts than a token uses is refused, naming the layer"
	"$S" export "$f" --mask "expert=1:$n_exp" --format gguf --out "$WORK/x.gguf" \
		> /dev/null 2> "$WORK/export.err"
	contains "$(cat "$WORK/export.err")" "drops expert $n_exp of layer 1" \
		"$shape: an expert out of range is refused, naming it"
	if [ "$lead" -gt 0 ]; then
		"$S" export "$f" --mask "expert=0:1" --format gguf --out "$WORK/x.gguf" \
			> /dev/null 2> "$WORK/export.err"
		contains "$(cat "$WORK/export.err")" "layer 0 is one of the model's $lead leading dense layers, which have no experts" \
			"$shape: an expert of a leading dense layer is refused, naming the layer"
		contains "$("$S" eval "$f" --mask "expert=0:1" --task "ppl:$WORK/short.txt" --no-store 2>&1)" \
			"mask drops expert 1 of layer 0, but layer 0 is one of" "$shape: ... by eval too"
		# the dense block dropped: llama.cpp runs the export with none left
		b0="$WORK/$shape-block0.gguf"
		"$S" export "$f" --mask "block=0" --format gguf --out "$b0" > /dev/null 2> "$WORK/export.err"
		contains "$(info_json "$b0")" '"n_layer": 2' "$shape: block 0 dropped: 2 layers"
		ok "$shape: ... and no leading dense layer" \
			sh -c '! printf "%s" "$1" | grep -q n_dense_lead' _ "$(info_json "$b0")"
		lc=$(llamacpp_ppl "$b0" "$WORK/short.txt" "$WORK/node.err")
		s0=$(strata_ppl "$f" "block=0")
		echo "# $shape block=0: llama.cpp ppl $lc, strata (masked) $s0, relative difference $(rel "${lc:-0}" "${s0:-0}")"
		ok "$shape: llama.cpp's perplexity of the dense block's drop $lc is strata's masked $s0 (1e-4)" \
			within "${lc:-0}" "${s0:-0}" 1e-4
		contains "$(info_json "$f")" "\"n_dense_lead\": $lead" "$shape: info shows $lead leading dense layer"
		contains "$(info_json "$f")" '"expert_weights_scale": 1.5' "$shape: info shows the weights' scale"
	fi
	# what deci or config.json cannot express is refused by name
	"$S" export "$f" --mask "mlp=1" --format gguf --out "$WORK/x.gguf" > /dev/null 2> "$WORK/export.err"
	contains "$(cat "$WORK/export.err")" "with attention or MLP drops as gguf: llama.cpp's deci has no experts" \
		"$shape: an mlp drop as gguf is refused, naming why"
	"$S" quantize "$f" --quant rtn --bits 8 --out "$WORK/x.gguf" --no-store > /dev/null 2> "$WORK/quant.err"
	contains "$(cat "$WORK/quant.err")" "is a mixture of experts ($want, $n_exp experts), and quantize does not handle experts yet" \
		"$shape: quantize refused by name (not a crash)"
	ok "$shape: nothing written for the refused exports" [ ! -e "$WORK/x.gguf" ]
	# as Hugging Face directories: whole, an mlp drop, an Expert Drop (and
	# DeepSeek's dense block dropped: first_k_dense_replace 0)
	hms="mlp=1|$xm"
	[ "$lead" -gt 0 ] && hms="$hms|block=0"
	for hm in "" $(echo "$hms" | tr '|' ' '); do
		hd="$WORK/$shape-hf$(echo "$hm" | tr -c 'a-z0-9\n' '_')"
		"$S" export "$f" ${hm:+--mask "$hm"} --format hf --out "$hd" > /dev/null 2> "$WORK/export.err"
		sh_=$(strata_ppl "$hd")
		sg=$(strata_ppl "$f" "$hm")
		ok "$shape: hf export '$hm' gives the masked gguf's perplexity ($sh_ = $sg, 1e-5)" \
			within "${sg:-0}" "${sh_:-0}" 1e-5
	done
	contains "$(info_json "$WORK/$shape-hf")" "\"n_expert\": $n_exp, \"n_expert_used\": $n_used" \
		"$shape: the hf directory has $n_exp experts, $n_used used"
	case $want in
	deepseek)
		contains "$(info_json "$WORK/$shape-hf")" "\"n_dense_lead\": $lead" \
			"$shape: the hf directory has $lead leading dense layer"
		contains "$(cat "$WORK/$shape-hfblock_0/config.json")" '"first_k_dense_replace": 0' \
			"$shape: block 0 dropped as hf: no leading dense layer"
		;;
	granitemoe)
		contains "$(cat "$WORK/$shape-hf/config.json")" '"model_type": "granitemoeshared"' \
			"$shape: its shared expert makes it granitemoeshared"
		;;
	esac
done

# calibration scores the MoE mlp sites like dense ones
f="$WORK/qwen2moe-tiny.gguf"
if [ -s "$f" ]; then
	"$S" calibrate "$f" "$text" --db "$WORK/calib.db" --samples 8 --seq-len 64 \
		> "$WORK/calib.out" 2> "$WORK/calib.err"
	ok "calibrate runs on qwen2moe-tiny" [ $? -eq 0 ]
	sc=$("$S" scores 1 --db "$WORK/calib.db" --format csv 2> /dev/null)
	is "$(printf '%s\n' "$sc" | grep -c '^1,0,cos,mlp,[0-2],0,0\.[0-9]')" 3 \
		"calibrate: a cos score in (0, 1) for each of the 3 MoE mlp sites"
	is "$(printf '%s\n' "$sc" | grep -c '^1,0,cos,block,')" 3 "calibrate: block scores too"

	# Expert Drop from the run: the 2 least routed experts of every layer
	pj=$("$S" plan 1 --method expert -n 2 --db "$WORK/calib.db" --format json 2> "$WORK/plan.err")
	pm=$(printf '%s' "$pj" | tr -d '\n' | grep -o '"mask": *"[^"]*"' | sed 's/.*: *"//; s/"$//')
	contains "$pm" ";expert=0:" "plan --method expert: the mask has an expert part ($pm)"
	is "$(printf '%s' "${pm#*expert=}" | tr ';' '\n' | sed 's/^[0-9]*://' | tr ',' '\n' |
		awk -F- '{ n += NF == 2 ? $2 - $1 + 1 : 1 } END { print n }')" 6 \
		"plan --method expert -n 2: two experts in each of the 3 layers"
	contains "$pj" '"experts_dropped": 6' "plan: the predicted effect counts 6 experts"
	contains "$pj" '"params_removed": 37248' "plan: each a router row and 3*D*Fe (6 x 6208)"
	contains "$(cat "$WORK/plan.err")" "ranking experts by the frequency of run 1's expert statistics" \
		"plan: ranks by the run's stored frequencies, saying so"
	# the same plan from frequencies counted now, on a copy whose expert rows are gone
	cp "$WORK/calib.db" "$WORK/noexp.db"
	"$S" sql --db "$WORK/noexp.db" --write "DELETE FROM expert_chunks" > /dev/null 2>&1
	"$S" sql --db "$WORK/noexp.db" --write "DELETE FROM expert_stats" > /dev/null 2>&1
	pj0=$("$S" plan 1 --method expert -n 2 --db "$WORK/noexp.db" --format json 2> "$WORK/plan0.err")
	contains "$(cat "$WORK/plan0.err")" "counting routing frequencies" \
		"plan, a run without stored statistics: counts frequencies now"
	contains "$pj0" "\"mask\": \"$pm\"" "... and drops the same experts as the stored ones"
	contains "$("$S" plan 1 --method expert -n 1 --by gate --db "$WORK/noexp.db" 2>&1)" \
		"--by gate needs the expert statistics of calibration, which run 1 does not have" \
		"plan --by gate without stored statistics: refused, saying why"
	# --by gate and --by norm: each layer's lowest mean gate (gate-weighted norm) in
	# scores --experts goes
	xc=$("$S" scores 1 --experts --db "$WORK/calib.db" --format csv 2> /dev/null)
	for by in gate:8 norm:12; do
		col=${by#*:}
		want=$(printf '%s\n' "$xc" | awk -F, -v c="$col" 'NR > 1 && (!($3 in m) || $c < m[$3]) {
			m[$3] = $c; e[$3] = $4 } END { for (l = 0; l in e; l++)
			printf "%s%d:%d", l ? ";" : "", l, e[l] }')
		pj=$("$S" plan 1 --method expert -n 1 --by "${by%:*}" --db "$WORK/calib.db" --format json 2> /dev/null)
		contains "$pj" "\"mask\": \"attn=;mlp=;expert=$want\"" \
			"plan --by ${by%:*}: each layer's expert of the lowest stored ${by%:*} ($want)"
	done
	sx=$(strata_ppl "$f" "$pm")
	ok "the planned expert drop evaluates ($sx)" [ -n "$sx" ]
	"$S" export "$f" --mask "$pm" --out "$WORK/plan-x.gguf" --no-store > /dev/null 2> "$WORK/export.err"
	contains "$(info_json "$WORK/plan-x.gguf")" '"n_expert": 4' "the planned expert drop exports with 4 experts a layer"
	# export --run --method expert: plan, then export, the same file
	"$S" export --run 1 --method expert -n 2 --db "$WORK/calib.db" --out "$WORK/run-x.gguf" \
		> /dev/null 2> "$WORK/export.err"
	ok "export --run 1 --method expert -n 2 writes the planned drop's file byte for byte" \
		cmp -s "$WORK/plan-x.gguf" "$WORK/run-x.gguf"
	# sweep --method expert: a point per count, each the plan's mask and its perplexity
	sw=$("$S" sweep "$f" --run 1 --db "$WORK/calib.db" --method expert --max 9 \
		--task "ppl:$WORK/short.txt" --ctx 512 --format tsv 2> "$WORK/sweep.err")
	tab=$(printf '\t')
	is "$(printf '%s\n' "$sw" | grep -c "^expert$tab")" 5 \
		"sweep --method expert --max 9: k = 0 .. 4 (6 experts, 2 a token)"
	contains "$(cat "$WORK/sweep.err")" "a layer can lose at most 4 of its 6 experts" \
		"sweep: ... stopping there with a note"
	row=$(printf '%s\n' "$sw" | grep "^expert${tab}2$tab")
	contains "$row" "expert${tab}2$tab$pm${tab}37248$tab" \
		"sweep: k = 2 is the plan's mask and its predicted params"
	ok "sweep: k = 2's perplexity is the masked model's ($sx)" \
		within "$(printf '%s' "$row" | cut -f5)" "${sx:-0}" 1e-9
	contains "$("$S" sweep "$f" --run 1 --db "$WORK/calib.db" --method mlp --by gate \
		--task "ppl:$WORK/short.txt" 2>&1)" "--by ranks experts: it needs --method expert" \
		"sweep --by without --method expert is refused"
	pj=$("$S" plan 1 --method expert --per-layer 1,2,3 --db "$WORK/calib.db" --format json 2> /dev/null)
	contains "$pj" '"experts_dropped": 6' "plan --per-layer 1,2,3: 6 experts dropped"
	contains "$("$S" plan 1 --method expert -n 5 --db "$WORK/calib.db" 2>&1)" \
		"cannot drop 5 of layer 0's 6 experts: a token is routed to 2, so at most 4" \
		"plan: too many experts refused, saying why"
	contains "$("$S" plan 1 --mask "expert=0:6" --db "$WORK/calib.db" 2>&1)" \
		"drops expert 6 of layer 0, but the model's layers have experts 0-5" \
		"plan --mask: an expert out of range is refused"
	contains "$("$S" plan 1 --mask "expert=2:0-1" --db "$WORK/calib.db" --format json 2>&1)" \
		'"mask": "attn=;mlp=;expert=2:0-1"' "plan --mask keeps the expert part"
fi

# DeepSeek's expert statistics: its leading dense layer routes nothing,
# and an expert plan drops none of its experts
f="$WORK/deepseek-tiny.gguf"
if [ -s "$f" ]; then
	"$S" calibrate "$f" "$text" --db "$WORK/calib-ds.db" --samples 8 --seq-len 64 \
		> "$WORK/calib.out" 2> "$WORK/calib.err"
	ok "calibrate runs on deepseek-tiny" [ $? -eq 0 ]
	xc=$("$S" scores 1 --experts --db "$WORK/calib-ds.db" --format csv 2> /dev/null)
	is "$(printf '%s\n' "$xc" | awk -F, '$3 == 0 && $6 == ""' | wc -l | tr -d ' ')" 8 \
		"deepseek-tiny: the leading dense layer's 8 expert rows have no statistics (empty)"
	is "$(printf '%s\n' "$xc" | awk -F, '$3 == 1 { f += $6 } END { printf "%.3f", f }')" 2.000 \
		"deepseek-tiny: layer 1's frequencies sum to the 2 experts a token uses"
	pj=$("$S" plan 1 --method expert -n 2 --db "$WORK/calib-ds.db" --format json 2> /dev/null)
	pm=$(printf '%s' "$pj" | tr -d '\n' | grep -o '"mask": *"[^"]*"' | sed 's/.*: *"//; s/"$//')
	contains "$pm" "attn=;mlp=;expert=1:" "deepseek-tiny: the plan drops experts of layer 1 first ($pm)"
	contains "$pj" '"experts_dropped": 4' "deepseek-tiny: two in each of the 2 MoE layers, none in the dense one"
	"$S" export "$f" --mask "$pm" --out "$WORK/ds-plan.gguf" --no-store > /dev/null 2> "$WORK/export.err"
	lc=$(llamacpp_ppl "$WORK/ds-plan.gguf" "$WORK/short.txt" "$WORK/node.err")
	sx=$(strata_ppl "$f" "$pm")
	echo "# deepseek-tiny planned $pm: llama.cpp ppl $lc, strata (masked) $sx, relative difference $(rel "${lc:-0}" "${sx:-0}")"
	ok "deepseek-tiny: llama.cpp's perplexity of the planned drop $lc is strata's masked $sx (1e-4)" \
		within "${lc:-0}" "${sx:-0}" 1e-4
fi

# Hugging Face configs of mixtures of experts: what is missing or not run
# is named
mkdir -p "$WORK/hf-olmoe" "$WORK/hf-mixtral" "$WORK/hf-qwen"
cfg='"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 32, "vocab_size": 400, "max_position_embeddings": 64'
echo "{\"model_type\": \"olmoe\", \"num_experts\": 8, $cfg}" > "$WORK/hf-olmoe/config.json"
echo "{\"model_type\": \"llama\", \"num_local_experts\": 8, $cfg}" > "$WORK/hf-mixtral/config.json"
echo "{\"model_type\": \"qwen2_moe\", \"num_experts\": 8, \"num_experts_per_tok\": 2, \"shared_expert_intermediate_size\": 32, \"decoder_sparse_step\": 2, $cfg}" \
	> "$WORK/hf-qwen/config.json"
contains "$("$S" info "$WORK/hf-olmoe" 2>&1)" "field 'num_experts_per_tok' is missing" \
	"an hf olmoe config without num_experts_per_tok is refused naming it"
contains "$("$S" info "$WORK/hf-mixtral" 2>&1)" "model_type 'llama' with experts is not supported" \
	"an hf llama with num_local_experts is refused (Mixtral's model_type is mixtral)"
contains "$("$S" info "$WORK/hf-qwen" 2>&1)" "'decoder_sparse_step' (2)" \
	"an hf qwen2_moe with dense layers is refused naming the field"
mkdir -p "$WORK/hf-dsv3"
echo '{"model_type": "deepseek_v3", "n_routed_experts": 256}' > "$WORK/hf-dsv3/config.json"
contains "$("$S" info "$WORK/hf-dsv3" 2>&1)" "DeepSeek V3's multi-head latent attention (MLA) is not supported" \
	"an hf DeepSeek V3 is refused naming MLA"

# the experts in other dtypes (each expert a slice of a 3-D tensor)
for dt in bf16 f16 q8_0 q4_0; do
	f="$WORK/qwen2moe-tiny-$dt.gguf"
	"$S" synth "$f" --shape qwen2moe-tiny --dtype "$dt" > /dev/null 2> "$WORK/synth.err"
	contains "$(info_json "$f")" "\"dtype\": \"$dt\"" "qwen2moe-tiny $dt: written"
	lc=$(llamacpp_ppl "$f" "$WORK/short.txt" "$WORK/node.err")
	st=$(strata_ppl "$f")
	echo "# qwen2moe-tiny $dt: llama.cpp ppl $lc, strata $st, relative difference $(rel "${lc:-0}" "${st:-0}")"
	ok "qwen2moe-tiny $dt: llama.cpp's perplexity $lc is strata's $st (5e-3)" \
		within "${lc:-0}" "${st:-0}" 5e-3
done
done_testing
