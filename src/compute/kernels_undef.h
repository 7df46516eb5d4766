/*
 * kernels_undef: forgets one instruction set's vector operations (see
 * kernels_body.h), so that kernels.c can define the next set's.
 */
#undef KB_ISA
#undef KB_ATTR
#undef KB_W
#undef KB_PV_ROWS
#undef KB_POLY_EXP
#undef KB_EXP
#undef vf
#undef vmask
#undef vzero
#undef vset1
#undef vload
#undef vstore
#undef vadd
#undef vsub
#undef vmul
#undef vdiv
#undef vmax
#undef vmin
#undef vfma
#undef vfnma
#undef vhsum
#undef vhmax
#undef vld_f16
#undef vld_bf16
#undef vld_i8
#undef vld_u4
#undef vscale
#undef vmask_n
#undef vmloadz
#undef vmloadf
#undef vmstore
#undef vmsel
#undef vround
#undef vpow2n
#undef KB_IDOT_Q8
#undef KB_IDOT_Q4
