/*
 * cmd_bench: `strata bench MODEL` -- prefill and decode speed, weight
 * and KV-cache bytes and peak RSS of a model with an optional mask
 * (the measurement itself is speed.c).  Context lengths beyond the
 * model's trained context are clipped to it, with a warning.  The mask
 * it ran is printed in canonical form beside a check that the KV cache
 * holds exactly what the mask implies, so a benchmark of the undropped
 * model cannot pass for a masked one.  Every measurement is stored
 * (bench_list in the store); --cached answers from the newest stored
 * one with the same model, mask, settings and host instead.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "app/measure.h"
#include "cli/cli.h"
#include "model/mask.h"
#include "model/model.h"
#include "measure/speed.h"
#include "cli/store_cli.h"
#include "compute/threads.h"

#define BENCH_MAX_CTX 16
#define BENCH_PREFILL 16 /* tokens before the decode steps */

static const char help[] =
	"usage: strata bench MODEL [options]\n"
	"Prefill and decode speed, weight and KV-cache bytes, peak RSS.\n"
	"  --mask M           drop sites first, e.g. 'attn=3-4;mlp=1'\n"
	"  --ctx L1,L2,...    prefill lengths (default 128,512,2048; clipped\n"
	"                     to the model's context)\n"
	"  --gen N            decode steps after a 16-token prefill (default 32;\n"
	"                     0: no decode)\n"
	"  --repeat R         timed repeats; median, min and max (default 3)\n"
	"  --cached           reuse the newest stored measurement with the same\n"
	"                     model, mask, settings, threads and host\n"
	"  --no-store         do not record the measurement in the store\n"
	DB_HELP
	"  --threads N, --format text|json|csv\n";

/* Parse "128,512" into ctx[]; returns the count or -1 (reported). */
static int parse_ctx(const char *s, int *ctx)
{
	char buf[256], *save = NULL;
	int n = 0;

	if (strlen(s) >= sizeof buf) {
		cli_usage("bench", "--ctx: list too long");
		return -1;
	}
	strcpy(buf, s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		long v;

		if (n == BENCH_MAX_CTX) {
			cli_usage("bench", "--ctx: at most %d lengths", BENCH_MAX_CTX);
			return -1;
		}
		if (cli_parse_int("bench", "--ctx", t, 1, 1 << 24, &v) < 0)
			return -1;
		ctx[n++] = (int)v;
	}
	if (n == 0) {
		cli_usage("bench", "--ctx: empty list");
		return -1;
	}
	return n;
}

/* Clip each length to n_ctx (warning once per length) and drop repeats. */
static int clip_ctx(int *ctx, int n, int n_ctx)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		int c = ctx[i], dup = 0;

		if (c > n_ctx) {
			fprintf(stderr, "strata: warning: --ctx %d clipped to the model's context %d\n",
				c, n_ctx);
			c = n_ctx;
		}
		for (int j = 0; j < k; j++)
			dup |= ctx[j] == c;
		if (!dup)
			ctx[k++] = c;
	}
	return k;
}

