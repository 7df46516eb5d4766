#!/bin/sh
# system_cli: `strata info --system` names the kernels each weight type
# runs and OpenBLAS's core, and strata corrects an OpenBLAS core too old
# for the CPU (forced here with OPENBLAS_CORETYPE=Prescott, what Debian
# 12's OpenBLAS falls back to on CPUs it does not know) by running
# again with a better one, saying so on stderr; STRATA_BLAS_CORE=keep
# and the loop guard leave it alone.  cpu_features (cpuid, base/cpu.c)
# agrees with the kernel's /proc/cpuinfo flags.
. "$STRATA_SRCDIR/tests/tap.sh"
S=$STRATA_BIN
tmp="$STRATA_BUILDDIR/tests/tmp/system_cli"
rm -rf "$tmp" && mkdir -p "$tmp"

# field KEY: the value of KEY in `info --system` text output on stdin
field() { sed -n "s/^$1: *//p"; }

out=$(env -u OPENBLAS_CORETYPE "$S" info --system 2>"$tmp/err"); rc=$?
is "$rc" 0 "info --system exits 0"
feats=$(printf '%s\n' "$out" | field cpu_features)
simd=$(printf '%s\n' "$out" | field simd)
ok "cpu_features is a list of names ($feats)" test -n "$feats"
# cpuid's answer (base/cpu.c, for gcc and clang alike) is the kernel's
flags=$(sed -n 's/^flags[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
if [ -n "$flags" ] && [ "$(uname -m)" = x86_64 ]; then
	for f in avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni; do
		case " $flags " in *" $f "*) want=yes ;; *) want=no ;; esac
		case " $feats " in *" $f "*) got=yes ;; *) got=no ;; esac
		is "$got" "$want" "cpu_features has $f as /proc/cpuinfo does ($want)"
	done
else
	n=$((n + 1)); echo "ok $n # SKIP not x86-64 Linux: no /proc/cpuinfo flags to compare"
fi
case $simd in scalar|avx2|avx512|avx512bf16) r=0 ;; *) r=1 ;; esac
ok "simd is a known path ($simd)" test "$r" = 0
for t in f32 f16 bf16 q8_0 q4_0; do
	d=$(printf '%s\n' "$out" | field "decode_$t")
	p=$(printf '%s\n' "$out" | field "prefill_$t")
	contains "$d" "dot products" "decode $t names its kernel ($d)"
	contains "$p" "sgemm" "prefill $t names its kernel ($p)"
done
core=$(printf '%s\n' "$out" | field openblas_core)
contains "$(printf '%s\n' "$out" | field kernels)" "$core core" "kernels line names OpenBLAS's core"

out=$(STRATA_SIMD=scalar "$S" info --system --format json)
contains "$out" '"simd": "scalar"' "STRATA_SIMD=scalar is reported"
contains "$out" '"decode_f16": "scalar dot products"' "scalar decode path reported per dtype"

case " $feats " in
*" avx2 fma "*)
	out=$(OPENBLAS_CORETYPE=Prescott "$S" info --system 2>"$tmp/err"); rc=$?
	is "$rc" 0 "forced Prescott core: exits 0"
	core=$(printf '%s\n' "$out" | field openblas_core)
	ok "forced Prescott core: corrected to an AVX2 or AVX-512 core ($core)" \
		test "$core" = Haswell -o "$core" = SkylakeX
	contains "$(cat "$tmp/err")" "OpenBLAS chose its 'Prescott' core" "the correction is said on stderr"
	is "$(wc -l < "$tmp/err" | tr -d ' ')" 1 "in one line"

	out=$(OPENBLAS_CORETYPE=Prescott STRATA_BLAS_CORE=keep "$S" info --system 2>"$tmp/err")
	is "$(printf '%s\n' "$out" | field openblas_core)" Prescott "STRATA_BLAS_CORE=keep keeps it"
	is "$(cat "$tmp/err")" "" "and says nothing"

	out=$(OPENBLAS_CORETYPE=Prescott STRATA_BLAS_REEXEC=1 "$S" info --system 2>"$tmp/err"); rc=$?
	is "$rc" 0 "loop guard: runs once"
	contains "$(cat "$tmp/err")" "still runs its 'Prescott' core" "and says the core stays slow"
	;;
*)
	n=$((n + 1)); echo "ok $n # SKIP no AVX2+FMA: no better OpenBLAS core to ask for" ;;
esac

"$S" info --system extra >/dev/null 2>"$tmp/err"; rc=$?
is "$rc" 2 "--system with a MODEL is a usage error"
done_testing
