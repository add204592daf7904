/* ops/control: Constant, Identity and the control-flow operators If and Loop,
 * which run their subgraphs through the runtime (oq_exec_run). */
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

/* Moves a tensor the caller owns into an output slot, keeping the slot's name. */
static void move_into(oq_tensor *dst, oq_tensor *src)
{
    char *name = dst->name;
    oq_tensor_release(dst);
    *dst = *src;
    dst->name = name;
    free(src->name);
    free(src);
}

/* ---- Constant ---- */
static oq_status constant_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    (void)in;
    const oq_node *nd = n->node;
    if (nd->n_attrs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "Constant needs exactly one value attribute, it has %zu", nd->n_attrs);
    const oq_attr *a = &nd->attrs[0];
    oq_status st;
    if (!strcmp(a->name, "value") && a->t)
        return oq_tensor_copy_into(out[0], a->t);
    if (!strcmp(a->name, "value_float")) {
        st = oq_tensor_alloc(out[0], OQ_FLOAT, 0, NULL);
        if (st == OQ_OK)
            *(float *)out[0]->data = a->f;
        return st;
    }
    if (!strcmp(a->name, "value_int")) {
        st = oq_tensor_alloc(out[0], OQ_INT64, 0, NULL);
        if (st == OQ_OK)
            *(int64_t *)out[0]->data = a->i;
        return st;
    }
    if (!strcmp(a->name, "value_floats")) {
        int64_t d = (int64_t)a->n_floats;
        st = oq_tensor_alloc(out[0], OQ_FLOAT, 1, &d);
        if (st == OQ_OK && d)
            memcpy(out[0]->data, a->floats, a->n_floats * sizeof(float));
        return st;
    }
    if (!strcmp(a->name, "value_ints")) {
        int64_t d = (int64_t)a->n_ints;
        st = oq_tensor_alloc(out[0], OQ_INT64, 1, &d);
        if (st == OQ_OK && d)
            memcpy(out[0]->data, a->ints, a->n_ints * sizeof(int64_t));
        return st;
    }
    if (!strcmp(a->name, "value_string") || !strcmp(a->name, "value_strings")) {
        bool one = !strcmp(a->name, "value_string");
        int64_t d = one ? 1 : (int64_t)a->n_strings;
        st = oq_tensor_alloc(out[0], OQ_STRING, one ? 0 : 1, &d);
        for (int64_t i = 0; st == OQ_OK && i < d; i++) {
            const oq_bytes *b = one ? &a->s : &a->strings[i];
            if (!(((char **)out[0]->data)[i] = oq_strndup(b->data ? b->data : "", b->len)))
                st = oq_error(OQ_E_NOMEM, "out of memory");
        }
        return st;
    }
    return oq_op_error(n, OQ_E_UNSUPPORTED, "Constant attribute '%s' is not supported", a->name);
}
const oq_op_def oq_op_constant = {NULL, NULL, constant_run, NULL};

/* ---- Identity ---- */
static oq_status identity_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs != 1 || !in[0] || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "Identity takes one input and one output");
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status identity_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    (void)n;
    if (in[0]->dtype == OQ_STRING) {
        char **d = out[0]->data, *const *s = in[0]->data;
        for (int64_t i = 0; i < oq_tensor_numel(in[0]); i++)
            if (!(d[i] = oq_strdup(s[i] ? s[i] : "")))
                return oq_error(OQ_E_NOMEM, "out of memory");
        return OQ_OK;
    }
    if (in[0]->nbytes)
        memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
    return OQ_OK;
}
const oq_op_def oq_op_identity = {NULL, identity_infer, identity_run, NULL};

