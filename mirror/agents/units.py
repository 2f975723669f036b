"""How a network's hidden units are named, in every table and on every command line."""


def neuron_name(layer: int, unit: int) -> str:
    """The paper's names: L1N3 is unit 3 of the first hidden layer; the outputs are the last layer."""
    return f"L{layer + 1}N{unit}"
