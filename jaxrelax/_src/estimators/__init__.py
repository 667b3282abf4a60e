"""estimators (implementation).

The estimators' records are public: ``jr.estimators.EstimatorInfo`` and the registry
``jr.estimators.INFO`` (filled as each estimator's module is imported).
"""

from jaxrelax._src.estimators._core import INFO as INFO
from jaxrelax._src.estimators._core import EstimatorInfo as EstimatorInfo