/* ---- If ---- */
static oq_status if_prepare(oq_op_node *n)
{
    oq_exec *t = oq_op_subgraph(n, "then_branch"), *e = oq_op_subgraph(n, "else_branch");
    if (!t || !e)
        return oq_op_error(n, OQ_E_INVALID_ARG, "If needs then_branch and else_branch graphs");
    if (oq_exec_output_count(t) != n->n_outputs || oq_exec_output_count(e) != n->n_outputs)
        return oq_op_error(n, OQ_E_GRAPH, "If has %zu outputs but its branches produce %zu and %zu", n->n_outputs,
                           oq_exec_output_count(t), oq_exec_output_count(e));
    return OQ_OK;
}

static oq_status if_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 1 || !in[0] || oq_tensor_numel(in[0]) != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "If needs a single-element condition");
    bool cond = oq_tensor_get_f64(in[0], 0) != 0;
    oq_exec *sub = oq_op_subgraph(n, cond ? "then_branch" : "else_branch");
    oq_tensor **res = oq_calloc(n->n_outputs + 1, sizeof *res);
    if (!res)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = oq_exec_run(sub, NULL, 0, res, n->n_outputs);
    if (st == OQ_OK)
        for (size_t i = 0; i < n->n_outputs; i++)
            move_into(out[i], res[i]);
    else
        st = oq_error_context(st, "node '%s' (If, %s branch)", n->label, cond ? "then" : "else");
    free(res);
    return st;
}
const oq_op_def oq_op_if = {if_prepare, NULL, if_run, NULL};

/* ---- Loop ---- */
static oq_status loop_prepare(oq_op_node *n)
{
    oq_exec *body = oq_op_subgraph(n, "body");
    if (!body)
        return oq_op_error(n, OQ_E_INVALID_ARG, "Loop needs a body graph");
    if (n->n_inputs < 2)
        return oq_op_error(n, OQ_E_INVALID_ARG, "Loop needs at least the M and cond inputs (possibly empty)");
    size_t carried = n->n_inputs - 2;
    if (oq_exec_input_count(body) != carried + 2)
        return oq_op_error(n, OQ_E_GRAPH, "Loop body takes %zu inputs; expected %zu (iteration, condition, %zu carried)",
                           oq_exec_input_count(body), carried + 2, carried);
    if (oq_exec_output_count(body) < carried + 1 || n->n_outputs < carried ||
        oq_exec_output_count(body) - 1 - carried != n->n_outputs - carried)
        return oq_op_error(n, OQ_E_GRAPH, "Loop body outputs (%zu) do not match the node's %zu outputs and %zu carried values",
                           oq_exec_output_count(body), n->n_outputs, carried);
    return OQ_OK;
}

/* Stacks K per-iteration tensors of equal shape along a new axis 0. */
static oq_status stack(oq_op_node *n, oq_tensor **parts, size_t count, oq_tensor *dst)
{
    if (count == 0) {
        int64_t zero = 0;
        return oq_tensor_alloc(dst, OQ_FLOAT, 1, &zero);
    }
    const oq_tensor *f = parts[0];
    if (f->ndim + 1 > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "scan output rank too large");
    int64_t dims[OQ_MAX_DIMS];
    dims[0] = (int64_t)count;
    for (int d = 0; d < f->ndim; d++)
        dims[d + 1] = f->dims[d];
    for (size_t i = 1; i < count; i++)
        if (!oq_shape_equal(parts[i]->ndim, parts[i]->dims, f->ndim, f->dims) || parts[i]->dtype != f->dtype)
            return oq_op_error(n, OQ_E_SHAPE, "Loop scan output changes shape or type between iterations");
    oq_status st = oq_tensor_alloc(dst, f->dtype, f->ndim + 1, dims);
    if (st != OQ_OK)
        return st;
    size_t each = f->nbytes;
    for (size_t i = 0; i < count; i++) {
        if (f->dtype == OQ_STRING) {
            size_t m = (size_t)oq_tensor_numel(f);
            for (size_t k = 0; k < m; k++) {
                char *s = oq_strdup(((char **)parts[i]->data)[k] ? ((char **)parts[i]->data)[k] : "");
                if (!s)
                    return oq_error(OQ_E_NOMEM, "out of memory");
                ((char **)dst->data)[i * m + k] = s;
            }
        } else if (each) {
            memcpy((char *)dst->data + i * each, parts[i]->data, each);
        }
    }
    return OQ_OK;
}

