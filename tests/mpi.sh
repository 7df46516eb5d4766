#!/bin/sh
# mpi: `mpirun -np N strata calibrate` spreads the chunks over N
# processes with the scores of one process, bit for bit (one thread
# each); resumes a run a single process left with any number of ranks;
# stops all ranks with a stopping rule at the chunk one process stops
# at; a mixture of experts' expert statistics equal one process's;
# refuses other commands.  A strata built without MPI says so when
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
mpi 2 "$S" eval "$model" --task "ppl:$text" --no-store > /dev/null 2> "$tmp/ev.err"; rc=$?
ok "mpirun -np 2 strata eval is refused (exit $rc)" [ "$rc" -ne 0 ]
contains "$(cat "$tmp/ev.err")" "spreads 'strata calibrate' only" "... saying what is spread"
done_testing
