#!/bin/sh
# nonfinite: a GGUF with one NaN (or Inf) weight is caught, never scored:
# `info --check` names the tensor, calibrate fails naming the first layer
# and site whose activations are not finite and stores no 'done' run,
# ppl fails too.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/nonfinite"
rm -rf "$tmp" && mkdir -p "$tmp"
db="$tmp/strata.db"
unset STRATA_DB
need model models/stories260K/stories260K.gguf || { done_testing; exit; }
need text data/text/tinystories-valid-1000.txt || { done_testing; exit; }
poke="$STRATA_BUILDDIR/tests/gguf_poke"

"$poke" "$model" "$tmp/nan.gguf" blk.2.ffn_down.weight 100 nan
is $? 0 "wrote a GGUF with a NaN in blk.2.ffn_down.weight"
"$poke" "$model" "$tmp/inf.gguf" blk.1.attn_output.weight 7 inf
is $? 0 "wrote a GGUF with an Inf in blk.1.attn_output.weight"

out=$("$S" info "$model" --check 2>&1); rc=$?
is $rc 0 "info --check on good weights exits 0"
contains "$out" "all finite" "and says so"
out=$("$S" info "$tmp/nan.gguf" --check 2>&1); rc=$?
is $rc 1 "info --check on a NaN exits 1"
contains "$out" "tensor 'blk.2.ffn_down.weight' holds NaN at row 0, column 100" "names tensor, row, column"
out=$("$S" info "$tmp/inf.gguf" --check 2>&1); rc=$?
is $rc 1 "info --check on an Inf exits 1"
contains "$out" "'blk.1.attn_output.weight' holds Inf" "names the Inf"

out=$("$S" calibrate "$tmp/nan.gguf" "$text" --samples 2 --seq-len 32 --db "$db" 2>&1); rc=$?
ok "calibrate on NaN weights fails" [ $rc -ne 0 ]
contains "$out" "non-finite activations (NaN or Inf), first at layer 2 mlp" "naming layer and site"
failed_runs=$("$S" sql --db "$db" --format csv "SELECT count(*) FROM calib_runs WHERE status = 'failed'" | sed -n 2p)
is "$failed_runs" 1 "the run is stored as failed"
done_runs=$("$S" sql --db "$db" --format csv "SELECT count(*) FROM calib_runs WHERE status = 'done'" | sed -n 2p)
is "$done_runs" 0 "no run is stored as done"
out=$("$S" calibrate "$tmp/nan.gguf" "$text" --samples 2 --seq-len 32 --db "$db" 2>&1); rc=$?
ok "a second calibration is not served from the store" [ $rc -ne 0 ]

out=$("$S" calibrate "$tmp/inf.gguf" "$text" --samples 2 --seq-len 32 --db "$db" 2>&1); rc=$?
ok "calibrate on an Inf weight fails" [ $rc -ne 0 ]
contains "$out" "first at layer 1 attn" "at layer 1 attn"

out=$("$S" ppl "$tmp/nan.gguf" "$text" --max-tokens 64 --ctx 32 2>&1); rc=$?
is $rc 1 "ppl on NaN weights exits 1"
contains "$out" "first at layer 2 mlp" "naming layer and site"
ok "no nan printed as a result" [ -z "$(printf '%s' "$out" | grep -w 'nan')" ]

done_testing