/* Whether the Loop's body returns its condition input as its condition output (directly or through
 * Identity nodes): with no trip count and a true condition, such a loop never ends. */
static bool body_keeps_cond(const oq_op_node *n)
{
    const oq_attr *a = oq_node_attr(n->node, "body");
    const oq_graph *b = a ? a->g : NULL;
    if (!b || b->n_inputs < 2 || b->n_outputs < 1)
        return false;
    const char *v = b->outputs[0].name;
    for (size_t hops = 0; v && hops <= b->n_nodes; hops++) {
        if (!strcmp(v, b->inputs[1].name))
            return true;
        const char *next = NULL;
        for (size_t i = 0; i < b->n_nodes && !next; i++) {
            const oq_node *d = &b->nodes[i];
            if (d->n_outputs == 1 && !strcmp(d->outputs[0], v) && !strcmp(d->op_type, "Identity") && d->n_inputs == 1)
                next = d->inputs[0];
        }
        v = next;
    }
    return false;
}

static oq_status loop_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_exec *body = oq_op_subgraph(n, "body");
    size_t carried = n->n_inputs - 2, n_body_out = oq_exec_output_count(body), n_scan = n_body_out - 1 - carried;
    int64_t max_trip = in[0] ? oq_tensor_get_i64(in[0], 0) : INT64_MAX;
    bool cond = in[1] ? oq_tensor_get_f64(in[1], 0) != 0 : true;
    oq_status st = !in[0] && cond && body_keeps_cond(n)
                       ? oq_op_error(n, OQ_E_UNSUPPORTED, "has no trip count M and its body passes the condition "
                                                          "through unchanged: it would never end")
                       : OQ_OK;
    oq_tensor *iter_t = NULL, *cond_t = NULL;
    oq_tensor **vars = oq_calloc(carried + 1, sizeof *vars), **res = oq_calloc(n_body_out + 1, sizeof *res);
    const oq_tensor **args = oq_calloc(carried + 3, sizeof *args);
    oq_tensor ***scans = oq_calloc(n_scan + 1, sizeof *scans);
    size_t n_iter = 0, cap_iter = 0;
    if (!vars || !res || !args || !scans)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < carried && st == OQ_OK; i++) {
        if (!in[2 + i])
            st = oq_op_error(n, OQ_E_INVALID_ARG, "loop-carried input %zu is missing", i);
        else
            st = oq_tensor_clone(in[2 + i], &vars[i]);
    }
    if (st == OQ_OK)
        st = oq_tensor_create(OQ_INT64, 0, NULL, &iter_t);
    if (st == OQ_OK)
        st = oq_tensor_create(OQ_BOOL, 0, NULL, &cond_t);
    for (int64_t it = 0; st == OQ_OK && it < max_trip && cond; it++) {
        *(int64_t *)iter_t->data = it;
        *(uint8_t *)cond_t->data = cond;
        args[0] = iter_t;
        args[1] = cond_t;
        for (size_t i = 0; i < carried; i++)
            args[2 + i] = vars[i];
        st = oq_exec_run(body, args, carried + 2, res, n_body_out);
        if (st != OQ_OK) {
            st = oq_error_context(st, "node '%s' (Loop, iteration %lld)", n->label, (long long)it);
            break;
        }
        cond = oq_tensor_numel(res[0]) > 0 && oq_tensor_get_f64(res[0], 0) != 0;
        oq_tensor_destroy(res[0]);
        for (size_t i = 0; i < carried; i++) {
            oq_tensor_destroy(vars[i]);
            vars[i] = res[1 + i];
        }
        if (n_scan) {
            if (n_iter == cap_iter) {
                size_t ncap = cap_iter ? cap_iter * 2 : 16;
                for (size_t k = 0; k < n_scan && st == OQ_OK; k++) {
                    oq_tensor **p = realloc(scans[k], ncap * sizeof *p);
                    if (!p)
                        st = oq_error(OQ_E_NOMEM, "out of memory");
                    else
                        scans[k] = p;
                }
                cap_iter = ncap;
            }
            for (size_t k = 0; k < n_scan; k++) {
                if (st == OQ_OK)
                    scans[k][n_iter] = res[1 + carried + k];
                else
                    oq_tensor_destroy(res[1 + carried + k]);
            }
        }
        if (st == OQ_OK)
            n_iter++;
    }
    for (size_t i = 0; i < carried && st == OQ_OK; i++) {
        if (i < n->n_outputs) {
            move_into(out[i], vars[i]);
            vars[i] = NULL;
        }
    }
    for (size_t k = 0; k < n_scan && st == OQ_OK; k++)
        st = stack(n, scans[k], n_iter, out[carried + k]);
    for (size_t k = 0; k < n_scan; k++) {
        for (size_t i = 0; scans && scans[k] && i < n_iter; i++)
            oq_tensor_destroy(scans[k][i]);
        if (scans)
            free(scans[k]);
    }
    for (size_t i = 0; vars && i < carried; i++)
        oq_tensor_destroy(vars[i]);
    oq_tensor_destroy(iter_t);
    oq_tensor_destroy(cond_t);
    free(vars);
    free(res);
    free(args);
    free(scans);
    return st;
}
const oq_op_def oq_op_loop = {loop_prepare, NULL, loop_run, NULL};

