/* The model as data (generated model_weights.c fills it) and one forward step. */
#ifndef EDGESLM_MODEL_H
#define EDGESLM_MODEL_H
#include <stdint.h>
#include "kernels.h"
#include "model_config.h"

typedef struct {
    qlinear_t wq, wk, wv, wo;        /* [H*D, dim], [Hkv*D, dim] x2, [dim, H*D] */
    qlinear_t wg, wu, wd;            /* [ff, dim] x2, [dim, ff] */
    const int32_t *attn_norm;        /* [dim] Q16 */
    const int32_t *ffn_norm;         /* [dim] Q16 */
} layer_t;

typedef struct {
    qlinear_t emb;                   /* [vocab, dim] */
    qlinear_t lm_head;               /* [vocab, dim] (the same bytes as emb when tied) */
    const int32_t *final_norm;       /* [dim] Q16 */
    const int32_t *rope_cos;         /* [seq, D/2] Q30 */
    const int32_t *rope_sin;         /* [seq, D/2] Q30 */
    layer_t layers[MODEL_LAYERS];
} model_t;

extern const model_t edgeslm_model;
extern uint8_t edgeslm_arena[ARENA_BYTES];

/* Run one token at position pos (0 <= pos < MODEL_SEQ) through the model, updating the int8 KV cache;
 * returns the logits [MODEL_VOCAB] in Q16 (inside the arena). */
const int32_t *edgeslm_forward(int token, int pos);

#endif
