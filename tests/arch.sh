#!/bin/sh
# arch: the map of README.md's "Architecture" section, checked.  Each
# folder may include headers only from the folders the table below
# allows, the engine includes no curses, SQLite or curl header, and the
# built libraries confirm it at link level: no undefined symbol of a
# library a folder must not use.  A failure names the file and line.
. "$STRATA_SRCDIR/tests/tap.sh"
cd "$STRATA_SRCDIR" || exit 1

engine="base format tok model compute method measure export quant"

# allowed FOLDER: the subsystems FOLDER's sources may include (besides
# system headers), lowest first.  Mirrors README.md; change both together.
allowed() {
	case $1 in
	base) echo "base" ;;
	format) echo "base format" ;;
	tok) echo "base format tok" ;;
	model) echo "base format tok model" ;;
	compute) echo "base format tok model compute" ;;
	method) echo "base format tok model compute method" ;;
	measure) echo "base format tok model compute method measure" ;;
	export) echo "base format tok model compute method export" ;;
	quant) echo "base format tok model compute method quant" ;;
	hub) echo "$engine hub" ;;
	db) echo "$engine db" ;;
	plot) echo "$engine plot" ;;
	app) echo "$engine db hub app" ;;
	ui) echo "$engine db hub app plot ui" ;;
	cli) echo "$engine db hub app plot ui cli" ;;
	esac
}

# dir_of FOLDER: where the folder's sources are
dir_of() {
	case $1 in
	db|ui|app|plot) echo "$1" ;;
	*) echo "src/$1" ;;
	esac
}

for f in $engine hub db app plot ui cli; do
	d=$(dir_of "$f")
	if [ ! -d "$d" ]; then
		ok "folder $d exists" false
		continue
	fi
	ok_list=$(allowed "$f")
	bad=
	for src in "$d"/*.c "$d"/*.h; do
		[ -f "$src" ] || continue
		for inc in $(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*/\1/p' "$src" | sort -u); do
			case " $ok_list " in
			*" $inc "*) ;;
			*) bad="$bad $src:$(grep -n "#[[:space:]]*include[[:space:]]*\"$inc/" "$src" | head -1 | cut -d: -f1)($inc/)" ;;
			esac
		done
		# a relative include climbs out of the map
		rel=$(grep -n '#[[:space:]]*include[[:space:]]*"\.\./' "$src" | head -1 | cut -d: -f1)
		[ -n "$rel" ] && bad="$bad $src:$rel(../)"
	done
	is "${bad:-none}" none "$d includes only $ok_list"
done

# system headers: the engine no curses, SQLite or curl; the store no curses
# or curl; the application layer and the hub no curses
sys_bad() { # sys_bad PATTERN DIR...: file:line of includes matching PATTERN
	for dd in "$@"; do
		grep -nE "#[[:space:]]*include[[:space:]]*[<\"]($1)" "$dd"/*.[ch] 2>/dev/null | cut -d: -f1,2
	done | tr '\n' ' '
}
eng_dirs=
for f in $engine; do eng_dirs="$eng_dirs src/$f"; done
# shellcheck disable=SC2086
out=$(sys_bad 'n?curses|ncursesw/|sqlite3|curl/' $eng_dirs)
is "${out:-none}" none "the engine includes no curses, SQLite or curl header"
is "$(sys_bad 'n?curses|ncursesw/|curl/' db)" "" "db/ includes no curses or curl header"
is "$(sys_bad 'n?curses|ncursesw/|sqlite3|curl/' plot)" "" "plot/ includes no curses, SQLite or curl header (its input is plain structs)"
is "$(sys_bad 'n?curses|ncursesw/' app src/hub)" "" "app/ and src/hub include no curses header"
is "$(sys_bad 'sqlite3|curl/' ui)" "" "ui/ includes no SQLite or curl header (it goes through db/, app/)"
is "$(sys_bad 'n?curses|ncursesw/' src/cli src/main.c)" "" "the command line includes no curses header (the workbench is behind ui/tui.h)"

# kernels written once: code for one instruction set (a target attribute,
# intrinsics) lives in compute/kernels.c, its variants made from
# kernels_body.h and chosen in its one table; the only other place is
# format/dtype.c's F16C row conversions (the format layer sits below
# compute).
isa=$(grep -lE 'target\("|<(immintrin|x86intrin|arm_neon)\.h>' src/*/*.[ch] src/main.c app/*.[ch] db/*.[ch] \
	ui/*.[ch] plot/*.[ch] 2> /dev/null | grep -v -e '^src/compute/kernels\.c$' -e '^src/format/dtype\.c$' | tr '\n' ' ')
is "${isa:-none}" none "instruction-set code only in compute/kernels.c (and dtype.c's F16C conversions)"

# link level: the undefined symbols of each built library
B=${STRATA_BUILDDIR:-.}
undef() { # undef LIB PATTERN: the library's undefined symbols matching PATTERN
	nm -u "$B/$1" 2>/dev/null | awk '{print $NF}' | grep -E "$2" | sort -u | head -5 | tr '\n' ' '
}
curses_syms='^(initscr|newwin|wgetch|endwin|wrefresh|mvwaddnstr|start_color|init_pair|getch|keypad)$'
for lib in libstrata.a libstratadb.a libstratahub.a libstrataapp.a libstrataplot.a libstrataui.a; do
	[ -f "$B/$lib" ] || { ok "$lib is built" false; continue; }
	case $lib in
	libstrata.a) pat="^sqlite3_|^curl_|$curses_syms" ;;
	libstratadb.a) pat="^curl_|$curses_syms" ;;
	libstratahub.a) pat="^sqlite3_|$curses_syms" ;;
	libstrataapp.a) pat="$curses_syms" ;;
	libstrataplot.a) pat="^sqlite3_|^curl_|$curses_syms" ;;
	libstrataui.a) pat="^sqlite3_|^curl_" ;;
	esac
	is "$(undef "$lib" "$pat")" "" "$lib calls no library its folder must not use"
done
# and the symbols are really read: the store library does call SQLite
n_sql=$(nm -u "$B/libstratadb.a" 2>/dev/null | grep -c 'sqlite3_')
ok "libstratadb.a's undefined symbols include SQLite's ($n_sql)" test "$n_sql" -gt 10
n_cairo=$(nm -u "$B/libstrataplot.a" 2>/dev/null | grep -c 'cairo_')
ok "libstrataplot.a's undefined symbols include cairo's ($n_cairo)" test "$n_cairo" -gt 10

done_testing
