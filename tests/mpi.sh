#!/bin/sh
# mpi: `mpirun -np N strata calibrate` spreads the chunks over N
# processes with the scores of one process, bit for bit (one thread
# each); resumes a run a single process left with any number of ranks;
# stops all ranks with a stopping rule at the chunk one process stops
# at; a mixture of experts' expert statistics equal one process's.
# `strata eval` and `strata sweep` spread the windows and items of
# each evaluation with the printed numbers of one process; a worker that
# dies ends the job with the evaluations done stored.  Other commands
# are refused.  A strata built without MPI says so when
# started by mpirun.  Needs mpirun (Debian: openmpi-bin).
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/mpi"
rm -rf "$tmp" && mkdir -p "$tmp"
unset STRATA_DB STRATA_TEST_CANCEL_AFTER STRATA_TEST_KILL_AFTER STRATA_TEST_CHUNK_DELAY_MS
# Open MPI refuses root unless told; harmless for other users
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { timeout 300 mpirun --oversubscribe -np "$@"; }
json_num() { grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//'; }
scores_of() { sed 's/.*"scores": *\[//' | tr '{' '\n' | grep value; }

need model models/stories260K/stories260K.gguf || { done_testing; exit $?; }
need text data/text/tinystories-valid-1000.txt || { done_testing; exit $?; }
command -v mpirun > /dev/null 2>&1 || skip_all "mpirun is needed (Debian: openmpi-bin)"

cal() { "$S" calibrate "$model" "$text" --threads 1 "$@"; }

if ! "$S" info --system | grep -q '^mpi: *Open MPI'; then
	# ---- built without MPI: started by mpirun, it says so ----
	contains "$("$S" info --system)" "absent" "strata info --system says MPI support is absent"
	mpi 2 "$S" calibrate "$model" "$text" --samples 4 --seq-len 64 --db "$tmp/x.db" \
		> /dev/null 2> "$tmp/err"; rc=$?
	ok "under mpirun it fails (exit $rc)" [ "$rc" -ne 0 ]
	contains "$(cat "$tmp/err")" "built without MPI support" "... saying why"
	done_testing
	exit $?
fi

# ---- the same scores as one process ----
cal --samples 16 --seq-len 128 --db "$tmp/one.db" --format json > "$tmp/one.json" 2> /dev/null
mpi 2 "$S" calibrate "$model" "$text" --threads 1 --samples 16 --seq-len 128 --db "$tmp/two.db" \
	--format json > "$tmp/two.json" 2> "$tmp/two.err"; rc=$?
is "$rc" 0 "mpirun -np 2 strata calibrate runs"
is "$(grep -c '"run"' "$tmp/two.json")" 1 "... rank 0 alone prints"
is "$(json_num chunks < "$tmp/two.json")" 16 "... all 16 chunks"
n1=$(scores_of < "$tmp/one.json" | wc -l | tr -d ' ')
is "$(scores_of < "$tmp/two.json")" "$(scores_of < "$tmp/one.json")" \
   "... with the scores of one process, bit for bit ($n1 scores)"
is "$("$S" sql --db "$tmp/two.db" --format csv "SELECT status || ' ' || chunks_done FROM calib_runs" | sed -n 2p)" \
   "done 16" "... in a store holding the run done, by rank 0"

# ---- a run one process left, resumed by three ----
(env STRATA_TEST_KILL_AFTER=5 "$S" calibrate "$model" "$text" --threads 1 --samples 12 \
	--seq-len 96 --db "$tmp/res.db" > /dev/null 2>&1; exit $?) 2> /dev/null
is "$("$S" sql --db "$tmp/res.db" --format csv "SELECT status || ' ' || chunks_done FROM calib_runs" | sed -n 2p)" \
   "running 5" "a single process killed after 5 of 12 chunks"
mpi 3 "$S" calibrate "$model" "$text" --threads 1 --samples 12 --seq-len 96 --db "$tmp/res.db" \
	--format json > "$tmp/res.json" 2> "$tmp/res.err"; rc=$?
is "$rc" 0 "mpirun -np 3 continues it"
contains "$(cat "$tmp/res.err")" "at chunk 6 of 12" "... from chunk 6"
cal --samples 12 --seq-len 96 --db "$tmp/fresh.db" --format json > "$tmp/fresh.json" 2> /dev/null
is "$(scores_of < "$tmp/res.json")" "$(scores_of < "$tmp/fresh.json")" \
   "... to the scores of one uninterrupted process"

# ---- a stopping rule stops every rank at one process's chunk ----
cal --samples 64 --seq-len 64 --until-stable --method attn -n 2 --db "$tmp/st1.db" \
	--format json > "$tmp/st1.json" 2> /dev/null
mpi 2 "$S" calibrate "$model" "$text" --threads 1 --samples 64 --seq-len 64 --until-stable \
	--method attn -n 2 --db "$tmp/st2.db" --format json > "$tmp/st2.json" 2> "$tmp/st2.err"; rc=$?
is "$rc" 0 "mpirun -np 2 with --until-stable ends"
c1=$(json_num chunks < "$tmp/st1.json")
is "$(json_num chunks < "$tmp/st2.json")" "$c1" "... after the chunk one process stops at ($c1)"
is "$(scores_of < "$tmp/st2.json")" "$(scores_of < "$tmp/st1.json")" "... with its scores"

# ---- eval: windows and items spread, the numbers of one process ----
# (ppl and kl packed, ppl in windows longer than a batch, layer-major in
# several passes; piqa's per-choice log-likelihoods through --log-samples)
export STRATA_TASKS="$STRATA_SRCDIR/data/tasks"
ev() {
	ranks=$1; shift
	if [ "$ranks" = 1 ]; then "$S" eval "$model" --threads 1 --no-store --format csv "$@"
	else mpi "$ranks" "$S" eval "$model" --threads 1 --no-store --format csv "$@"; fi
}
for np in 1 2; do
	ev $np --task "ppl:$text" --task "kl:$text" --mask 'attn=1;mlp=3' --max-tokens 8000 \
		--ctx 128 > "$tmp/ev$np.csv" 2> "$tmp/ev$np.err"; echo "$?" > "$tmp/ev$np.rc"
	ev $np --task "ppl:$text" --max-tokens 3000 --ctx 600 > "$tmp/long$np.csv" 2> /dev/null
	ev $np --task "ppl:$text" --task "kl:$text" --mask 'attn=2' --max-tokens 3000 --ctx 64 \
		--layer-major --mem-budget 1M > "$tmp/lm$np.csv" 2> /dev/null
done
is "$(cat "$tmp/ev2.rc")" 0 "mpirun -np 2 strata eval ppl and kl runs"
is "$(grep -c '^ppl:\|^kl:' "$tmp/ev2.csv")" 5 "... rank 0 alone prints (5 rows)"
is "$(cat "$tmp/ev2.csv")" "$(cat "$tmp/ev1.csv")" "... the printed numbers of one process, exactly"
is "$(grep -c '^ppl:' "$tmp/long2.csv")" 2 "windows longer than a batch (ctx 600): two rows"
is "$(cat "$tmp/long2.csv")" "$(cat "$tmp/long1.csv")" "... those of one process"
is "$(grep -c '^ppl:\|^kl:' "$tmp/lm2.csv")" 5 "layer-major in passes of 1 MiB: five rows"
is "$(cat "$tmp/lm2.csv")" "$(cat "$tmp/lm1.csv")" "... those of one process"
if need piqa data/mc/piqa/valid.jsonl; then
	ev 1 --task piqa --task hellaswag --limit 20 --ctx 256 --log-samples "$tmp/s1" > "$tmp/mc1.csv" 2> /dev/null
	ev 2 --task piqa --task hellaswag --limit 20 --ctx 256 --log-samples "$tmp/s2" > "$tmp/mc2.csv" 2> "$tmp/mc2.err"
	is "$(grep -c '^piqa,\|^hellaswag,' "$tmp/mc2.csv")" 4 "mpirun -np 2: piqa and hellaswag, acc and acc_norm"
	is "$(cat "$tmp/mc2.csv")" "$(cat "$tmp/mc1.csv")" "... the numbers of one process"
	ok "... and every choice's log-likelihood, bit for bit (samples files equal)" \
		cmp -s "$tmp/s1/samples_piqa.jsonl" "$tmp/s2/samples_piqa.jsonl"
	ok "... hellaswag's too" cmp -s "$tmp/s1/samples_hellaswag.jsonl" "$tmp/s2/samples_hellaswag.jsonl"
	mctask="--task piqa"
else
	mctask=""
fi
ev 3 --task "ppl:$text" --max-tokens 4000 --ctx 96 > "$tmp/three.csv" 2> /dev/null
ev 1 --task "ppl:$text" --max-tokens 4000 --ctx 96 > "$tmp/three1.csv" 2> /dev/null
is "$(cat "$tmp/three.csv")" "$(cat "$tmp/three1.csv")" "mpirun -np 3: the perplexity of one process"

# ---- sweep: each point's evaluations spread ----
cal --samples 8 --seq-len 64 --db "$tmp/sw1.db" > /dev/null 2>&1
cp "$tmp/sw1.db" "$tmp/sw2.db"
cp "$tmp/sw1.db" "$tmp/swk.db"
sweep() { db=$1; shift; "$@" sweep "$model" --db "$db" --run 1 --method attn,block --max 2 --task "ppl:$text" \
	--task "kl:$text" $mctask --limit 20 --max-tokens 4000 --ctx 256 --threads 1 --format csv; }
sweep "$tmp/sw1.db" "$S" > "$tmp/sw1.csv" 2> /dev/null
sweep "$tmp/sw2.db" mpi 2 "$S" > "$tmp/sw2.csv" 2> "$tmp/sw2.err"; rc=$?
is "$rc" 0 "mpirun -np 2 strata sweep runs"
is "$(grep -c '^attn,\|^block,' "$tmp/sw1.csv")" 6 "one process sweeps six points"
is "$(grep -c '^attn,\|^block,' "$tmp/sw2.csv")" 6 "... mpirun -np 2 too, printed by rank 0"
is "$(cat "$tmp/sw2.csv")" "$(cat "$tmp/sw1.csv")" "... with the numbers of one process, exactly"
ntask=$(( ${mctask:+1} + 2 ))
is "$("$S" sql --db "$tmp/sw2.db" --format csv "SELECT count(*) FROM evals" | sed -n 2p)" \
   "$(( 5 * ntask ))" "... stored by rank 0 (five masks x $ntask tasks)"

# ---- a rank that dies ends the job; the evaluations done stay stored ----
(export STRATA_TEST_KILL_AFTER=4; sweep "$tmp/swk.db" mpi 2 "$S" > /dev/null 2> "$tmp/swk.err"); rc=$?
ok "a worker killed at its fifth evaluation ends the job (exit $rc)" [ "$rc" -ne 0 ]
contains "$(cat "$tmp/swk.err")" "stopped waiting for rank 1" "... rank 0 says what it waited for"
is "$("$S" sql --db "$tmp/swk.db" --format csv "SELECT count(*) FROM evals" | sed -n 2p)" 4 \
   "... the four evaluations finished before are stored"
sweep "$tmp/swk.db" mpi 3 "$S" > "$tmp/swk.csv" 2> "$tmp/swk2.err"; rc=$?
is "$rc" 0 "mpirun -np 3 finishes the sweep"
contains "$(cat "$tmp/swk2.err")" "(from the store)" "... reading back what was done"
is "$(cat "$tmp/swk.csv")" "$(cat "$tmp/sw1.csv")" "... to the numbers of one process"
# ---- a mixture of experts: the expert statistics of one process ----
"$S" synth "$tmp/olmoe.gguf" --shape olmoe-tiny > /dev/null 2>&1
ex_of() { "$S" scores 1 --experts --db "$1" --format json | sed 's/"run": [0-9]*//g'; }
"$S" calibrate "$tmp/olmoe.gguf" "$text" --threads 1 --samples 6 --seq-len 32 --db "$tmp/x1.db" \
	> /dev/null 2>&1
mpi 2 "$S" calibrate "$tmp/olmoe.gguf" "$text" --threads 1 --samples 6 --seq-len 32 \
	--db "$tmp/x2.db" > /dev/null 2> "$tmp/x2.err"; rc=$?
is "$rc" 0 "mpirun -np 2 calibrates olmoe-tiny"
is "$(ex_of "$tmp/x2.db" | grep -o '"freq_se"' | wc -l | tr -d ' ')" 24 "... with 24 experts' statistics"
is "$(ex_of "$tmp/x2.db")" "$(ex_of "$tmp/x1.db")" "... equal to one process's, bit for bit"

# ---- other commands are not spread ----
mpi 2 "$S" ppl "$model" "$text" > /dev/null 2> "$tmp/ppl.err"; rc=$?
ok "mpirun -np 2 strata ppl is refused (exit $rc)" [ "$rc" -ne 0 ]
contains "$(cat "$tmp/ppl.err")" "spreads 'strata calibrate', 'strata eval' and 'strata sweep' only" \
	"... saying what is spread"
done_testing
