/* kernels/f32-vbinary: baseline (SSE2) build of vbinary.inc and the ISA dispatch. */
#define OQ_VBINARY_ISA portable
#include "kernels/f32-vbinary/vbinary.inc"

#include "core/core.h"

#define VBINARY_TABLE(isa) \
    {oq_f32_vadd__##isa, oq_f32_vsub__##isa, oq_f32_vmul__##isa, oq_f32_vdiv__##isa, oq_f32_vmaximum__##isa, oq_f32_vminimum__##isa}

static const oq_f32_vbinary_table table_portable = VBINARY_TABLE(portable);
static const oq_f32_vbinary_table table_avx2 = VBINARY_TABLE(avx2);
static const oq_f32_vbinary_table table_avx512 = VBINARY_TABLE(avx512);

const oq_f32_vbinary_table *oq_f32_vbinary(void)
{
    oq_isa isa = oq_isa_level();
    return isa >= OQ_ISA_AVX512 ? &table_avx512 : isa >= OQ_ISA_AVX2 ? &table_avx2 : &table_portable;
}
