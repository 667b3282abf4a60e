"""Distributions as (noise, transform) pairs for reparameterised sampling."""

__all__: list[str] = []
