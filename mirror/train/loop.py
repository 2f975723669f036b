"""Training as jitted functions over on-device data, in the PureJaxRL / Flax-examples style.

`make_train(config, train_split, members)` returns a `Trainer` whose `epoch(state, epoch,
active)` trains every member (`lax.map` on a CPU, `jax.vmap` on accelerators) for one
epoch in one jitted call: a `lax.scan` over the minibatches, each step a forward pass
with dropout, the loss (data term, optionally class-weighted, + L2 on the hidden kernels;
for a transformer on every kernel except the embeddings, `mirror.agents.models.l2_leaf`)
and an Adam update. `model.kind` picks the model; a transformer population is never
padded (its members differ in seed, lr, dropout and L2 only). The minibatch order comes from a
keyed shuffle (`epoch_randomness`, a small program of its own). Randomness is a pure
function of (member seed, epoch), so an epoch can be recomputed exactly after a restart.
The jitted functions take a static `Spec`, so equal shapes share compiled code.

Shapes: every per-member array has a leading `[members]` axis; parameters are padded to
the population's widest hidden widths (`padded_widths`), with each member's extra units
masked off (`unit_mask`) and their weights held at exactly zero (zero gradients, zero
L2 gradient, zero Adam moments).

Adam runs on the member's parameters flattened into one vector (and the L2 penalty is a
masked sum over it): on a CPU the step is bound by per-kernel overhead, and one vector
turns Adam's per-leaf kernels into a few.

Class weights (`train.class_weights`, see `mirror.train.losses`) come from the training
split's label counts and weight the data term everywhere a loss is computed: the training
steps and `evaluate` (so the validation loss that early stopping watches, and the test
loss, measure the objective being trained; accuracy and the confusion matrix are
unweighted counts). With "none" the weights are absent (`Hyper.class_weight` None) and
the programs are exactly the unweighted ones.
"""

import functools
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec

from mirror.agents.mlp import NUM_ACTIONS, init_params, pad_params, unit_masks
from mirror.agents.models import Arch, arch_of, build_model, init_model_params, l2_leaf
from mirror.base.errors import ConfigError
from mirror.base.sharding import POP_AXIS, member_sharding, replicated
from mirror.train.config import TrainSource
from mirror.train.losses import class_weights, weighted_row_loss
from mirror.train.population import (
    Member,
    members_from_config,
    padded_widths,
    validate_members,
)
from mirror.train.randomness import feistel_permutation, hash_key

GATHER_CHUNK_STEPS = 1024  # 25,600 rows at batch 25: 2.5 MB of int8 inputs per member


class Split(NamedTuple):
    """One split of the dataset: inputs int8[rows, 3W+4], labels int8[rows]."""

    inputs: Any
    labels: Any


class Hyper(NamedTuple):
    """Per-member settings that keep shapes, each with a leading [members] axis."""

    key: jax.Array  # typed jax.random key per member: all of its training randomness
    dropout: jax.Array  # f32[members]
    l2: jax.Array  # f32[members]
    masks: tuple  # bool[members, padded_width] per hidden layer
    class_weight: Any = None  # f32[members, 4] loss weight per class; None: unweighted (the paper)


class TrainState(NamedTuple):
    params: Any  # MLP params, leaves [members, ...] at the padded widths
    opt_state: Any  # Adam state over each member's flattened params, leaves [members, ...]


class EpochMetrics(NamedTuple):
    loss: jax.Array  # f32[members]: mean minibatch loss over the epoch, L2 penalty included
    loss_data: jax.Array  # f32[members]: the same without the penalty
    finite: jax.Array  # bool[members]: losses and parameters stayed finite


class EvalMetrics(NamedTuple):
    loss: jax.Array  # f32[members]: mean loss over the split, L2 penalty included
    loss_data: jax.Array  # f32[members]
    accuracy: jax.Array  # f32[members]
    confusion: jax.Array  # int32[members, 4, 4]: rows predicted, columns actual (paper's Table 3)


class Trainer(NamedTuple):
    members: list
    padded_widths: tuple
    steps_per_epoch: int
    model: Any  # MLP or Transformer (`mirror.agents.models.build_model`)
    init: Callable[[], TrainState]
    epoch: Callable[[TrainState, int, Any], tuple[TrainState, EpochMetrics]]
    evaluate: Callable[[Any, Split], EvalMetrics]
    place: Callable[[Split], Split]  # a split where `evaluate` wants it (once, not every epoch)


