"""``python -m audiodiff.training train|export ...``: the training commands of the ``audiodiff``
CLI, also usable as ``torchrun --nproc_per_node N -m audiodiff.training train --config FILE``."""

import sys

from audiodiff import cli
from audiodiff.training.cli import register

if not any(getattr(r, "__module__", "") == register.__module__ for r in cli._EXTRA_COMMANDS):
    cli._EXTRA_COMMANDS.append(register)

sys.exit(cli.main())
