// report.html's behaviour. The data come from the JSON block the Python side wrote; every
// string from it reaches the page as text (textContent, or entity-escaped for plotly, which
// reads a few HTML tags in labels). Only D.intro and the sections' html are markup: the writer
// built them with every piece of text escaped.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                   "#7f7f7f", "#bcbd22", "#17becf"];
  const CONFIG = { displaylogo: false, responsive: true };
  const DASH = "—";
  const color = (i) => PALETTE[i % PALETTE.length];
  const $ = (sel) => document.querySelector(sel);
  // plotly interprets <br>, <b>, <a> ... in labels: user strings go in as entities.
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const fmt = (x, d) => (x === null || x === undefined ? DASH : Number(x).toFixed(d));

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const c of children || []) node.append(c);  // strings become text nodes
    return node;
  }

  function alpha(hex, a) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
  }

  function empty(id, message) {
    const node = document.getElementById(id);
    node.replaceChildren(el("div", { className: "empty", textContent: message }));
  }

  function layout(title, extra) {
    return Object.assign({
      title: { text: title, font: { size: 15 } }, margin: { l: 60, r: 20, t: 44, b: 48 },
      hovermode: "closest", legend: { font: { size: 11 } }, font: { size: 12 },
    }, extra);
  }

  // ------------------------------------------------------------------ Table 1

  const hasBudget = D.rows.some((r) => r.budget !== null);
  const hasVerdict = D.rows.some((r) => r.verdict);
  const COLUMNS = [
    { key: "label", header: "Strategy", value: (r) => r.group },
    ...(hasBudget ? [{ key: "budget", header: "Budget", value: (r) => r.budget }] : []),
    ...D.columns.map((c) => ({ key: c.key, header: c.header, num: true,
                               value: (r) => r.stats[c.key].mean, text: (r) => r.stats[c.key].text })),
    { key: "n", header: "n", num: true, value: (r) => r.n },
    { key: "status", header: "Status", value: (r) => r.status },
    ...(hasVerdict ? [{ key: "verdict", header: "Verdict", value: (r) => r.verdict }] : []),
  ];
  const FACETS = [
    { key: "budget", legend: "Budget", values: (r) => [r.budget === null ? "none" : r.budget] },
    { key: "strategy", legend: "Strategy", values: (r) => [r.strategy] },
    { key: "status", legend: "Status", values: (r) => r.statuses },
  ];
  const sort = { key: null, dir: 1 };
  const hidden = Object.fromEntries(FACETS.map((f) => [f.key, new Set()]));

  function compare(col) {
    return (a, b) => {
      const x = col.value(a), y = col.value(b);
      if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;  // blanks last
      if (y === null || y === undefined) return -1;
      return sort.dir * (col.num ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true }));
    };
  }

  function runCell(row) {
    const runs = D.runs.filter((r) => r.row === D.rows.indexOf(row));
    return runs.map((run) => el("div", {}, [
      el("span", { textContent: run.id, title: run.status }),
      el("br"),  // the file links on a line of their own keep the column narrow
      ...Object.entries(run.links).map(([name, href]) => el("a", { href, textContent: name.replace(/\.\w+$/, "") })),
    ]));
  }

  function bodyRow(row) {
    const tr = el("tr", { className: "t1-row" });
    tr.dataset.row = String(D.rows.indexOf(row));
    for (const col of COLUMNS) {
      const v = col.value(row);
      const td = el("td", { className: col.num ? "num" : "", textContent: col.text ? col.text(row) : (v ?? "") });
      td.dataset.key = col.key;
      if (col.num && v !== null && v !== undefined) td.dataset.value = String(v);
      if (col.key === "status" && row.n === 0) td.classList.add("status-bad");
      if (col.key === "verdict" && v) td.className = /^better/.test(v) ? "verdict-better" : /^worse/.test(v) ? "verdict-worse" : "";
      tr.append(td);
    }
    tr.append(el("td", { className: "runs" }, runCell(row)));
    return tr;
  }

  function renderTable() {
    const visible = D.rows.filter((r) => FACETS.every((f) => f.values(r).some((v) => !hidden[f.key].has(v))));
    if (sort.key) visible.sort(compare(COLUMNS.find((c) => c.key === sort.key)));
    $("#t1 tbody").replaceChildren(...visible.map(bodyRow));
    $("#t1-count").textContent = `${visible.length} of ${D.rows.length} rows shown.`;
    for (const th of document.querySelectorAll("#t1 thead th[data-key]")) {
      th.setAttribute("aria-sort", th.dataset.key === sort.key ? (sort.dir > 0 ? "ascending" : "descending") : "none");
    }
  }

  function buildTable() {
    const head = el("tr");
    for (const col of COLUMNS) {
      const button = el("button", { type: "button", textContent: col.header });
      button.addEventListener("click", () => {
        sort.dir = sort.key === col.key ? -sort.dir : 1;
        sort.key = col.key;
        renderTable();
      });
      const th = el("th", { className: col.num ? "num" : "" }, [button]);
      th.dataset.key = col.key;
      head.append(th);
    }
    head.append(el("th", { textContent: "Runs and files" }));
    $("#t1 thead").replaceChildren(head);
    for (const f of FACETS) {
      const values = [...new Set(D.rows.flatMap(f.values))];
      const boxes = values.map((v) => {
        const box = el("input", { type: "checkbox", checked: true, value: v });
        box.dataset.facet = f.key;
        box.addEventListener("change", () => {
          if (box.checked) hidden[f.key].delete(v); else hidden[f.key].add(v);
          renderTable();
        });
        return el("label", {}, [box, " " + v]);
      });
      $("#filters").append(el("fieldset", {}, [el("legend", { textContent: f.legend }), ...boxes]));
    }
    $("#t1-notes").replaceChildren(...D.notes.map((n) => el("li", { innerHTML: n })));
    renderTable();
  }

  // ------------------------------------------------------------------ Pareto plot

  function ranksText(run) {
    const r = run.ranks;
    return r ? `ranks min ${r.min} / mean ${fmt(r.mean, 2)} / max ${r.max} over ${r.modules} modules` : "no plan recorded";
  }

  function drawPareto() {
    const traces = [];
    D.rows.forEach((row, i) => {
      const runs = D.runs.filter((r) => r.row === i && r.status === "completed" && r.params_m !== null && r.perplexity !== null);
      if (!runs.length) return;
      traces.push({
        type: "scatter", mode: "markers", name: esc(row.label), legendgroup: String(i), showlegend: false,
        x: runs.map((r) => r.params_m), y: runs.map((r) => r.perplexity),
        marker: { color: color(i), size: 7, opacity: 0.55 },
        text: runs.map((r) => `${esc(r.id)}<br>seed ${esc(r.seed ?? "?")}<br>perplexity ${fmt(r.perplexity, 2)}, ` +
                             `eval loss ${fmt(r.eval_loss, 4)}<br>${fmt(r.params_m, 4)}M parameters<br>${esc(ranksText(r))}`),
        hovertemplate: "%{text}<extra></extra>",
      });
      const s = row.stats;
      if (s.params_m.mean === null || s.perplexity.mean === null) return;
      traces.push({
        type: "scatter", mode: "markers", name: esc(row.label), legendgroup: String(i),
        x: [s.params_m.mean], y: [s.perplexity.mean],
        error_y: { type: "data", array: [s.perplexity.std || 0], visible: s.perplexity.std !== null, color: color(i) },
        marker: { color: color(i), size: 13, line: { color: "#000", width: 0.5 } },
        text: [`${esc(row.label)} (mean of ${row.n})<br>perplexity ${s.perplexity.text}<br>${s.params_m.text}M parameters`],
        hovertemplate: "%{text}<extra></extra>",
      });
    });
    const front = D.pareto.front.map((i) => D.rows[i].stats);
    if (front.length) {
      traces.push({ type: "scatter", mode: "lines", name: "Pareto front", line: { color: "#000", width: 1.4, shape: "hv" },
                    x: front.map((s) => s.params_m.mean), y: front.map((s) => s.perplexity.mean), hoverinfo: "skip" });
    }
    const omitted = D.rows.filter((r) => r.stats.params_m.mean === null || r.stats.perplexity.mean === null);
    $("#pareto-omitted").textContent = omitted.length
      ? "Not shown (no completed run): " + omitted.map((r) => `${r.label} (${r.status})`).join(", ") + "." : "";
    if (!traces.length) return empty("pareto-plot", "No row has a completed run with parameters and perplexity.");
    Plotly.newPlot("pareto-plot", traces, layout("Parameters vs perplexity", {
      xaxis: { title: { text: "trainable parameters (M)" } }, yaxis: { title: { text: "perplexity (lower is better)" } },
    }), CONFIG);
  }

  // ------------------------------------------------------------------ curves

  const CURVE_AXES = {
    train_loss: { title: "Training loss", y: "training loss", mode: "lines", yaxis: {} },
    eval_loss: { title: D.eval_title || "Eval loss (step 0 = base model)", y: "eval loss", mode: "lines+markers", yaxis: {} },
    grad_norm: { title: "Gradient norm", y: "global gradient norm", mode: "lines", yaxis: { type: "log" } },
  };

  function rowTraces(name, row, i) {
    const c = row.curves[name];
    if (!c) return [];
    const group = String(i);
    return [
      { type: "scatter", mode: "lines", x: c.x.concat([...c.x].reverse()), y: c.hi.concat([...c.lo].reverse()),
        fill: "toself", fillcolor: alpha(color(i), 0.18), line: { width: 0 }, hoverinfo: "skip",
        legendgroup: group, showlegend: false, name: esc(row.label) },
      { type: "scatter", mode: CURVE_AXES[name].mode, x: c.x, y: c.mean, name: esc(row.label), legendgroup: group,
        line: { color: color(i), width: 2.2 }, marker: { size: 5 },
        hovertemplate: `${esc(row.label)}<br>step %{x}<br>mean of ${c.n}: %{y:.4g}<extra></extra>` },
    ];
  }

  function runTraces(name, run) {
    const c = run.curves[name];
    if (run.status === "completed" || !c.x.length) return [];
    const group = String(run.row);
    const out = [{ type: "scatter", mode: "lines", x: c.x, y: c.y, legendgroup: group, showlegend: false,
                   line: { color: color(run.row), width: 1.2, dash: "dot" }, name: esc(run.id),
                   hovertemplate: `${esc(run.id)} (${esc(run.status)})<br>step %{x}: %{y:.4g}<extra></extra>` }];
    const last = c.x.length - 1;
    if (run.status === "diverged" && c.x[last] > 0) {
      out.push({ type: "scatter", mode: "markers", x: [c.x[last]], y: [c.y[last]], legendgroup: group, showlegend: false,
                 marker: { symbol: "x", size: 13, color: color(run.row), line: { width: 1 } }, name: esc(run.id),
                 hovertemplate: `${esc(run.id)} diverged at step ${esc(run.diverged_step ?? "?")}<br>last finite value %{y:.4g}<extra></extra>` });
    }
    return out;
  }

  function drawCurves() {
    for (const name of Object.keys(CURVE_AXES)) {
      const traces = D.rows.flatMap((row, i) => rowTraces(name, row, i)).concat(D.runs.flatMap((r) => runTraces(name, r)));
      const id = `plot-${name}`;
      if (!traces.length) { empty(id, `No ${CURVE_AXES[name].y} in any metrics.jsonl.`); continue; }
      const a = CURVE_AXES[name];
      Plotly.newPlot(id, traces, layout(a.title, {
        xaxis: { title: { text: "optimizer step" } }, yaxis: Object.assign({ title: { text: a.y } }, a.yaxis),
      }), CONFIG);
    }
  }

  // ------------------------------------------------------------------ heatmaps

  function fillSelect(select, items, label, onChange) {
    select.replaceChildren(...items.map((item, k) => el("option", { value: String(k), textContent: label(item) })));
    select.addEventListener("change", () => onChange(items[Number(select.value)]));
    if (items.length) onChange(items[0]);
  }

  function rankMap(id, grid, title, range) {
    if (!grid) return empty(id, `${title}: no plan recorded.`);
    Plotly.newPlot(id, [{
      type: "heatmap", x: grid.layers, y: grid.roles.map(esc), z: grid.z, zmin: range[0], zmax: range[1],
      colorscale: "Viridis", colorbar: { title: { text: "rank" } }, xgap: 1, ygap: 1,
      hovertemplate: "layer %{x}<br>%{y}<br>rank %{z}<extra></extra>",
    }], layout(title, { xaxis: { title: { text: "layer" }, dtick: 1 }, yaxis: { automargin: true }, margin: { l: 20, r: 10, t: 44, b: 48 } }), CONFIG);
  }

  function drawRanks() {
    const rows = D.rows.filter((r) => r.ranks.planned || r.ranks.realised);
    if (!rows.length) { empty("rank-planned", "No run recorded a plan."); return; }
    const all = rows.flatMap((r) => [r.ranks.planned, r.ranks.realised]).filter(Boolean)
      .flatMap((g) => g.z.flat()).filter((v) => v !== null);
    const range = [Math.min(...all), Math.max(...all)];  // one colour scale for every row
    fillSelect($("#rank-select"), rows, (r) => r.label, (row) => {
      rankMap("rank-planned", row.ranks.planned, `${esc(row.label)}: planned`, range);
      rankMap("rank-realised", row.ranks.realised, `${esc(row.label)}: realised`, range);
    });
  }

  function drawLayerGrads() {
    const runs = D.runs.filter((r) => r.layer_grads);
    if (!runs.length) { empty("grad-heatmap", "No metrics.jsonl has per-layer gradient norms."); return; }
    fillSelect($("#grad-select"), runs, (r) => `${r.id} (${r.status})`, (run) => {
      const g = run.layer_grads;
      const log = g.z.map((line) => line.map((v) => (v === null || v <= 0 ? null : Math.log10(v))));
      Plotly.newPlot("grad-heatmap", [{
        type: "heatmap", x: g.steps, y: g.layers.map(esc), z: log, customdata: g.z, colorscale: "Magma",
        colorbar: { title: { text: "log10" } },
        hovertemplate: "step %{x}<br>layer %{y}<br>grad norm %{customdata:.4g}<extra></extra>",
      }], layout(`${esc(run.id)}: gradient norm per layer`, {
        xaxis: { title: { text: "optimizer step" } }, yaxis: { title: { text: "layer" }, type: "category" },
      }), CONFIG);
    });
  }

  // ------------------------------------------------------------------ Markdown sections

  function drawSections() {
    $("#intro").innerHTML = D.intro;
    D.sections.forEach((s, k) => {
      const id = `md-${k}`;
      const body = el("div", { innerHTML: s.html });
      $("#more").append(el("section", { id }, [el("h2", { textContent: s.title }), body]));
      $("#nav-more").append(el("a", { href: `#${id}`, textContent: s.title }));
    });
  }

  document.title = D.title;
  $("#title").textContent = D.title;
  drawSections();
  buildTable();
  drawPareto();
  drawCurves();
  drawRanks();
  drawLayerGrads();
})();
