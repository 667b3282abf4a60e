"""One-estimate gradient variances on the toy problem.

min E_{b~Bern(sigmoid(phi))}[(b - 0.45)^2] at phi = 0. Run: ``python examples/toy_variances.py``.
"""

import jax
import jax.numpy as jnp
import optax

import jaxrelax as jr

f = lambda b: jnp.sum((b - 0.45) ** 2)
phi, key = jnp.zeros(1), jax.random.key(0)
ref = jax.grad(jr.estimators.exact(f, "bernoulli"))(phi, key)
est = jr.estimators
c = lambda z, w: w[0] * jnp.sum(jax.nn.sigmoid(z / jax.nn.softplus(w[1]))) + w[2]
E_relax = est.relax(f, control_variate=c)
w, opt = jnp.array([0.0, 0.5, 0.0]), optax.adam(0.05)
state = opt.init(w)


@jax.jit
def step(w, state, k):
    g = jnp.mean(
        jax.vmap(jax.grad(E_relax, argnums=2), (None, 0, None))(phi, jax.random.split(k, 64), w), 0
    )
    u, state = opt.update(g, state)
    return optax.apply_updates(w, u), state


for i in range(300):
    w, state = step(w, state, jax.random.key(1000 + i))

rows = [
    ("exact", est.exact(f), ()),
    ("reinforce", est.reinforce(f), ()),
    ("reinforce, baseline=0.25", est.reinforce(f, baseline=0.25), ()),
    ("reinforce, loo, n=2", est.reinforce(f, num_samples=2, baseline="loo"), ()),
    ("arm", est.arm(f), ()),
    ("disarm", est.disarm(f), ()),
    ("rebar (T=0.5, eta=1)", est.rebar(f), ()),
    ("relax (c untrained, w=0)", E_relax, (jnp.array([0.0, 0.5, 0.0]),)),
    ("relax (c after 300 adam steps)", E_relax, (w,)),
    ("gumbel_softmax (T=0.5)", est.gumbel_softmax(f, "bernoulli", temperature=0.5), ()),
    ("st_gumbel_softmax (T=0.5)", est.st_gumbel_softmax(f, "bernoulli", temperature=0.5), ()),
    ("straight_through", est.straight_through(f), ()),
    ("gumbel_rao (T=0.5, num_mc=10)", est.gumbel_rao(f, "bernoulli", temperature=0.5), ()),
]
print(f"true gradient {float(ref[0]):.4f}")
print("| estimator | mean | variance | bias (± s.e.) | us / estimate |")
print("| --- | --- | --- | --- | --- |")
for name, E, args in rows:
    s = jr.diagnostics.gradient_stats(E, phi, key, *args, num_trials=100_000, reference=ref)
    print(
        f"| {name} | {float(s.mean[0]):.4f} | {float(s.variance[0]):.3e} | "
        f"{float(s.bias[0]):+.4f} ± {float(s.bias_stderr[0]):.4f} | "
        f"{1e6 * s.seconds_per_estimate:.2f} |"
    )