class Spec(NamedTuple):
    """Everything static about a population's programs: equal specs share compiled code
    (across runs, resumes and sweep trials of the same shapes)."""

    loss: str
    rows: int
    num_inputs: int  # model inputs 3W+4, from the data
    batch_size: int
    steps: int
    scan_unroll: int
    eval_chunk_rows: int
    widths: tuple  # padded hidden widths
    activation: str
    kernel_init: str
    adam: tuple  # (b1, b2, eps)
    use_dropout: bool
    use_masks: bool
    member_map: bool  # members one after another (lax.map) rather than batched (vmap)
    kind: str = "mlp"  # model.kind
    transformer: tuple = ()  # (depth, d_model, heads, mlp_ratio) when kind is "transformer"
    residual_neurons: bool = False  # model.transformer.residual_neurons

    @property
    def arch(self) -> Arch:
        return Arch(self.kind, self.widths, self.activation, self.kernel_init, self.transformer, self.residual_neurons)

    @property
    def model(self):
        return build_model(self.arch)

    @property
    def chunk_steps(self) -> int:
        """Minibatches gathered at once (see `_member_epoch`)."""
        return min(GATHER_CHUNK_STEPS, self.steps)

    @property
    def chunks(self) -> int:
        return -(-self.steps // self.chunk_steps)


def make_optimizer(adam: tuple, lr: float = 1.0) -> optax.GradientTransformation:
    """Adam (b1, b2, eps as in the spec); the learning rate lives in the state, per member."""
    b1, b2, eps = adam
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2, eps=eps)


def member_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(init key, training key) of a member: everything random follows from its seed."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    return init_key, train_key


@partial(jax.jit, static_argnames=("widths", "padded", "activation", "kernel_init", "num_inputs"))
def _init_padded(key, widths, padded, activation, kernel_init, num_inputs):
    return pad_params(init_params(key, widths, activation, kernel_init, num_inputs=num_inputs), widths, padded)


@partial(jax.jit, static_argnames=("arch", "num_inputs"))
def _init_unpadded(key, arch, num_inputs):
    return init_model_params(key, arch, num_inputs=num_inputs)


def init_member_params(config: TrainSource, member: Member, widths: tuple, num_inputs: int):
    """A member's parameters for `num_inputs` model inputs, initialised at its true widths,
    zero-padded to `widths` (transformers are never padded)."""
    init_key, _ = member_keys(member.seed)
    m = config.model
    if m.kind != "mlp":
        return _init_unpadded(init_key, arch_of(m, widths), int(num_inputs))
    return _init_padded(init_key, tuple(member.widths), tuple(widths), m.activation, m.kernel_init, int(num_inputs))


def make_hyper(members: list[Member], widths: tuple, class_weight=None) -> Hyper:
    """`class_weight` f32[4] (shared by every member) or None."""
    train_keys = jnp.stack([member_keys(m.seed)[1] for m in members])
    if class_weight is not None:
        class_weight = jnp.broadcast_to(jnp.asarray(class_weight, jnp.float32), (len(members), NUM_ACTIONS))
    return Hyper(
        key=train_keys,
        dropout=jnp.array([m.dropout for m in members], jnp.float32),
        l2=jnp.array([m.l2 for m in members], jnp.float32),
        masks=tuple(jnp.asarray(mask) for mask in unit_masks([m.widths for m in members], widths)),
        class_weight=class_weight,
    )


class Flat(NamedTuple):
    """A member's params pytree <-> one f32 vector, and the L2 penalty on the vector."""

    ravel: Callable
    unravel: Callable
    l2_mask: np.ndarray  # f32[size]: 1 where `mirror.agents.models.l2_leaf` (MLP: hidden kernels, spec §8), else 0

    def penalty(self, flat, l2):
        return l2 * jnp.sum(jnp.square(flat) * self.l2_mask)


def _flattener(spec: Spec) -> Flat:
    shapes = jax.eval_shape(
        lambda k: init_model_params(k, spec.arch, num_inputs=spec.num_inputs), jax.random.key(0)
    )
    paths, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    leaves = [leaf for _, leaf in paths]
    offsets = np.cumsum([0] + [int(np.prod(leaf.shape)) for leaf in leaves])
    names = [jax.tree_util.keystr(path) for path, _ in paths]
    l2_mask = np.concatenate(
        [np.full(b - a, l2_leaf(spec.kind, name), np.float32) for a, b, name in zip(offsets[:-1], offsets[1:], names)]
    )

    def ravel(params):
        return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(params)])

    # The gradient of the slicing is a concatenation (one kernel), not a sum of pads.
    @jax.custom_vjp
    def unravel(flat):
        parts = [flat[a:b].reshape(leaf.shape) for a, b, leaf in zip(offsets[:-1], offsets[1:], leaves)]
        return jax.tree.unflatten(treedef, parts)

    unravel.defvjp(lambda flat: (unravel(flat), None), lambda _, cotangent: (ravel(cotangent),))
    return Flat(ravel, unravel, l2_mask)


