#!/bin/sh
# eval_cli: `strata eval` end to end on the shared stories260K model:
# ppl equals `strata ppl` for the same settings, KL is 0 and top-1
# agreement 1 for an empty mask and KL > 0 when attention is dropped,
# hellaswag with --limit (acc and acc_norm with stderr and n), tasks
# defined in data/tasks, the JSON shape, and usage errors.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN

# val TASKPREFIX METRIC KEY: KEY of the result row for METRIC in the JSON on stdin
val() { tr '{' '\n' | grep "\"metric\": \"$1\"" | grep -o "\"$2\": *[^,}]*" | head -1 | sed 's/.*: *//'; }

if need model models/stories260K/stories260K.gguf &&
   need text data/text/tinystories-valid-1000.txt; then
	out=$("$S" eval "$model" --task "ppl:$text" --task "kl:$text" --ctx 128 --max-tokens 1000 --format json)
	is "$?" 0 "eval ppl+kl, empty mask"
	ref=$("$S" ppl "$model" "$text" --ctx 128 --max-tokens 1000 --format json)
	is "$(echo "$out" | val ppl value)" "$(echo "$ref" | grep -o '"ppl": *[^,}]*' | sed 's/.*: *//')" "ppl equals strata ppl"
	is "$(echo "$out" | val nll value)" "$(echo "$ref" | grep -o '"nll": *[^,}]*' | sed 's/.*: *//')" "nll equals strata ppl"
	is "$(echo "$out" | val nll n)" 1000 "n is the token count"
	is "$(echo "$out" | val kl_mean value)" 0 "kl_mean 0 for an empty mask"
	is "$(echo "$out" | val kl_p99 stderr)" null "kl_p99 has no stderr (null)"
	is "$(echo "$out" | val top1_agree value)" 1 "top1_agree 1 for an empty mask"
	contains "$out" '"task": "kl:' "rows name their task"

	out=$("$S" eval "$model" --mask 'attn=1' --task "ppl:$text" --task "kl:$text" --ctx 128 --max-tokens 1000 --format json)
	ref=$("$S" ppl "$model" "$text" --mask 'attn=1' --ctx 128 --max-tokens 1000 --format json)
	is "$(echo "$out" | val ppl value)" "$(echo "$ref" | grep -o '"ppl": *[^,}]*' | sed 's/.*: *//')" "masked ppl equals strata ppl --mask"
	kl=$(echo "$out" | val kl_mean value)
	ok "kl_mean $kl > 0 with attn=1 dropped" awk -v k="$kl" 'BEGIN { exit !(k > 0.01) }'
	ag=$(echo "$out" | val top1_agree value)
	ok "top1_agree $ag < 1 with attn=1 dropped" awk -v k="$ag" 'BEGIN { exit !(k < 1 && k > 0) }'
	contains "$out" '"mask": "attn=1;mlp="' "json names the mask"

	txt=$("$S" eval "$model" --mask 'attn=1' --task "kl:$text" --ctx 128 --max-tokens 300)
	contains "$txt" "top1_agree" "text table has the metric"
	contains "$txt" "mask: attn=1;mlp=" "text names the mask"
	# a task wider than any fixed column: every row's value starts where the header's does
	txt=$("$S" eval "$model" --task "ppl:$text" --task "kl:$text" --ctx 128 --max-tokens 300 --no-store 2>/dev/null)
	is "$(echo "$txt" | sed 1,2d | awk '{ print index($0, " " $3) + length($3) }' | sort -u | wc -l | tr -d ' ')" 1 \
		"text table: the value column stays aligned with a long task path"

	if need hs data/mc/hellaswag/hellaswag_val_full.txt; then
		out=$("$S" eval "$model" --task hellaswag --limit 20 --format json)
		is "$?" 0 "hellaswag --limit 20"
		is "$(echo "$out" | val acc n)" 20 "acc over 20 items"
		is "$(echo "$out" | val acc_norm n)" 20 "acc_norm over 20 items"
		acc=$(echo "$out" | val acc value); se=$(echo "$out" | val acc stderr)
		ok "acc stderr is sqrt(p(1-p)/(n-1)) ($acc, $se)" awk -v p="$acc" -v s="$se" \
			'BEGIN { d = s - sqrt(p * (1 - p) / 19); exit !(d < 1e-12 && d > -1e-12) }'
		out2=$("$S" eval "$model" --task "hellaswag:$hs" --limit 20 --format json)
		is "$out2" "$(echo "$out" | sed "s|\"hellaswag\"|\"hellaswag:$hs\"|g")" "hellaswag:FILE gives the same"
	fi

	# task definitions in data/tasks
	if need arc data/mc/llm-foundry/arc_easy.jsonl; then
		out=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task arc_easy --task copa --limit 10 --format json)
		is "$?" 0 "arc_easy and copa from data/tasks"
		is "$(echo "$out" | tr '{' '\n' | grep -c '"n": 10')" 4 "acc and acc_norm for both, n 10"
		out2=$("$S" eval "$model" --task "$STRATA_SRCDIR/data/tasks/arc_easy.task" --limit 10 --format csv | grep acc, | cut -d, -f2-5)
		is "$out2" "$(echo "$out" | tr '{' '\n' | grep '"task": "arc_easy", "metric": "acc"' | sed 's/.*"value": \([^,]*\), "stderr": \([^,]*\), "n": \([0-9]*\).*/acc,\1,\2,\3/')" "a .task path gives the same"
		hs1=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task hellaswag_val --limit 10 --format csv | cut -d, -f2-)
		hs2=$("$S" eval "$model" --task hellaswag --limit 10 --format csv | cut -d, -f2-)
		is "$hs1" "$hs2" "hellaswag_val.task equals the built-in hellaswag"
		out=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task winogrande --limit 10 --format json)
		is "$(echo "$out" | val acc_norm n)" 10 "winogrande over 10 items"
		out=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task lambada_openai --limit 10 --format json)
		is "$(echo "$out" | val acc n)" 10 "lambada acc over 10 items"
		p=$(echo "$out" | val ppl value)
		ok "lambada ppl $p > 1" awk -v p="$p" 'BEGIN { exit !(p > 1) }'
	fi

	if need mmlu data/mc/mmlu/test/anatomy_test.csv; then
		out=$("$S" eval "$model" --task mmlu:anatomy --shots 2 --limit 5 --format json)
		is "$(echo "$out" | val acc_norm n)" 5 "mmlu:anatomy 2-shot over 5 items"
		s0=$("$S" eval "$model" --task mmlu:anatomy --shots 2 --limit 5 --seed 7 --format json 2>/dev/null)
		is "$(echo "$s0" | val acc_norm n)" 5 "--seed draws the shots another way (still 5 items)"
		is "$("$S" sql "SELECT count(DISTINCT data_sha256) FROM evals WHERE task = 'mmlu:anatomy'" --format tsv | tail -1)" 2 \
			"--seed 7 gives other prompts (another data hash) than the first shots"
		s1=$("$S" eval "$model" --task mmlu:anatomy --shots 2 --limit 5 --seed 7 --no-store --format json 2>/dev/null)
		is "$(echo "$s1" | val acc_norm value)" "$(echo "$s0" | val acc_norm value)" "the same seed gives the same result"
		err=$("$S" eval "$model" --task mmlu:anatomy --shots 9 2>&1); rc=$?
		is "$rc" 2 "--shots 9 is a usage error"
		is "$("$S" sql "SELECT count(*) FROM evals WHERE task = 'mmlu:anatomy' AND settings LIKE '%shots=2%'" --format tsv | tail -1)" 2 \
			"MMLU's shots are in the stored settings (the cache key)"
	fi
	# few-shot for any task: a task file whose few-shot split is its own data
	if need arc data/mc/llm-foundry/arc_easy.jsonl; then
		tmp="$STRATA_BUILDDIR/tests/tmp/eval_cli"; mkdir -p "$tmp"
		sed 's|^fewshot_path = .*|fewshot_path = data/mc/llm-foundry/arc_easy.jsonl|' \
			"$STRATA_SRCDIR/data/tasks/arc_easy.task" > "$tmp/arc_fs.task"
		fdb="$tmp/fewshot.db"; rm -f "$fdb"
		"$S" eval "$model" --db "$fdb" --task "$tmp/arc_fs.task" --limit 5 --format csv >/dev/null 2>&1
		a=$("$S" eval "$model" --db "$fdb" --task "$tmp/arc_fs.task" --shots 2 --limit 5 --format csv 2>&1 | grep ,acc,)
		b=$("$S" eval "$model" --task "$tmp/arc_fs.task" --shots 2 --limit 5 --no-store --format csv 2>&1 | grep ,acc,)
		"$S" eval "$model" --db "$fdb" --task "$tmp/arc_fs.task" --shots 2 --seed 7 --limit 5 --format csv >/dev/null 2>&1
		contains "$a" ",5," "--shots 2 on arc_easy (few-shot split = its data): 5 items"
		is "$b" "$a" "... the same seed (lm-eval's 1234) gives the same result"
		is "$("$S" sql --db "$fdb" "SELECT count(DISTINCT data_sha256) FROM evals" --format tsv | tail -1)" 3 \
			"... 0-shot, 2-shot and 2-shot with --seed 7 are three different prompt sets"
		is "$("$S" sql --db "$fdb" "SELECT settings FROM evals ORDER BY id" --format tsv | sed 1d | tr '\n' ' ')" \
			"ctx=2048;limit=5 ctx=2048;limit=5;seed=0;shots=2 ctx=2048;limit=5;seed=7;shots=2 " \
			"... and the shots and seed are in the cache key"
		err=$("$S" eval "$model" --task arc_easy --shots 2 --limit 5 --no-store 2>&1); rc=$?
		is "$rc" 1 "--shots with arc_easy and no train split fails"
		contains "$err" "fewshot_path '$STRATA_SHARED/data/mc/llm-foundry/arc_easy_train.jsonl' is missing" \
			"... naming the task file's key and the missing file"
	fi
	# lm-evaluation-harness's results layout, and per-item samples
	if need arc data/mc/llm-foundry/arc_easy.jsonl; then
		ls="$tmp/samples"; rm -rf "$ls"
		j=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task arc_easy --task lambada_openai \
			--limit 3 --no-store --format json)
		l=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task arc_easy --task lambada_openai \
			--limit 3 --format lm-eval --log-samples "$ls")
		is "$?" 0 "--format lm-eval --log-samples"
		for k in '"results": {' '"versions": {' '"n-shot": {' '"configs": {' '"higher_is_better": {' '"n-samples": {'; do
			contains "$l" "$k" "lm-eval layout has $k"
		done
		acc=$(echo "$j" | tr '{' '\n' | grep '"task": "arc_easy", "metric": "acc"' | grep -o '"value": [^,]*' | sed 's/.*: //')
		lacc=$(echo "$l" | grep -o '"acc,none": [^,]*' | head -1 | sed 's/.*: //')
		ok "results.arc_easy.\"acc,none\" ($lacc) is the acc of --format json ($acc)" \
			awk -v a="$acc" -v b="$lacc" 'BEGIN { exit !(a - b < 1e-12 && b - a < 1e-12) }'
		contains "$l" '"perplexity,none": ' "lambada_openai's ppl is lm-eval's perplexity"
		contains "$l" '"dataset_path": "allenai/ai2_arc",' "configs name the dataset path ..."
		contains "$l" '"dataset_name": "ARC-Easy",' "... and name"
		contains "$l" '"target_delimiter": "",' "lambada_openai's target delimiter is empty (' ' is in the target)"
		is "$(echo "$l" | grep -c '"version": 1.0')" 2 "configs carry metadata.version 1.0"
		is "$(wc -l < "$ls/samples_arc_easy.jsonl" | tr -d ' ')" 3 "samples_arc_easy.jsonl: one line per item"
		is "$(head -1 "$ls/samples_arc_easy.jsonl" | grep -o '"gen_args_[0-9]*"' | wc -l | tr -d ' ')" 4 \
			"... one request per choice"
		contains "$(head -1 "$ls/samples_arc_easy.jsonl")" \
			'"arg_0":"Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:","arg_1":" Sunlight is the source of energy for nearly all ecosystems."' \
			"... the exact prompt and continuation lm-eval builds"
		is "$(grep -c '"filtered_resps":\[\["-[0-9.e-]*","\(True\|False\)"\]' "$ls/samples_arc_easy.jsonl")" 3 \
			"... with per-choice (log-likelihood, is_greedy) as lm-eval writes them (strings)"
		contains "$l" '"arc_easy": {
      "effective": 3
    }' "n-samples: a limit that cut gives only effective (the original count is not read)"
		if need copa data/mc/llm-foundry/copa.jsonl; then
			c=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task copa --limit 1000 \
				--no-store --format lm-eval)
			contains "$c" '"copa": {
      "original": 100,
      "effective": 100
    }' "... one that cut nothing gives original too (copa: 100)"
		fi
		# lambada's is_greedy is its acc: every target token the argmax
		lmacc=$(echo "$j" | tr '{' '\n' | grep '"task": "lambada_openai", "metric": "acc"' | grep -o '"value": [^,]*' | sed 's/.*: //')
		is "$(grep -c '"True"\]\]' "$ls/samples_lambada_openai.jsonl")" \
		   "$(awk -v a="$lmacc" 'BEGIN { printf "%d", a * 3 + 0.5 }')" \
		   "lambada_openai: the items logged is_greedy True are its acc ($lmacc of 3)"
		contains "$(head -1 "$ls/samples_lambada_openai.jsonl")" '"arg_1":" signs"' "samples_lambada_openai.jsonl: target ' signs'"
		err=$("$S" ppl "$model" "$text" --format lm-eval 2>&1); rc=$?
		is "$rc" 2 "--format lm-eval is strata eval's only"
	fi
	# GSM8K: greedy generation until lm-eval's stop strings, two filters
	if need gsm data/gen/gsm8k/test.jsonl; then
		gs="$tmp/gsm_samples"; rm -rf "$gs"
		out=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --task gsm8k --shots 5 --limit 2 \
			--no-store --format lm-eval --log-samples "$gs")
		is "$?" 0 "gsm8k 5-shot over 2 items"
		contains "$out" '"exact_match,strict-match": 0.0' "lm-eval's exact_match,strict-match (stories260K does no sums)"
		contains "$out" '"exact_match,flexible-extract": ' "... and exact_match,flexible-extract"
		contains "$out" '"output_type": "generate_until"' "... a generate_until task"
		contains "$out" '"gsm8k": 5' "... n-shot 5"
		is "$(wc -l < "$gs/samples_gsm8k.jsonl" | tr -d ' ')" 2 "samples_gsm8k.jsonl: one line per question"
		first=$(head -1 "$gs/samples_gsm8k.jsonl")
		contains "$first" '"until":["Question:","</s>","<|im_end|>"]' "... with lm-eval's stop strings"
		contains "$first" "How much in dollars does she make every day at the farmers' market?\\nAnswer:\"" \
			"... the prompt ends with the question and 'Answer:'"
		is "$(echo "$first" | grep -o '\\n\\nQuestion: ' | wc -l | tr -d ' ')" 5 "... after 5 examples joined by blank lines"
		contains "$first" '"filtered_resps":{"strict-match":"[invalid]"' "... and what each filter extracted"
	fi
	# the paper's settings as one preset: what the shared data lacks is named, the rest runs
	if need mmlu data/mc/mmlu/test/anatomy_test.csv; then
		out=$(STRATA_TASKS="$STRATA_SRCDIR/data/tasks" "$S" eval "$model" --suite llm-drop --limit 1 --no-store --format csv 2>"$tmp/suite.err"); rc=$?
		is "$rc" 1 "--suite llm-drop exits 1 when a task's data is missing"
		is "$(echo "$out" | grep -c ',acc,')" "$(echo "$out" | grep -c ',acc_norm,')" "... each task that ran has acc and acc_norm"
		contains "$out" "boolq,acc," "... boolq ran (0-shot)"
		contains "$out" "piqa,acc," "... piqa ran"
		contains "$out" "openbookqa,acc," "... openbookqa ran"
		is "$(echo "$out" | grep '^mmlu,acc,' | cut -d, -f5)" 57 "... mmlu ran 5-shot, one item per subject"
		e=$(cat "$tmp/suite.err")
		is "$(echo "$out" | grep '^gsm8k,exact_match_strict,' | cut -d, -f5)" 1 "... gsm8k ran 5-shot (strict-match)"
		is "$(echo "$out" | grep '^gsm8k,exact_match_flexible,' | cut -d, -f5)" 1 "... and flexible-extract"
		contains "$e" "data/mc/rte/validation.jsonl' is missing" "... rte names its missing file"
		contains "$e" "winogrande_train.jsonl' is missing" "... 5-shot winogrande names its missing train split"
		contains "$e" "hellaswag_train_full.txt' is missing" "... 10-shot hellaswag names its missing train split"
		contains "$e" "arc_challenge_train.jsonl' is missing" "... 25-shot arc_challenge names its missing train split"
		err=$("$S" eval "$model" --suite nope 2>&1); rc=$?
		is "$rc" 2 "an unknown suite is a usage error"
		contains "$err" "'nope'" "... naming it"
	fi
	out=$("$S" eval "$model" --task "ppl:$text" --ctx 128 --max-tokens 300 --mask 'attn=1,3' --no-store --format csv 2>/dev/null)
	is "$(echo "$out" | head -1)" "task,metric,value,stderr,n,mask" "eval csv has a mask column"
	is "$(echo "$out" | sed -n 2p | sed 's/.*,"\(.*\)"$/\1/')" "attn=1,3;mlp=" "... holding the mask (quoted: it has a comma)"
	for t in "ppl:$text" "kl:$text"; do
		err=$("$S" eval "$model" --task "$t" --shots 3 --no-store 2>&1); rc=$?
		is "$rc" 2 "--shots with $t is refused, not ignored"
		contains "$err" "'$t'" "... naming the task"
	done
	# hellaswag's shots come from its train split, which the shared data lacks
	err=$("$S" eval "$model" --task hellaswag --shots 3 --no-store 2>&1); rc=$?
	is "$rc" 1 "--shots 3 with hellaswag fails without the train split"
	contains "$err" "fewshot_path '$STRATA_SHARED/data/mc/hellaswag/hellaswag_train_full.txt' is missing" \
		"... naming the missing file"
	err=$("$S" sweep "$model" --run 1 --task "ppl:$text" --shots 2 2>&1); rc=$?
	is "$rc" 2 "sweep --shots with a ppl task is refused"
	contains "$err" "multiple-choice tasks only" "... saying where shots apply"

	err=$("$S" eval "$model" --task "bogus:x" 2>&1); rc=$?
	is "$rc" 2 "unknown task is a usage error"
	contains "$err" "bogus:x" "message names the task"
	err=$("$S" eval "$model" 2>&1); rc=$?
	is "$rc" 2 "no task is a usage error"
	err=$("$S" eval "$model" --task "ppl:/nonexistent/t.txt" 2>&1); rc=$?
	is "$rc" 1 "missing file fails"
	contains "$err" "/nonexistent/t.txt" "message names the file"
	tmp="$STRATA_BUILDDIR/tests/tmp/eval_cli"; rm -rf "$tmp" && mkdir -p "$tmp"
	printf 'ctx\n7\na\nb\nc\nd\n' > "$tmp/bad.txt"
	err=$("$S" eval "$model" --task "hellaswag:$tmp/bad.txt" 2>&1); rc=$?
	is "$rc" 1 "bad hellaswag file fails"
	contains "$err" "bad.txt:2:" "message names file and line"
	err=$("$S" eval "$model" --mask 'attn=99' --task "kl:$text" 2>&1); rc=$?
	is "$rc" 2 "bad mask is a usage error"

	# the cache: a repeat is read back, other settings are computed, --force redoes
	db="$tmp/cache.db"
	a=$("$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$text" --task "kl:$text" --ctx 128 --max-tokens 600 --format json 2>"$tmp/e1")
	is "$?" 0 "eval with --db"
	is "$(cat "$tmp/e1")" "" "first run computes (nothing said about the store)"
	b=$("$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$text" --task "kl:$text" --ctx 128 --max-tokens 600 --format json 2>"$tmp/e2")
	is "$b" "$a" "a repeated evaluation gives exactly the same output"
	contains "$(cat "$tmp/e2")" "from the store" "... read back from the store"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM evals" --format tsv | tail -1)" 2 "two evaluations stored (ppl, kl)"
	is "$("$S" sql --db "$db" "SELECT value FROM eval_list WHERE metric = 'ppl'" --format tsv | tail -1 | cut -c1-8)" \
		"$(echo "$a" | val ppl value | cut -c1-8)" "the stored ppl is the printed one"
	is "$("$S" sql --db "$db" "SELECT mask || ' ' || settings FROM evals WHERE task = 'kl'" --format tsv | tail -1)" \
		"attn=2;mlp= ctx=128;max_tokens=600" "key: canonical mask and settings"
	"$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$text" --ctx 128 --max-tokens 500 >/dev/null 2>"$tmp/e3"
	is "$(cat "$tmp/e3")" "" "other --max-tokens is computed"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM evals" --format tsv | tail -1)" 3 "... and stored as another evaluation"
	cp "$text" "$tmp/copy.txt"
	"$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$tmp/copy.txt" --ctx 128 --max-tokens 600 >/dev/null 2>"$tmp/e4"
	contains "$(cat "$tmp/e4")" "from the store" "the same data under another name is found by its hash"
	printf 'x' >> "$tmp/copy.txt"
	"$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$tmp/copy.txt" --ctx 128 --max-tokens 600 >/dev/null 2>"$tmp/e5"
	is "$(cat "$tmp/e5")" "" "changed data is computed again"
	"$S" eval "$model" --db "$db" --mask 'attn=2' --task "ppl:$text" --ctx 128 --max-tokens 600 --force >/dev/null 2>"$tmp/e6"
	is "$(cat "$tmp/e6")" "" "--force computes"
	is "$("$S" sql --db "$db" "SELECT count(*) FROM evals" --format tsv | tail -1)" 4 "... and replaces (no duplicate)"
	printf 'not a database, keep me\n' > "$tmp/notdb"
	c=$("$S" eval "$model" --db "$tmp/notdb" --mask 'attn=2' --task "ppl:$text" --ctx 128 --max-tokens 600 --format json 2>"$tmp/e7")
	is "$?" 0 "a store that cannot be used does not stop the evaluation"
	contains "$(cat "$tmp/e7")" "not cached" "... it warns"
	is "$(echo "$c" | val ppl value)" "$(echo "$a" | val ppl value)" "... and the result is the same"
	is "$(cat "$tmp/notdb")" "not a database, keep me" "... and the foreign file is untouched"

	# ---- layer-major windows: token-major's ppl and KL within 1e-6 ----
	# rel_eq A B: |A - B| <= 1e-6 |B| (or both 0)
	rel_eq() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b
		exit !(a != "" && b != "" && d <= 1e-6 * m + 1e-12) }'; }
	lm_check() { # MODEL LABEL CTX
		tm=$("$S" eval "$1" --mask 'attn=1;mlp=0' --task "ppl:$text" --task "kl:$text" --ctx "$3" \
			--max-tokens 3000 --no-store --format json --token-major 2>/dev/null)
		mkdir -p "$tmp/spilldir"
		lm=$(TMPDIR="$tmp/spilldir" "$S" eval "$1" --mask 'attn=1;mlp=0' --task "ppl:$text" --task "kl:$text" \
			--ctx "$3" --max-tokens 3000 --no-store --format json --layer-major --mem-budget 4M 2> "$tmp/lm.err")
		for k in ppl nll kl_mean top1_agree; do
			ok "$2, ctx $3: layer-major $k ($(echo "$lm" | val $k value)) = token-major's ($(echo "$tm" | val $k value)) within 1e-6" \
				rel_eq "$(echo "$lm" | val $k value)" "$(echo "$tm" | val $k value)"
		done
		# the 99th percentile is one token's KL, which carries that token's rounding
		ok "$2, ctx $3: layer-major kl_p99 ($(echo "$lm" | val kl_p99 value)) = token-major's ($(echo "$tm" | val kl_p99 value)) within 1e-5" \
			awk -v a="$(echo "$lm" | val kl_p99 value)" -v b="$(echo "$tm" | val kl_p99 value)" \
			'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-5 * b) }' 
		contains "$(cat "$tmp/lm.err")" "layer-major windows: all 3000 tokens a pass" "... the passes are said"
		contains "$(cat "$tmp/lm.err")" "at a time, the activations spilled to a temporary file" \
			"... more than --mem-budget 4M holds: spilled"
		ok "... leaving no file behind" [ -z "$(ls -A "$tmp/spilldir")" ]
	}
	lm_check "$model" stories260K 128
	lm_check "$model" stories260K 700   # windows longer than a prefill batch, packed too
	"$S" synth "$tmp/odd.gguf" --shape odd-tiny > /dev/null
	lm_check "$tmp/odd.gguf" "synthetic odd-tiny" 100
	# a model larger than the memory available goes layer-major by itself
	au=$(STRATA_TEST_MEMAVAIL_MIB=1 "$S" eval "$model" --task "ppl:$text" --ctx 128 --max-tokens 2000 \
		--no-store --format json 2> "$tmp/au.err")
	contains "$(cat "$tmp/au.err")" "larger than the memory available" "a model larger than memory: layer-major by itself"
	contains "$(cat "$tmp/au.err")" "released after it" "... releasing each layer's weights"
	tk=$("$S" eval "$model" --task "ppl:$text" --ctx 128 --max-tokens 2000 --no-store --format json 2>/dev/null)
	ok "... with token-major's ppl within 1e-6" rel_eq "$(echo "$au" | val ppl value)" "$(echo "$tk" | val ppl value)"
	STRATA_TEST_MEMAVAIL_MIB=1 "$S" eval "$model" --task "ppl:$text" --ctx 128 --max-tokens 500 \
		--no-store --token-major > /dev/null 2> "$tmp/tk.err"
	is "$(grep -c 'layer-major' "$tmp/tk.err")" 0 "--token-major refuses it"
	"$S" eval "$model" --task "ppl:$text" --layer-major --token-major > /dev/null 2> "$tmp/e8"; rc=$?
	is "$rc" 2 "--layer-major with --token-major is a usage error"
	"$S" eval "$model" --task "ppl:$text" --mem-budget 12Q > /dev/null 2> "$tmp/e9"; rc=$?
	is "$rc" 2 "a bad --mem-budget is a usage error"
	# Ctrl-C inside a layer-major pass (SIGINT after its 3rd layer): it stops after that
	# layer, says so, and stores nothing; run again, the result is token-major's
	STRATA_TEST_INT_AFTER_LAYER=3 "$S" eval "$model" --task "ppl:$text" --ctx 128 --max-tokens 2000 \
		--db "$tmp/lmc.db" --layer-major > /dev/null 2> "$tmp/lmc.err"; rc=$?
	is "$rc" 1 "Ctrl-C inside a layer-major pass: exit 1"
	contains "$(cat "$tmp/lmc.err")" "cancelled after layer 3 of 5 of a layer-major call over 15 windows (0 of 2000 tokens scored before it)" \
		"... after the layer in progress, saying so"
	is "$("$S" sql --db "$tmp/lmc.db" "SELECT count(*) FROM evals" --format csv | tail -1)" 0 "... nothing stored"
	lmc=$("$S" eval "$model" --task "ppl:$text" --ctx 128 --max-tokens 2000 --db "$tmp/lmc.db" \
		--layer-major --format json 2>/dev/null)
	ok "... run again: token-major's ppl within 1e-6" rel_eq "$(echo "$lmc" | val ppl value)" "$(echo "$tk" | val ppl value)"
	is "$("$S" sql --db "$tmp/lmc.db" "SELECT count(*) FROM evals" --format csv | tail -1)" 1 "... stored once"
	# the progress line on a terminal: the tokens rise layer by layer within a pass
	if command -v script > /dev/null 2>&1; then
		script -qec "'$S' eval '$model' --task 'ppl:$text' --ctx 128 --max-tokens 2000 --no-store --layer-major" \
			/dev/null < /dev/null 2>&1 | tr '\r' '\n' > "$tmp/tty.out"
		contains "$(cat "$tmp/tty.out")" "381/2000 tokens  layer 1/5" \
			"progress on a terminal: after layer 1 of 5 of the first call (15 windows, 1905 tokens), a fifth of them"
		contains "$(cat "$tmp/tty.out")" "2000/2000 tokens  layer 5/5" "... all of them after layer 5"
	fi
	contains "$(cat "$tmp/e9")" "512M or 2G, got '12Q'" "... saying what it expects"
fi
echo "1..$n"
[ "$failed" -eq 0 ]
