"""The jaxrelax benchmark: ``python -m jaxrelax.bench [--quick | --full] [--only NAME]
[--peers] [--out DIR] [--sort-sizes N ...]``.

Six default suites and one on request, each an ordinary user of the public API
(``import jaxrelax as jr``):

* ``toy``: the REBAR / RELAX / DisARM toy problem ``E_{b ~ Bern(σ(φ))}[(b − t)²]``:
  gradient variance, bias and cost of every discrete estimator at ``φ = 0``, and
  Adam training runs at an equal budget of ``f``-evaluations per step.
* ``vae``: a Bernoulli VAE on binarised 8×8 digits (scikit-learn's bundled
  ``load_digits``), trained with each estimator at an equal ``f``-evaluation budget.
* ``cat_vae``: a categorical VAE (20 × 10 categorical latents, and one 10-way latent)
  on the same digits, comparing RLOO, Gumbel-softmax, ST, gapped ST, ReinMax,
  Gumbel-Rao, categorical DisARM, ARSM, IndeCateR and the unordered set at an equal
  ``f``-evaluation budget (the costlier ones at their true cost, beside RLOO at it).
* ``ops``: forward + backward cost of relaxed operators relative to hard floors, and of
  soft sort / rank against ``jnp.sort`` by row length
  (``python -m jaxrelax.bench --only ops --sort-sizes 1e3 1e4 1e5``).
* ``solvers``: PyEPO's shortest-path task ("predict, then optimise") on PyEPO's data:
  a linear cost model trained through an exact grid shortest-path solver with two-stage
  least squares, SPO+, the perturbed Fenchel–Young loss, DPO, blackbox, negative
  identity and I-MLE; normalised regret and time per epoch (with ``--peers``, PyEPO's
  own SPO+, PFYL and DBB on the same data).
* ``sorting``: sorting 4-digit numbers shown as digit images (NeuralSort's and
  diffsort's task, on scikit-learn's digits) with soft ranks, NeuralSort, SoftSort,
  Sinkhorn and sorting networks; exact-match and element-wise accuracy by list length
  (with ``--peers``, diffsort's odd-even network on the same data).
* ``peers`` (only with ``--peers``): jaxrelax beside PyTorch, the entmax package and
  OTT-JAX where they are installed (``pip install -e ".[peers]"``).

Results go to ``bench-results/`` (``results.json`` with every number, ``summary.txt``
with the printed tables, and PNG plots).
"""

from jaxrelax.bench._runner import SUITES, run_bench

__all__ = ["SUITES", "run_bench"]
