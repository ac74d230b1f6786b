"""The findings page: which of the paper's three findings this study's data supports, and with what numbers.

1. Fine-tuning succeeds while the representation stays similar: Full fine-tuning beats the pre-trained model's
   linear probe, and its final CKA to the pre-trained model stays high (>= 1 - eta) though below 1.
2. Similarity degradation goes with forgetting: CKA and k-NN accuracy on the natural domain correlate positively.
3. Similarity degradation goes with miscalibration: CKA and ECE correlate negatively.
A correlation counts as support when r has the expected sign and p < 0.05; the right sign without significance
is "inconclusive".
"""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from repdrift.analysis import resolve_layer


def _verdict(supported: bool | None) -> str:
    return {True: "supported", False: "not supported", None: "inconclusive"}[supported]


def _correlation_verdict(fits: pl.DataFrame, metric: str, sign: int) -> tuple[bool | None, list[str]]:
    rows = fits.filter((pl.col("metric") == metric) & pl.col("r").is_not_null())
    if rows.height == 0:
        return None, [f"no backbone had enough distinct runs to fit {metric}"]
    lines = [f"{r['backbone']}: r = {r['r']:.3f} (p = {r['p_value']:.3g}, 95% CI {r['r_lo']:.2f} to {r['r_hi']:.2f})"
             for r in rows.iter_rows(named=True)]
    right_sign = (rows["r"] * sign > 0).sum()
    significant = ((rows["r"] * sign > 0) & (rows["p_value"] < 0.05)).sum()
    if significant * 2 > rows.height:
        return True, lines
    if right_sign * 2 <= rows.height:
        return False, lines
    return None, lines


def findings(runs: pl.DataFrame, fits: pl.DataFrame, layer: int | None, eta: float, k: int) -> list[dict]:
    layer = resolve_layer(runs, layer)
    score = runs.filter(pl.col("metric") == "score").group_by("backbone", "method").agg(pl.col("value").mean())
    cka = runs.filter((pl.col("metric") == "cka") & (pl.col("layer") == layer) & (pl.col("method") == "full"))
    cka = cka.group_by("backbone").agg(cka=pl.col("value").mean())
    wide = score.pivot(on="method", index="backbone", values="value").join(cka, on="backbone").sort("backbone")
    first_lines, first_ok = [], []
    for r in wide.iter_rows(named=True):
        full, linear = r.get("full"), r.get("linear")
        ok = full is not None and linear is not None and full > linear and 1 - eta <= r["cka"] < 1
        first_ok.append(ok)
        first_lines.append(f"{r['backbone']}: Full {full:.3f} vs Linear {linear:.3f}, final CKA {r['cka']:.4f}"
                           if full is not None and linear is not None else f"{r['backbone']}: no Full/Linear pair")
    fits_last = fits.filter(pl.col("layer") == layer)
    second, second_lines = _correlation_verdict(fits_last, f"knn@{k}", +1)
    third, third_lines = _correlation_verdict(fits_last, "ece", -1)
    return [
        dict(title="Fine-tuning succeeds with only a small similarity degradation",
             verdict=_verdict(all(first_ok) if first_ok else None), lines=first_lines),
        dict(title=f"Lower similarity goes with more forgetting (CKA vs k-NN@{k}, block {layer})",
             verdict=_verdict(second), lines=second_lines),
        dict(title=f"Lower similarity goes with worse calibration (CKA vs ECE, block {layer})",
             verdict=_verdict(third), lines=third_lines),
    ]


def write_findings_page(items: list[dict], path: str | Path) -> None:
    parts = ["<h2>Findings</h2>", "<p>Generated from this study's results; see the module docstring of "
             "<code>repdrift.findings</code> for the criteria.</p>"]
    for number, item in enumerate(items, start=1):
        parts.append(f"<h3>{number}. {html.escape(item['title'])}: <em>{item['verdict']}</em></h3><ul>")
        parts += [f"<li>{html.escape(line)}</li>" for line in item["lines"]]
        parts.append("</ul>")
    Path(path).write_text("<!DOCTYPE html><html><body>" + "\n".join(parts) + "</body></html>\n")
