"""Shared pytest configuration: doctest namespace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace.update({"jax": jax, "jnp": jnp, "np": np, "jr": jr})
    with np.printoptions(precision=4, suppress=True):
        yield
