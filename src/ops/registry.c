/* ops/registry: the operator table built from registry.inc, and lookup by
 * (domain, op_type, opset). */
#include "ops/op.h"

#include <string.h>

const oq_op_entry oq_op_registry[] = {
#define OQ_OP(domain, op_type, first, last, impl) {domain, op_type, first, last, &oq_op_##impl},
#include "ops/registry.inc"
#undef OQ_OP
};
const size_t oq_op_registry_count = sizeof oq_op_registry / sizeof oq_op_registry[0];

static bool same_domain(const char *a, const char *b)
{
    if (oq_domain_is_default(a) && oq_domain_is_default(b))
        return true;
    return strcmp(a ? a : "", b ? b : "") == 0;
}

const oq_op_entry *oq_op_find(const char *domain, const char *op_type, int64_t opset)
{
    for (size_t i = 0; i < oq_op_registry_count; i++) {
        const oq_op_entry *e = &oq_op_registry[i];
        if (same_domain(e->domain, domain) && !strcmp(e->op_type, op_type) && opset >= e->first_opset &&
            opset <= e->last_opset)
            return e;
    }
    return NULL;
}

const oq_op_entry *oq_op_find_any(const char *domain, const char *op_type)
{
    for (size_t i = 0; i < oq_op_registry_count; i++) {
        const oq_op_entry *e = &oq_op_registry[i];
        if (same_domain(e->domain, domain) && !strcmp(e->op_type, op_type))
            return e;
    }
    return NULL;
}
