"""The site's one stylesheet and one script, written into ``<site>/assets/`` (no CDN, no npm)."""

from __future__ import annotations

CSS = """\
:root { --fg: #1d2330; --muted: #5b6475; --line: #d8dce4; --accent: #2f6fd0; --bad: #b3261e; --ok: #1e7b34; --warn: #9a6700; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; background: #f6f7f9; }
header.top { background: #1d2330; color: #fff; padding: 10px 20px; }
header.top a { color: #cfe0ff; }
main { padding: 16px 20px 40px; max-width: 1400px; }
h1 { font-size: 22px; margin: 8px 0 12px; word-break: break-word; }
h2 { font-size: 17px; margin: 24px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; word-break: break-all; }
a { color: var(--accent); }
.muted, footer { color: var(--muted); }
footer { padding: 12px 20px; font-size: 12px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f5; white-space: nowrap; }
th.sortable { cursor: pointer; user-select: none; }
th.sortable:hover { background: #e2e7ef; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
#runs td { white-space: nowrap; } #runs td:nth-child(6) { white-space: normal; min-width: 120px; }
#compare-chart svg { max-width: 1000px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; max-width: 100%; }
.tag { display: inline-block; background: #e6ecf7; border-radius: 3px; padding: 0 5px; margin: 1px 2px; font-size: 12px; }
.status-ok { color: var(--ok); } .status-failed, .status-damaged { color: var(--bad); font-weight: 600; } .status-incomplete { color: var(--warn); font-weight: 600; }
.toolbar { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.toolbar input[type=search] { padding: 5px 8px; min-width: 260px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; }
figure.chart-box { margin: 0; background: #fff; border: 1px solid var(--line); padding: 8px; }
figure.chart-box figcaption { font-size: 13px; word-break: break-all; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .line { stroke: var(--accent); stroke-width: 1.4; }
svg.chart .axis { stroke: #7b8494; } svg.chart .grid { stroke: #eceff3; }
svg.chart .tick, svg.chart .label { font-size: 11px; fill: var(--muted); }
svg.chart .cursor { stroke: #9aa3b2; stroke-dasharray: 3 3; }
svg.chart .hover circle { fill: #d04a2f; } svg.chart .tip { font-size: 12px; fill: var(--fg); paint-order: stroke; stroke: #fff; stroke-width: 3px; }
pre.log { background: #11151c; color: #d6dde8; padding: 8px; max-height: 320px; overflow: auto; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
pre.log .step { color: #7f8ba0; }
.gallery { display: flex; flex-wrap: wrap; gap: 10px; }
.gallery figure { margin: 0; background: #fff; border: 1px solid var(--line); padding: 6px; width: 180px; }
.gallery img { width: 100%; height: auto; image-rendering: pixelated; background: #eee; min-height: 40px; }
.gallery figcaption { font-size: 12px; word-break: break-all; }
ul.tree, ul.tree ul { list-style: none; padding-left: 18px; margin: 2px 0; }
ul.tree { padding-left: 0; }
ul.tree .key { color: var(--muted); }
ul.tree .val { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
details > summary { cursor: pointer; }
.problems li { color: var(--bad); word-break: break-all; }
.pager { margin: 8px 0; display: flex; gap: 8px; align-items: center; }
.legend span { display: inline-block; margin-right: 12px; word-break: break-all; }
.legend i { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-word; }
"""

