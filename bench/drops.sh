#!/bin/sh
# drops.sh: what dropping attention layers or whole blocks buys in speed,
# measured by `strata bench` and set against what the FLOP and byte
# counts predict.
#
#   sh bench/drops.sh [--model M] [--ctx T] [--gen N] [--rounds R] [--threads N]
#
# MODEL defaults to the TinyLlama-shaped synthetic F32 model that
# bench/run.sh writes ($STRATA_BENCH_DIR/tinyllama-f32.gguf; written here
# with `strata synth` when missing).  Masks: none, 4/8/11 attention
# layers, 4/8 blocks (the last layers before the final one, as the
# paper's drops mostly fall in the upper half).  The masks are run in
# interleaved rounds so that drift of a shared machine hits all alike;
# each figure is the best of R rounds.
#
# Predictions (per token):
#   prefill: FLOPs = 2 x (matmul parameters executed) + causal attention
#            2 x n_head x head_dim x (T + 1) per kept attention layer;
#            predicted speedup = FLOPs(none) / FLOPs(mask).
#   decode:  bytes = weight bytes executed (strata bench's weight_bytes,
#            minus the embedding table of which one row is read) + the KV
#            cache read at ~16 positions; speedup = bytes(none) / bytes(mask).
# Needs STRATA_BIN (default ./strata) and awk.
set -eu
S=${STRATA_BIN:-./strata}
dir=${STRATA_BENCH_DIR:-/tmp/strata-bench}
model=
ctx=512
gen=32
rounds=3
threads=2
while [ $# -gt 0 ]; do
	case $1 in
	--model) model=$2; shift 2 ;;
	--ctx) ctx=$2; shift 2 ;;
	--gen) gen=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--quick) rounds=1; shift ;;
	*) echo "drops.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
if [ -z "$model" ]; then
	model=$dir/tinyllama-f32.gguf
	if [ ! -r "$model" ]; then
		mkdir -p "$dir"
		"$S" synth "$model" --shape tinyllama --dtype f32 >&2
	fi
fi

info=$("$S" info "$model" --format json)
num() { echo "$info" | grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
L=$(num n_layer)
H=$(num n_head)
D=$(num head_dim)
V=$(num n_vocab)
E=$(num d_model)
P=$(num params)
W=$(num weight_bytes)

# masks: label and text; drops end one layer before the last
last=$((L - 2))
masks="none|"
for d in attn4 attn8 attn11 block4 block8; do
	k=${d#attn}; k=${k#block}
	[ "$((last - k + 1))" -ge 1 ] || continue   # too few layers for this drop
	case $d in
	attn*) masks="$masks
$d|attn=$((last - k + 1))-$last" ;;
	*) masks="$masks
$d|attn=$((last - k + 1))-$last;mlp=$((last - k + 1))-$last" ;;
	esac
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
r=1
while [ "$r" -le "$rounds" ]; do
	echo "$masks" | while IFS='|' read -r label mask; do
		set -- --ctx "$ctx" --gen "$gen" --repeat 1 --threads "$threads" --no-store --format json
		[ -n "$mask" ] && set -- "$@" --mask "$mask"
		"$S" bench "$model" "$@" >> "$out/$label" || { echo "drops.sh: bench $label failed" >&2; exit 1; }
		echo "round $r/$rounds $label done" >&2
	done
	r=$((r + 1))
done

jnum() { grep -o "\"$1\": *[-0-9.eE+]*" | sed 's/.*: *//'; }
printf '%-8s %-28s %9s %9s %9s %9s %9s %9s %12s\n' mask text "prefill/s" speedup predicted \
	"decode/s" speedup predicted kv_bytes
echo "$masks" | while IFS='|' read -r label mask; do
	pf=$(jnum "prefill_tps_$ctx" < "$out/$label" | sort -g | tail -1)
	dc=$(jnum decode_tps < "$out/$label" | sort -g | tail -1)
	wb=$(jnum weight_bytes < "$out/$label" | head -1)
	kv=$(jnum kv_bytes < "$out/$label" | head -1)
	pf0=$(jnum "prefill_tps_$ctx" < "$out/none" | sort -g | tail -1)
	dc0=$(jnum decode_tps < "$out/none" | sort -g | tail -1)
	wb0=$(jnum weight_bytes < "$out/none" | head -1)
	kv0=$(jnum kv_bytes < "$out/none" | head -1)
	awk -v label="$label" -v mask="${mask:--}" -v pf="$pf" -v dc="$dc" -v wb="$wb" -v kv="$kv" \
	    -v pf0="$pf0" -v dc0="$dc0" -v wb0="$wb0" -v kv0="$kv0" -v P="$P" -v W="$W" \
	    -v V="$V" -v E="$E" -v H="$H" -v D="$D" -v T="$ctx" -v L="$L" 'BEGIN {
		bpe = W / P                       # bytes per weight element
		emb = V * E * bpe                 # embedding table bytes
		# kept attention layers, from the KV bytes at ctx (K and V, F32)
		kvh = kv0 / (2 * 4 * T * L)       # n_head_kv x head_dim per layer
		ka = kv / (2 * 4 * T * kvh); ka0 = L
		# prefill FLOPs per token: matmuls + causal attention per kept layer
		f  = 2 * (wb - emb) / bpe  + ka  * 2 * H * D * (T + 1)
		f0 = 2 * (wb0 - emb) / bpe + ka0 * 2 * H * D * (T + 1)
		# decode: weights executed + KV read at ~16 positions
		b  = (wb - emb) + ka  * kvh * 2 * 4 * 16
		b0 = (wb0 - emb) + ka0 * kvh * 2 * 4 * 16
		printf "%-8s %-28s %9.2f %9.3f %9.3f %9.2f %9.3f %9.3f %12d\n", label, mask,
			pf, pf / pf0, f0 / f, dc, dc / dc0, b0 / b, kv
	}'
done
echo "model $model, ctx $ctx, gen $gen, best of $rounds interleaved rounds, $threads threads" >&2
