"""The rule-script glue: logs, one-line errors (tracebacks of unexpected ones in the log), the rule's threads."""

import os
from types import SimpleNamespace

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from repdrift.errors import DataError
from repdrift.rule import run


def _smk(log):
    return SimpleNamespace(log=[str(log)], rule="demo_rule", threads=1)


def test_output_goes_to_the_log(tmp_path):
    log = tmp_path / "x.log"
    assert run(_smk(log), lambda value: print("hello", value) or 42, value=1) == 42
    assert log.read_text() == "hello 1\n"


def test_the_hub_is_offline_inside_a_job_unless_the_rule_said_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert run(_smk(tmp_path / "x.log"), lambda: os.environ["HF_HUB_OFFLINE"]) == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # fetch_weights
    assert run(_smk(tmp_path / "x.log"), lambda: os.environ["HF_HUB_OFFLINE"]) == "0"


def test_expected_failure_is_one_line(tmp_path, capsys):
    log = tmp_path / "x.log"

    def fail():
        raise DataError("data/img.png: cannot read image (truncated)")

    with pytest.raises(SystemExit) as exit_info:
        run(_smk(log), fail)
    assert exit_info.value.code == 1
    message = "repdrift: rule demo_rule: data/img.png: cannot read image (truncated)"
    assert log.read_text().strip() == message
    assert capsys.readouterr().err.strip() == message


def test_unexpected_failure_leaves_its_traceback_in_the_log_and_names_the_log(tmp_path, capsys):
    log = tmp_path / "x.log"

    def crash():
        return {}["missing key"]

    with pytest.raises(SystemExit) as exit_info:
        run(_smk(log), crash)
    assert exit_info.value.code == 1
    text = log.read_text()
    assert text.startswith("Traceback") and "in crash" in text and "KeyError: 'missing key'" in text
    terminal = capsys.readouterr().err.strip()
    assert terminal == f"repdrift: rule demo_rule: unexpected KeyError: 'missing key' (traceback in {log})"


def test_threads_limit_the_loaded_blas_pools_and_are_restored(tmp_path, monkeypatch):
    # As in every rule script, numpy is imported before run(): its OpenBLAS has already read the environment,
    # so only threadpoolctl can resize it. Start from 2 threads so that the limit is visible.
    import numpy  # noqa: F401

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    def inside():
        return blas_threads(), os.environ["OPENBLAS_NUM_THREADS"]

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        if not before or any(n != 2 for n in before):
            pytest.skip(f"cannot give the BLAS pools 2 threads here: {before}")
        seen, env = run(_smk(tmp_path / "x.log"), inside)
        assert seen and all(n == 1 for n in seen)
        assert env == "1"  # for child processes (DataLoader workers) and libraries loaded later
        assert blas_threads() == before
    assert "OPENBLAS_NUM_THREADS" not in os.environ
