# families.sh: each model family's tiny synthetic shape (strata synth
# --shape FAMILY-tiny, every feature of the family on) checked against
# llama.cpp itself: perplexity of a text within 1e-4 (relative) of
# strata's and 20 greedy tokens identical; the same weights exported as a
# Hugging Face directory give strata the same perplexity (1e-5) and
# tokens; a block drop keeps the architecture (baichuan's becomes llama)
# and llama.cpp runs it, as it runs baichuan's attention/MLP drops (deci).
# Greedy generation prefills the prompt in one call and decodes a token
# a call, so the Gemma shapes' sliding layers (window 8) run their KV
# rings, which wrap before the 20th token.
# (llama.cpp's GELU reads a table of F16 values: on the Gemma shapes its
# perplexity differs from strata's exact GELU by a few 1e-6 to 1e-5.)
# llama.cpp comes from tests/llamacpp_lib.sh.
. "${STRATA_SRCDIR:-.}/tests/tap.sh"

SRC=${STRATA_SRCDIR:-.}
BUILD=${STRATA_BUILDDIR:-.}
S=${STRATA_BIN:-./strata}
WORK=$BUILD/tests/tmp/families
# shape:architecture:the block drop (one that keeps Gemma's sliding pattern)
# [:the block drop's architecture, when not the same: llama.cpp ropes
# baichuan at 32 layers only, so a pruned one is written as llama]
SHAPES=${STRATA_FAMILIES:-"qwen3-tiny:qwen3:1 mistral-nemo-tiny:llama:1 olmo2-tiny:olmo2:1
	granite-tiny:granite:1 gemma2-tiny:gemma2:2 gemma3-tiny:gemma3:6 phi3-tiny:phi3:1
	baichuan-tiny:baichuan:1:llama"}

need text data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
. "$SRC/tests/llamacpp_lib.sh"

rm -rf "$WORK" && mkdir -p "$WORK" || exit 1
export STRATA_DB="$WORK/store.db"
head -c 600 "$text" > "$WORK/short.txt"
printf 'Once upon a time' > "$WORK/prompt.txt"

arch_of() {
	"$S" info "$1" --format json 2> /dev/null | grep -o '"arch": *"[a-z0-9_-]*"' |
		sed 's/.*"\([a-z0-9_-]*\)"$/\1/'
}

for sa in $SHAPES; do
	shape=${sa%%:*} rest=${sa#*:}
	want=${rest%%:*} drop=${rest#*:} bwant=$want
	case $drop in *:*) bwant=${drop#*:} drop=${drop%%:*} ;; esac
	f="$WORK/$shape.gguf" hf="$WORK/$shape-hf" bd="$WORK/$shape-block$drop.gguf"

	"$S" synth "$f" --shape "$shape" > /dev/null 2> "$WORK/synth.err"
	ok "$shape: synth writes it" [ -s "$f" ]
	is "$(arch_of "$f")" "$want" "$shape: architecture $want"
	case $shape in
	qwen3*) feat='"qk_norm": "per head"' ;;
	mistral-nemo*) feat='"head_dim": 32' ;;
	olmo2*) feat='"norms": "post"' ;;
	granite*) feat='"residual_scale": 0.22' ;;
	gemma2*) feat='"attn_softcap": 2' ;;
	gemma3*) feat='"rope_theta_local": 10000' ;;
	phi3*) feat='"rope_dim": 24, "rope_orig_ctx": 16' ;;
	baichuan*) feat='"n_layer": 32' ;;
	*) feat='"arch"' ;;
	esac
	contains "$("$S" info "$f" --format json 2>&1)" "$feat" "$shape: info shows $feat"

	agree_with_llamacpp "$shape" "$f"

	"$S" export "$f" --format hf --out "$hf" > /dev/null 2> "$WORK/export.err"
	ok "$shape: exported as a Hugging Face directory" [ -s "$hf/config.json" ]
	is "$(arch_of "$hf")" "$want" "$shape: the hf directory's model_type"
	sh_=$(strata_ppl "$hf")
	echo "# $shape: hf ppl $sh_, gguf $st, relative difference $(rel "${st:-0}" "${sh_:-0}")"
	ok "$shape: the hf directory's perplexity $sh_ is the gguf's $st (1e-5)" \
		within "${st:-0}" "${sh_:-0}" 1e-5
	is "$(strata_greedy "$hf")" "$sg" "$shape: the hf directory's greedy tokens are the gguf's"

	"$S" export "$f" --mask "block=$drop" --format gguf --out "$bd" > /dev/null 2> "$WORK/export.err"
	ok "$shape: block drop exported" [ -s "$bd" ]
	is "$(arch_of "$bd")" "$bwant" "$shape: the block drop has architecture $bwant"
	lc=$(llamacpp_ppl "$bd" "$WORK/short.txt" "$WORK/node.err")
	st=$(strata_ppl "$bd")
	echo "# $shape block=$drop: llama.cpp ppl $lc, strata $st, relative difference $(rel "${lc:-0}" "${st:-0}")"
	ok "$shape: llama.cpp runs the block drop, perplexity $lc = strata's $st (1e-4)" \
		within "${lc:-0}" "${st:-0}" 1e-4
