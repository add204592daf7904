/* kernels/f32-vmath: baseline (SSE2) build of vmath.inc and the ISA dispatch. */
#define OQ_VMATH_ISA portable
#include "kernels/f32-vmath/vmath.inc"

#include "core/core.h"

static const oq_f32_vmath_table table_portable = {
    oq_f32_vexp__portable, oq_f32_verf__portable, oq_f32_vtanh__portable,
    oq_f32_vsigmoid__portable, oq_f32_vexp_sum__portable, oq_f32_vmax__portable,
    oq_f32_vclip__portable, oq_f32_vhardsigmoid__portable, oq_f32_vleakyrelu__portable, oq_f32_vgelu__portable,
};
static const oq_f32_vmath_table table_avx2 = {
    oq_f32_vexp__avx2, oq_f32_verf__avx2, oq_f32_vtanh__avx2,
    oq_f32_vsigmoid__avx2, oq_f32_vexp_sum__avx2, oq_f32_vmax__avx2,
    oq_f32_vclip__avx2, oq_f32_vhardsigmoid__avx2, oq_f32_vleakyrelu__avx2, oq_f32_vgelu__avx2,
};

static const oq_f32_vmath_table table_avx512 = {
    oq_f32_vexp__avx512, oq_f32_verf__avx512, oq_f32_vtanh__avx512,
    oq_f32_vsigmoid__avx512, oq_f32_vexp_sum__avx512, oq_f32_vmax__avx512,
    oq_f32_vclip__avx512, oq_f32_vhardsigmoid__avx512, oq_f32_vleakyrelu__avx512, oq_f32_vgelu__avx512,
};

const oq_f32_vmath_table *oq_f32_vmath(void)
{
    oq_isa isa = oq_isa_level();
    return isa >= OQ_ISA_AVX512 ? &table_avx512 : isa >= OQ_ISA_AVX2 ? &table_avx2 : &table_portable;
}
