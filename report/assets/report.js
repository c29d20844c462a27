// lutnas report: draw the charts, sort and filter the tables, show one device or all.
(function () {
  "use strict";
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function draw(id) {
    var el = document.getElementById(id);
    if (!el || el.dataset.drawn) return;
    el.dataset.drawn = "1";
    var fig = figures[id];
    Plotly.newPlot(el, fig.data, fig.layout, config);
  }

  function visible(el) { return el.offsetParent !== null; }

  function drawVisible() {
    Object.keys(figures).forEach(function (id) {
      var el = document.getElementById(id);
      if (!el) return;
      if (!el.dataset.drawn && visible(el)) draw(id);
      else if (el.dataset.drawn && visible(el)) Plotly.Plots.resize(el);
    });
  }

  // -- sorting: click (or Enter on) a header; numbers sort as numbers, the rest as text.
  function sortKey(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null || raw === "") return { empty: true };
    var n = Number(raw);
    return isNaN(n) ? { text: raw.toLowerCase() } : { num: n };
  }
  function compare(a, b) {
    if (a.empty || b.empty) return a.empty === b.empty ? 0 : (a.empty ? 1 : -1);
    if (a.num !== undefined && b.num !== undefined) return a.num - b.num;
    var x = a.text !== undefined ? a.text : String(a.num), y = b.text !== undefined ? b.text : String(b.num);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  function sortBy(th) {
    var table = th.closest("table"), col = th.cellIndex, body = table.tBodies[0];
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir);
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var c = compare(sortKey(r1.cells[col]), sortKey(r2.cells[col]));
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") sortBy(th); });
  });

  // -- filtering: rows whose text holds every word typed.
  document.querySelectorAll("input.filter").forEach(function (box) {
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      var table = document.getElementById(box.getAttribute("data-table"));
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        row.classList.toggle("hidden-filter", !words.every(function (w) { return text.indexOf(w) >= 0; }));
      });
    });
  });

  // -- the device selector: elements tagged with device indices show only for those devices.
  var picker = document.getElementById("device-filter");
  function applyDevice() {
    var chosen = picker.value;
    document.querySelectorAll("[data-dev]").forEach(function (el) {
      var ids = el.getAttribute("data-dev").split(" ");
      el.classList.toggle("hidden-dev", chosen !== "all" && ids.indexOf(chosen) < 0);
    });
    drawVisible();
  }
  picker.addEventListener("change", applyDevice);
  // Plotly's own responsive resize skips charts it finds hidden at that moment; resize every visible one.
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawVisible, 100);
  });
  document.querySelectorAll("details").forEach(function (d) { d.addEventListener("toggle", drawVisible); });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
    Object.keys(figures).forEach(draw);
  });
  applyDevice();
  document.body.setAttribute("data-ready", "1");
})();
