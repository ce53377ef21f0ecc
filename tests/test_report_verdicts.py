"""Verdicts in the report, from hand-made run folders (see report_fixtures.py).

Hand values: a strategy 0.1 below uniform on every seed, give or take 0.001 (differences
-0.100, -0.099, -0.101): mean -0.1, sd 0.001, 95 % CI -0.1 ± 4.302653 · 0.001/√3 =
-0.1025 to -0.0975, t = -173.2 on 2 df, p = 1 - √(30000/30002) = 3.3e-5.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
from report_fixtures import attention_heavy, linear_decay, make_run, uniform, write_sweep

from adaptive_lora.errors import UserError
from adaptive_lora.reports import aggregate, collect_runs, paired_comparisons, write_report
from adaptive_lora.reports.compare import comparison_settings
from adaptive_lora.reports.figures import FIGURES
from adaptive_lora.reports.stats import NO_DIFFERENCE_CI, NO_VERDICT_ONE_SEED

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UNIFORM = (2.10, 2.12, 2.08)


@pytest.fixture
def no_figures(monkeypatch):
    monkeypatch.setattr("adaptive_lora.reports.report.write_figures", lambda runs, rows, out, comparisons=None: [])


def table1_verdict(md: str, group: str) -> str:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if cells[0] == group and len(cells) == 10:  # label, 7 metrics, status, verdict
            return cells[9]
    raise AssertionError(f"no Table 1 row for {group}")


def csv_rows(path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {r["group"]: r for r in csv.DictReader(f)}


def runs_of(root, group, losses, **kw):
    for seed, loss in enumerate(losses):
        if loss is not None:
            make_run(root, group, seed, eval_loss=loss, **kw)


def test_clearly_better_strategy(tmp_path, no_figures):
    runs_of(tmp_path, "uniform", UNIFORM, rank_fn=uniform(16))
    runs_of(tmp_path, "linear_decay", (2.00, 2.021, 1.979), rank_fn=linear_decay())
    paths = write_report(tmp_path)
    md = paths.results_md.read_text()
    assert table1_verdict(md, "linear_decay") == "better than uniform"
    assert table1_verdict(md, "uniform") == "reference"
    row = csv_rows(paths.results_csv)["linear_decay"]
    assert row["reference"] == "uniform" and row["eval_loss_verdict"] == "better than uniform"
    assert int(row["eval_loss_n_pairs"]) == 3
    assert float(row["eval_loss_diff_mean"]) == pytest.approx(-0.1, abs=1e-12)
    assert float(row["eval_loss_diff_sd"]) == pytest.approx(0.001, abs=1e-12)
    half = 4.302653 * 0.001 / math.sqrt(3)
    assert float(row["eval_loss_diff_ci_low"]) == pytest.approx(-0.1 - half, abs=1e-8)
    assert float(row["eval_loss_diff_ci_high"]) == pytest.approx(-0.1 + half, abs=1e-8)
    assert float(row["eval_loss_p"]) == pytest.approx(1 - math.sqrt(30000 / 30002), rel=1e-6)
    assert float(row["eval_loss_p_holm"]) == float(row["eval_loss_p"])  # a family of one
    assert float(row["eval_loss_effect_dz"]) == pytest.approx(-100.0, rel=1e-9)
    assert row["eval_loss_seeds_needed"] == "2" and row["detect_delta"] == "0.01"
    assert "| `linear_decay` | `uniform` | 3 | -0.1000 | -0.1025 to -0.0975 | < 0.001 | < 0.001 | -100.00 | better than uniform | 2 | — |" in md


def test_equal_within_noise_needs_more_seeds(tmp_path, no_figures):
    # Differences 0.002, -0.004, -0.002: mean -0.00133, sd 0.0030551. To see 0.002 (the
    # sweep's delta): normal (2.801585 · 0.0030551 / 0.002)² = 18.31 -> 19; t quantiles on
    # 18 df (2.100922 + 0.862049) give 20.48 -> 21, on 20 df (2.085963 + 0.859964) 20.25 -> 21.
    runs_of(tmp_path, "uniform", (2.060, 2.052, 2.068))
    runs_of(tmp_path, "attention_heavy", (2.062, 2.048, 2.066), rank_fn=attention_heavy())
    ids = [f"{g}-seed{s}" for g in ("uniform", "attention_heavy") for s in range(3)]
    write_sweep(tmp_path, ids)
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    (tmp_path / "sweep.json").write_text(json.dumps({**sweep, "source": {"delta": 0.002}}))
    paths = write_report(tmp_path)
    md = paths.results_md.read_text()
    assert table1_verdict(md, "attention_heavy") == NO_DIFFERENCE_CI
    assert ("`attention_heavy` vs `uniform`: no detectable difference (95 % CI includes 0): mean difference "
            "-0.0013 (95 % CI -0.0089 to +0.0063) over 3 seeds; to detect a difference of 0.002 about 21 seeds "
            "would be needed (80 % power, 5 % two-sided).") in md
    assert "Seeds for Δ=0.002" in md
    row = csv_rows(paths.results_csv)["attention_heavy"]
    assert row["eval_loss_seeds_needed"] == "21" and float(row["detect_delta"]) == 0.002


def test_one_seed_gives_no_verdict(tmp_path, no_figures):
    make_run(tmp_path, "uniform", 0, eval_loss=2.10)
    make_run(tmp_path, "linear_decay", 0, eval_loss=1.50, rank_fn=linear_decay())
    paths = write_report(tmp_path)
    md = paths.results_md.read_text()
    assert table1_verdict(md, "linear_decay") == NO_VERDICT_ONE_SEED
    assert "one seed: no verdict (difference -0.6000 from a single pair; run at least 2 seeds)" in md
    row = csv_rows(paths.results_csv)["linear_decay"]
    assert row["eval_loss_n_pairs"] == "1" and row["eval_loss_p"] == "" and row["eval_loss_seeds_needed"] == ""


def test_diverged_and_failed_seeds_are_excluded_and_named(tmp_path, no_figures):
    runs_of(tmp_path, "uniform", UNIFORM + (2.11,))
    runs_of(tmp_path, "linear_decay", (2.00, 2.021), rank_fn=linear_decay())
    make_run(tmp_path, "linear_decay", 2, status="diverged", diverged_step=9, eval_loss="nan", rank_fn=linear_decay())
    make_run(tmp_path, "uniform", 4, status="failed", error="out of memory", eval_loss=None)
    make_run(tmp_path, "linear_decay", 4, eval_loss=2.0, rank_fn=linear_decay())
    paths = write_report(tmp_path)
    md = paths.results_md.read_text()
    excluded = ("seed 2 (linear_decay: diverged at step 9); seed 3 (linear_decay: no run); "
                "seed 4 (uniform: failed: out of memory)")
    row = csv_rows(paths.results_csv)["linear_decay"]
    assert row["eval_loss_excluded_seeds"] == excluded and row["eval_loss_n_pairs"] == "2"
    # Pairs (2.00, 2.10) and (2.021, 2.12): differences -0.1 and -0.099.
    assert float(row["eval_loss_diff_mean"]) == pytest.approx(-0.0995, abs=1e-12)
    assert f"| {excluded} |" in md


def test_paired_comparisons_shape_and_reference_choice(tmp_path):
    """Without budgets the nearest uniform by parameters is the reference; a sweep may name
    another; forgetting is compared only where both rows record it."""
    runs_of(tmp_path, "uniform-r8", UNIFORM, rank_fn=uniform(8), r=8)  # 3.146M
    runs_of(tmp_path, "uniform-r16", UNIFORM, rank_fn=uniform(16))  # 6.291M
    for seed, loss in enumerate((2.0, 2.1, 2.2)):  # linear decay 3.932M: nearer r8
        make_run(tmp_path, "linear_decay", seed, eval_loss=loss, rank_fn=linear_decay(), forgetting_delta=0.1 * seed)
    rows = aggregate(collect_runs(tmp_path))
    (c,) = paired_comparisons(rows)
    assert set(c) == {"metric", "metric_label", "budget_label", "group", "strategy", "reference",
                      "reference_strategy", "n_pairs", "seeds", "mean_diff", "sd_diff", "ci_low", "ci_high",
                      "ci_method", "p", "p_holm", "effect_dz", "verdict", "delta", "seeds_needed", "excluded"}
    assert (c["metric"], c["group"], c["reference"], c["seeds"], c["excluded"]) == ("eval_loss", "linear_decay", "uniform-r8", [0, 1, 2], [])
    by_ref = paired_comparisons(rows, "linear_decay")
    assert [(c["group"], c["reference"], c["verdict"][:2]) for c in by_ref] == [
        ("uniform-r16", "linear_decay", "no"), ("uniform-r8", "linear_decay", "no")]
    for seed in range(3):
        make_run(tmp_path, "uniform-r8", seed, eval_loss=UNIFORM[seed], rank_fn=uniform(8), r=8, forgetting_delta=0.0)
    forgetting = [c for c in paired_comparisons(aggregate(collect_runs(tmp_path))) if c["metric"] == "forgetting"]
    assert [(c["group"], c["mean_diff"], c["n_pairs"]) for c in forgetting] == [("linear_decay", pytest.approx(0.1), 3)]


def test_forgetting_section_only_when_recorded(tmp_path, no_figures):
    runs_of(tmp_path, "uniform", UNIFORM)
    runs_of(tmp_path, "linear_decay", (2.00, 2.021, 1.979), rank_fn=linear_decay())
    md = write_report(tmp_path).results_md.read_text()
    assert "### Eval loss" in md and "### Forgetting" not in md
    row = csv_rows(tmp_path / "results.csv")["linear_decay"]
    assert row["forgetting_verdict"] == "" and row["forgetting_n_pairs"] == ""  # same columns, empty


def test_confounds_name_the_alpha_policy(tmp_path, no_figures):
    make_run(tmp_path, "uniform", 0)
    make_run(tmp_path, "linear_decay", 0, rank_fn=linear_decay())  # ranks 4..16, alpha 32
    make_run(tmp_path, "attention_heavy", 0, rank_fn=attention_heavy(), alpha_policy="proportional")
    md = write_report(tmp_path).results_md.read_text()
    section = md[md.index("## Confounds"):md.index("## Figures")]
    assert "- `linear_decay`: alpha policy `constant` (lora_alpha 32), ranks 4–16, alpha/r from 2.00 to 8.00 across modules." in section
    assert "- `uniform`: alpha policy `constant` (lora_alpha 32), ranks 16." in section
    assert "- `attention_heavy`: alpha policy `proportional` (alpha = 2·r), ranks 8–16." in section
    assert "**Note** (`linear_decay`): With a constant alpha and mixed ranks, step size and placement are confounded" in section


def test_no_reference_no_ranking_words_and_the_test_defined(tmp_path, no_figures):
    runs_of(tmp_path, "linear_decay", (2.0, 2.1), rank_fn=linear_decay())
    runs_of(tmp_path, "attention_heavy", (1.0, 1.1), rank_fn=attention_heavy())
    md = write_report(tmp_path).results_md.read_text()
    assert "No `uniform` row in these rows: no paired comparison" in md
    assert table1_verdict(md, "attention_heavy") == "—"
    lowered = md.lower()
    assert "lowest" not in lowered and "best" not in lowered
    assert "- **p**: two-sided p-value of the paired t test" in md and "- **Holm p**:" in md


@pytest.mark.parametrize(
    "sweep, reference, delta, expected",
    [
        ({}, None, None, ("uniform", 0.01)),
        ({"source": {"reference": "linear_decay", "delta": "0.002"}}, None, None, ("linear_decay", 0.002)),
        ({"reference": "a", "delta": 0.5, "source": {"reference": "b"}}, None, None, ("a", 0.5)),
        ({"reference": "a", "delta": 0.5}, "c", 0.1, ("c", 0.1)),  # write_report's arguments win
    ],
)
def test_comparison_settings(sweep, reference, delta, expected):
    assert comparison_settings(sweep, reference, delta) == expected


@pytest.mark.parametrize("sweep, message", [({"delta": -1}, "delta must be a positive"),
                                            ({"reference": 3}, "reference must be a run name")])
def test_bad_settings_are_one_line_errors(tmp_path, sweep, message):
    make_run(tmp_path, "uniform", 0)
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "x", "runs": ["uniform-seed0"], **sweep}))
    with pytest.raises(UserError, match=message):
        write_report(tmp_path)


def test_forest_plot_is_drawn(tmp_path):
    for budget in ("r8", "r16"):
        for seed, (u, s) in enumerate(((2.10, 2.0), (2.12, 2.021), (2.08, 1.979))):
            make_run(tmp_path, f"uniform@{budget}", seed, eval_loss=u, budget_label=budget, strategy="uniform")
            make_run(tmp_path, f"linear_decay@{budget}", seed, eval_loss=s, budget_label=budget,
                     strategy="linear_decay", rank_fn=linear_decay())
    paths = write_report(tmp_path)
    assert FIGURES[-1].name == "paired_diff.png"
    data = (tmp_path / "figures" / "paired_diff.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    md = paths.results_md.read_text()
    assert "](figures/paired_diff.png)" in md
    assert table1_verdict(md, "linear_decay@r16") == "better than uniform"
