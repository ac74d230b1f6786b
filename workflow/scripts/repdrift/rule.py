"""The glue between a rule script and one package function.

Every script in workflow/scripts/ is `run(snakemake, function)`: stdout and stderr go to the rule's log, the
worker uses exactly the threads the rule was given, and an expected failure (RepdriftError) becomes one clear
line in the log and on the terminal instead of a traceback. An unexpected error's traceback goes to the log too,
and the terminal line names the log. The Hub is switched offline for the job (HF_HUB_OFFLINE) before the work.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from threadpoolctl import threadpool_limits

from repdrift.errors import RepdriftError

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def _limit_threads(threads: int) -> Iterator[None]:
    """Run the body with `threads` threads in every pool, then restore what was there before.

    By now the rule script has imported numpy (and maybe torch), whose OpenBLAS / OpenMP pools have already read
    the environment: threadpoolctl resizes those loaded pools; torch.set_num_threads its own intra-op pool. The
    environment variables cover what starts later: a library loaded inside the function, and child processes
    (DataLoader workers).
    """
    saved_env = {var: os.environ.get(var) for var in THREAD_VARS}
    torch = sys.modules.get("torch")
    saved_torch = torch.get_num_threads() if torch is not None else None
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        if torch is not None:
            torch.set_num_threads(saved_torch)


def run(smk: Any, function: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``function(**kwargs)`` with the rule's log as stdout/stderr; exit 1 with one line on RepdriftError, and
    with the traceback in the log and one line naming it on the terminal on any other error."""
    threads = max(1, int(getattr(smk, "threads", 1)))
    # Read by huggingface_hub when timm / open_clip first import it, inside the work: a job never reaches for the
    # network. The one rule that downloads (fetch_weights) sets HF_HUB_OFFLINE=0 first, which this leaves alone.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log_path = str(smk.log[0]) if len(smk.log) else os.devnull
    terminal = sys.stderr
    with (
        open(log_path, "w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        _limit_threads(threads),
    ):
        try:
            return function(**kwargs)
        except RepdriftError as err:
            message = f"repdrift: rule {smk.rule}: {err}"
            print(message, file=log)
            print(message, file=terminal)
            raise SystemExit(1) from None
        except Exception as err:
            traceback.print_exc(file=log)
            print(
                f"repdrift: rule {smk.rule}: unexpected {type(err).__name__}: {err} (traceback in {log_path})",
                file=terminal,
            )
            raise SystemExit(1) from None
