"""Flax agents: the paper's MLP (spec §8)."""
