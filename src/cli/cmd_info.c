/*
 * cmd_info: `strata info [MODEL]` -- what a model is: format,
 * architecture, shapes, dtypes, parameters, sizes and tokenizer;
 * `strata info --system` -- what this machine runs: CPU features, the
 * kernels each weight type goes through, OpenBLAS's core and threads.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "cli/cli.h"
#include "app/dist.h"
#include "compute/forward.h"
#include "compute/kernels.h"
#include "compute/matmul.h"
#include "compute/threads.h"
#include "format/dtype.h"
#include "model/model.h"
#include "tok/tokenizer.h"

static const char help[] =
	"usage: strata info [MODEL] [options]\n"
	"       strata info --system [options]\n"
	"Describe MODEL (default: $STRATA_MODEL or the shared stories260K GGUF).\n"
	"  --check          also read every weight: exit 1 at a NaN or Inf\n"
	"  --system         describe this machine instead: CPU features, the kernels\n"
	"                   each weight type runs for decode and prefill, OpenBLAS's\n"
	"                   core and threads\n";

enum { OPT_SYSTEM = 1100 }; /* past cli.h's common options */

/* `strata info --system` */
static int info_system(const struct common_opts *co)
{
	static const enum st_dtype types[] = { ST_F32, ST_F16, ST_BF16, ST_Q8_0, ST_Q4_0, ST_Q4_1 };
	struct record *r = record_new();
	char buf[512], key[64];
	size_t i;

	record_str(r, "cpu_features", cpu_describe(buf, sizeof buf));
	record_str(r, "simd", kern_name());
	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		snprintf(key, sizeof key, "decode_%s", dtype_name(types[i]));
		record_str(r, key, matmul_path(types[i], 0, MM_COMPUTE_F32, buf, sizeof buf));
		snprintf(key, sizeof key, "prefill_%s", dtype_name(types[i]));
		record_str(r, key, matmul_path(types[i], 1, MM_COMPUTE_F32, buf, sizeof buf));
		if (types[i] != ST_F32) {
			snprintf(key, sizeof key, "prefill_%s_bf16", dtype_name(types[i]));
			record_str(r, key, matmul_path(types[i], 1, MM_COMPUTE_BF16, buf, sizeof buf));
			snprintf(key, sizeof key, "%s_ggml", dtype_name(types[i]));
			record_str(r, key, matmul_path(types[i], 1, MM_COMPUTE_GGML, buf, sizeof buf));
		}
	}
	record_str(r, "openblas_core", matmul_blas_core());
	record_str(r, "openblas_config", matmul_blas_config());
	record_str(r, "openblas_coretype_env", getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "");
	record_str(r, "compute", fwd_compute_default_name());
	record_str(r, "compute_auto", kern_bf16_native() ? "bf16 for non-F32 weights" : "f32");
	record_int(r, "threads", threads_get());
	record_str(r, "kernels", matmul_describe(buf, sizeof buf));
	record_str(r, "mpi", dist_available() ? "Open MPI: mpirun -np N strata calibrate|eval|sweep "
		   "... spreads the chunks, windows and items" : "absent (built without libopenmpi-dev)");
	record_print(r, co->format, stdout);
	record_free(r);
	return EXIT_OK;
}

static const char *rope_scaling_name(int t)
{
	return t == 1 ? "llama3" : t == 2 ? "linear" : t == 3 ? "longrope" : "none";
}

/* A float hyperparameter as the short decimal it was written as (1e-05,
 * not 9.99999975e-06). */
static double short_decimal(float f)
{
	char buf[32];

	snprintf(buf, sizeof buf, "%.7g", f);
	return strtod(buf, NULL);
}

