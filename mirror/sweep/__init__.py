"""Sweeps: many trials trained as vmapped populations sharded over devices and hosts."""
