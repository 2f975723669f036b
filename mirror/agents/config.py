"""The network's settings: the `model:` section of a config (the paper's MLP, spec §8,
or a small transformer)."""

import dataclasses

from mirror.agents.mlp import ACTIVATIONS, KERNEL_INITS
from mirror.base.errors import require


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """`model.kind: transformer` (mirror.agents.transformer): pre-LayerNorm blocks."""

    depth: int = 2  # blocks
    d_model: int = 32  # token width
    heads: int = 2  # attention heads; must divide d_model
    mlp_ratio: int = 2  # block MLP hidden units = mlp_ratio * d_model
    residual_neurons: bool = False  # also count each block's (layer-normalised) residual stream as CMNI neurons

    def validate(self) -> None:
        for name in ("depth", "d_model", "heads", "mlp_ratio"):
            value = getattr(self, name)
            require(type(value) is int and value > 0, f"model.transformer.{name}", value, "a positive integer")
        require(type(self.residual_neurons) is bool, "model.transformer.residual_neurons", self.residual_neurons, "true or false")
        require(
            self.d_model % self.heads == 0, "model.transformer.heads", self.heads, f"a divisor of model.transformer.d_model = {self.d_model}"
        )

    def as_tuple(self) -> tuple:
        return (self.depth, self.d_model, self.heads, self.mlp_ratio)


MODEL_KINDS = ("mlp", "transformer")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The paper's MLP (spec §8), or a small transformer (`kind: transformer`; activation,
    dropout and kernel_init then apply to its blocks, the MLP widths are unused).

    The MLP's params: hidden_i {kernel [fan_in, width], bias [width]} for i < hidden_layers
    (fan_in 3W+4 for the first), output {kernel [width, 4], bias [4]}; a population has
    leaves [members, ...]. Input int8/f32[rows, 3W+4], output f32[rows, 4]."""

    kind: str = "mlp"  # one of MODEL_KINDS
    transformer: TransformerConfig = TransformerConfig()

    hidden_layers: int = 2  # L
    width: int = 17  # n units per hidden layer
    activation: str = "relu"  # one of mirror.agents.mlp.ACTIVATIONS
    dropout: float = 0.12  # after each hidden layer, training only
    kernel_init: str = "glorot_uniform"  # one of mirror.agents.mlp.KERNEL_INITS
    # Populations (trained at once, see mirror.train): one entry per member; empty: the fields above.
    population_widths: tuple = ()  # hidden widths per member, e.g. [[17, 17], [8, 8]] (same depth)
    population_dropouts: tuple = ()  # dropout rate per member

    def validate(self) -> None:
        require(self.kind in MODEL_KINDS, "model.kind", self.kind, f"one of {list(MODEL_KINDS)}")
        self.transformer.validate()
        require(
            self.kind == "mlp" or not self.population_widths, "model.population_widths", self.population_widths,
            "empty for model.kind = transformer (population widths are MLP-only)",
        )  # fmt: skip
        require(self.hidden_layers > 0, "model.hidden_layers", self.hidden_layers, "a positive integer")
        require(self.width > 0, "model.width", self.width, "a positive integer")
        require(self.activation in ACTIVATIONS, "model.activation", self.activation, f"one of {sorted(ACTIVATIONS)}")
        require(self.kernel_init in KERNEL_INITS, "model.kernel_init", self.kernel_init, f"one of {sorted(KERNEL_INITS)}")
        require(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
        widths = self.population_widths
        ok = all(
            isinstance(w, (list, tuple)) and len(w) > 0 and all(type(u) is int and u > 0 for u in w) for w in widths
        ) and len({len(w) for w in widths}) <= 1
        require(ok, "model.population_widths", widths, "lists of positive hidden widths, all of the same depth")
        ok = all(type(r) in (int, float) and 0.0 <= r < 1.0 for r in self.population_dropouts)
        require(ok, "model.population_dropouts", self.population_dropouts, "numbers in [0, 1)")

    @property
    def widths(self) -> tuple:
        return (self.width,) * self.hidden_layers
