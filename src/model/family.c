/* family.c: the table of model families (model.h, pt_family). One entry per
 * family; nothing else in the library tests pt_arch to decide how to compute. */
#include "ptune/model.h"

static const pt_family families[] = {
    {PT_ARCH_LLAMA, "llama", PT_NORM_RMS, PT_MLP_SWIGLU, PT_POS_ROPE, 0, 0, 0, 0},
    {PT_ARCH_GPT2, "gpt2", PT_NORM_LAYER, PT_MLP_GELU, PT_POS_LEARNED, 1, 1, 0, 1},
    {PT_ARCH_GEMMA, "gemma", PT_NORM_RMS, PT_MLP_GEGLU, PT_POS_ROPE, 0, 0, 1, 1},
};

const pt_family *pt_family_of(pt_arch arch) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (families[i].arch == arch) return &families[i];
    return NULL;
}
