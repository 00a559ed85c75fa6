/* One decoder step over a static arena (no heap). Mirrors compilers/micro/reference.py step by step:
 * embed -> per layer [rmsnorm -> int8 q/k/v matvecs -> RoPE -> int8 KV store -> attention (integer
 * softmax) -> o matvec -> residual -> rmsnorm -> gate/up matvecs -> SiLU*up -> down matvec -> residual]
 * -> final rmsnorm -> lm_head matvec -> logits Q16. */
#include "model.h"

/* One static arena sized at build time by compilers/micro/memory_plan.py (offsets in model_config.h). */
uint8_t edgeslm_arena[ARENA_BYTES] __attribute__((aligned(8)));
#define ARENA(type, off) ((type *)(edgeslm_arena + (off)))

static void store_kv(const int32_t *src, int8_t *cache, int8_t *exps) {
    /* one int8 vector with a power-of-two scale per (position, KV head) */
    for (int g = 0; g < MODEL_KV_HEADS; g++)
        exps[g] = (int8_t)quant_act(src + g * MODEL_HEAD_DIM, cache + g * MODEL_HEAD_DIM, MODEL_HEAD_DIM);
}

static void attention(int layer, int pos, const int32_t *q, int32_t *out) {
    int32_t *att = ARENA(int32_t, OFF_ATT);                                    /* [seq] */
    const int kvdim = MODEL_KV_HEADS * MODEL_HEAD_DIM, rep = MODEL_HEADS / MODEL_KV_HEADS;
    const int8_t *kc = ARENA(int8_t, OFF_KCACHE) + layer * MODEL_SEQ * kvdim;  /* [seq, Hkv*D] */
    const int8_t *vc = ARENA(int8_t, OFF_VCACHE) + layer * MODEL_SEQ * kvdim;
    const int8_t *ke = ARENA(int8_t, OFF_KEXP) + layer * MODEL_SEQ * MODEL_KV_HEADS;   /* [seq, Hkv] */
    const int8_t *ve = ARENA(int8_t, OFF_VEXP) + layer * MODEL_SEQ * MODEL_KV_HEADS;
    for (int h = 0; h < MODEL_HEADS; h++) {
        const int g = h / rep;
        const int32_t *qh = q + h * MODEL_HEAD_DIM;
        int32_t m = INT32_MIN;
        for (int t = 0; t <= pos; t++) {
            const int8_t *k = kc + t * kvdim + g * MODEL_HEAD_DIM;
            int64_t acc = 0;
            for (int i = 0; i < MODEL_HEAD_DIM; i++) acc += (int64_t)qh[i] * k[i];
            att[t] = sat32(rshr(acc * MODEL_ATTN_SCALE_Q16, 32 - ke[t * MODEL_KV_HEADS + g]));
            if (att[t] > m) m = att[t];
        }
        int64_t sum = 0;
        for (int t = 0; t <= pos; t++) {
            att[t] = (int32_t)rshr(exp_q30(sat32((int64_t)att[t] - m)), 14);     /* Q16 */
            sum += att[t];
        }
        for (int i = 0; i < MODEL_HEAD_DIM; i++) {
            int64_t acc = 0;
            for (int t = 0; t <= pos; t++)
                acc += (int64_t)att[t] * vc[t * kvdim + g * MODEL_HEAD_DIM + i] *
                       ((int64_t)1 << ve[t * MODEL_KV_HEADS + g]);
            out[h * MODEL_HEAD_DIM + i] = sat32(div_round(acc, sum));
        }
    }
}

const int32_t *edgeslm_forward(int token, int pos) {
    const model_t *M = &edgeslm_model;
    int32_t *x = ARENA(int32_t, OFF_X);            /* [dim] residual stream */
    int32_t *xb = ARENA(int32_t, OFF_XB);          /* [dim] */
    int8_t *q8 = ARENA(int8_t, OFF_Q8);            /* [max(dim, ff, H*D)] matvec input */
    uint32_t *scratch = ARENA(uint32_t, OFF_SCRATCH);   /* [max cols / 2] unpacked input (DSP) */
    int32_t *q = ARENA(int32_t, OFF_Q);            /* [H*D] */
    int32_t *k = ARENA(int32_t, OFF_K);            /* [Hkv*D] */
    int32_t *v = ARENA(int32_t, OFF_V);            /* [Hkv*D] */
    int32_t *ao = ARENA(int32_t, OFF_AO);          /* [H*D] attention output */
    int32_t *hb = ARENA(int32_t, OFF_HB);          /* [ff] */
    int32_t *hb2 = ARENA(int32_t, OFF_HB2);        /* [ff] */
    int32_t *logits = ARENA(int32_t, OFF_LOGITS);  /* [vocab] */
    const int kvdim = MODEL_KV_HEADS * MODEL_HEAD_DIM, half = MODEL_HEAD_DIM / 2;
    int e;

    embed_q16(&M->emb, token, x);
    for (int l = 0; l < MODEL_LAYERS; l++) {
        const layer_t *L = &M->layers[l];
        rmsnorm_q16(x, L->attn_norm, xb, MODEL_DIM, MODEL_EPS_Q32);
        e = quant_act(xb, q8, MODEL_DIM);
        matvec_q8(&L->wq, q8, e, q, scratch);
        matvec_q8(&L->wk, q8, e, k, scratch);
        matvec_q8(&L->wv, q8, e, v, scratch);
        rope_q16(q, MODEL_HEADS, MODEL_HEAD_DIM, M->rope_cos + pos * half, M->rope_sin + pos * half);
        rope_q16(k, MODEL_KV_HEADS, MODEL_HEAD_DIM, M->rope_cos + pos * half, M->rope_sin + pos * half);
        int off = (l * MODEL_SEQ + pos);
        store_kv(k, ARENA(int8_t, OFF_KCACHE) + off * kvdim, ARENA(int8_t, OFF_KEXP) + off * MODEL_KV_HEADS);
        store_kv(v, ARENA(int8_t, OFF_VCACHE) + off * kvdim, ARENA(int8_t, OFF_VEXP) + off * MODEL_KV_HEADS);
        attention(l, pos, q, ao);
        e = quant_act(ao, q8, MODEL_HEADS * MODEL_HEAD_DIM);
        matvec_q8(&L->wo, q8, e, xb, scratch);
        for (int i = 0; i < MODEL_DIM; i++) x[i] = sat32((int64_t)x[i] + xb[i]);
        rmsnorm_q16(x, L->ffn_norm, xb, MODEL_DIM, MODEL_EPS_Q32);
        e = quant_act(xb, q8, MODEL_DIM);
        matvec_q8(&L->wg, q8, e, hb, scratch);
        matvec_q8(&L->wu, q8, e, hb2, scratch);
        silu_mul_q16(hb, hb2, MODEL_FF);
        e = quant_act(hb, q8, MODEL_FF);
        matvec_q8(&L->wd, q8, e, xb, scratch);
        for (int i = 0; i < MODEL_DIM; i++) x[i] = sat32((int64_t)x[i] + xb[i]);
    }
    rmsnorm_q16(x, M->final_norm, xb, MODEL_DIM, MODEL_EPS_Q32);
    e = quant_act(xb, q8, MODEL_DIM);
    matvec_q8(&M->lm_head, q8, e, logits, scratch);
    return logits;
}