def _forward(spec: Spec, params, x, hyper_m, dropout_key=None):
    return spec.model.apply(
        {"params": params},
        x,
        dropout_rate=hyper_m.dropout,
        dropout_key=dropout_key if spec.use_dropout else None,
        unit_mask=list(hyper_m.masks) if spec.use_masks else None,
    )[0]


@partial(jax.jit, static_argnames="spec")
def _init_opt_state(spec: Spec, params, lrs):
    flat = _flattener(spec)
    tx = make_optimizer(spec.adam)

    def init_member(params_m, lr):
        opt_state = tx.init(flat.ravel(params_m))
        opt_state.hyperparams["learning_rate"] = lr
        return opt_state

    return jax.vmap(init_member)(params, lrs)


def _member_randomness(key, epoch, rows: int, steps: int, batch_size: int, chunk_steps: int):
    chunks = -(-steps // chunk_steps)
    shuffle_key, dropout_key = jax.random.split(jax.random.fold_in(key, epoch))
    order = feistel_permutation(shuffle_key, rows)[: steps * batch_size]
    order = jnp.pad(order, (0, chunks * chunk_steps * batch_size - order.shape[0]))
    return order.reshape(chunks, chunk_steps, batch_size), hash_key(dropout_key)


@partial(jax.jit, static_argnames=("rows", "steps", "batch_size", "chunk_steps"))
def epoch_randomness(keys, epoch, rows: int, steps: int, batch_size: int, chunk_steps: int):
    """Per member: the epoch's minibatch order int32[members, chunks, chunk_steps, batch]
    (row indices; steps past `steps` are padding) and its dropout key.

    A pure function of (member key, epoch). Its own program: it depends only on the
    training-set size, so it compiles once for every population and config of that size.
    """
    return jax.vmap(lambda key: _member_randomness(key, epoch, rows, steps, batch_size, chunk_steps))(keys)


def _member_epoch(spec: Spec, params, opt_state, hyper_m, order, dropout_base, inputs, labels):
    flattener = _flattener(spec)
    tx = make_optimizer(spec.adam)

    def loss_fn(flat, x, y, key):
        outputs = _forward(spec, flattener.unravel(flat), x, hyper_m, key)
        data = jnp.mean(weighted_row_loss(outputs, y, spec.loss, hyper_m.class_weight))
        return data + flattener.penalty(flat, hyper_m.l2), data

    def step(carry, xs):
        flat, opt = carry
        i, x, y = xs
        key = jax.random.fold_in(dropout_base, i)
        (loss, data), grads = jax.value_and_grad(loss_fn, has_aux=True)(flat, x, y, key)
        updates, new_opt = tx.update(grads, opt, flat)
        new = (optax.apply_updates(flat, updates), new_opt)
        valid = i < spec.steps  # the last chunk is padded to full length
        carry = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, carry)
        return carry, (jnp.where(valid, loss, 0.0), jnp.where(valid, data, 0.0))

    def chunk(carry, xs):
        # One gather per chunk of steps: on a CPU a 25-row gather from a large array
        # costs ~0.5 us a row, a 25,000-row one ~0.1 us (memory-level parallelism).
        first, idx = xs
        steps = first + jnp.arange(spec.chunk_steps)
        return jax.lax.scan(step, carry, (steps, inputs[idx], labels[idx]), unroll=spec.scan_unroll)

    carry = (flattener.ravel(params), opt_state)
    firsts = jnp.arange(spec.chunks) * spec.chunk_steps
    (flat, opt_state), (losses, data) = jax.lax.scan(chunk, carry, (firsts, order))
    finite = jnp.all(jnp.isfinite(flat)) & jnp.all(jnp.isfinite(losses))
    return flattener.unravel(flat), opt_state, jnp.sum(losses) / spec.steps, jnp.sum(data) / spec.steps, finite


