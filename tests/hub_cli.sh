#!/bin/sh
# hub_cli: `strata pull` and hf: references end to end against
# tests/hub_server on loopback: pull a model, use it as hf:ORG/NAME with
# no further request, a dataset by its catalogue name for calibrate
# (same scores as the local file), a wrong catalogue hash refused, the
# token from HF_TOKEN and from $HF_HOME/token, offline mode, plain
# progress lines, hf:datasets/ references for ppl and eval, the
# default model pulled when ../shared is absent, and a file with no hash
# refused unless --no-verify.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/hub_cli"
rm -rf "$tmp" && mkdir -p "$tmp"
unset HF_TOKEN HF_HUB_OFFLINE HF_HUB_CACHE XDG_CACHE_HOME STRATA_MODEL STRATA_DATASETS
export HF_HOME="$tmp/hfhome" STRATA_HUB_BACKOFF=0.01 STRATA_HUB_RETRIES=3

if need hf models/stories260K/hf/model.safetensors &&
   need gguf models/stories260K/stories260K.gguf &&
   need c4 data/text/c4-en-train-00000-first1000.jsonl &&
   need stories data/text/tinystories-valid-1000.txt; then
	hf=${hf%/model.safetensors}
	# the repositories: a model, a gated copy, the default model's repo, a dataset
	mkdir -p "$tmp/ggml/tinyllamas" "$tmp/c4/en" "$tmp/text"
	head -c 20000 "$stories" > "$tmp/text/story.txt"
	cp "$gguf" "$tmp/ggml/tinyllamas/stories260K.gguf"
	head -200 "$c4" | gzip -n > "$tmp/c4/en/c4-validation.00000-of-00008.json.gz"
	# rows as the Hub serves them (DuckDB's parquet file of tests/data)
	cp "$STRATA_SRCDIR/tests/data/parquet/snappy.parquet" "$tmp/c4/en/rows.parquet"
	"$STRATA_BUILDDIR/tests/hub_server" --port-file "$tmp/ports" --log "$tmp/log" --token sekrit \
		"test/stories260K=$hf" "test/gated-stories=$hf" "ggml-org/models=$tmp/ggml" \
		"datasets/allenai/c4=$tmp/c4" "datasets/test/text=$tmp/text" "test/nohash-stories=$hf" &
	server=$!
	trap 'kill $server 2>/dev/null' EXIT
	i=0
	while [ ! -s "$tmp/ports" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	read -r port cdn < "$tmp/ports"
	export HF_ENDPOINT="http://127.0.0.1:$port"
	cache="$HF_HOME/hub"

	# ---- pull a model ----
	"$S" pull test/stories260K --format json > "$tmp/pull.json" 2> "$tmp/pull.err"; rc=$?
	is "$rc" 0 "pull exits 0"
	snap=$(sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' "$tmp/pull.json")
	contains "$(cat "$tmp/pull.json")" '"files": 5' "5 files"
	case $snap in "$cache/models--test--stories260K/snapshots/"*) r=yes ;; *) r="$snap" ;; esac
	is "$r" yes "the snapshot is in \$HF_HOME/hub/models--test--stories260K"
	ok "model.safetensors is a link into blobs/" test -L "$snap/model.safetensors"
	ok "with the source's bytes" cmp -s "$snap/model.safetensors" "$hf/model.safetensors"
	contains "$(cat "$tmp/pull.err")" "fetching model.safetensors [" "plain progress lines off a terminal"
	contains "$(cat "$tmp/pull.err")" "verified" "each file reported verified"

	# ---- hf: as a model path, from the cache without a request ----
	lines=$(wc -l < "$tmp/log")
	"$S" info "hf:test/stories260K" --format json > "$tmp/info.json" 2> "$tmp/info.err"; rc=$?
	is "$rc" 0 "info hf:test/stories260K exits 0"
	contains "$(cat "$tmp/info.json")" '"n_layer": 5' "the model is loaded (5 layers)"
	is "$(wc -l < "$tmp/log")" "$lines" "no request for a cached model"
	"$S" info "$snap" --format json > "$tmp/info2.json"
	is "$(sed 's/"path": *"[^"]*"//' "$tmp/info.json")" "$(sed 's/"path": *"[^"]*"//' "$tmp/info2.json")" \
		"same description as the snapshot folder"

	# ---- one file by reference; errors ----
	out=$("$S" pull "hf:test/stories260K/tokenizer.json" --format tsv 2>&1); rc=$?
	is "$rc" 0 "pull one file"
	contains "$out" "	$snap/tokenizer.json" "its path in the snapshot"
	out=$("$S" pull "hf:test/stories260K/nosuch.bin" 2>&1); rc=$?
	is "$rc" 1 "a missing file exits 1"
	contains "$out" "file 'nosuch.bin' not found at revision 'main'" "and says which"
	out=$("$S" pull "test/stories260K" --revision v3 2>&1); rc=$?
	is "$rc" 1 "a missing revision exits 1"
	contains "$out" "revision 'v3' not found" "and says which"
	out=$("$S" pull "not a repo" 2>&1); rc=$?
	is "$rc" 2 "a malformed REPO is a usage error"

	# ---- a file the hub gives no hash for: refused unless --no-verify ----
	out=$("$S" pull test/nohash-stories --include config.json 2>&1); rc=$?
	is "$rc" 1 "a file with no hash to check is refused"
	contains "$out" "no hash to check config.json" "... saying so"
	contains "$out" "--no-verify" "... and what takes it"
	ok "... nothing in the cache's blobs" test -z "$(ls -A "$cache/models--test--nohash-stories/blobs" 2>/dev/null)"
	out=$("$S" pull test/nohash-stories --include config.json --no-verify --format tsv 2>&1); rc=$?
	is "$rc" 0 "--no-verify takes it"
	nh=$(ls "$cache/models--test--nohash-stories/snapshots/"*/config.json 2>/dev/null | head -1)
	ok "... with the source's bytes" cmp -s "$nh" "$hf/config.json"

	# ---- gated: no token, HF_TOKEN, the token file ----
	out=$("$S" pull test/gated-stories 2>&1); rc=$?
	is "$rc" 1 "gated without a token exits 1"
	contains "$out" "Request access at http://127.0.0.1:$port/test/gated-stories" "says where to ask"
	contains "$out" "set HF_TOKEN" "and how to give the token"
	out=$(HF_TOKEN=sekrit "$S" pull test/gated-stories --include '*.json' --format json 2>&1); rc=$?
	is "$rc" 0 "with HF_TOKEN it pulls"
	contains "$out" '"files": 4' "4 json files (--include)"
	printf 'sekrit\n' > "$HF_HOME/token"
	out=$("$S" pull test/gated-stories --include 'model.*' 2>&1); rc=$?
	is "$rc" 0 "with \$HF_HOME/token it pulls"
	rm -f "$HF_HOME/token"
	is "$(grep -c '^cdn .*auth=1' "$tmp/log")" 0 "the content host never saw the token"
	ok "the endpoint did" grep -q '^api GET api:test/gated-stories 200 .*auth=1' "$tmp/log"

	# ---- a dataset by catalogue name ----
	sha=$(sha256sum "$tmp/c4/en/c4-validation.00000-of-00008.json.gz" | cut -d' ' -f1)
	printf 'name\trepo\trevision\tfile\tsha256\tsize\tlicense\tformat\tdescription\n' > "$tmp/cat.tsv"
	printf 'c4\tallenai/c4\tmain\ten/c4-validation.00000-of-00008.json.gz\t%s\t0\tODC-BY-1.0\tjsonl.gz\ttest\n' "$sha" >> "$tmp/cat.tsv"
	printf 'bad\tallenai/c4\tmain\ten/c4-validation.00000-of-00008.json.gz\t%s\t0\tx\tx\ttest\n' \
		0000000000000000000000000000000000000000000000000000000000000000 >> "$tmp/cat.tsv"
	export STRATA_DATASETS="$tmp/cat.tsv"
	out=$("$S" pull --dataset c4 2>&1); rc=$?
	is "$rc" 0 "pull --dataset c4"
	contains "$out" "datasets--allenai--c4/snapshots/" "into datasets--allenai--c4"
	"$S" calibrate "hf:test/stories260K" c4 --samples 2 --seq-len 64 --db "$tmp/a.db" --format json \
		2> "$tmp/cal.err" | sed 's/.*"scores"/"scores"/' > "$tmp/cal1"
	"$S" calibrate "$snap" "$tmp/c4/en/c4-validation.00000-of-00008.json.gz" --samples 2 --seq-len 64 \
		--db "$tmp/b.db" --format json | sed 's/.*"scores"/"scores"/' > "$tmp/cal2"
	ok "calibrate MODEL c4 gives scores" grep -q '"metric": *"cos"' "$tmp/cal1"
	ok "the same scores as the local file" cmp -s "$tmp/cal1" "$tmp/cal2"
	out=$("$S" ppl "hf:test/stories260K" bad 2>&1); rc=$?
	is "$rc" 1 "a catalogue hash mismatch exits 1"
	contains "$out" "but the catalogue ($tmp/cat.tsv) says 0000" "and says so"
	printf 'pq\tallenai/c4\tmain\ten/x.parquet\t\t\tMIT\tparquet\ttest\n' >> "$tmp/cat.tsv"
	lines=$(wc -l < "$tmp/log")
	out=$("$S" calibrate "hf:test/stories260K" pq --db "$tmp/a.db" 2>&1); rc=$?
	is "$rc" 1 "a parquet catalogue entry as data exits 1"
	contains "$out" "dataset 'pq' (en/x.parquet) is parquet, which strata does not read" "and says why"
	is "$(wc -l < "$tmp/log")" "$lines" "without fetching it"
	# ... but a task file's data may be a parquet catalogue entry
	printf 'pqrows\tallenai/c4\tmain\ten/rows.parquet\t\t\tMIT\tparquet\ttest\n' >> "$tmp/cat.tsv"
	printf 'format = docs\nhub = pqrows\ntext = "Q: {ctx}\\nA:"\nchoices = choices.text\ngold = label\nbos = none\n' \
		> "$tmp/pq.task"
	out=$("$S" eval "hf:test/stories260K" --task "$tmp/pq.task" --limit 3 --no-store --format csv \
		--log-samples "$tmp/pqs" 2>&1); rc=$?
	is "$rc" 0 "a task file with hub = a parquet dataset: fetched and read"
	contains "$out" "pq.task,acc_norm," "... scored"
	is "$(echo "$out" | grep ',acc,' | cut -d, -f5)" 3 "... over 3 rows"
	contains "$(head -1 "$tmp/pqs/samples_pq.jsonl")" '"arg_0":"Q: ctx 0 ' "... the prompt built from the row's column"
	contains "$(head -1 "$tmp/pqs/samples_pq.jsonl")" '"arg_1":" t0a"' "... the choices from its list column"
	out=$("$S" pull --dataset nosuch 2>&1); rc=$?
	is "$rc" 1 "an unknown catalogue name exits 1"
	contains "$out" "'nosuch' is not in the dataset catalogue" "and says so"

	# ---- the shipped catalogue: 9 fields, unique names, sha256 empty or 64 hex ----
	bad=$(awk -F'\t' '/^#/ || /^name\t/ { next }
		NF != 9 || seen[$1]++ || ($5 != "" && (length($5) != 64 || $5 ~ /[^0-9a-f]/)) || $2 !~ /^[^\/]+\/[^\/]+$/ { print NR": "$1 }' \
		"$STRATA_SRCDIR/data/datasets.tsv")
	is "$bad" "" "data/datasets.tsv is well formed"
	for name in c4 codealpaca mathinstruct lima wikitext2 tinystories hellaswag piqa arc_easy mmlu; do
		ok "data/datasets.tsv has $name" grep -q "^$name	" "$STRATA_SRCDIR/data/datasets.tsv"
	done

	# ---- hf:datasets/... as ppl's FILE and eval's ppl:FILE ----
	"$S" ppl "$snap" "$tmp/text/story.txt" --ctx 64 --format json > "$tmp/ppl1" 2>&1
	"$S" ppl "hf:test/stories260K" "hf:datasets/test/text/story.txt" --ctx 64 --format json > "$tmp/ppl2" 2> "$tmp/ppl2.err"; rc=$?
	is "$rc" 0 "ppl with hf: model and data"
	ok "ppl prints a perplexity" grep -q '"ppl":' "$tmp/ppl2"
	is "$(sed 's/"file": *"[^"]*"//; s/"path": *"[^"]*"//' "$tmp/ppl2")" "$(sed 's/"file": *"[^"]*"//; s/"path": *"[^"]*"//' "$tmp/ppl1")" \
		"the same perplexity as the local file"
	out=$("$S" eval "hf:test/stories260K" --task "ppl:hf:datasets/test/text/story.txt" --ctx 64 --no-store --format csv 2>&1); rc=$?
	is "$rc" 0 "eval --task ppl:hf:datasets/... exits 0"
	want=$(sed -n 's/.*"ppl": *\([-0-9.eE+]*\).*/\1/p' "$tmp/ppl1")
	contains "$out" "ppl:hf:datasets/test/text/story.txt,ppl,$want," "with the same perplexity"

	# ---- offline ----
	lines=$(wc -l < "$tmp/log")
	out=$(HF_HUB_OFFLINE=1 "$S" info "hf:test/stories260K" 2>&1); rc=$?
	is "$rc" 0 "offline: the cached model loads"
	out=$(HF_HUB_OFFLINE=1 "$S" pull "hf:test/stories260K/missing.bin" 2>&1); rc=$?
	is "$rc" 1 "offline: a missing file exits 1"
	contains "$out" "'missing.bin' is not in the cache" "and names it"
	is "$(wc -l < "$tmp/log")" "$lines" "offline: no request"

	# ---- the default model without ../shared ----
	out=$(STRATA_SHARED="$tmp/noshared" "$S" info --format json 2>&1); rc=$?
	is "$rc" 0 "without ../shared the default model is pulled"
	ok "from ggml-org/models" grep -q '^cdn GET ggml-org/models/tinyllamas/stories260K.gguf 200' "$tmp/log"
	ok "into the cache" test -L "$cache/models--ggml-org--models/snapshots/$(cat "$cache/models--ggml-org--models/refs/main")/tinyllamas/stories260K.gguf"
	contains "$out" '"n_layer": 5' "and loads"

	# ---- the whole repository of GGUFs is refused with the names ----
	cp "$gguf" "$tmp/ggml/tinyllamas/other.gguf"
	kill $server; wait $server 2>/dev/null
	"$STRATA_BUILDDIR/tests/hub_server" --port-file "$tmp/ports2" --log "$tmp/log" \
		"ggml-org/models=$tmp/ggml" &
	server=$!
	i=0
	while [ ! -s "$tmp/ports2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	read -r port cdn < "$tmp/ports2"
	out=$(HF_ENDPOINT="http://127.0.0.1:$port" "$S" info "hf:ggml-org/models" 2>&1); rc=$?
	is "$rc" 1 "a repository of several GGUFs needs a FILE"
	contains "$out" "holds 2 GGUF files; name one as hf:ggml-org/models/FILE" "and says so"
	contains "$out" "tinyllamas/other.gguf" "with their names"
	kill $server
fi
done_testing
