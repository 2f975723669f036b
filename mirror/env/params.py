"""Game parameters: every constant of the spec is a field, so a batch of params can be vmapped."""

from flax import struct


@struct.dataclass
class EnvParams:
    """Frog-and-Toad parameters (spec §1–§3, §6). Defaults reproduce the spec's game.

    `world_width` is static (it sets array shapes); every other field is a traced leaf,
    so `jax.vmap` over a batch of `EnvParams` (e.g. several dependency values) works.
    Every field is a scalar; a batch has leaves [n]. Observations are int8[3W+4] (100 at
    the default W = 32).
    """

    max_energy: int = 20  # energy cap, also the starting energy
    fly_energy: int = 4  # energy gained by a jump that catches a fly
    leap_cost: int = 1  # energy paid by a leap
    leap_distance: int = 5  # cells moved by a leap; also the help reach check
    help_gift: int = 2  # energy given to the partner by a help
    help_cost: int = 1  # energy paid by the helper when the gift is made
    help_leap_prob: float = 0.25  # chance that a help makes the partner leap
    rough_cost: int = 1  # energy lost when landing on rough ground
    fly_spawn_prob: float = 0.01  # per-cell chance of a new fly each turn (and at reset)
    obstacle_rate_step: float = 0.005  # obstacle-rate increase per scrolling turn
    obstacle_rate_max: float = 0.075  # obstacle-rate cap
    obstacle_max_width: int = 4  # obstacle widths are drawn from U{1..max}
    episode_turns: int = 200  # truncation length in turns (both players' turns count)
    dependency: float = 1.0  # D in [0, 1] on a 1e-4 grid: scroll anchor mixes mean (D=1) and leader (D=0)
    veil: float = 0.0  # I in [0, 1]: chance an observation shows both idle codes as 4
    world_width: int = struct.field(pytree_node=False, default=32)

    @property
    def new_cells_max(self) -> int:
        """Most cells one scroll can append: the anchor is at most W-1, the shift W-1-W//2."""
        return self.world_width - 1 - self.world_width // 2


def default_params() -> EnvParams:
    return EnvParams()