done

# baichuan's attention and MLP drops: deci, which llama.cpp runs
if [ -s "$WORK/baichuan-tiny.gguf" ]; then
	bd="$WORK/baichuan-deci.gguf"
	"$S" export "$WORK/baichuan-tiny.gguf" --mask "attn=1;mlp=2" --format gguf \
		--out "$bd" > /dev/null 2> "$WORK/export.err"
	is "$(arch_of "$bd")" deci "baichuan: attn=1;mlp=2 exported as deci"
	lc=$(llamacpp_ppl "$bd" "$WORK/short.txt" "$WORK/node.err")
	st=$(strata_ppl "$WORK/baichuan-tiny.gguf" "attn=1;mlp=2")
	echo "# baichuan attn=1;mlp=2: llama.cpp ppl $lc, strata $st, relative difference $(rel "${lc:-0}" "${st:-0}")"
	ok "baichuan: llama.cpp runs the deci drop, perplexity $lc = the masked model's $st (1e-4)" \
		within "${lc:-0}" "${st:-0}" 1e-4
fi

# a block drop that would turn a sliding layer global is refused
if [ -s "$WORK/gemma2-tiny.gguf" ]; then
	"$S" export "$WORK/gemma2-tiny.gguf" --mask "block=0" --format gguf \
		--out "$WORK/g2-b0.gguf" > /dev/null 2> "$WORK/export.err"
	contains "$(cat "$WORK/export.err")" "layer 1 (global attention) would become layer 0, which gemma2's pattern makes sliding" \
		"gemma2: a block drop that moves the sliding pattern is refused, naming the layer"
	ok "gemma2: nothing written for it" [ ! -e "$WORK/g2-b0.gguf" ]
fi

# an attention drop cannot be deci for a family with features deci lacks
if [ -s "$WORK/granite-tiny.gguf" ]; then
	"$S" export "$WORK/granite-tiny.gguf" --mask "attn=1" --format gguf \
		--out "$WORK/g-attn.gguf" > /dev/null 2> "$WORK/export.err"
	contains "$(cat "$WORK/export.err")" "deci has no embedding, residual, attention or logit multipliers" \
		"granite: an attention drop as gguf is refused, naming why"
	ok "granite: nothing written for the refused export" [ ! -e "$WORK/g-attn.gguf" ]
	"$S" export "$WORK/granite-tiny.gguf" --mask "attn=1" --format hf \
		--out "$WORK/g-attn-hf" > /dev/null 2> "$WORK/export.err"
	ok "granite: the attention drop exports as hf with drop lists" \
		grep -q '"drop_attn_list"' "$WORK/g-attn-hf/config.json"
	a=$(strata_ppl "$WORK/g-attn-hf")
	b=$("$S" eval "$WORK/granite-tiny.gguf" --mask "attn=1" --task "ppl:$WORK/short.txt" --ctx 512 \
	    --no-store --format json 2> /dev/null | tr -d '\n' |
	    grep -o '"metric": *"ppl", *"value": *[0-9.e+-]*' | sed 's/.*: *//')
	ok "granite: the hf attention drop's perplexity $a is the masked gguf's $b" within "${a:-0}" "${b:-0}" 1e-5
fi
# Phi-3: llama.cpp's phi3 has no per-layer head counts and deci no NEOX
# rope, so attention and MLP drops go to hf with drop lists
if [ -s "$WORK/phi3-tiny.gguf" ]; then
	"$S" export "$WORK/phi3-tiny.gguf" --mask "attn=1" --format gguf \
		--out "$WORK/p-attn.gguf" > /dev/null 2> "$WORK/export.err"
	contains "$(cat "$WORK/export.err")" "deci expects llama's interleaved q/k rows; drop whole blocks, or export as hf (drop lists)" \
		"phi3: an attention drop as gguf is refused, naming why and what to do"
	ok "phi3: nothing written for the refused export" [ ! -e "$WORK/p-attn.gguf" ]
	"$S" export "$WORK/phi3-tiny.gguf" --mask "attn=1;mlp=2" --format hf \
		--out "$WORK/p-attn-hf" > /dev/null 2> "$WORK/export.err"
	ok "phi3: the attention and MLP drops export as hf with drop lists" \
		grep -q '"drop_mlp_list"' "$WORK/p-attn-hf/config.json"
	ok "phi3: the hf export keeps the fused tensors" \
		grep -q 'self_attn.qkv_proj.weight' "$WORK/p-attn-hf/model.safetensors"
	a=$(strata_ppl "$WORK/p-attn-hf")
	b=$(strata_ppl "$WORK/phi3-tiny.gguf" "attn=1;mlp=2")
	ok "phi3: the hf drops' perplexity $a is the masked gguf's $b" within "${a:-0}" "${b:-0}" 1e-5
fi
done_testing
