/*
 * tui: the entry point of the curses workbench, for the CLI.  Free of
 * curses: only ui/ui.h includes it, and only ui/ sees that header.
 */
#ifndef STRATA_TUI_H
#define STRATA_TUI_H

/* --color */
enum { TUI_COLOR_AUTO = -1, TUI_COLOR_NEVER = 0, TUI_COLOR_ALWAYS = 1 };

struct tui_opts {
	const char *model;   /* model to open, NULL: none */
	const char *db;      /* --db, NULL: the default store */
	int color;           /* TUI_COLOR_* */
	int mouse;           /* 0: --no-mouse */
};

/*
 * Run the workbench on the terminal (stdin/stdout) until the user
 * quits.  Returns 0, or 1 when the store cannot be opened or the
 * terminal cannot run it (a message on stderr, the terminal left as it
 * was).  A running job is cancelled on the way out, its finished work
 * kept in the store.
 */
int tui_main(const struct tui_opts *o);

#endif
