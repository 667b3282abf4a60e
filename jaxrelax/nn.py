"""Flax NNX layers built on jaxrelax (Gumbel-softmax, stochastic binary, vector quantiser)."""

__all__: list[str] = []
