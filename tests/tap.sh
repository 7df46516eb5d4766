# tap.sh: TAP helpers for strata's shell tests (sourced).  Every "ok"
# comes from a real check.  $STRATA_BIN is the binary under test,
# $STRATA_SHARED the shared assets (a missing one skips, or fails under
# CI=true).
n=0
failed=0
: "${STRATA_BIN:=./strata}"
: "${STRATA_SHARED:=../shared}"

ok() { # ok DESCRIPTION COMMAND...: passes when COMMAND succeeds
	desc=$1; shift
	n=$((n + 1))
	if "$@"; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; failed=$((failed + 1)); fi
}

is() { # is GOT WANT DESCRIPTION
	n=$((n + 1))
	if [ "$1" = "$2" ]; then echo "ok $n - $3"
	else echo "not ok $n - $3"; echo "#   got:  '$1'"; echo "#   want: '$2'"; failed=$((failed + 1)); fi
}

contains() { # contains HAYSTACK NEEDLE DESCRIPTION
	n=$((n + 1))
	case $1 in
	*"$2"*) echo "ok $n - $3" ;;
	*) echo "not ok $n - $3"; echo "#   '$1'"; echo "#   does not contain '$2'"; failed=$((failed + 1)) ;;
	esac
}

skip_or_fail() { # skip_or_fail REASON: a skip, or a failure under CI=true
	n=$((n + 1))
	case ${CI:-} in
	""|0|false) echo "ok $n # SKIP $1" ;;
	*) echo "not ok $n - $1 (CI=true)"; failed=$((failed + 1)) ;;
	esac
}

need() { # need VAR REL: sets VAR to the shared asset's path, or skips
	# (fails under CI=true) and returns 1 when it is missing
	p="$STRATA_SHARED/$2"
	if [ -r "$p" ]; then eval "$1=\$p"; return 0; fi
	skip_or_fail "missing shared asset $p"
	return 1
}

done_testing() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}

skip_all() { # skip_all REASON: skip_or_fail, then end the test
	skip_or_fail "$1"
	done_testing
	exit $?
}
