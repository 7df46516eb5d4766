/*
 * cmd_tui: `strata tui [MODEL]` -- open the curses workbench (ui/).
 * `strata` with no arguments comes here too when stdin and stdout are
 * terminals; elsewhere (scripts, CI) it keeps printing the usage, so
 * nothing waits for a keypress that never comes.
 */
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ui/tui.h"
#include "cli/store_cli.h"

static const char help[] =
	"usage: strata tui [MODEL] [options]\n"
	"Open the workbench: calibrate, browse the importance heatmap, drop sites\n"
	"and see what that predicts and measures.  MODEL (a path or hf:ORG/NAME)\n"
	"defaults to $STRATA_MODEL, else ../shared/models/stories260K/stories260K.gguf\n"
	"when it exists.\n"
	"  --color WHEN       never, auto (default: colours unless NO_COLOR or TERM=dumb)\n"
	"                     or always\n"
	"  --no-mouse         ignore the mouse (leave clicks to the terminal)\n"
	DB_HELP
	"Keys: ? in the workbench lists them all; q goes back, Q quits.\n";

int cmd_tui(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"color", required_argument, NULL, 'C'},
		{"colour", required_argument, NULL, 'C'},
		{"no-mouse", no_argument, NULL, 'M'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	struct tui_opts o = {NULL, NULL, TUI_COLOR_AUTO, 1};
	int c;

	while ((c = cli_next_opt("tui", argc, argv, "h", longopts, help, &co, &o.db)) >= 0) {
		switch (c) {
		case 'C':
			if (!strcmp(optarg, "never"))
				o.color = TUI_COLOR_NEVER;
			else if (!strcmp(optarg, "auto"))
				o.color = TUI_COLOR_AUTO;
			else if (!strcmp(optarg, "always"))
				o.color = TUI_COLOR_ALWAYS;
			else
				return cli_usage("tui", "--color expects never, auto or always, got '%s'",
						 optarg);
			break;
		case 'M':
			o.mouse = 0;
			break;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc - optind > 1)
		return cli_usage("tui", "expected at most one MODEL");
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		cli_error("tui: the workbench needs a terminal on stdin and stdout; "
			  "for scripts use the commands (strata --help)");
		return EXIT_ERR;
	}
	if (argc - optind == 1) {
		/* hf:ORG/NAME is fetched (with its progress) before the screen is taken */
		o.model = cli_resolve_path(argv[optind], CLI_PATH_MODEL);
		if (!o.model)
			return EXIT_ERR;
	}
	else if (access(cli_default_model(), R_OK) == 0)
		o.model = cli_default_model();
	cli_common_apply(&co);
	return tui_main(&o) == 0 ? EXIT_OK : EXIT_ERR;
}
