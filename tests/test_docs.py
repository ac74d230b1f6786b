"""The stage table in docs/architecture.md (the one the README links to) names every rule in its rules file."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_stage_table_names_every_rule_in_its_file():
    doc = (REPO / "docs/architecture.md").read_text()
    section = doc[doc.index("## Stages") :].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    listed = {}
    for row in rows[2:]:
        for part in row.split("|")[2].split(";"):
            smk, _, rules = part.strip().partition(": ")
            for rule in re.findall(r"\w+", re.sub(r"\(.*?\)", "", rules)):
                listed[rule] = smk
    defined = {
        rule: path.name
        for path in (REPO / "rules").glob("*.smk")
        for rule in re.findall(r"^(?:rule|checkpoint) (\w+):", path.read_text(), re.M)
    }
    assert listed == defined
    assert "docs/architecture.md#stages" in (REPO / "README.md").read_text()