/* ---- Scan (opset 9+) ---- */
typedef struct scan_state {
    size_t n_state, n_scan_in, n_scan_out;
    int64_t in_axes[64], in_dirs[64], out_axes[64], out_dirs[64];
} scan_state;

static oq_status scan_prepare(oq_op_node *n)
{
    oq_exec *body = oq_op_subgraph(n, "body");
    if (!body)
        return oq_op_error(n, OQ_E_INVALID_ARG, "Scan needs a body graph");
    int64_t m = oq_node_attr_int(n->node, "num_scan_inputs", -1);
    if (m < 1 || (size_t)m > n->n_inputs || m > 64)
        return oq_op_error(n, OQ_E_INVALID_ARG, "num_scan_inputs %lld is invalid for %zu inputs", (long long)m,
                           n->n_inputs);
    scan_state *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    n->state = s;
    s->n_scan_in = (size_t)m;
    s->n_state = n->n_inputs - s->n_scan_in;
    if (oq_exec_input_count(body) != n->n_inputs || oq_exec_output_count(body) != n->n_outputs ||
        n->n_outputs < s->n_state)
        return oq_op_error(n, OQ_E_GRAPH, "Scan body signature (%zu inputs, %zu outputs) does not match the node",
                           oq_exec_input_count(body), oq_exec_output_count(body));
    s->n_scan_out = n->n_outputs - s->n_state;
    if (s->n_scan_out > 64)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "too many scan outputs");
    const int64_t *v;
    size_t k;
    k = oq_node_attr_ints(n->node, "scan_input_axes", &v);
    for (size_t i = 0; i < s->n_scan_in; i++)
        s->in_axes[i] = i < k ? v[i] : 0;
    k = oq_node_attr_ints(n->node, "scan_input_directions", &v);
    for (size_t i = 0; i < s->n_scan_in; i++)
        s->in_dirs[i] = i < k ? v[i] : 0;
    k = oq_node_attr_ints(n->node, "scan_output_axes", &v);
    for (size_t i = 0; i < s->n_scan_out; i++)
        s->out_axes[i] = i < k ? v[i] : 0;
    k = oq_node_attr_ints(n->node, "scan_output_directions", &v);
    for (size_t i = 0; i < s->n_scan_out; i++)
        s->out_dirs[i] = i < k ? v[i] : 0;
    return OQ_OK;
}

