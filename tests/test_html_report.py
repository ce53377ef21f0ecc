"""report.html: the self-contained interactive report, checked as text and in a real browser.

The browser tests drive headless Chromium (the system one, /usr/bin/chromium) with Playwright:
one on a real tiny sweep run through the CLI, one on hand-made run folders with two budgets and
a hostile run name. They are skipped, saying why, where Chromium or Playwright is missing; CI
installs both (.ci/run, the dev extra).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from report_fixtures import linear_decay, make_run, uniform
from tiny_models import save_tiny_model
from train_fixtures import alpaca_records

from adaptive_lora.cli.main import main as cli_main
from adaptive_lora.reports import write_report
from adaptive_lora.reports.html import REPORT_HTML, markdown_html, md_sections

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# A run name that would run script if any part of the page used it as markup.
HOSTILE = "x<img src=y onerror=alert(1)>&amp;"


def two_budgets(root: Path) -> Path:
    """uniform and linear_decay at budgets r8 and r16, 2 seeds each, plus a diverged run whose
    group and id are HOSTILE."""
    for budget, rank in (("r8", 8), ("r16", 16)):
        for seed in (0, 1):
            make_run(root, f"uniform@{budget}", seed, strategy="uniform", rank_fn=uniform(rank), budget_label=budget,
                     eval_loss=2.0 + 0.1 * seed + (0.2 if budget == "r8" else 0.0))
            make_run(root, f"linear_decay@{budget}", seed, strategy="linear_decay", rank_fn=linear_decay(),
                     budget_label=budget, eval_loss=2.15 - 0.05 * seed)
    make_run(root, HOSTILE, 0, run_id=HOSTILE, strategy="uniform", status="diverged", diverged_step=5,
             eval_loss="nan", budget_label="r8")
    return root


def payload(html_text: str) -> dict:
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html_text, re.S)
    return json.loads(block.group(1))


# --------------------------------------------------------------------------- as text


def test_markdown_is_escaped_and_keeps_tables_and_lists():
    out = markdown_html("Para with `a<b>` and **bold <i>**.\n\n| A | B |\n|---|---:|\n| x \\| y | 1 |\n\n- one\n- two <s>")
    assert "<code>a&lt;b&gt;</code>" in out and "<strong>bold &lt;i&gt;</strong>" in out
    assert '<td class="">x | y</td><td class="num">1</td>' in out
    assert "<li>two &lt;s&gt;</li>" in out and "<s>" not in out
    intro, sections = md_sections("# T\n\nIntro.\n\n## Table 1\n\n| a |\n|---|\n\n## Figures\n\nx\n\n## Environment\n\nEnv.")
    assert intro == "<p>Intro.</p>" and [s["title"] for s in sections] == ["Environment"]


def test_page_is_self_contained_and_carries_no_raw_user_markup(tmp_path):
    root = two_budgets(tmp_path / "res")
    write_report(root)
    text = (root / REPORT_HTML).read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet", text)  # nothing fetched
    assert "Plotly" in text and "/*@" not in text  # plotly inlined, every placeholder filled
    assert HOSTILE not in text and "<img src=y" not in text
    data = payload(text)
    assert {r["budget"] for r in data["rows"]} == {"r8", "r16"}
    hostile = next(r for r in data["runs"] if r["id"] == HOSTILE)
    assert hostile["links"]["summary.json"] == "./x%3Cimg%20src%3Dy%20onerror%3Dalert%281%29%3E%26amp%3B/summary.json"
    assert {s["title"] for s in data["sections"]} >= {"Runs", "Environment"}
    assert "Table 1" not in {s["title"] for s in data["sections"]}


# --------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_report(browser, path: Path):
    """(page, problems): the page loaded at a laptop's size, and every console error, uncaught
    exception and dialog (an alert would mean injected script ran) it produced."""
    page = browser.new_page(viewport={"width": 1366, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#pareto-plot .main-svg")
    return page, problems


def row_ids(page) -> list[str]:
    return page.eval_on_selector_all("#t1 tbody tr", "trs => trs.map(t => t.dataset.row)")


def eval_losses(page) -> list[float]:
    return [float(v) for v in page.eval_on_selector_all(
        "#t1 tbody td[data-key=eval_loss]", "tds => tds.map(t => t.dataset.value)")]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> Path:
    """A real sweep through the CLI: 2 strategies x 2 seeds on a tiny random Llama, 4 steps each."""
    base = tmp_path_factory.mktemp("html_sweep")
    model = save_tiny_model(base / "llama", "llama")
    data = base / "data.json"
    data.write_text(json.dumps(alpaca_records(24)), encoding="utf-8")
    sweep = {"name": "html", "seeds": [0, 1], "defaults": {
        "model": str(model), "data": str(data), "eval_size": 6, "max_train": 16, "max_length": 320, "epochs": 1,
        "batch_size": 4, "grad_accum": 1, "lr": 3e-3, "progress": False, "precision": "fp32"},
        "runs": [{"name": "uniform-r4", "strategy": "uniform", "r": 4},
                 {"name": "linear_decay", "strategy": "linear_decay", "r_base": 8, "r_min": 2}]}
    (base / "sweep.yaml").write_text(yaml.safe_dump(sweep), encoding="utf-8")
    out = base / "results"
    assert cli_main(["run", str(base / "sweep.yaml"), "--out", str(out)]) == 0
    return out


def test_real_sweep_report_renders_and_sorts(tiny_sweep, browser, tmp_path):
    page, problems = open_report(browser, tiny_sweep / REPORT_HTML)
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)  # test artifact, kept by pytest
    assert problems == []
    # 4 run points + 2 row means in the Pareto plot; every curve drawn; the heatmaps filled.
    assert page.locator("#pareto-plot .scatterlayer .point").count() == 6
    for name in ("train_loss", "eval_loss", "grad_norm"):
        assert page.locator(f"#plot-{name} .scatterlayer .trace").count() >= 4, name
        assert page.locator(f"#plot-{name} .scatterlayer path.js-line").count() >= 2, name
    for plot in ("rank-planned", "rank-realised", "grad-heatmap"):
        assert page.locator(f"#{plot} .heatmaplayer image").count() == 1, plot
    assert page.locator("#grad-select option").count() == 4
    links = page.eval_on_selector_all("#t1 td.runs a", "as => as.map(a => a.getAttribute('href'))")
    assert "./uniform-r4-s0/config.yaml" in links and "./linear_decay-s1/adapter" in links

    before = row_ids(page)
    page.click("#t1 th[data-key=eval_loss] button")
    ascending = eval_losses(page)
    first = row_ids(page)
    page.click("#t1 th[data-key=eval_loss] button")
    descending = eval_losses(page)
    assert ascending == sorted(ascending) and descending == sorted(descending, reverse=True)
    assert ascending[0] != ascending[-1] and row_ids(page) == first[::-1] and sorted(before) == sorted(first)
    assert page.get_attribute("#t1 th[data-key=eval_loss]", "aria-sort") == "descending"
    page.close()


def test_budget_filter_and_hostile_names(browser, tmp_path):
    root = two_budgets(tmp_path / "res")
    write_report(root)
    page, problems = open_report(browser, root / REPORT_HTML)
    assert problems == []
    budgets = page.eval_on_selector_all("#t1 tbody td[data-key=budget]", "tds => tds.map(t => t.textContent)")
    assert sorted(set(budgets)) == ["r16", "r8"] and len(budgets) == 5
    page.uncheck('#filters input[data-facet=budget][value="r8"]')
    budgets = page.eval_on_selector_all("#t1 tbody td[data-key=budget]", "tds => tds.map(t => t.textContent)")
    assert budgets == ["r16", "r16"]
    page.check('#filters input[data-facet=budget][value="r8"]')
    page.uncheck('#filters input[data-facet=status][value="completed"]')
    assert page.locator("#t1 tbody tr").count() == 1  # only the row with a diverged run is left
    # The hostile name is shown as text, and nothing it spells became an element.
    assert HOSTILE in page.inner_text("#t1 tbody")
    assert page.locator("img").count() == 0
    assert page.locator("#t1 th[data-key=verdict]").count() == 1
    page.close()
