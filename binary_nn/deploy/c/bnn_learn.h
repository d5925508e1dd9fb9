/* binary_nn device learning: one binary MLP, one example per step, integers only.
 *
 * The network, its state and its rule are in bnn_learn_model.c (written by
 * `python -m binary_nn.export CHECKPOINT --format c --learn`); this file and bnn_learn.c are
 * the same for every model. Static memory only: every buffer is sized at export. */
#ifndef BNN_LEARN_H
#define BNN_LEARN_H

#include <stdint.h>
#include "bnn_learn_model.h"

/* The class of one image (uint8 pixels), the first of tied scores; learns nothing. */
int bnn_learn_predict(const uint8_t *pixels);

/* One learning step on one image and its label (0 .. BNN_CLASSES - 1). */
void bnn_learn(const uint8_t *pixels, int label);

/* A 64-bit FNV-1a hash of the whole learning state (latent weights, running statistics),
 * each value as a little-endian int32: what the Python reference computes too. */
uint64_t bnn_learn_state_hash(void);

/* Calls emit(name, value, first, last) for every state value, in the reference's order:
 * each layer's latent weights a row at a time ("layerK.latent"), then its running mean and
 * deviation ("layerK.mu", "layerK.mad"); first and last mark a row's ends. */
typedef void (*bnn_emit_t)(const char *name, int32_t value, int first, int last);
void bnn_learn_state_each(bnn_emit_t emit);

#endif
