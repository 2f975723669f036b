"""scripts/paper_seeds.py: the above-untrained test over seeds and the curves it reads (hand-worked values)."""

import numpy as np
import pytest


def test_above_init_by_hand(load_script):
    script = load_script("paper_seeds")
    draws = np.array([[0.0, 2.0]] * 3)  # each seed's init: mean 1, sd sqrt(2), 95th percentile 1.9
    values = np.array([[1.0, 1.0, 1.0], [3.0, 3.0, 1.5], [1.0, 1.0, 1.0]])
    out = script.above_init(np.array([1, 2, 3]), values, draws)
    # every seed's leave-one-out peak is epoch 2, where z = 2 / sqrt(2) (and 0.5 / sqrt(2) for the third)
    assert out["per_seed_epoch"] == [2, 2, 2]
    assert out["per_seed_z"] == pytest.approx([np.sqrt(2), np.sqrt(2), 0.5 / np.sqrt(2)])
    assert out["p_sign_flip"] == pytest.approx(1 / 8) and not out["above"]  # 3 positive z: the smallest p of 3 seeds
    assert out["epochs_every_seed_above_p95"] == []  # the third seed's 1.5 is below 1.9
    values[1, 2] = 2.5
    assert script.above_init(np.array([1, 2, 3]), values, draws)["epochs_every_seed_above_p95"] == [2]


def test_read_curves_lays_out_checkpoints_by_members(tmp_path, load_script):
    rows = ["checkpoint,epoch,member,cmni,cmni_scaled,cmni_matched"]
    rows += [f"{c},{c + 1},{m},{c + 10 * m},{-c},{''}" for c in range(3) for m in range(2)]
    (tmp_path / "cmni.csv").write_text("\n".join(rows) + "\n")
    epochs, curves = load_script("paper_seeds").read_curves(tmp_path)
    assert epochs.tolist() == [1, 2, 3]
    assert curves["cmni"].tolist() == [[0, 10], [1, 11], [2, 12]]
    assert np.isnan(curves["cmni_matched"]).all()
