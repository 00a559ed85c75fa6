/* The model's constants (int8 weights, scales, norm weights, RoPE tables) as one blob in flash.
 * Offsets of every tensor are in model_layout.json and model_weights.c (generated together). */
    .section .rodata.edgeslm_weights, "a"
    .balign 8
    .global edgeslm_weights
edgeslm_weights:
    .incbin "weights.bin"
    .size edgeslm_weights, . - edgeslm_weights
