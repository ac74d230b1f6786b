"""Every rule leaves Snakemake's benchmark file under its own name, and benchmarks/rule_times.py sums them right."""

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rule_blocks():
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule )", path.read_text()):
            if block.startswith("rule "):
                yield block.split()[1].rstrip(":"), block


def test_every_rule_with_a_log_has_a_benchmark_named_after_it():
    checked = 0
    for name, block in rule_blocks():
        if "    log:" not in block:
            continue  # fetch_weights: a target rule, no job of its own
        match = re.search(r"    benchmark:\n\s+f?\"results/benchmarks/([^\"]+)\"", block)
        assert match, f"rule {name} has no benchmark: directive"
        assert re.match(rf"{name}(\.tsv$|/)", match.group(1)), (name, match.group(1))
        checked += 1
    assert checked >= 15


def test_rule_times_sums_jobs_per_rule(tmp_path):
    spec = importlib.util.spec_from_file_location("rule_times", REPO / "benchmarks/rule_times.py")
    rule_times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule_times)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    rows = {
        "finetune/isic/vit/full-cls/seed0.tsv": "4.0\t0:00:04\t900.0\t1\t1\t1\t0\t0\t90\t3.5\n",
        "finetune/isic/vit/full-cls/seed1.tsv": "6.0\t0:00:06\t950.5\t1\t1\t1\t0\t0\t90\t5.0\n",
        "aggregate.tsv": "0.5\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n",
    }
    for name, row in rows.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(header + row)
    table = rule_times.rule_times(tmp_path)
    finetune = table.filter(table["rule"] == "finetune").row(0, named=True)
    assert finetune["jobs"] == 2 and finetune["total_s"] == 10.0 and finetune["max_s"] == 6.0
    assert finetune["cpu_s"] == 8.5 and finetune["max_rss_mb"] == 950.5
    assert table["rule"].to_list() == ["finetune", "aggregate"]  # longest first
    text = rule_times.markdown(table)
    assert "| finetune | 2 | 10.0 | 6.0 | 8.5 | 950 |" in text and "| **all** | 3 | 10.5 |" in text
