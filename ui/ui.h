/*
 * ui: the internals of the curses workbench (`strata tui`, or `strata`
 * alone on a terminal; the entry point is in tui.h).  It adds no engine
 * logic of its own: it drives the core (calib, plan, eval, speed) and
 * the store, and draws what they give.
 *
 * Structure (htop / ncdu / tmux style):
 *   - this is the only header that includes curses;
 *   - one module per screen (screen_*.c) with _draw, _key and _click;
 *   - tui.c owns getch, its timeout, KEY_RESIZE, the key table (from
 *     which the help screen is generated), the tab bar and status bar;
 *   - state changes only mark windows dirty; one loop repaints them with
 *     wnoutrefresh + doupdate, never clear(), so a slow link only gets
 *     the cells that changed;
 *   - long work (calibrate, evaluate, bench) runs on one background
 *     thread (jobs.c) with its own store connection; the interface
 *     thread never calls into the worker pool, it only reads the job's
 *     progress under a mutex, at most about 4 times a second.
 * Errors never end the interface: they go to the status bar.
 */
#ifndef STRATA_UI_H
#define STRATA_UI_H

#include <pthread.h>
#include <stdint.h>

#include <curses.h>

#include "ui/tui.h"

#include "model/model.h"
#include "method/plan.h"
#include "db/store.h"

struct mask;
struct calib_result;
struct calib_expert_stats;

/* ---- screens ---- */

enum tui_screen {
	SCR_HOME, SCR_CALIB, SCR_HEAT, SCR_TOGGLE, SCR_RESULTS, SCR_SQL, SCR_HELP, SCR_N
};

/* Actions bound to keys in the key table (tui.c). */
enum tui_act {
	ACT_NONE, ACT_HELP, ACT_BACK, ACT_QUIT, ACT_SCREEN1, ACT_SCREEN2, ACT_SCREEN3, ACT_SCREEN4,
	ACT_SCREEN5, ACT_SCREEN6, ACT_PANE, ACT_CANCEL, ACT_REDRAW,
	ACT_UP, ACT_DOWN, ACT_LEFT, ACT_RIGHT, ACT_TOP, ACT_BOTTOM, ACT_PGUP, ACT_PGDN, ACT_ENTER,
	ACT_OPEN, ACT_COMPARE, ACT_START, ACT_TOGGLE, ACT_ANGULAR, ACT_EVAL, ACT_BENCH, ACT_PLAN,
	ACT_RESET, ACT_NOCMP, ACT_EDIT, ACT_RELOAD, ACT_FIGURE, ACT_SCALE, ACT_COMPUTE,
	ACT_EXPERTS,
};

/* ---- colour ---- */

enum tui_cmode { CMODE_MONO, CMODE_8, CMODE_256 };

#define RAMP_STEPS 10
/* Colour pairs: the ramp uses pairs PAIR_RAMP .. PAIR_RAMP+RAMP_STEPS-1. */
enum {
	PAIR_TITLE = 1, PAIR_BAR, PAIR_ERR, PAIR_SEL, PAIR_DROP, PAIR_OK, PAIR_DIM,
	PAIR_RAMP = 16,
};

/* Pick the mode from --color, NO_COLOR, TERM and the terminal's
 * colours, and set up the pairs.  Call after initscr. */
enum tui_cmode colour_init(int color_opt);
/* Step 0 .. RAMP_STEPS-1 of value v on [lo, hi] (NaN: -1). */
int colour_step(double v, double lo, double hi);
/* Draw a heat cell of width w at (y, x): background colour of step (or
 * the glyph ramp " .:-=+*#%@" in monochrome) with text on it. */
void colour_cell(WINDOW *w, int y, int x, int width, int step, const char *text,
		 int selected, int dropped);
/* A legend "lo [ramp] hi  label" at (y, x). */
void colour_legend(WINDOW *w, int y, int x, double lo, double hi, const char *label);
/* The same with words at the ends ("lowest [ramp] highest  label"). */
void colour_legend_text(WINDOW *w, int y, int x, const char *lo, const char *hi,
			const char *label);
/* The monochrome glyph of a step. */
char colour_glyph(int step);

/* ---- drawing helpers (draw.c) ---- */

/* A string clipped (with "~" when cut) to width columns at (y, x);
 * before any cut, its paths lose leading directories (draw_fit_paths). */
