"""Distributions as (noise, transform) pairs for reparameterised sampling."""

from jaxrelax._src.reparam.base import Reparam as Reparam
from jaxrelax._src.reparam.continuous import cauchy as cauchy
from jaxrelax._src.reparam.continuous import exponential as exponential
from jaxrelax._src.reparam.continuous import gumbel as gumbel
from jaxrelax._src.reparam.continuous import kumaraswamy as kumaraswamy
from jaxrelax._src.reparam.continuous import laplace as laplace
from jaxrelax._src.reparam.continuous import logistic as logistic
from jaxrelax._src.reparam.continuous import lognormal as lognormal
from jaxrelax._src.reparam.continuous import multivariate_normal as multivariate_normal
from jaxrelax._src.reparam.continuous import normal as normal
from jaxrelax._src.reparam.continuous import uniform as uniform
from jaxrelax._src.reparam.gamma import beta as beta
from jaxrelax._src.reparam.gamma import dirichlet as dirichlet
from jaxrelax._src.reparam.gamma import gamma as gamma
from jaxrelax._src.reparam.gumbel_max import gumbel_max as gumbel_max
from jaxrelax._src.reparam.interop import from_distribution as from_distribution
from jaxrelax._src.reparam.k_subset import k_subset as k_subset
from jaxrelax._src.reparam.k_subset import k_subset_marginals as k_subset_marginals
from jaxrelax._src.reparam.permutations import gumbel_sinkhorn as gumbel_sinkhorn
from jaxrelax._src.reparam.permutations import plackett_luce as plackett_luce
from jaxrelax._src.reparam.relaxed import binary_concrete as binary_concrete
from jaxrelax._src.reparam.relaxed import concrete as concrete
from jaxrelax._src.reparam.topk import gumbel_topk as gumbel_topk
from jaxrelax._src.reparam.topk import relaxed_topk as relaxed_topk

__all__ = [
    "Reparam",
    "beta",
    "binary_concrete",
    "cauchy",
    "concrete",
    "dirichlet",
    "exponential",
    "from_distribution",
    "gamma",
    "gumbel",
    "gumbel_max",
    "gumbel_sinkhorn",
    "gumbel_topk",
    "k_subset",
    "k_subset_marginals",
    "kumaraswamy",
    "laplace",
    "logistic",
    "lognormal",
    "multivariate_normal",
    "normal",
    "plackett_luce",
    "relaxed_topk",
    "uniform",
]
