#!/bin/sh
# quickstart.sh: set up, build and run strata from a clean clone.
#
#   sh quickstart.sh run     install what is missing, build, open the workbench on the default model
#   sh quickstart.sh check   install what is missing, build, run the whole test suite
#
# Missing Debian packages are installed when run as root or through sudo.
# Environment: STRATA_MODEL (model to open), STRATA_SHARED (test assets,
# default ../shared), CONFIGURE_FLAGS (extra ./configure options).
set -eu
cd "$(dirname "$0")"
mode=${1:-run}
case $mode in
run|check|build) ;;
*) echo "usage: sh quickstart.sh run|check" >&2; exit 2 ;;
esac

# Debian packages the build and the tests need, with what each is for.
pkgs="build-essential autoconf automake pkg-config
libopenblas-dev libdnnl-dev libjansson-dev libpcre2-dev zlib1g-dev libsnappy-dev libzstd-dev
libsqlite3-dev libcurl4-openssl-dev libncurses-dev libcairo2-dev tmux
libopenmpi-dev openmpi-bin"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
# node and npm run the tokenizer parity test against the reference
# JavaScript implementation; any installed node will do.
if [ "$mode" = check ] && ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi
# pdfinfo checks the PDF figures in the tests (poppler-utils)
if [ "$mode" = check ] && ! command -v pdfinfo >/dev/null 2>&1; then
	missing="$missing poppler-utils"
fi
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then sudo=
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo
	else
		echo "quickstart: missing Debian packages:$missing" >&2
		echo "quickstart: install them as root (apt-get install$missing) and run again" >&2
		exit 1
	fi
	echo "quickstart: installing$missing" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
	# shellcheck disable=SC2086
	./configure -q ${CONFIGURE_FLAGS:-}
fi
jobs=$(nproc 2>/dev/null || echo 2)
make -s -j"$jobs"

case $mode in
run)
	model=${STRATA_MODEL:-${STRATA_SHARED:-../shared}/models/stories260K/stories260K.gguf}
	# on a terminal, the workbench (Enter calibrates); elsewhere (scripts,
	# CI) a non-interactive look at the model, so nothing waits for keys
	if [ -t 0 ] && [ -t 1 ] && [ "${TERM:-dumb}" != dumb ]; then
		exec ./strata tui "$model"
	fi
	./strata info "$model"
	echo
	./strata generate "$model" -p "Once upon a time" -n 60
	;;
check)
	make -s -j"$jobs" check
	;;
esac