void draw_text(WINDOW *w, int y, int x, int width, const char *s);
void draw_textf(WINDOW *w, int y, int x, int width, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Shorten the paths in s ("/a/b/c/f.gguf" -> ".../c/f.gguf") until
 * it fits width columns, keeping file names; s shrinks in place. */
void draw_fit_paths(char *s, int width);
/* A progress bar [#####-----] of width columns for done in [0, 1]. */
void draw_bar(WINDOW *w, int y, int x, int width, double done);
/* 1.23M, 45.6k ... into buf. */
const char *draw_si(double v, char *buf, size_t cap);
/* m:ss or h:mm:ss. */
const char *draw_time(double s, char *buf, size_t cap);

/* One point of a chart series. */
struct chart_pt {
	double x, y;
	int mark;   /* 1: drawn with the frontier glyph '*' */
	char label; /* not 0: drawn as this character instead */
};
struct chart_series {
	const char *name;
	char glyph;
	int n;
	struct chart_pt *pt;
	int connect;  /* draw a line between consecutive points */
};
/* An x/y chart in the box (y0, x0, h, w) with axis labels.  An axis
 * whose positive values span two decades or more is logarithmic, its
 * label marked "(log)"; the y axis is labelled at its ends and middle. */
void draw_chart(WINDOW *w, int y0, int x0, int h, int wd, const char *xlabel,
		const char *ylabel, const struct chart_series *s, int n_series);

/* A grid of strings (the SQL screen and the results table). */
struct grid {
	int n_cols, n_rows, cap;
	char **names;    /* [n_cols] */
	char **cell;     /* [n_rows * n_cols] */
	int *width;      /* [n_cols] display widths */
	int *num;        /* [n_cols] 1 when every value is a number */
};
void grid_reset(struct grid *g);
int grid_query_row(void *ud, int stmt, int n, const char *const *names,
		   const struct store_value *v);
int grid_query_cols(void *ud, int stmt, int n, const char *const *names);
/* Draw rows top.. and columns left.. of g in (y0, x0, h, wd); sel_row is
 * highlighted (-1: none). */
void grid_draw(WINDOW *w, const struct grid *g, int y0, int x0, int h, int wd,
	       int top, int left, int sel_row);

/* ---- a calibration run's scores, read from the store (data.c) ---- */

struct run_scores {
	int64_t run;
	int n_layer;
	char label[96];   /* "run 3: tinystories-valid-1000.txt 16x128" */
	double *cos;      /* [3][L] site-major (attn, mlp, block); NaN when absent */
	double *se;       /* [3][L] */
	int *rank, *lo, *hi; /* [3][L] rank among its kind, bootstrap interval */
	double *ang;      /* [L][L + 1]: d(l, n) on the last token at l*(L+1)+n */
	double *ang_all;  /* the same over all tokens */
	struct calib_expert_stats *ex; /* a mixture of experts' statistics, else NULL */
};
struct run_scores *scores_load(struct store *s, int64_t run, struct st_err *err);
void scores_free(struct run_scores *r);
double scores_imp(const struct run_scores *r, int site, int layer);

/* ---- the background job (jobs.c) ---- */

enum job_kind { JOB_NONE, JOB_CALIB, JOB_EVAL, JOB_BENCH };

struct job_metric {
	char task[32], metric[32]; /* task "base": the unmasked model's figure */
	int ctx;
	double value, stderr_;
	double min, max;      /* bench: over the repeats */
	int64_t n;
};

struct job {
	pthread_t th;
	pthread_mutex_t mu;
	int running;          /* a thread exists (joined by job_poll) */
	volatile int cancel;  /* asked to stop after the current chunk */
	enum job_kind kind;
	/* inputs (set before the start, read by the thread) */
	struct store *s;      /* shared with the interface: only under ui_store_mu */
	const struct model *m;
	int64_t model_id;
	char data[4096];
	int samples, seq_len;
	int stop_method, stop_n; /* calibration's stopping rule (as struct calib_state) */
	double stop_share;
	char mask[4096];
	/* progress (under mu) */
	char phase[64];
	double done;          /* 0..1 */
	uint64_t tokens_done, tokens_total;
	double tok_per_s, eta_s;
	unsigned seq;         /* bumped on every progress change */
	/* result (under mu; valid once finished is set) */
	int finished;
	int rc;               /* 0, ST_ECANCEL or a negative code */
	int cached;           /* served from the store */
	int unstored;         /* measured, but the store refused it (msg says why) */
	char msg[1024];
	int64_t run;          /* calibrate: the run id */
	int n_metrics;
	struct job_metric metrics[16];
};

/*
 * The store connection is shared by the interface thread and the job
 * thread, one call at a time: the interface holds this mutex except
 * while it waits for a key, the job takes it around each store call.
 * (A second connection would need a second store_open, whose header
 * check opens and closes the file -- and closing any descriptor of a
 * file drops the POSIX locks SQLite holds on it for the whole process,
 * which lets another process delete the WAL under us.)
 */
extern pthread_mutex_t ui_store_mu;

void job_init(struct job *j);
/* Start j->kind on its own thread (inputs filled); 0 or -1 when a job
 * already runs. */
int job_start(struct job *j);
/* Ask the job to stop after the current chunk (its finished chunks kept). */
void job_cancel(struct job *j);
/* If the job finished, join its thread and return 1 (its result fields
 * are then stable); else 0. */
int job_poll(struct job *j);
/* Cancel and join; for quitting. */
void job_stop(struct job *j);

/* The store's settings string for the workbench's ppl/kl evaluation. */
void job_eval_settings(const struct model *m, char *buf, size_t cap);
int job_eval_ctx(const struct model *m);
#define TUI_EVAL_MAX_TOKENS 8192
/* Repeats of the workbench's bench: enough for a median, a min and a max. */
#define TUI_BENCH_REPEAT 5
/* How long one store call of the workbench waits for another process's
 * write lock (jobs retry; see jobs.c). */
#define TUI_BUSY_MS 200
/* The bench settings of the workbench ("ctx=128,512;gen=32;repeat=1;threads=N"). */
void job_bench_settings(const struct model *m, char *buf, size_t cap);

/* ---- the workbench's state ---- */

struct home_state {
	struct grid runs, models;
	int64_t *run_ids, *model_ids;
	int pane;          /* 0 runs, 1 models */
	int sel[2], top[2];
	int loaded;        /* read from the store since the start (home_draw) */
};

enum { CAL_START = 4, CAL_FIELDS = 5 }; /* the Calibrate form: its Start field, its fields */
struct calib_state {
	int field;         /* 0 data, 1 samples, 2 seq_len, 3 stop rule, 4 start */
	char data[4096];
	int samples, seq_len;
	int stop_method;   /* the stopping rule's plan (enum plan_method), -1: none */
	int stop_n;        /* ... its drops */
	double stop_share; /* ... the stability that stops it */
	char **cands;      /* data files found */
	int n_cands, cand;
};

struct heat_state {
	int layer, col;    /* cursor: col 0 attn, 1 mlp, 2 block, 3.. compare */
	int top;           /* first layer shown */
	int angular;       /* showing the d(l, n) matrix */
	int all_tokens;    /* angular view: all tokens instead of the last */
	int acol;          /* angular view cursor: span n */
	int scale;         /* HEAT_SCALE_*: how values map to colours */
	int experts;       /* showing the layers x experts map (a mixture of experts) */
	int emetric;       /* experts view: HEAT_EXP_* shown */
	int ecol;          /* experts view cursor: the expert */
};

/* The experts view's statistic (calib.h): routing frequency, mean gate
 * weight, mean output norm, mean gate-weighted output norm. */
enum { HEAT_EXP_FREQ, HEAT_EXP_GATE, HEAT_EXP_NORM, HEAT_EXP_WNORM, HEAT_EXP_N };

/* The heatmap's colour scales: one range over every column, each
 * column its own range, or the rank within the column (one outlier
 * then cannot wash out the other cells). */
enum { HEAT_SCALE_GLOBAL, HEAT_SCALE_COLUMN, HEAT_SCALE_RANK, HEAT_SCALE_N };

/* one measured mask of the open model, for the charts */
struct res_pt {
	char mask[512];
	char method[16];   /* plan method that made it, "mask" by hand */
	char quant[48];    /* its quantization (sweep --quant), "" none */
	int x;             /* layers dropped: attn + mlp sites, a block once */
	double ppl, tps;   /* NaN when not measured */
};

struct results_state {
	struct grid evals;
	int sel, top;
	struct res_pt *pt;
	int n_pt;
	/* the charts' ppl: one data file and settings (the workbench's own
	 * evaluation when the store has it, else the most measured) */
	char data_name[256], data_sha[65], data_settings[128];
	int n_data;        /* data file and settings pairs with a ppl */
};

struct sql_state {
	char query[2048];
	int editing;
	struct grid g;
	int top, left, sel;
	char msg[4400];     /* the line under the query (room for the store's path) */
};

/* the current mask's measured figures, from the store or a job */
struct measured {
	int have_eval, have_bench;
	double ppl, kl, top1;
	double prefill_tps, decode_tps;
	int eval_cached, bench_cached;
	double ppl_se, decode_min, decode_max; /* ppl's standard error; decode over the repeats */
	/* the unmasked model's, with the same settings: the baseline */
	int have_base_eval, have_base_bench;
	double base_ppl, base_ppl_se, base_decode, base_decode_min, base_decode_max;
};

struct tui {
	struct tui_opts opt;
	enum tui_cmode cmode;
	struct store *s;   /* the one connection; see ui_store_mu */
	char db_path[4096];
	/* the open model */
	struct model *m;
	char model_path[4096];
	int64_t model_id;
	uint64_t total_params, total_flops;
	/* the open run and runs to compare */
	struct run_scores *cur;
	struct calib_result *cur_res; /* its chunk values, for plans */
	struct run_scores *cmp[8];
	int n_cmp;
	/* the mask being edited, its canonical text and predicted effect */
	struct mask *mask;
	char mask_text[4096];  /* canonical text ("attn=;mlp=" when nothing is dropped) */
	char mask_key[4096];   /* the store's key: the text, "" when nothing is dropped */
	struct plan_effect eff;
	double speedup;       /* matmul FLOPs per token before / after (prefill) */
	double speedup_bytes; /* weight bytes read per token before / after (decode) */
	struct measured meas;
	char eval_file[4096];
	char eval_sha[65];
	/* screens */
	enum tui_screen scr, back;
	struct home_state home;
	struct calib_state cal;
	struct heat_state heat;
	struct results_state res;
	struct sql_state sql;
	int help_top;
	/* the line editor (prompts) */
	int prompting;
	char prompt[128];
	char line[4096];
	int line_len, line_cur;
	int prompt_kind;
	/* windows and repaint */
	WINDOW *wtop, *wbody, *wbar;
	int rows, cols;
	int dirty_top, dirty_body, dirty_bar;
	char msg[512];     /* last message */
	int msg_err;       /* it is an error */
	struct job job;
	unsigned job_seq;
	double job_drawn;  /* when progress was last drawn */
	int quit;
};

/* Status bar messages (also marks the bar dirty). */
void tui_msg(struct tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tui_err(struct tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Switch screens (remembering where Esc goes back to). */
void tui_goto(struct tui *t, enum tui_screen s);
/* Open a prompt on the status line; tui calls prompt_done(kind, text). */
enum { PROMPT_MODEL = 1, PROMPT_PLAN, PROMPT_EVAL, PROMPT_DATA, PROMPT_SAMPLES,
       PROMPT_SEQLEN, PROMPT_SQL, PROMPT_FIGURE, PROMPT_STOP };
void tui_prompt(struct tui *t, int kind, const char *label, const char *init);

/* Model, runs and mask (data.c). */
int tui_load_model(struct tui *t, const char *path);
int tui_open_run(struct tui *t, int64_t run);
void tui_mask_changed(struct tui *t);
void tui_toggle_site(struct tui *t, int layer, int site);
int tui_apply_plan(struct tui *t, const char *spec);
void tui_reload_lists(struct tui *t);
int tui_start_calib(struct tui *t);
/* The Calibrate form's stopping rule from "METHOD N [SHARE]"; "" none. */
void tui_set_stop_rule(struct tui *t, const char *text);
int tui_start_eval(struct tui *t, const char *file);
int tui_start_bench(struct tui *t);
void tui_job_finished(struct tui *t);
int tui_add_compare(struct tui *t, int64_t run);

/* Screens: draw into t->wbody; key gets an action (or ACT_NONE with the
 * raw key); click gets body coordinates. */
void home_draw(struct tui *t, WINDOW *w);
void home_key(struct tui *t, int act, int ch);
void home_click(struct tui *t, int y, int x);
void calib_draw(struct tui *t, WINDOW *w);
void calib_key(struct tui *t, int act, int ch);
void calib_click(struct tui *t, int y, int x);
void calib_scan(struct tui *t);
void heat_draw(struct tui *t, WINDOW *w);
void heat_key(struct tui *t, int act, int ch);
void heat_click(struct tui *t, int y, int x);
/* Keys the heatmap and the toggle screen share (cursor, drop, plan,
 * eval, bench); returns 1 when the action was theirs. */
int layers_key(struct tui *t, int act, int max_col);
void toggle_draw(struct tui *t, WINDOW *w);
void toggle_key(struct tui *t, int act, int ch);
void toggle_click(struct tui *t, int y, int x);
/* The what-if and measurement panel (shared by heatmap and toggle). */
void whatif_draw(struct tui *t, WINDOW *w, int y0, int x0, int h, int wd);
void results_draw(struct tui *t, WINDOW *w);
void results_key(struct tui *t, int act, int ch);
void results_load(struct tui *t);
void sql_draw(struct tui *t, WINDOW *w);
void sql_key(struct tui *t, int act, int ch);
void sql_run(struct tui *t, const char *q);

/* The view as a figure (figure.c): "[KIND] FILE" with KIND heatmap,
 * angular, ranks, drops or pareto (default: what is shown), written
 * through plot/; the default answer (under the working directory) into
 * buf.  0, or -1 with the error on the status bar. */
void figure_default_name(struct tui *t, char *buf, size_t cap);
int figure_write(struct tui *t, const char *spec);

/* Filename completion of line (in place, cap bytes); returns the
 * number of candidates (0: none, 1: completed). */
int tui_complete_path(char *line, size_t cap);

#endif
