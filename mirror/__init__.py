"""mirror: Frog-and-Toad mirror-neuron experiments in JAX."""
