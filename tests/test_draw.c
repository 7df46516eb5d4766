/*
 * test_draw: the workbench's text fitting -- a message naming a file
 * keeps the file name when the terminal is too narrow for its path.
 */
#include "ui/ui.h"
#include "tap.h"

static void fit(const char *in, int width, const char *want)
{
	char buf[512];

	snprintf(buf, sizeof buf, "%s", in);
	draw_fit_paths(buf, width);
	ok(!strcmp(buf, want), "fit to %d: \"%s\" (got \"%s\")", width, want, buf);
	ok((int)strlen(buf) <= width || !strcmp(buf, want), "... %d columns", (int)strlen(buf));
}

int main(void)
{
	/* fits already: untouched */
	fit("error: /a/b/model.gguf: not found", 80, "error: /a/b/model.gguf: not found");
	/* the directory's start goes, the name stays */
	fit("open /home/user/some/deep/dir/model.gguf: No such file", 42,
	    "open .../deep/dir/model.gguf: No such file");
	fit("open /home/user/some/deep/dir/model.gguf: No such file", 40,
	    "open .../dir/model.gguf: No such file");
	/* shortened twice: ".../b/c/f" gives again */
	fit("a .../bb/cc/dd/f.gguf", 16, "a .../dd/f.gguf");
	/* exactly the width */
	fit("x /abcdefgh/f.gguf", 14, "x .../f.gguf");
	/* cannot shrink past ".../name": as short as it gets */
	fit("x /abcdefgh/f.gguf", 10, "x .../f.gguf");
	/* the longest path gives first, then the next */
	fit("cp /aaaa/bbbb/cccc/x.bin /dd/y.bin", 27, "cp .../cccc/x.bin /dd/y.bin");
	fit("cp /aaaa/bbbb/cccc/x.bin /dd/y.bin", 26, "cp .../x.bin /dd/y.bin");
	fit("cp /aaaa/bbbb/cccc/x.bin /dddd/eeee/y.bin", 24, "cp .../x.bin .../y.bin");
	/* words without a '/' are never cut */
	fit("a message with no path at all", 10, "a message with no path at all");
	/* a relative path */
	fit("load models/tiny/stories260K.gguf failed", 30, "load .../stories260K.gguf failed");
	return tap_done();
}
