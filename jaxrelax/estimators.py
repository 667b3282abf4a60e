"""Monte Carlo gradient-estimator transforms: ``E = NAME(f, dist=..., num_samples=...)``.

``INFO[NAME]`` is each estimator's record (``EstimatorInfo``): the ``dist`` values it takes,
its ``f`` evaluations, bias and higher-derivative behaviour.
"""

from jaxrelax._src.estimators import INFO as INFO
from jaxrelax._src.estimators import EstimatorInfo as EstimatorInfo
from jaxrelax._src.estimators.arm import arm as arm
from jaxrelax._src.estimators.arm import disarm as disarm
from jaxrelax._src.estimators.arsm import arsm as arsm
from jaxrelax._src.estimators.exact import exact as exact
from jaxrelax._src.estimators.gapped_st import gapped_st as gapped_st
from jaxrelax._src.estimators.gumbel_rao import gumbel_rao as gumbel_rao
from jaxrelax._src.estimators.indecater import indecater as indecater
from jaxrelax._src.estimators.iwae import iwae as iwae
from jaxrelax._src.estimators.pathwise import pathwise as pathwise
from jaxrelax._src.estimators.rebar import rebar as rebar
from jaxrelax._src.estimators.rebar import relax as relax
from jaxrelax._src.estimators.reinforce import reinforce as reinforce
from jaxrelax._src.estimators.reinmax import reinmax as reinmax
from jaxrelax._src.estimators.relaxed import gumbel_softmax as gumbel_softmax
from jaxrelax._src.estimators.relaxed import st_gumbel_softmax as st_gumbel_softmax
from jaxrelax._src.estimators.relaxed import straight_through as straight_through
from jaxrelax._src.estimators.unordered_set import unordered_set as unordered_set
from jaxrelax._src.estimators.vimco import vimco as vimco

__all__ = [
    "INFO",
    "EstimatorInfo",
    "arm",
    "arsm",
    "disarm",
    "exact",
    "gapped_st",
    "gumbel_rao",
    "gumbel_softmax",
    "indecater",
    "iwae",
    "pathwise",
    "rebar",
    "reinforce",
    "reinmax",
    "relax",
    "st_gumbel_softmax",
    "straight_through",
    "unordered_set",
    "vimco",
]
