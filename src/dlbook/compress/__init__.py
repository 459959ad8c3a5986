"""Compressing networks: pruning, quantisation, low rank, weight sharing, binary weights,
distillation, sparse storage and the arithmetic of compact designs.

Every name is importable from the package (``from dlbook.compress import magnitude_mask``);
the files group them by concept: ``prune``, ``quantize``, ``lowrank``, ``share``, ``binary``,
``distill``, ``sparse``, ``design``. numpy only; the tests check each against PyTorch (or scipy,
or the definition where neither has the operation).
"""

from dlbook.compress.binary import (binarize_backward, binarize_forward, binarize_stochastic,
                                    binary_sign, clip_shadow_weights, xnor_binarize_backward,
                                    xnor_binarize_forward, xnor_dot)
from dlbook.compress.design import (conv2d_macs, conv2d_params, depthwise_separable_macs,
                                    depthwise_separable_params, fire_macs, fire_params,
                                    squeezenet_v1_0_params)
from dlbook.compress.distill import (distillation_loss_backward, distillation_loss_forward,
                                     soft_targets)
from dlbook.compress.lowrank import low_rank, low_rank_error
from dlbook.compress.prune import (filter_l1_norms, filters_to_keep, global_magnitude_masks,
                                   group_lasso_backward, group_lasso_forward, group_norms,
                                   magnitude_mask, magnitude_mask_naive, num_to_prune,
                                   prune_filters)
from dlbook.compress.quantize import (QUANT_RANGES, dequantize, fake_quantize_backward,
                                      fake_quantize_forward, minmax_qparams, quantize,
                                      symmetric_qparams)
from dlbook.compress.share import (kmeans_share, pq_compression_ratio, product_quantize,
                                   product_reconstruct, shared_weights_backward,
                                   shared_weights_backward_naive, shared_weights_forward,
                                   smallest_uint)
from dlbook.compress.sparse import (from_csr, from_relative, pack_codes, pack_mask, size_in_bytes,
                                    to_csr, to_csr_naive, to_relative, unpack_codes, unpack_mask)

__all__ = [
    "magnitude_mask", "magnitude_mask_naive", "global_magnitude_masks", "num_to_prune",
    "filter_l1_norms", "filters_to_keep", "prune_filters",
    "group_norms", "group_lasso_forward", "group_lasso_backward",
    "fake_quantize_forward", "fake_quantize_backward", "minmax_qparams", "symmetric_qparams",
    "quantize", "dequantize", "QUANT_RANGES",
    "low_rank", "low_rank_error",
    "kmeans_share", "shared_weights_forward", "shared_weights_backward",
    "shared_weights_backward_naive", "smallest_uint",
    "product_quantize", "product_reconstruct", "pq_compression_ratio",
    "binary_sign", "binarize_forward", "binarize_backward", "binarize_stochastic",
    "clip_shadow_weights", "xnor_binarize_forward", "xnor_binarize_backward", "xnor_dot",
    "soft_targets", "distillation_loss_forward", "distillation_loss_backward",
    "to_csr", "to_csr_naive", "from_csr", "pack_mask", "unpack_mask", "pack_codes",
    "unpack_codes", "to_relative", "from_relative", "size_in_bytes",
    "conv2d_params", "conv2d_macs", "depthwise_separable_params", "depthwise_separable_macs",
    "fire_params", "fire_macs", "squeezenet_v1_0_params",
]
