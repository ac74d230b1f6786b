"""The glue between a rule script and one package function.

Every script in workflow/scripts/ is `run(snakemake, function)`: stdout and stderr go to the rule's log, the
worker uses exactly the threads the rule was given, and an expected failure (RepdriftError) becomes one clear
line in the log and on the terminal instead of a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from repdrift.errors import RepdriftError


def _limit_threads(threads: int) -> None:
    # Set before torch/numpy spin up their pools; torch.set_num_threads covers an already-imported torch.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def run(smk: Any, function: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``function(**kwargs)`` with the rule's log as stdout/stderr; exit 1 with one line on RepdriftError."""
    _limit_threads(max(1, int(getattr(smk, "threads", 1))))
    log_path = str(smk.log[0]) if len(smk.log) else os.devnull
    terminal = sys.stderr
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            return function(**kwargs)
        except RepdriftError as err:
            message = f"repdrift: rule {smk.rule}: {err}"
            print(message, file=log)
            print(message, file=terminal)
            raise SystemExit(1) from None