/* Extent of dims before and after axis, in elements. */
static void split_at(const oq_tensor *t, int axis, size_t *outer, size_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= (size_t)t->dims[d];
    for (int d = axis + 1; d < t->ndim; d++)
        *inner *= (size_t)t->dims[d];
}

static oq_status scan_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    scan_state *s = n->state;
    oq_exec *body = oq_op_subgraph(n, "body");
    oq_status st = OQ_OK;
    int64_t T = -1;
    int in_axis[64], out_axis[64];
    for (size_t j = 0; j < s->n_scan_in; j++) {
        const oq_tensor *x = in[s->n_state + j];
        if (!x || x->dtype == OQ_STRING)
            return oq_op_error(n, OQ_E_INVALID_ARG, "scan input %zu is missing or a string", j);
        st = oq_norm_axis(n, s->in_axes[j], x->ndim, &in_axis[j]);
        if (st != OQ_OK)
            return st;
        if (T >= 0 && x->dims[in_axis[j]] != T)
            return oq_op_error(n, OQ_E_SHAPE, "scan inputs disagree on the sequence length");
        T = x->dims[in_axis[j]];
    }
    size_t n_all = n->n_inputs, n_out = n->n_outputs;
    oq_tensor **slices = oq_calloc(s->n_scan_in + 1, sizeof *slices), **state = oq_calloc(s->n_state + 1, sizeof *state);
    oq_tensor **res = oq_calloc(n_out + 1, sizeof *res);
    oq_tensor ***parts = oq_calloc(s->n_scan_out + 1, sizeof *parts);
    const oq_tensor **args = oq_calloc(n_all + 1, sizeof *args);
    if (!slices || !state || !res || !parts || !args)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t k = 0; k < s->n_scan_out && st == OQ_OK; k++)
        if (!(parts[k] = oq_calloc((size_t)T + 1, sizeof **parts)))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < s->n_state && st == OQ_OK; i++)
        st = in[i] ? oq_tensor_clone(in[i], &state[i]) : oq_op_error(n, OQ_E_INVALID_ARG, "state %zu missing", i);
    for (int64_t t = 0; t < T && st == OQ_OK; t++) {
        for (size_t j = 0; j < s->n_scan_in && st == OQ_OK; j++) {
            const oq_tensor *x = in[s->n_state + j];
            int64_t idx = s->in_dirs[j] ? T - 1 - t : t, dims[OQ_MAX_DIMS];
            int nd = 0;
            for (int d = 0; d < x->ndim; d++)
                if (d != in_axis[j])
                    dims[nd++] = x->dims[d];
            oq_tensor_destroy(slices[j]);
            slices[j] = NULL;
            st = oq_tensor_create(x->dtype, nd, dims, &slices[j]);
            if (st != OQ_OK)
                break;
            size_t outer, inner, es = oq_dtype_size(x->dtype);
            split_at(x, in_axis[j], &outer, &inner);
            for (size_t o = 0; o < outer; o++)
                memcpy((char *)slices[j]->data + o * inner * es,
                       (const char *)x->data + ((o * (size_t)T + (size_t)idx) * inner) * es, inner * es);
        }
        for (size_t i = 0; i < s->n_state; i++)
            args[i] = state[i];
        for (size_t j = 0; j < s->n_scan_in; j++)
            args[s->n_state + j] = slices[j];
        if (st == OQ_OK)
            st = oq_exec_run(body, args, n_all, res, n_out);
        if (st != OQ_OK)
            break;
        for (size_t i = 0; i < s->n_state; i++) {
            oq_tensor_destroy(state[i]);
            state[i] = res[i];
        }
        for (size_t k = 0; k < s->n_scan_out; k++)
            parts[k][t] = res[s->n_state + k];
    }
    for (size_t i = 0; i < s->n_state && st == OQ_OK; i++) {
        move_into(out[i], state[i]);
        state[i] = NULL;
    }
    for (size_t k = 0; k < s->n_scan_out && st == OQ_OK; k++) {
        const oq_tensor *f = T > 0 ? parts[k][0] : NULL;
        if (!f) {
            int64_t zero = 0;
            st = oq_tensor_alloc(out[s->n_state + k], OQ_FLOAT, 1, &zero);
            continue;
        }
        if (f->dtype == OQ_STRING || f->ndim + 1 > OQ_MAX_DIMS) {
            st = oq_op_error(n, OQ_E_UNSUPPORTED, "scan output %zu has an unsupported type or rank", k);
            break;
        }
        st = oq_norm_axis(n, s->out_axes[k], f->ndim + 1, &out_axis[k]);
        if (st != OQ_OK)
            break;
        int64_t dims[OQ_MAX_DIMS];
        for (int d = 0, e = 0; d < f->ndim + 1; d++)
            dims[d] = d == out_axis[k] ? T : f->dims[e++];
        oq_tensor *dst = out[s->n_state + k];
        st = oq_tensor_alloc(dst, f->dtype, f->ndim + 1, dims);
        size_t outer, inner, es = oq_dtype_size(f->dtype);
        if (st == OQ_OK)
            split_at(dst, out_axis[k], &outer, &inner);
        for (int64_t t = 0; t < T && st == OQ_OK; t++) {
            const oq_tensor *p = parts[k][t];
            if (!oq_shape_equal(p->ndim, p->dims, f->ndim, f->dims)) {
                st = oq_op_error(n, OQ_E_SHAPE, "scan output %zu changes shape between iterations", k);
                break;
            }
            int64_t pos = s->out_dirs[k] ? T - 1 - t : t;
            for (size_t o = 0; o < outer; o++)
                memcpy((char *)dst->data + ((o * (size_t)T + (size_t)pos) * inner) * es,
                       (const char *)p->data + o * inner * es, inner * es);
        }
    }
    for (size_t k = 0; parts && k < s->n_scan_out; k++) {
        for (int64_t t = 0; parts[k] && t < T; t++)
            oq_tensor_destroy(parts[k][t]);
        free(parts[k]);
    }
    for (size_t j = 0; slices && j < s->n_scan_in; j++)
        oq_tensor_destroy(slices[j]);
    for (size_t i = 0; state && i < s->n_state; i++)
        oq_tensor_destroy(state[i]);
    free(parts);
    free(slices);
    free(state);
    free(res);
    free(args);
    return st;
}

static void scan_destroy(void *p) { free(p); }
const oq_op_def oq_op_scan = {scan_prepare, NULL, scan_run, scan_destroy};

/* ---- Dropout: inference only (output = input, mask all true) ---- */
static oq_status dropout_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 1 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "Dropout needs its data input");
    bool training = n->n_inputs > 2 && in[2] && oq_tensor_numel(in[2]) == 1 && oq_tensor_get_i64(in[2], 0) != 0;
    double ratio = n->n_inputs > 1 && in[1] && oq_tensor_numel(in[1]) == 1 ? oq_tensor_get_f64(in[1], 0)
                                                                           : oq_node_attr_float(n->node, "ratio", 0.5f);
    if (training && ratio > 0)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "Dropout in training mode (random masks) is not supported");
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    if (n->n_outputs > 1)
        oq_set_shape(out[1], OQ_BOOL, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status dropout_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    (void)n;
    if (in[0]->nbytes)
        memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
    if (n->n_outputs > 1 && out[1]->data)
        memset(out[1]->data, 1, out[1]->nbytes);
    return OQ_OK;
}
const oq_op_def oq_op_dropout = {NULL, dropout_infer, dropout_run, NULL};
