"""scripts/learner_curves.py: runs that span sittings resume bit for bit, points are not redone."""

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import learner_curves as lc  # noqa: E402

TINY = {"num_envs": 16, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1}


@pytest.mark.slow  # two sittings of a tiny member, with its evaluations
def test_a_run_stopped_after_a_point_resumes_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setattr(lc, "EVAL_GAMES", 16)
    member = lc.Member("D1-tiny-s0", 1.0, 0.0, 0, TINY)
    straight, split = tmp_path / "straight", tmp_path / "split"
    lc.run([member], [25, 50], straight / "out.json", straight / "state", {}, log=lambda line: None)
    lc.run([member], [25], split / "out.json", split / "state", {}, log=lambda line: None)  # the first sitting stops here
    lc.run([member], [25, 50], split / "out.json", split / "state", {}, log=lambda line: None)
    a, b = np.load(straight / "state" / "D1-tiny-s0.npz"), np.load(split / "state" / "D1-tiny-s0.npz")
    assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    one, two = (json.loads((d / "out.json").read_text())["runs"]["D1-tiny-s0"]["points"] for d in (straight, split))
    assert [p["update"] for p in two] == [25, 50]  # the first point was kept, not redone
    drop = lambda p: {k: v for k, v in p.items() if k != "train_s"}  # noqa: E731
    assert [drop(p) for p in one] == [drop(p) for p in two]


def test_a_state_round_trips_with_its_key(tmp_path):
    trainee_like = {"key": jax.random.key(3), "x": np.arange(4, dtype=np.int32)}
    path = tmp_path / "state.npz"
    lc.save_state(path, trainee_like)
    back = lc.load_state(path, trainee_like)
    np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(trainee_like["key"]))
    np.testing.assert_array_equal(back["x"], trainee_like["x"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]  # written atomically: no temporary left