def _map_members(fn, per_member: tuple, shared: tuple, member_map: bool):
    """Apply `fn` to every member (leading axis of `per_member`).

    `member_map`: one member after another (`lax.map`). Each member then runs the same
    program whatever the population size or device count, so results are bit-identical
    across shardings; on a CPU it is as fast as batching. Otherwise the members are
    batched with `vmap` (accelerators), and a single member runs unbatched (on a CPU
    ~15% faster than the same step vmapped over one member)."""
    if member_map:
        return jax.lax.map(lambda xs: fn(*xs, *shared), per_member)
    if jax.tree.leaves(per_member)[0].shape[0] == 1:
        out = fn(*jax.tree.map(lambda a: a[0], per_member), *shared)
        return jax.tree.map(lambda a: a[None], out)
    return jax.vmap(fn, in_axes=(0,) * len(per_member) + (None,) * len(shared))(*per_member, *shared)


def _epoch_body(spec: Spec, state: TrainState, orders, dropout_keys, active, hyper: Hyper, inputs, labels):
    members = (state.params, state.opt_state, hyper, orders, dropout_keys)
    params, opt_state, loss, data, finite = _map_members(partial(_member_epoch, spec), members, (inputs, labels), spec.member_map)
    keep = active & finite  # stopped or diverged members keep their last good state

    def select(new, old):
        return jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    new_state = TrainState(jax.tree.map(select, params, state.params), jax.tree.map(select, opt_state, state.opt_state))
    return new_state, EpochMetrics(loss, data, finite)


_epoch = jax.jit(_epoch_body, static_argnames="spec")


def _member_evaluate(spec: Spec, params, hyper_m, inputs, labels):
    n = labels.shape[0]
    chunk = min(spec.eval_chunk_rows, n)
    full = n // chunk

    def stats(x, y):
        outputs = _forward(spec, params, x, hyper_m)
        predicted = jax.nn.one_hot(jnp.argmax(outputs, axis=-1), NUM_ACTIONS, dtype=jnp.float32)
        confusion = (predicted.T @ jax.nn.one_hot(y, NUM_ACTIONS, dtype=jnp.float32)).astype(jnp.int32)  # exact below 2^24
        return jnp.sum(weighted_row_loss(outputs, y, spec.loss, hyper_m.class_weight)), confusion

    def body(carry, i):
        x = jax.lax.dynamic_slice_in_dim(inputs, i * chunk, chunk)
        y = jax.lax.dynamic_slice_in_dim(labels, i * chunk, chunk)
        loss, confusion = stats(x, y)
        return (carry[0] + loss, carry[1] + confusion), None

    zero = (jnp.zeros((), jnp.float32), jnp.zeros((NUM_ACTIONS, NUM_ACTIONS), jnp.int32))
    (loss, confusion), _ = jax.lax.scan(body, zero, jnp.arange(full))
    if n > full * chunk:
        rest_loss, rest_confusion = stats(inputs[full * chunk :], labels[full * chunk :])
        loss, confusion = loss + rest_loss, confusion + rest_confusion
    data = loss / n
    accuracy = (jnp.trace(confusion) / n).astype(jnp.float32)
    flattener = _flattener(spec)  # the same penalty as in training
    return EvalMetrics(data + flattener.penalty(flattener.ravel(params), hyper_m.l2), data, accuracy, confusion)


def _evaluate_body(spec: Spec, params, hyper: Hyper, inputs, labels):
    return _map_members(partial(_member_evaluate, spec), (params, hyper), (inputs, labels), spec.member_map)


_evaluate = jax.jit(_evaluate_body, static_argnames="spec")


@functools.cache
def _sharded_programs(spec: Spec, mesh: Mesh):
    """(epoch, evaluate) for a population split over `mesh` along its member axis: each
    device runs the plain vmapped programs on its own members (no communication)."""
    pop, rep = PartitionSpec(POP_AXIS), PartitionSpec()

    def epoch_fn(state, epoch, active, hyper, inputs, labels):
        randomness = partial(_member_randomness, rows=spec.rows, steps=spec.steps, batch_size=spec.batch_size, chunk_steps=spec.chunk_steps)
        orders, dropout_keys = jax.vmap(lambda key: randomness(key, epoch))(hyper.key)
        return _epoch_body(spec, state, orders, dropout_keys, active, hyper, inputs, labels)

    epoch = jax.jit(jax.shard_map(epoch_fn, mesh=mesh, in_specs=(pop, rep, pop, pop, rep, rep), out_specs=pop, check_vma=False))
    evaluate = jax.jit(jax.shard_map(partial(_evaluate_body, spec), mesh=mesh, in_specs=(pop, pop, rep, rep), out_specs=pop, check_vma=False))
    return epoch, evaluate