static void put_stat(struct record *r, const char *key, const struct speed_stat *s)
{
	char k[64];

	record_num(r, key, s->med);
	snprintf(k, sizeof k, "%s_min", key);
	record_num(r, k, s->min);
	snprintf(k, sizeof k, "%s_max", key);
	record_num(r, k, s->max);
}

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"mask", required_argument, NULL, 'm'},
		{"ctx", required_argument, NULL, 'c'},
		{"gen", required_argument, NULL, 'g'},
		{"repeat", required_argument, NULL, 'r'},
		{"cached", no_argument, NULL, 'C'},
		{"no-store", no_argument, NULL, 'N'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct app_measure ms;
	struct app_env env = {0};
	const char *db = NULL;
	int use_cache = 0, cached = 0, no_store = 0;
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	struct st_err err = {0};
	struct speed_result res = {0};
	struct speed_opts so = {0};
	const char *mask_text = NULL;
	struct mask *mask = NULL;
	struct model *m = NULL;
	int ctx[BENCH_MAX_CTX] = {128, 512, 2048}, n_ctx = 3;
	long gen = 32, repeat = 3;
	char maskbuf[4096];
	int c, e, rc = EXIT_ERR;

	while ((c = cli_next_opt("bench", argc, argv, "h", longopts, help, &co, &db)) >= 0) {
		switch (c) {
		case 'm':
			mask_text = optarg;
			break;
		case 'c':
			n_ctx = parse_ctx(optarg, ctx);
			if (n_ctx < 0)
				return EXIT_USAGE;
			break;
		case 'g':
			if (cli_parse_int("bench", "--gen", optarg, 0, 1 << 20, &gen) < 0)
				return EXIT_USAGE;
			break;
		case 'r':
			if (cli_parse_int("bench", "--repeat", optarg, 1, 1000, &repeat) < 0)
				return EXIT_USAGE;
			break;
		case 'C':
			use_cache = 1;
			break;
		case 'N':
			no_store = 1;
			break;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc - optind != 1)
		return cli_usage("bench", "expected MODEL");
	cli_common_apply(&co);
	m = cli_load_model(argv[optind]);
	if (!m)
		return EXIT_ERR;
	if (mask_text && mask_parse(mask_text, m->hp.n_layer, &mask, &err) < 0) {
		cli_error("--mask: %s", err.msg);
		rc = EXIT_USAGE;
		goto out;
	}
	n_ctx = clip_ctx(ctx, n_ctx, m->hp.n_ctx);
	if (gen > 0 && BENCH_PREFILL + gen > m->hp.n_ctx) {
		long g = m->hp.n_ctx - BENCH_PREFILL;

		if (g < 1) {
			cli_error("%s: context %d is too short to decode after a %d-token prefill",
				  argv[optind], m->hp.n_ctx, BENCH_PREFILL);
			goto out;
		}
		fprintf(stderr, "strata: warning: --gen %ld clipped to %ld (model context %d)\n",
			gen, g, m->hp.n_ctx);
		gen = g;
	}
	so.ctx = ctx;
	so.n_ctx = n_ctx;
	so.gen = (int)gen;
	so.decode_prefill = BENCH_PREFILL;
	so.repeat = (int)repeat;
	so.seed = 1;
	so.progress = cli_progress_eta;
	so.progress_ud = (void *)"bench";
	cli_cancel_install();
	{
		int dmg = 0;

		cli_env(&env, "bench", cli_measure_open("bench", db, no_store, &dmg));
		if (dmg)
			goto out;
	}
	app_measure_init(&ms, &env, m, 0);
	e = app_bench(m, mask, &so, &ms, use_cache, &res, &cached, &err);
	cli_progress_eta_end();
	if (e < 0) {
		cli_error("%s: %s", argv[optind], err.msg);
		goto out;
	}
	if (cached)
		fprintf(stderr, "strata bench: from the store (measured before on this host; "
			"drop --cached to measure again)\n");
	{
		struct record *r = record_new();
		int32_t ctxs[BENCH_MAX_CTX];
		int big = 0;
		char key[64];

		mask_format(mask ? mask : &(struct mask){0, NULL, NULL, 0, NULL}, maskbuf, sizeof maskbuf);
		for (int i = 0; i < n_ctx; i++) {
			ctxs[i] = ctx[i];
			if (ctx[i] > ctx[big])
				big = i;
		}
		record_str(r, "model", argv[optind]);
		record_str(r, "mask", maskbuf);
		record_int(r, "n_layer", m->hp.n_layer);
		{
			/* kept = the mask keeps it and the file has it (an export's
			 * absent sites are dropped too) */
			int ak = 0, mk = 0;
			for (int l = 0; l < m->hp.n_layer; l++) {
				ak += mask_keeps_attn(mask, l) && model_has_attn(m, l);
				mk += mask_keeps_mlp(mask, l) && model_has_mlp(m, l);
			}
			record_int(r, "attn_kept", ak);
			record_int(r, "mlp_kept", mk);
		}
		record_int(r, "threads", threads_get());
		record_int(r, "repeat", repeat);
		record_ints(r, "ctx", ctxs, (size_t)n_ctx);
		for (int i = 0; i < n_ctx; i++) {
			snprintf(key, sizeof key, "prefill_tps_%d", ctx[i]);
			put_stat(r, key, &res.ctx[i].tps);
		}
		record_int(r, "gen", res.gen);
		if (res.gen)
			put_stat(r, "decode_tps", &res.decode_tps);
		record_int(r, "weight_bytes", (long long)res.weight_bytes);
		for (int i = 0; i < n_ctx; i++) {
			snprintf(key, sizeof key, "kv_bytes_%d", ctx[i]);
			record_int(r, key, (long long)res.ctx[i].kv_bytes);
		}
		if (n_ctx) {
			record_int(r, "kv_ctx", ctx[big]);
			record_int(r, "kv_bytes", (long long)res.ctx[big].kv_bytes);
			record_int(r, "kv_expected", (long long)res.ctx[big].kv_expected);
		}
		record_bool(r, "kv_check", 1); /* speed_run fails on a mismatch */
		record_bool(r, "cached", cached);
		record_int(r, "rss_peak", (long long)res.rss_peak);
		record_print(r, co.format, stdout);
		record_free(r);
	}
	rc = EXIT_OK;
out:
	store_close(env.s);
	speed_result_free(&res);
	mask_free(mask);
	model_free(m);
	return rc;
}
