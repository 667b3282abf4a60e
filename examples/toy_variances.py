"""One-estimate gradient variances on the toy problem.

min E_{b~Bern(sigmoid(phi))}[(b - 0.45)^2] at phi = 0. Run: ``python examples/toy_variances.py``
(100,000 estimates per estimator, as in the README's table). ``JAXRELAX_FAST=1`` runs it on
small settings (1,000 estimates, 20 Adam steps), as the notebooks do; the tests run it that way.
"""

import os

import jax
import jax.numpy as jnp
import optax

import jaxrelax as jr

FAST = os.environ.get("JAXRELAX_FAST", "0") == "1"
NUM_TRIALS = 1_000 if FAST else 100_000
NUM_STEPS = 20 if FAST else 300

f = lambda b: jnp.sum((b - 0.45) ** 2)
phi, key = jnp.zeros(1), jax.random.key(0)
est = jr.estimators
ref = jax.grad(est.exact(f, dist="bernoulli"))(phi, key)
c = lambda z, w: w[0] * jnp.sum(jax.nn.sigmoid(z / jax.nn.softplus(w[1]))) + w[2]
E_relax = est.relax(f, dist="bernoulli", control_variate=c)
w, opt = jnp.array([0.0, 0.5, 0.0]), optax.adam(0.05)
state = opt.init(w)


@jax.jit
def step(w, state, k):
    g = jnp.mean(
        jax.vmap(jax.grad(E_relax, argnums=2), (None, 0, None))(phi, jax.random.split(k, 64), w), 0
    )
    u, state = opt.update(g, state)
    return optax.apply_updates(w, u), state


for i in range(NUM_STEPS):
    w, state = step(w, state, jax.random.key(1000 + i))

B = "bernoulli"
rows = [
    ("exact", est.exact(f, dist=B), ()),
    ("reinforce", est.reinforce(f, dist=B), ()),
    ("reinforce, baseline=0.25", est.reinforce(f, dist=B, baseline=0.25), ()),
    ("reinforce, loo, n=2", est.reinforce(f, dist=B, num_samples=2, baseline="loo"), ()),
    ("arm", est.arm(f, dist=B), ()),
    ("disarm", est.disarm(f, dist=B), ()),
    ("rebar (T=0.5, eta=1)", est.rebar(f, dist=B, temperature=0.5, eta=1.0), ()),
    ("relax (c untrained, w=0)", E_relax, (jnp.array([0.0, 0.5, 0.0]),)),
    (f"relax (c after {NUM_STEPS} adam steps)", E_relax, (w,)),
    ("gumbel_softmax (T=0.5)", est.gumbel_softmax(f, dist=B, temperature=0.5), ()),
    ("st_gumbel_softmax (T=0.5)", est.st_gumbel_softmax(f, dist=B, temperature=0.5), ()),
    ("straight_through", est.straight_through(f, dist=B), ()),
    (
        "gumbel_rao (T=0.5, num_mc=10)",
        est.gumbel_rao(f, dist=B, temperature=0.5, num_mc=10),
        (),
    ),
]
print(f"true gradient {float(ref[0]):.4f}; {NUM_TRIALS} estimates each")
print("| estimator | mean | variance | bias (± s.e.) | us / estimate |")
print("| --- | --- | --- | --- | --- |")
for name, E, args in rows:
    s = jr.diagnostics.gradient_stats(E, phi, key, *args, num_trials=NUM_TRIALS, reference=ref)
    print(
        f"| {name} | {float(s.mean[0]):.4f} | {float(s.variance[0]):.3e} | "
        f"{float(s.bias[0]):+.4f} ± {float(s.bias_stderr[0]):.4f} | "
        f"{1e6 * s.seconds_per_estimate:.2f} |"
    )