def member_mapping(member_batching: str) -> str:
    """"map" or "vmap": `train.member_batching` with "auto" resolved for the backend."""
    if member_batching == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return member_batching


def make_train(config: TrainSource, train: Split, members: list[Member] | None = None, mesh: Mesh | None = None) -> Trainer:
    """The training functions for `members` (default: from the config) on `train`.

    With a `mesh` (`mirror.base.sharding.population_mesh`) the members are split over its
    devices along the `pop` axis; their number must be a multiple of the mesh size."""
    members = members_from_config(config) if members is None else list(members)
    validate_members(members)
    if mesh is not None and len(members) % mesh.size:
        raise ConfigError(f"a population of {len(members)} members cannot be split over {mesh.size} devices; pad it to a multiple")
    t, m = config.train, config.model
    rows = int(train.labels.shape[0])
    if t.batch_size > rows:
        raise ConfigError(f"train.batch_size = {t.batch_size} is larger than the {rows:,} training rows")
    widths = padded_widths(members)
    if m.kind != "mlp" and any(member.widths != widths for member in members):
        raise ConfigError(f"model.kind = {m.kind!r} members cannot differ in widths (population widths are MLP-only)")
    spec = Spec(
        loss=t.loss,
        rows=rows,
        num_inputs=int(train.inputs.shape[1]),
        batch_size=t.batch_size,
        steps=rows // t.batch_size,
        scan_unroll=t.scan_unroll,
        eval_chunk_rows=t.eval_chunk_rows,
        widths=widths,
        activation=m.activation,
        kernel_init=m.kernel_init,
        adam=(t.adam_b1, t.adam_b2, t.adam_eps),
        use_dropout=any(member.dropout > 0 for member in members),
        use_masks=any(member.widths != widths for member in members),
        member_map=member_mapping(t.member_batching) == "map",
        kind=m.kind,
        transformer=m.transformer.as_tuple() if m.kind == "transformer" else (),
        residual_neurons=m.kind == "transformer" and m.transformer.residual_neurons,
    )
    # From the training split (host copy of its labels): every member shares them.
    hyper = make_hyper(members, widths, class_weights(jax.device_get(train.labels), t.class_weights))
    lrs = jnp.array([member.lr for member in members], jnp.float32)
    place_members = place_shared = lambda tree: tree  # noqa: E731
    if mesh is not None:
        sharded_epoch, sharded_evaluate = _sharded_programs(spec, mesh)
        place_members = partial(jax.device_put, device=member_sharding(mesh))
        place_shared = partial(jax.device_put, device=replicated(mesh))
        hyper, train = place_members(hyper), place_shared(train)

    def init() -> TrainState:
        params = [init_member_params(config, member, widths, spec.num_inputs) for member in members]
        params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
        return place_members(TrainState(params, _init_opt_state(spec, params, lrs)))

    def epoch(state: TrainState, epoch: int, active=None) -> tuple[TrainState, EpochMetrics]:
        active = np.ones(len(members), bool) if active is None else np.asarray(active, bool)
        if mesh is not None:  # restored checkpoints arrive on one device
            state, active = place_members(state), place_members(jnp.asarray(active))
            return sharded_epoch(state, jnp.int32(epoch), active, hyper, train.inputs, train.labels)
        orders, dropout_keys = epoch_randomness(
            hyper.key, jnp.int32(epoch), spec.rows, spec.steps, spec.batch_size, spec.chunk_steps
        )
        return _epoch(spec, state, orders, dropout_keys, jnp.asarray(active), hyper, train.inputs, train.labels)

    def place(split: Split) -> Split:
        return place_shared(to_device(split))

    def evaluate(params, split: Split) -> EvalMetrics:
        """`split` as returned by `place` (another placement costs a copy per call)."""
        if int(split.labels.shape[0]) == 0:
            raise ValueError("cannot evaluate on an empty split")
        if mesh is not None:
            return sharded_evaluate(place_members(params), hyper, *place_shared((split.inputs, split.labels)))
        return _evaluate(spec, params, hyper, split.inputs, split.labels)

    return Trainer(members, widths, spec.steps, spec.model, init, epoch, evaluate, place)


def to_device(split: Split) -> Split:
    return Split(jnp.asarray(split.inputs), jnp.asarray(split.labels))