int cmd_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"check", no_argument, NULL, 'k'},
		COMMON_LONGOPTS, {"system", no_argument, NULL, OPT_SYSTEM}, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	const struct model_hparams *hp;
	struct record *r;
	struct model *m;
	const char *path;
	int c, system = 0, check = 0;

	while ((c = cli_next_opt("info", argc, argv, "h", longopts, help, &co, NULL)) >= 0) {
		if (c == OPT_SYSTEM) {
			system = 1;
			continue;
		}
		if (c == 'k') {
			check = 1;
			continue;
		}
		return cli_usage("info", "unknown option");
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (system) {
		if (optind < argc)
			return cli_usage("info", "--system takes no MODEL");
		cli_common_apply(&co);
		return info_system(&co);
	}
	if (argc - optind > 1)
		return cli_usage("info", "expected at most one MODEL, got %d arguments", argc - optind);
	path = optind < argc ? argv[optind] : cli_default_model();
	cli_common_apply(&co);
	m = cli_load_model(path);
	if (!m)
		return EXIT_ERR;
	hp = &m->hp;
	r = record_new();
	record_str(r, "path", path);
	record_str(r, "format", model_format_name(m->format));
	record_str(r, "arch", hp->arch);
	record_int(r, "n_layer", hp->n_layer);
	record_int(r, "d_model", hp->d_model);
	record_int(r, "n_head", hp->n_head);
	record_int(r, "n_head_kv", hp->n_head_kv);
	record_int(r, "head_dim", hp->head_dim);
	record_int(r, "d_ff", hp->d_ff);
	record_int(r, "n_vocab", hp->n_vocab);
	record_int(r, "n_ctx", hp->n_ctx);
	record_num(r, "rms_eps", short_decimal(hp->rms_eps));
	record_num(r, "rope_theta", short_decimal(hp->rope_theta));
	record_str(r, "rope_layout", hp->rope_layout == ROPE_NEOX ? "neox" : "interleaved");
	record_str(r, "rope_scaling", rope_scaling_name(hp->rope_scaling_type));
	if (hp->rope_scaling_type && hp->rope_scaling_type != 3)
		record_num(r, "rope_factor", short_decimal(hp->rope_factor));
	record_bool(r, "qkv_bias", hp->qkv_bias);
	record_bool(r, "tied_embeddings", hp->tied_embeddings);
	/* the newer families' features, only where a model has them */
	if (hp->qk_norm)
		record_str(r, "qk_norm", hp->qk_norm == QK_NORM_HEAD ? "per head" : "whole projection");
	if (hp->post_norm)
		record_str(r, "norms", hp->no_pre_norm ? "post" : "pre and post");
	if (hp->ffn_act == FFN_GELU_TANH)
		record_str(r, "ffn", "geglu (tanh gelu)");
	if (hp->embed_scale != 1)
		record_num(r, "embed_scale", short_decimal(hp->embed_scale));
	if (hp->residual_scale != 1)
		record_num(r, "residual_scale", short_decimal(hp->residual_scale));
	if (hp->attn_scale > 0)
		record_num(r, "attn_scale", short_decimal(hp->attn_scale));
	if (hp->logit_scale != 1)
		record_num(r, "logit_scale", short_decimal(hp->logit_scale));
	if (hp->attn_softcap > 0)
		record_num(r, "attn_softcap", short_decimal(hp->attn_softcap));
	if (hp->final_softcap > 0)
		record_num(r, "final_softcap", short_decimal(hp->final_softcap));
	if (hp->swa_window > 0) {
		record_int(r, "sliding_window", hp->swa_window);
		record_int(r, "sliding_pattern", hp->swa_pattern);
	}
	if (hp->rope_theta_local > 0)
		record_num(r, "rope_theta_local", short_decimal(hp->rope_theta_local));
	if (hp->rope_dim != hp->head_dim)
		record_int(r, "rope_dim", hp->rope_dim);
	if (hp->rope_scaling_type == 3) {
		record_int(r, "rope_orig_ctx", hp->rope_orig_ctx);
		record_num(r, "rope_attn_factor", short_decimal(hp->rope_attn_factor));
	}
	if (hp->fused_qkv)
		record_str(r, "fused", "qkv, gate_up");
	if (hp->n_expert > 0) {
		record_int(r, "n_expert", hp->n_expert);
		record_int(r, "n_expert_used", hp->n_expert_used);
		if (hp->n_expert_layer) { /* layers keeping different counts */
			int32_t *cnt = malloc((size_t)hp->n_layer * sizeof *cnt);

			for (int l = 0; cnt && l < hp->n_layer; l++)
				cnt[l] = hp->n_expert_layer[l];
			if (cnt)
				record_ints(r, "n_expert_per_layer", cnt, (size_t)hp->n_layer);
			free(cnt);
		}
		record_int(r, "d_ff_exp", hp->d_ff_exp);
		if (hp->d_ff_shexp > 0) {
			record_int(r, "d_ff_shexp", hp->d_ff_shexp);
			record_bool(r, "shexp_gate", hp->shexp_gate);
		}
		record_bool(r, "expert_weights_norm", hp->moe_norm_topk);
		if (hp->moe_w_scale != 1)
			record_num(r, "expert_weights_scale", short_decimal(hp->moe_w_scale));
		if (hp->n_dense_lead > 0)
			record_int(r, "n_dense_lead", hp->n_dense_lead);
	}
	record_str(r, "dtype", dtype_name(model_main_dtype(m)));
	record_int(r, "params", (long long)model_n_params(m));
	record_int(r, "weight_bytes", (long long)model_weight_bytes(m));
	record_int(r, "file_bytes", (long long)m->file_bytes);
	record_int(r, "kv_bytes_per_token",
		   2LL * hp->n_layer * hp->n_head_kv * hp->head_dim * (long long)sizeof(float));
	if (m->tok) {
		record_str(r, "tokenizer", tok_describe(m->tok));
		record_int(r, "bos", tok_bos(m->tok));
		record_int(r, "eos", tok_eos(m->tok));
	} else {
		record_str(r, "tokenizer", "none");
	}
	if (check) {
		struct st_err err = {0};
		int bad = model_check_finite(m, &err) < 0;

		record_str(r, "weights", bad ? "NOT finite" : "all finite");
		if (bad) {
			record_print(r, co.format, stdout);
			record_free(r);
			cli_error("%s: %s", path, err.msg);
			model_free(m);
			return EXIT_ERR;
		}
	}
	record_print(r, co.format, stdout);
	record_free(r);
	model_free(m);
	return EXIT_OK;
}
