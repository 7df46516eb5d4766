#!/bin/sh
# man_examples: every "$ strata ..." line in the EXAMPLES of man/strata.1
# runs and succeeds (../shared in an example means $STRATA_SHARED).
. "$STRATA_SRCDIR/tests/tap.sh"

man="$STRATA_SRCDIR/man/strata.1"
tmp="$STRATA_BUILDDIR/tests/tmp/man_examples"
rm -rf "$tmp" && mkdir -p "$tmp"
if need model models/stories260K/stories260K.gguf; then
	sed -n '/^\.EX/,/^\.EE/p' "$man" | grep '^\$ strata ' | sed 's/^\$ strata //' > "$tmp/examples"
	count=$(wc -l < "$tmp/examples")
	ok "the man page has examples ($count)" [ "$count" -ge 5 ]
	while IFS= read -r args; do
		args=$(printf '%s' "$args" | sed "s#\.\./shared#$STRATA_SHARED#g")
		(cd "$tmp" && eval "\"\$STRATA_BIN\" $args") > "$tmp/out" 2> "$tmp/err"
		rc=$?
		is "$rc" 0 "example runs: strata $args"
		ok "example prints something: strata $args" [ -s "$tmp/out" ]
		[ "$rc" = 0 ] || sed 's/^/#   /' "$tmp/err"
	done < "$tmp/examples"
fi
done_testing
