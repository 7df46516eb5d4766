#!/bin/sh
# experts_cli: the expert statistics of a mixture of experts through the
# command line (olmoe-tiny: 3 layers of 8 experts, 2 a token): `strata
# scores RUN --experts` in text and JSON, the expert_list view for
# `strata sql` (frequencies sum to k per layer), a calibration killed
# after 3 chunks and resumed gives the statistics of an uninterrupted
# one, the layer-major pass the same ones to rounding, and a dense
# model's run is refused by name.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/experts_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
unset STRATA_TEST_CANCEL_AFTER STRATA_TEST_KILL_AFTER STRATA_TEST_CHUNK_DELAY_MS
export STRATA_DB="$tmp/store.db" STRATA_COMPUTE=f32

need text data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
f="$tmp/olmoe.gguf"
"$S" synth "$f" --shape olmoe-tiny > /dev/null 2>&1
ok "olmoe-tiny is written" [ -s "$f" ]
sqlv() { "$S" sql --format csv "$1" | sed -n 2p; }
cal() { "$S" calibrate "$f" "$text" --threads 1 --samples 8 --seq-len 32 "$@"; }

cal > /dev/null 2>&1; rc=$?
is "$rc" 0 "strata calibrate on olmoe-tiny"
run=$(sqlv "SELECT max(id) FROM calib_runs")
out=$("$S" scores "$run" --experts); rc=$?
is "$rc" 0 "strata scores RUN --experts"
contains "$(echo "$out" | head -1)" "freq" "... a table with freq"
contains "$(echo "$out" | head -1)" "wnorm_se" "... through wnorm_se"
is "$(echo "$out" | sed 1d | grep -c .)" 24 "... one row per layer and expert (3 x 8)"
js=$("$S" scores "$run" --experts --format json); rc=$?
is "$rc" 0 "--format json"
is "$(echo "$js" | grep -o '"gate_se"' | wc -l | tr -d ' ')" 24 "... 24 objects with gate_se"
is "$("$S" sql --format csv "SELECT group_concat(s, ' ') FROM (SELECT round(sum(freq), 9) AS s
	FROM expert_list WHERE run = $run GROUP BY layer ORDER BY layer)" | sed -n 2p)" "2.0 2.0 2.0" \
   "expert_list: each layer's frequencies sum to k = 2"
is "$(sqlv "SELECT count(*) FROM expert_chunks WHERE run_id = $run")" 192 \
   "expert_chunks: 8 chunks x 3 layers x 8 experts"
is "$(sqlv "SELECT count(*) FROM expert_list WHERE run = $run AND gate > 0 AND gate < 1
	AND norm > 0 AND wnorm > 0 AND freq_se >= 0 AND chunks = 8")" \
   "$(sqlv "SELECT count(*) FROM expert_list WHERE run = $run AND freq > 0")" \
   "... every routed expert has a gate in (0, 1), norms and errors over 8 chunks"

# killed after 3 chunks, resumed: the statistics of one uninterrupted run
(env STRATA_TEST_KILL_AFTER=3 "$S" calibrate "$f" "$text" --threads 1 --samples 8 \
	--seq-len 40 > /dev/null 2>&1; exit $?) 2> /dev/null; rc=$?
is "$rc" 137 "a calibration killed after 3 chunks"
killed=$(sqlv "SELECT max(id) FROM calib_runs")
part=$("$S" scores "$killed" --experts 2>&1); rc=$?
is "$rc" 1 "... has no finished statistics to print"
cal --seq-len 40 --resume > /dev/null 2> "$tmp/err"; rc=$?
is "$rc" 0 "--resume continues it"
contains "$(cat "$tmp/err")" "at chunk 4" "... from its 4th chunk"
cal --seq-len 40 --force > /dev/null 2>&1
fresh=$(sqlv "SELECT max(id) FROM calib_runs")
ok "a fresh run is another run ($killed, $fresh)" [ "$fresh" != "$killed" ]
is "$("$S" scores "$killed" --experts --format json | sed 's/"run": [0-9]*//g')" \
   "$("$S" scores "$fresh" --experts --format json | sed 's/"run": [0-9]*//g')" \
   "... the resumed run's statistics equal the uninterrupted one's"

# layer-major: the same counts, the sums to rounding
cal --seq-len 40 --force --layer-major > /dev/null 2> "$tmp/err"; rc=$?
is "$rc" 0 "a layer-major calibration"
lm=$(sqlv "SELECT max(id) FROM calib_runs")
is "$(sqlv "SELECT count(*) FROM expert_list a JOIN expert_list b ON a.layer = b.layer
	AND a.expert = b.expert WHERE a.run = $lm AND b.run = $fresh AND a.freq = b.freq
	AND (a.gate IS NULL AND b.gate IS NULL OR abs(a.gate - b.gate) < 1e-5 * b.gate)
	AND (a.norm IS NULL AND b.norm IS NULL OR abs(a.norm - b.norm) < 1e-5 * b.norm)")" 24 \
   "... its statistics equal token-major's (frequencies exactly, the rest to 1e-5)"

# a dense model
"$S" synth "$tmp/dense.gguf" --shape tiny > /dev/null 2>&1
"$S" calibrate "$tmp/dense.gguf" "$text" --samples 2 --seq-len 32 > /dev/null 2>&1
dense=$(sqlv "SELECT max(id) FROM calib_runs")
"$S" scores "$dense" --experts > /dev/null 2> "$tmp/err"; rc=$?
is "$rc" 1 "scores --experts of a dense model's run fails"
contains "$(cat "$tmp/err")" "not a mixture of experts" "... saying why"
done_testing
