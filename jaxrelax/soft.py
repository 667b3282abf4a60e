"""Deterministic relaxations of discrete and non-smooth operations."""

from jaxrelax._src.soft.permutation_matrix import permutation_matrix as permutation_matrix
from jaxrelax._src.soft.permutation_matrix import sort_with as sort_with
from jaxrelax._src.soft.quantiles import median as median
from jaxrelax._src.soft.quantiles import quantile as quantile
from jaxrelax._src.soft.rank_fn import rank_fn as rank_fn
from jaxrelax._src.soft.sinkhorn import sinkhorn as sinkhorn
from jaxrelax._src.soft.smooth_elementwise import huber as huber
from jaxrelax._src.soft.smooth_elementwise import relu as relu
from jaxrelax._src.soft.smooth_elementwise import round as round
from jaxrelax._src.soft.smooth_elementwise import sign as sign
from jaxrelax._src.soft.smooth_elementwise import step as step
from jaxrelax._src.soft.softmax import argmax as argmax
from jaxrelax._src.soft.softmax import argmax_index as argmax_index
from jaxrelax._src.soft.softmax import max as max
from jaxrelax._src.soft.softmax import softmax as softmax
from jaxrelax._src.soft.sorting import rank as rank
from jaxrelax._src.soft.sorting import sort as sort
from jaxrelax._src.soft.sorting import topk_mask as topk_mask
from jaxrelax._src.soft.sorting_network import sorting_network as sorting_network
from jaxrelax._src.soft.sparse import entmax as entmax
from jaxrelax._src.soft.sparse import entmax15 as entmax15
from jaxrelax._src.soft.sparse import entmax_loss as entmax_loss
from jaxrelax._src.soft.sparse import sparsemax as sparsemax

__all__ = [
    "argmax",
    "argmax_index",
    "entmax",
    "entmax15",
    "entmax_loss",
    "huber",
    "max",
    "median",
    "permutation_matrix",
    "quantile",
    "rank",
    "rank_fn",
    "relu",
    "round",
    "sign",
    "sinkhorn",
    "softmax",
    "sort",
    "sort_with",
    "sorting_network",
    "sparsemax",
    "step",
    "topk_mask",
]
