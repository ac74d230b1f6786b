"""The rule-script glue: logs, one-line errors instead of tracebacks."""

from types import SimpleNamespace

import pytest

from repdrift.errors import DataError
from repdrift.rule import run


def _smk(log):
    return SimpleNamespace(log=[str(log)], rule="demo_rule", threads=1)


def test_output_goes_to_the_log(tmp_path):
    log = tmp_path / "x.log"
    assert run(_smk(log), lambda value: print("hello", value) or 42, value=1) == 42
    assert log.read_text() == "hello 1\n"


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
