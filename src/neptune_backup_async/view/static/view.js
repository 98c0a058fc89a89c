(function () {
  "use strict";
  var PALETTE = ["#2f6fd0", "#d04a2f", "#1e7b34", "#8a3ffc", "#b28600", "#007d79", "#e0457b", "#5b6475", "#6929c4", "#198038"];
  var NATURAL = new Intl.Collator("en", {numeric: true, sensitivity: "base"});  // P0-2 before P0-10

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

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // -- charts, drawn by uPlot; one set of settings for every chart of the page --------
  var settings = {x: "step", log: false, smooth: 0};
  var X_LABEL = {step: "step", time: "time (UTC)", relative: "relative time (s)"};
  var INT_INCRS = [];  // ticks of an integer axis: 1, 2, 5, 10, 20, 50, …
  for (var e10 = 1; e10 <= 1e15; e10 *= 10) INT_INCRS.push(e10, 2 * e10, 5 * e10);
  var FONT = "13px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  // Time ticks in ISO order and 24 hours, as the rest of the site writes times (uPlot's table:
  // tick step in seconds, its format, then the line added when the year, month, day, hour
  // or minute changes).
  var D = "\n{YYYY}-{MM}-{DD}", MD = "\n{MM}-{DD}";
  var TIME_TICKS = [
    [3600 * 24 * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [3600 * 24 * 28, "{YYYY}-{MM}", null, null, null, null, null, null, 1],
    [3600 * 24, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", D, null, MD, null, null, null, 1],
    [60, "{HH}:{mm}", D, null, MD, null, null, null, 1],
    [1, ":{ss}", D + " {HH}:{mm}", null, MD + " {HH}:{mm}", null, "\n{HH}:{mm}", null, 1],
    [0.001, ":{ss}.{fff}", D + " {HH}:{mm}", null, MD + " {HH}:{mm}", null, "\n{HH}:{mm}", null, 1]
  ];
  var charts = [];

  function utc(t) { return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.000Z$|Z$/, ""); }
  function fmtX(v) { return settings.x === "time" ? utc(v) : fmt(v); }

  function xValues(pts) {  // pts: [steps, values, seconds after t0 (or null), t0 (seconds since 1970)]
    if (settings.x === "step") return pts[0];
    var first = null;
    return pts[2].map(function (t) {
      if (t === null) return null;
      if (first === null) first = t;
      return settings.x === "time" ? pts[3] + t : t - first;
    });
  }

  function ema(ys, w) {  // debiased exponential moving average, the smoothing of Neptune and TensorBoard
    var out = [], last = 0, n = 0;
    for (var i = 0; i < ys.length; i++) {
      last = last * w + (1 - w) * ys[i]; n++;
      out.push(last / (1 - Math.pow(w, n)));
    }
    return out;
  }

  // One line as an x-sorted table [x, values(, smoothed)] for the current settings; `left`
  // counts the points the log scale cannot show.
  function lineTable(pts, left) {
    var xs = xValues(pts), idx = [];
    for (var i = 0; i < xs.length; i++) {
      if (xs[i] === null) continue;
      if (settings.log && !(pts[1][i] > 0)) { left.n++; continue; }
      idx.push(i);
    }
    idx.sort(function (a, b) { return xs[a] - xs[b]; });  // times need not grow with steps
    var ys = idx.map(function (i) { return pts[1][i]; });
    var table = [idx.map(function (i) { return xs[i]; }), ys];
    if (settings.smooth > 0) table.push(ema(ys, settings.smooth));
    return table;
  }

  // A log axis over the data with a little room (a twentieth of its span each side). uPlot's
  // own rounds out to whole multiples of a power of ten: 0.39 to 0.52 became 0.3 to 0.6,
  // and a line of a narrow range was squashed into the middle of its chart.
  function tightLog(u, min, max) {
    if (!(min > 0 && max > 0)) return uPlot.rangeLog(min, max, 10, false);  // nothing to draw
    var lo = Math.log10(min), hi = Math.log10(max), pad = Math.max((hi - lo) / 20, 0.005);
    return [Math.pow(10, lo - pad), Math.pow(10, hi + pad)];
  }

  function round12(v) { return Number(v.toPrecision(12)); }  // 0.30000000000000004 is 0.3

  // Ticks of a log axis: 1 to 9 times each power of ten in range, as uPlot's own; on a range
  // too narrow to hold three of those, round values evenly spaced (1, 2, 2.5 or 5 times a
  // power of ten apart), as many as fit, for a log axis is nearly linear there.
  function logTicks(u, axis, min, max) {
    var out = [];
    for (var e = Math.floor(Math.log10(min)); Math.pow(10, e) <= max; e++) {
      for (var m = 1; m < 10; m++) {
        var v = round12(m * Math.pow(10, e));
        if (v >= min && v <= max) out.push(v);
      }
    }
    if (out.length >= 3) return out;
    var raw = (max - min) / Math.max(3, Math.round(u.height / 60)), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (f) { return f * mag; }).find(function (s) { return s >= raw; });
    out = [];
    for (var k = Math.ceil(min / step); k * step <= max; k++) out.push(round12(k * step));
    return out;
  }

  function Chart(box, lines, height) {  // lines: [{label, color, pts}]
    this.box = box; this.lines = lines; this.height = height;
    this.desc = box.querySelector(".desc"); this.base = this.desc ? this.desc.textContent : "";
    this.plot = null; this.left = 0;
    box.style.minHeight = (height + 40) + "px";  // its place before it is drawn: the page does not jump
    box.nbvChart = this;  // for the browser test, and for anyone poking at the page
    charts.push(this);
  }

  Chart.prototype.draw = function () {
    var self = this, keep = null, u = this.plot;
    if (u && this.mode === settings.x && this.zoomed()) keep = {min: u.scales.x.min, max: u.scales.x.max};
    if (u) u.destroy();
    var left = {n: 0};
    var tables = this.lines.map(function (l) { return lineTable(l.pts, left); });
    var data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    this.left = left.n; this.mode = settings.x;
    var series = [{label: X_LABEL[settings.x], value: function (u, v) { return v === null ? "" : fmtX(v); }}];
    var value = function (u, v) { return fmt(v); };
    this.lines.forEach(function (l) {
      var smooth = settings.smooth > 0;
      var line = {label: l.label, stroke: smooth ? l.color + "50" : l.color, width: smooth ? 1 : 1.6, spanGaps: true, value: value, points: {show: false}};
      series.push(line);
      if (smooth) series.push(Object.assign({}, line, {label: l.label + " (smoothed)", stroke: l.color, width: 2}));
    });
    var xAxis = {label: X_LABEL[settings.x], font: FONT, labelFont: FONT, labelSize: 22};
    if (settings.x === "step" && data[0].every(Number.isInteger)) xAxis.incrs = INT_INCRS;
    if (settings.x === "time") xAxis.values = TIME_TICKS;
    var yAxis = {font: FONT, size: 72, values: function (u, ticks) { return ticks.map(fmt); }};
    if (settings.log) yAxis.splits = logTicks;
    this.box.classList.add("drawn");
    this.plot = new uPlot({
      width: Math.max(this.box.clientWidth, 200), height: this.height,
      scales: {x: {time: settings.x === "time"}, y: settings.log ? {distr: 3, range: tightLog} : {}},
      axes: [xAxis, yAxis],
      series: series,
      cursor: {drag: {x: true, y: false}},
      legend: {live: true},
      tzDate: function (t) { return uPlot.tzDate(new Date(t * 1000), "Etc/UTC"); },
      hooks: {setScale: [function (u, key) { if (key === "x") self.describe(); }]}
    }, data, this.box);
    if (keep) this.plot.setScale("x", keep);
    this.describe();
  };

  Chart.prototype.extent = function () {
    var xs = this.plot.data[0];
    return xs.length ? [xs[0], xs[xs.length - 1]] : [0, 0];
  };

  Chart.prototype.zoomed = function () {
    var e = this.extent(), s = this.plot.scales.x;
    return s.min > e[0] || s.max < e[1];
  };

  // The text alternative says what the chart shows now: zoom, scale, smoothing, x axis.
  Chart.prototype.describe = function () {
    if (!this.desc || !this.plot) return;
    var notes = [];
    if (settings.x !== "step") notes.push("x axis: " + X_LABEL[settings.x] + ".");
    if (this.zoomed()) {
      notes.push("Zoomed in on " + X_LABEL[settings.x] + " " + fmtX(this.plot.scales.x.min) + " to " + fmtX(this.plot.scales.x.max) + ".");
    }
    if (settings.log) notes.push("Log scale" + (this.left ? "; " + this.left + " values of 0 or less left out." : "."));
    if (settings.smooth > 0) notes.push("Smoothed (weight " + settings.smooth + ").");
    this.desc.textContent = this.base + (notes.length ? " " + notes.join(" ") : "");
  };

  Chart.prototype.resize = function () {
    if (this.plot && Math.abs(this.plot.width - this.box.clientWidth) > 1) {
      this.plot.setSize({width: Math.max(this.box.clientWidth, 200), height: this.height});
    }
  };

  Chart.prototype.remove = function () {
    if (this.plot) this.plot.destroy();
    charts.splice(charts.indexOf(this), 1);
  };

  function redrawAll() { charts.forEach(function (c) { if (c.plot) c.draw(); }); }

  function controls() {
    var bar = el("div", {"class": "chart-controls toolbar", role: "group", "aria-label": "chart settings"});
    var x = el("select", {id: "x-axis"});
    ["step", "time", "relative"].forEach(function (k) { x.appendChild(el("option", {value: k}, X_LABEL[k])); });
    var log = el("input", {type: "checkbox", id: "log-scale"});
    var smooth = el("input", {type: "range", id: "smoothing", min: "0", max: "0.99", step: "0.01", value: "0"});
    var shown = el("output", {"for": "smoothing"}, "0");
    var lx = el("label", null, "x axis "); lx.appendChild(x);
    var ll = el("label"); ll.appendChild(log); ll.appendChild(document.createTextNode(" log scale"));
    var ls = el("label", null, "smoothing "); ls.appendChild(smooth); ls.appendChild(shown);
    [lx, ll, ls, el("span", {"class": "muted"}, "Drag across a chart to zoom in; double-click to zoom out.")].forEach(function (c) { bar.appendChild(c); });
    x.addEventListener("change", function () { settings.x = x.value; redrawAll(); });
    log.addEventListener("change", function () { settings.log = log.checked; redrawAll(); });
    smooth.addEventListener("input", function () { shown.textContent = smooth.value; });
    smooth.addEventListener("change", function () { settings.smooth = Number(smooth.value); redrawAll(); });
    return bar;
  }

  function runPageCharts() {
    var boxes = document.querySelectorAll(".plot[data-points]");
    if (!boxes.length) return;
    var first = document.querySelector(".charts");
    first.parentNode.insertBefore(controls(), first);
    var list = [];
    for (var i = 0; i < boxes.length; i++) {
      var pts = JSON.parse(boxes[i].getAttribute("data-points"));
      if (pts[0].length) list.push(new Chart(boxes[i], [{label: "value", color: PALETTE[0], pts: pts}], 300));
    }  // a series with nothing to draw keeps its description, which says so
    // The charts on the screen at once, the others a few per frame (the page stays
    // responsive), and any scrolled to before their turn when they come near: a run of
    // hundreds of series opens at once, and is soon drawn in full.
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting && !e.target.nbvChart.plot) e.target.nbvChart.draw(); });
    }, {rootMargin: "400px"});
    var queue = [];
    list.forEach(function (c) {
      if (c.box.parentNode.getBoundingClientRect().top < innerHeight) c.draw(); else { queue.push(c); seen.observe(c.box); }
    });
    (function drawSome() {
      queue.splice(0, 6).forEach(function (c) { if (!c.plot) c.draw(); });
      if (queue.length) requestAnimationFrame(drawSome);
    })();
  }

  // -- the runs table: sorted, filtered, paged, its columns chosen, in the browser ------
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
    if (Array.isArray(v)) return v.join(",");
    if (typeof v === "boolean") return v ? 1 : 0;
    return String(v);
  }

  function compareKeys(a, b) {
    var an = a === null || (typeof a === "number" && isNaN(a));
    var bn = b === null || (typeof b === "number" && isNaN(b));
    if (an || bn) return an === bn ? 0 : (an ? 1 : -1);  // missing values last either way
    var at = typeof a, bt = typeof b;
    if (at !== bt) return at === "number" ? -1 : 1;
    if (at === "string") return NATURAL.compare(a, b);
    return a < b ? -1 : (a > b ? 1 : 0);
  }

  function RunsTable(root, spec) {
    var self = this;
    this.root = root; this.rows = spec.rows; this.columns = spec.columns;
    this.idCol = this.columns[0];  // always shown first, kept in view when the table scrolls sideways
    this.storeKey = "nbv-columns:" + location.pathname;
    this.order = this.columns.slice(1);
    this.hidden = {};
    this.restoreColumns();
    this.view = this.rows.slice(); this.page = 0; this.pageSize = 50;
    this.sortCol = this.idCol; this.sortDir = 1;  // natural order of the ids by default
    this.selected = {};
    this.rows.forEach(function (r) {
      r._search = [r.id, r.name, r.state, r.owner, (r.tags || []).join(" "), r.status].join(" ").toLowerCase();
    });
    this.filter = root.querySelector("#filter");
    this.thead = root.querySelector("thead tr");
    this.tbody = root.querySelector("tbody");
    this.count = root.querySelector("#count");
    this.pageLabel = root.querySelector("#page");
    this.chooser = root.querySelector("#columns ol");
    this.filter.addEventListener("input", function () { self.applyFilter(); });
    root.querySelector("#prev").addEventListener("click", function () { if (self.page > 0) { self.page--; self.render(); } });
    root.querySelector("#next").addEventListener("click", function () {
      if ((self.page + 1) * self.pageSize < self.view.length) { self.page++; self.render(); }
    });
    var metricSelect = root.querySelector("#metric");
    (spec.metrics || []).forEach(function (m) { metricSelect.appendChild(el("option", {value: m}, m)); });
    root.querySelector("#compare-btn").addEventListener("click", function () { self.compare(); });
    var chart = root.querySelector("#compare-chart");
    chart.parentNode.insertBefore(controls(), chart);
    var scatter = root.querySelector("#scatter-chart");
    if (scatter) this.scatter = new Scatter(scatter, spec.params, spec.metrics, function () { return self.view; });
    this.renderChooser();
    this.applyFilter();
  }

  RunsTable.prototype.restoreColumns = function () {
    var saved;
    try { saved = JSON.parse(localStorage.getItem(this.storeKey) || "null"); } catch (e) { saved = null; }
    if (!saved || !Array.isArray(saved.order)) return;
    var byKey = {};
    this.order.forEach(function (c) { byKey[c.kind + ":" + c.key] = c; });
    var order = saved.order.map(function (k) { return byKey[k]; }).filter(Boolean);
    this.order = order.concat(this.order.filter(function (c) { return order.indexOf(c) < 0; }));
    this.hidden = saved.hidden || {};
  };

  RunsTable.prototype.saveColumns = function () {
    var doc = {order: this.order.map(function (c) { return c.kind + ":" + c.key; }), hidden: this.hidden};
    try { localStorage.setItem(this.storeKey, JSON.stringify(doc)); } catch (e) { /* private mode: not kept */ }
  };

  RunsTable.prototype.shown = function () {
    var hidden = this.hidden;
    return [this.idCol].concat(this.order.filter(function (c) { return !hidden[c.kind + ":" + c.key]; }));
  };

  // The column chooser: show or hide each column, move it left or right.
  RunsTable.prototype.renderChooser = function () {
    var self = this, list = this.chooser;
    list.textContent = "";
    this.order.forEach(function (col, i) {
      var id = col.kind + ":" + col.key, li = el("li", {"data-col": id});
      var box = el("input", {type: "checkbox", "aria-label": "show " + col.label});
      box.checked = !self.hidden[id];
      box.addEventListener("change", function () {
        if (box.checked) delete self.hidden[id]; else self.hidden[id] = true;
        self.columnsChanged();
      });
      var label = el("label", {title: col.title || col.label}); label.appendChild(box); label.appendChild(document.createTextNode(" " + col.label));
      li.appendChild(label);
      [["\u2191", -1, "move " + col.label + " left"], ["\u2193", 1, "move " + col.label + " right"]].forEach(function (m) {
        var b = el("button", {type: "button", "aria-label": m[2]}, m[0]);
        b.disabled = i + m[1] < 0 || i + m[1] >= self.order.length;
        b.addEventListener("click", function () {
          self.order.splice(i, 1); self.order.splice(i + m[1], 0, col);
          self.columnsChanged();
          var again = list.querySelector("li[data-col='" + CSS.escape(id) + "'] button[aria-label='" + CSS.escape(m[2]) + "']");
          if (again && !again.disabled) again.focus();
        });
        li.appendChild(b);
      });
      list.appendChild(li);
    });
  };

  RunsTable.prototype.columnsChanged = function () { this.saveColumns(); this.renderChooser(); this.render(); };

  RunsTable.prototype.renderHead = function () {
    var self = this;
    this.thead.textContent = "";
    this.shown().forEach(function (col) {
      var th = el("th", {scope: "col", "class": "sortable" + (col === self.idCol ? " id-col" : ""), tabindex: "0", title: col.title || col.label}, col.label);
      if (col === self.sortCol) th.setAttribute("aria-sort", self.sortDir > 0 ? "ascending" : "descending");
      th.addEventListener("click", function () { self.sortBy(col); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); self.sortBy(col); } });
      self.thead.appendChild(th);
    });
  };

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
    if (this.scatter) this.scatter.draw();
  };

  RunsTable.prototype.sortBy = function (col) {
    if (this.sortCol === col) this.sortDir = -this.sortDir; else { this.sortCol = col; this.sortDir = 1; }
    this.applySort();
    this.page = 0;
    this.render();
  };

  RunsTable.prototype.applySort = function () {
    var col = this.sortCol, dir = this.sortDir;
    var keyed = this.view.map(function (r, i) { return [sortKey(cellValue(r, col)), i, r]; });
    keyed.sort(function (a, b) {
      var c = compareKeys(a[0], b[0]);
      var missing = a[0] === null || b[0] === null || (typeof a[0] === "number" && isNaN(a[0])) || (typeof b[0] === "number" && isNaN(b[0]));
      if (!missing) c *= dir;
      return c || a[1] - b[1];
    });
    this.view = keyed.map(function (k) { return k[2]; });
  };

  RunsTable.prototype.render = function () {
    var self = this, cols = this.shown();
    this.renderHead();
    var start = this.page * this.pageSize, rows = this.view.slice(start, start + this.pageSize);
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      var tr = el("tr", {"data-id": r.id});
      cols.forEach(function (col) {
        var v = cellValue(r, col), td;
        if (col === self.idCol) {
          td = el("td", {"class": "id-col"});
          var box = el("input", {type: "checkbox", "aria-label": "compare " + r.id});
          box.checked = !!self.selected[r.id];
          box.addEventListener("change", function () { if (box.checked) self.selected[r.id] = r; else delete self.selected[r.id]; self.updateCount(); });
          td.appendChild(box); td.appendChild(el("a", {href: r.href}, r.id));
        } else if (col.key === "tags") {
          td = el("td"); (v || []).forEach(function (t) { td.appendChild(el("span", {"class": "tag"}, t)); });
        } else if (col.key === "status") {
          td = el("td", {"class": "status-" + v, title: r.problems ? r.problems + " problem(s)" : ""}, v);
        } else {
          td = el("td", typeof v === "number" ? {"class": "num"} : null, fmt(v));
        }
        td.setAttribute("data-col", col.kind + ":" + col.key);
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
    var rows = Object.keys(this.selected).sort(NATURAL.compare).map(function (k) { return self.selected[k]; });
    if (rows.length === 0 || !metric) { out.textContent = "Select runs in the table (the box by each id) and a metric."; return; }
    out.textContent = "Loading\u2026";
    loadSeries(rows, function (failed) {
      if (self.chart) self.chart.remove();
      self.chart = drawCompare(out, metric, rows, failed);
    });
  };

  function drawCompare(out, metric, rows, failed) {
    var lines = [];
    rows.forEach(function (r, i) {
      var pts = (window.NBV_SERIES[r.key] || {})[metric];
      if (pts && pts[0].length) lines.push({row: r, label: r.id + (r.name ? " (" + r.name + ")" : ""), color: PALETTE[i % PALETTE.length], pts: pts});
    });
    out.textContent = "";
    if (!lines.length) { out.textContent = "None of the selected runs has the metric " + metric + "."; return null; }
    out.appendChild(el("h3", null, metric));
    var desc = metric + " for " + lines.length + " runs: " + lines.map(function (l) {
      var n = l.pts[0].length; return l.row.id + " last value " + fmt(l.pts[1][n - 1]) + " at step " + fmt(l.pts[0][n - 1]);
    }).join("; ") + ".";
    var box = el("div", {"class": "plot", role: "img", "aria-labelledby": "compare-desc"});
    box.appendChild(el("span", {"class": "desc", id: "compare-desc"}, desc));
    out.appendChild(box);
    var missing = rows.filter(function (r) { return !lines.some(function (l) { return l.row === r; }); });
    if (missing.length) out.appendChild(el("p", {"class": "muted"}, "Without this metric: " + missing.map(function (r) { return r.id; }).join(", ")));
    if (failed.length) out.appendChild(el("p", {"class": "muted"}, "Could not load: " + failed.join(", ")));
    var chart = new Chart(box, lines, 420);
    chart.draw();
    return chart;
  }

  // -- scatter: a parameter against the last value of a metric, a point per run -------
  // Runs without both values are left out; a parameter with a value that is not a number
  // (a string, a bool, a list) is drawn by category, its values in natural order along x.
  function Scatter(out, params, metrics, runs) {
    var self = this;
    this.out = out; this.runs = runs; this.plot = null;
    this.x = document.getElementById("scatter-x"); this.y = document.getElementById("scatter-y");
    params.forEach(function (p) { self.x.appendChild(el("option", {value: p}, p)); });
    metrics.forEach(function (m) { self.y.appendChild(el("option", {value: m}, m)); });
    this.x.addEventListener("change", function () { self.draw(); });
    this.y.addEventListener("change", function () { self.draw(); });
    charts.push(this);  // resized (and redrawn) with the charts; their settings do not apply to it
  }

  Scatter.prototype.points = function (param, metric) {
    var pts = [], left = 0;
    this.runs().forEach(function (r) {
      var x = r.p[param], y = r.m[metric];
      if (x === undefined || x === null || typeof y !== "number") left++;
      else pts.push({row: r, x: x, y: y});
    });
    var cats = null;
    if (pts.some(function (p) { return typeof p.x !== "number"; })) {
      var names = {};
      pts.forEach(function (p) { p.name = fmt(p.x) || "(empty)"; names[p.name] = true; });
      cats = Object.keys(names).sort(NATURAL.compare);
      pts.forEach(function (p) { p.x = cats.indexOf(p.name); });
    }
    pts.sort(function (a, b) { return a.x - b.x || NATURAL.compare(a.row.id, b.row.id); });  // uPlot reads x in order
    return {pts: pts, left: left, cats: cats};
  };

  function padded(u, min, max) {  // room for the points at either end: a twentieth of the range
    var pad = (max - min) / 20 || Math.abs(min) / 10 || 1;
    return [min - pad, max + pad];
  }

  Scatter.prototype.draw = function () {
    var param = this.x.value, metric = this.y.value, got = this.points(param, metric);
    var pts = got.pts, cats = got.cats;
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    this.out.textContent = "";
    var missing = got.left ? "; " + got.left + " runs without both left out" : "";
    if (!pts.length) { this.out.textContent = "No run of the table has both " + param + " and " + metric + missing + "."; return; }
    var xText = function (v) { return cats ? cats[v] : fmt(v); };
    var ys = pts.map(function (p) { return p.y; });
    var desc = "Scatter of " + metric + " (last value) against " + param + " for " + pts.length + " runs" + missing + ": " +
      pts.slice(0, 50).map(function (p) { return p.row.id + " (" + xText(p.x) + ", " + fmt(p.y) + ")"; }).join("; ") +
      (pts.length > 50 ? "; and " + (pts.length - 50) + " more." : ".");
    var box = el("div", {"class": "plot drawn", role: "img", "aria-labelledby": "scatter-desc"});
    box.appendChild(el("span", {"class": "desc", id: "scatter-desc"}, desc));
    this.out.appendChild(box);
    var xAxis = {label: param, font: FONT, labelFont: FONT, labelSize: 22, values: function (u, ticks) { return ticks.map(xText); }};
    if (cats) xAxis.splits = function () { return cats.map(function (c, i) { return i; }); };
    this.plot = new uPlot({
      width: Math.max(this.out.clientWidth, 200), height: 380,
      scales: {x: {time: false, range: cats ? [-0.5, cats.length - 0.5] : padded}},
      axes: [xAxis, {font: FONT, size: 72, label: metric, labelFont: FONT, labelSize: 22, values: function (u, ticks) { return ticks.map(fmt); }}],
      series: [
        {label: param, value: function (u, v) { return v === null ? "" : xText(v); }},
        {label: metric + " (last value)", stroke: PALETTE[0], paths: function () { return null; },
         points: {show: true, space: 0, size: 8, fill: PALETTE[0] + "b0"},
         value: function (u, v, s, i) { return i === null || i === undefined ? "" : fmt(v) + " (" + pts[i].row.id + ")"; }}
      ],
      cursor: {drag: {x: true, y: false}},
      legend: {live: true}
    }, [pts.map(function (p) { return p.x; }), ys], box);
    box.nbvChart = this;  // for the browser test
  };

  Scatter.prototype.resize = function () {
    if (this.plot && Math.abs(this.plot.width - this.out.clientWidth) > 1) this.plot.setSize({width: Math.max(this.out.clientWidth, 200), height: 380});
  };

  // -- logs: a search box above each, keeping the lines that hold what is typed --------
  function logSearch(pre) {
    var lines = pre.querySelectorAll(".line"), texts = [];
    for (var i = 0; i < lines.length; i++) texts.push(lines[i].textContent.toLowerCase());
    var box = el("input", {type: "search", "class": "log-search", placeholder: "Search these " + lines.length + " lines",
                           "aria-label": "search " + pre.getAttribute("aria-label"), autocomplete: "off"});
    var count = el("span", {"class": "muted", "aria-live": "polite"});
    var bar = el("div", {"class": "toolbar"});
    bar.appendChild(box); bar.appendChild(count);
    pre.parentNode.insertBefore(bar, pre);
    box.addEventListener("input", function () {
      var q = box.value.trim().toLowerCase(), n = 0;
      for (var i = 0; i < lines.length; i++) {
        var keep = texts[i].indexOf(q) >= 0;  // its step included
        lines[i].hidden = !keep;
        if (keep) n++;
      }
      count.textContent = q ? n + " of " + lines.length + " lines hold \u201c" + box.value.trim() + "\u201d" : "";
    });
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  document.addEventListener("DOMContentLoaded", function () {
    runPageCharts();
    Array.prototype.forEach.call(document.querySelectorAll("pre.log"), logSearch);
    var spec = document.getElementById("nbv-table");
    var root = document.getElementById("runs-app");
    if (spec && root) window.nbvTable = new RunsTable(root, JSON.parse(spec.textContent));
  });
})();
