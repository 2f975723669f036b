"""The scripts in examples/ run as a user runs them (a subprocess), at their small sizes
(MIRROR_EXAMPLE_SMALL=1), and print one CMNI and p-value per member."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import xla_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NUMBER = r"(-?[0-9.]+|nan)"


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env=xla_env(MIRROR_EXAMPLE_SMALL="1"), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("rl_cmni.py", rf"member \d: return\s+{NUMBER}\s+CMNI {NUMBER}\s+p\(init null\) {NUMBER}"),
        ("supervised_cmni.py", rf"seed \d: loss\s+{NUMBER}\s+CMNI {NUMBER}\s+p\(permutation\) {NUMBER}\s+p\(init\) {NUMBER}"),
    ],
    ids=["rl", "supervised"],
)
def test_example_prints_a_cmni_and_p_value_per_member(name, line):
    out = run_example(name)
    rows = [re.search(line, text) for text in out.splitlines()]
    rows = [r for r in rows if r]
    assert len(rows) == 4, out
    for row in rows:
        cmni, *p_values = (float(x) for x in row.groups()[1:])
        assert 0.0 <= cmni < 1.0
        assert all(0.0 < p <= 1.0 for p in p_values)  # (1 + count) / (K + 1)
    assert re.search(rf"random init: CMNI {NUMBER} \+- {NUMBER} over \d+", out), out
