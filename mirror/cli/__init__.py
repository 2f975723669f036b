"""The `mirror` command line: every subcommand, a thin shell over `mirror.runs` and
`mirror.sweep` (argument parsing and printing live here, never below).

main.py        the parser and `main(argv)`; one-line errors for everything a user can fix
commands.py    run, demo, play
data.py        mirror data
train.py       mirror train
rl.py          mirror rl, mirror stakes
cmni.py        mirror cmni
ablate.py      mirror ablate
sweep.py       mirror sweep, mirror theory
"""

from mirror.cli.main import main

__all__ = ["main"]