JS = r"""
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2f6fd0", "#d04a2f", "#1e7b34", "#8a3ffc", "#b28600", "#007d79", "#e0457b", "#5b6475", "#6929c4", "#198038"];

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
      return String(Number(v.toPrecision(6)));
    }
    if (Array.isArray(v)) return v.join(", ");
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  // -- hover on charts: the step and value of the nearest drawn point -----------------
  function attachHover(svg) {
    var raw = svg.getAttribute("data-points");
    var line = svg.querySelector("polyline");
    var hover = svg.querySelector("g.hover");
    if (!raw || !line || !hover) return;
    var data = JSON.parse(raw);
    var pts = line.getAttribute("points").trim().split(/\s+/).map(function (p) {
      var xy = p.split(","); return [parseFloat(xy[0]), parseFloat(xy[1])];
    });
    var vb = svg.viewBox.baseVal;
    var cursor = hover.querySelector("line"), dot = hover.querySelector("circle"), tip = hover.querySelector("text");
    svg.addEventListener("mousemove", function (e) {
      var r = svg.getBoundingClientRect();
      var x = (e.clientX - r.left) * vb.width / r.width;
      var best = 0, bestD = Infinity;
      for (var i = 0; i < pts.length; i++) {
        var d = Math.abs(pts[i][0] - x);
        if (d < bestD) { bestD = d; best = i; }
      }
      var p = pts[best];
      cursor.setAttribute("x1", p[0]); cursor.setAttribute("x2", p[0]);
      dot.setAttribute("cx", p[0]); dot.setAttribute("cy", p[1]);
      tip.textContent = "step " + fmt(data[0][best]) + ": " + fmt(data[1][best]);
      var right = p[0] > vb.width * 0.6;
      tip.setAttribute("x", right ? p[0] - 6 : p[0] + 6);
      tip.setAttribute("text-anchor", right ? "end" : "start");
      hover.setAttribute("visibility", "visible");
    });
    svg.addEventListener("mouseleave", function () { hover.setAttribute("visibility", "hidden"); });
  }

  // -- the runs table: sorted, filtered and paged in the browser -----------------------
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function cellValue(row, col) {
    if (col.kind === "param") return row.p ? row.p[col.key] : undefined;
    if (col.kind === "metric") return row.m ? row.m[col.key] : undefined;
    return row[col.key];
  }

  function sortKey(v) {
    if (v === null || v === undefined) return null;
    if (typeof v === "number") return v;
    if (v === "NaN") return NaN;
    if (v === "Infinity") return Infinity;
    if (v === "-Infinity") return -Infinity;
    if (Array.isArray(v)) return v.join(",").toLowerCase();
    if (typeof v === "boolean") return v ? 1 : 0;
    return String(v).toLowerCase();
  }

  function compareKeys(a, b) {
    var an = a === null || (typeof a === "number" && isNaN(a));
    var bn = b === null || (typeof b === "number" && isNaN(b));
    if (an || bn) return an === bn ? 0 : (an ? 1 : -1);  // missing values last either way
    var at = typeof a, bt = typeof b;
    if (at !== bt) return at === "number" ? -1 : 1;
    return a < b ? -1 : (a > b ? 1 : 0);
  }

  function RunsTable(root, spec) {
    var self = this;
    this.root = root; this.spec = spec; this.rows = spec.rows; this.columns = spec.columns;
    this.view = this.rows.slice(); this.page = 0; this.pageSize = 50; this.sortCol = null; this.sortDir = 1;
    this.selected = {};
    this.rows.forEach(function (r) {
      r._search = [r.id, r.name, r.state, r.owner, (r.tags || []).join(" "), r.status].join(" ").toLowerCase();
    });
    this.filter = root.querySelector("#filter");
    this.tbody = root.querySelector("tbody");
    this.count = root.querySelector("#count");
    this.pageLabel = root.querySelector("#page");
    var headRow = root.querySelector("thead tr");
    headRow.appendChild(el("th", {scope: "col"}, "compare"));
    this.columns.forEach(function (col, i) {
      var th = el("th", {scope: "col", "class": "sortable", tabindex: "0", "data-col": String(i), title: col.title || col.label}, col.label);
      th.addEventListener("click", function () { self.sortBy(i); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); self.sortBy(i); } });
      headRow.appendChild(th);
    });
    this.filter.addEventListener("input", function () { self.applyFilter(); });
    root.querySelector("#prev").addEventListener("click", function () { if (self.page > 0) { self.page--; self.render(); } });
    root.querySelector("#next").addEventListener("click", function () {
      if ((self.page + 1) * self.pageSize < self.view.length) { self.page++; self.render(); }
    });
    var metricSelect = root.querySelector("#metric");
    (spec.metrics || []).forEach(function (m) { metricSelect.appendChild(el("option", {value: m}, m)); });
    root.querySelector("#compare-btn").addEventListener("click", function () { self.compare(); });
    this.applyFilter();
  }

  RunsTable.prototype.applyFilter = function () {
    var q = this.filter.value.trim().toLowerCase();
    var words = q ? q.split(/\s+/) : [];
    this.view = this.rows.filter(function (r) {
      for (var i = 0; i < words.length; i++) if (r._search.indexOf(words[i]) < 0) return false;
      return true;
    });
    this.applySort();
    this.page = 0;
    this.render();
  };

  RunsTable.prototype.sortBy = function (i) {
    if (this.sortCol === i) this.sortDir = -this.sortDir; else { this.sortCol = i; this.sortDir = 1; }
    this.applySort();
    this.page = 0;
    this.render();
  };

  RunsTable.prototype.applySort = function () {
    var ths = this.root.querySelectorAll("thead th.sortable");
    for (var k = 0; k < ths.length; k++) ths[k].removeAttribute("aria-sort");
    if (this.sortCol === null) return;
    var col = this.columns[this.sortCol], dir = this.sortDir;
    ths[this.sortCol].setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    var keyed = this.view.map(function (r, i) { return [sortKey(cellValue(r, col)), i, r]; });
    keyed.sort(function (a, b) {
      var c = compareKeys(a[0], b[0]);
      if (c !== 0 && a[0] !== null && b[0] !== null && !(typeof a[0] === "number" && isNaN(a[0])) && !(typeof b[0] === "number" && isNaN(b[0]))) c *= dir;
      return c || a[1] - b[1];
    });
    this.view = keyed.map(function (k) { return k[2]; });
  };

  RunsTable.prototype.render = function () {
    var self = this;
    var start = this.page * this.pageSize, rows = this.view.slice(start, start + this.pageSize);
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      var tr = el("tr", {"data-id": r.id});
      var box = el("input", {type: "checkbox", "aria-label": "compare " + r.id});
      box.checked = !!self.selected[r.id];
      box.addEventListener("change", function () { if (box.checked) self.selected[r.id] = r; else delete self.selected[r.id]; self.updateCount(); });
      var td0 = el("td"); td0.appendChild(box); tr.appendChild(td0);
      self.columns.forEach(function (col) {
        var v = cellValue(r, col), td;
        if (col.key === "id") {
          td = el("td"); td.appendChild(el("a", {href: r.href}, r.id));
        } else if (col.key === "tags") {
          td = el("td"); (v || []).forEach(function (t) { td.appendChild(el("span", {"class": "tag"}, t)); });
        } else if (col.key === "status") {
          td = el("td", {"class": "status-" + v, title: r.problems ? r.problems + " problem(s)" : ""}, v);
        } else {
          td = el("td", typeof v === "number" ? {"class": "num"} : null, fmt(v));
        }
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    this.tbody.textContent = "";
    this.tbody.appendChild(frag);
    var n = this.view.length;
    this.pageLabel.textContent = n ? (start + 1) + "\u2013" + Math.min(start + this.pageSize, n) + " of " + n : "0 of 0";
    this.updateCount();
  };

  RunsTable.prototype.updateCount = function () {
    var n = Object.keys(this.selected).length;
    this.count.textContent = this.view.length + " of " + this.rows.length + " runs shown; " + n + " selected for comparing";
  };

  // -- compare: one metric of the selected runs on one chart ---------------------------
  window.NBV_SERIES = window.NBV_SERIES || {};
  function loadSeries(rows, done) {
    var pending = 0, failed = [];
    rows.forEach(function (r) {
      if (window.NBV_SERIES[r.key]) return;
      pending++;
      var s = document.createElement("script");
      s.src = r.data;
      s.onload = s.onerror = function (e) { if (e.type === "error") failed.push(r.id); if (--pending === 0) done(failed); };
      document.head.appendChild(s);
    });
    if (pending === 0) done(failed);
  }

  RunsTable.prototype.compare = function () {
    var self = this, out = this.root.querySelector("#compare-chart");
    var metric = this.root.querySelector("#metric").value;
    var rows = Object.keys(this.selected).sort().map(function (k) { return self.selected[k]; });
    if (rows.length === 0 || !metric) { out.textContent = "Select runs in the table (the compare column) and a metric."; return; }
    out.textContent = "Loading\u2026";
    loadSeries(rows, function (failed) { drawCompare(out, metric, rows, failed); });
  };

  function drawCompare(out, metric, rows, failed) {
    var W = 900, H = 360, L = 70, R = 16, T = 16, B = 40, pw = W - L - R, ph = H - T - B;
    var lines = [], x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    rows.forEach(function (r, i) {
      var s = (window.NBV_SERIES[r.key] || {})[metric];
      if (!s) return;
      var pts = [];
      for (var j = 0; j < s[0].length; j++) {
        var x = s[0][j], y = s[1][j];
        if (typeof x !== "number" || typeof y !== "number") continue;
        pts.push([x, y]);
        if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
      if (pts.length) lines.push({row: r, pts: pts, color: PALETTE[i % PALETTE.length]});
    });
    out.textContent = "";
    if (!lines.length) { out.textContent = "None of the selected runs has the metric " + metric + "."; return; }
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { var pad = Math.abs(y0) * 0.05 || 1; y0 -= pad; y1 += pad; }
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", "chart compare"); svg.setAttribute("role", "img");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    var title = document.createElementNS(SVGNS, "title");
    title.textContent = metric + " for " + lines.length + " runs";
    var desc = document.createElementNS(SVGNS, "desc");
    desc.textContent = "Line chart of " + metric + ": x axis step from " + fmt(x0) + " to " + fmt(x1) + ", y axis value from " +
      fmt(y0) + " to " + fmt(y1) + ". " + lines.map(function (l) {
        var last = l.pts[l.pts.length - 1]; return l.row.id + ": last value " + fmt(last[1]) + " at step " + fmt(last[0]);
      }).join("; ") + ".";
    svg.appendChild(title); svg.appendChild(desc);
    function add(tag, attrs, text) {
      var e = document.createElementNS(SVGNS, tag);
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e); return e;
    }
    [0, 0.5, 1].forEach(function (f, k) {
      var py = T + ph - f * ph;
      add("line", {"class": "grid", x1: L, x2: W - R, y1: py, y2: py});
      add("text", {"class": "tick", x: L - 4, y: py + 4, "text-anchor": "end"}, fmt(y0 + (y1 - y0) * f));
      add("text", {"class": "tick", x: L + f * pw, y: T + ph + 16, "text-anchor": ["start", "middle", "end"][k]}, fmt(x0 + (x1 - x0) * f));
    });
    add("line", {"class": "axis", x1: L, x2: L, y1: T, y2: T + ph});
    add("line", {"class": "axis", x1: L, x2: W - R, y1: T + ph, y2: T + ph});
    add("text", {"class": "label", x: L + pw / 2, y: H - 4, "text-anchor": "middle"}, "step");
    lines.forEach(function (l) {
      var pts = l.pts.map(function (p) {
        return (L + (p[0] - x0) / (x1 - x0) * pw).toFixed(1) + "," + (T + ph - (p[1] - y0) / (y1 - y0) * ph).toFixed(1);
      }).join(" ");
      var pl = add("polyline", {"class": "cmp-line", fill: "none", stroke: l.color, "stroke-width": "1.6", points: pts, "data-run": l.row.id});
      var tip = document.createElementNS(SVGNS, "title");
      var last = l.pts[l.pts.length - 1];
      tip.textContent = l.row.id + ": last value " + fmt(last[1]) + " at step " + fmt(last[0]);
      pl.appendChild(tip);
    });
    var h = el("h3", null, metric);
    var legend = el("div", {"class": "legend"});
    lines.forEach(function (l) {
      var s = el("span"); var i = el("i"); i.style.background = l.color; s.appendChild(i);
      s.appendChild(document.createTextNode(l.row.id + (l.row.name ? " (" + l.row.name + ")" : ""))); legend.appendChild(s);
    });
    out.appendChild(h); out.appendChild(svg); out.appendChild(legend);
    var missing = rows.filter(function (r) { return !lines.some(function (l) { return l.row === r; }); });
    if (missing.length) out.appendChild(el("p", {"class": "muted"}, "Without this metric: " + missing.map(function (r) { return r.id; }).join(", ")));
    if (failed.length) out.appendChild(el("p", {"class": "muted"}, "Could not load: " + failed.join(", ")));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var charts = document.querySelectorAll("svg.chart[data-points]");
    for (var i = 0; i < charts.length; i++) attachHover(charts[i]);
    var spec = document.getElementById("nbv-table");
    var root = document.getElementById("runs-app");
    if (spec && root) window.nbvTable = new RunsTable(root, JSON.parse(spec.textContent));
  });
})();
"""
