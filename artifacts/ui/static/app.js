/* artifacts ui: draws the charts (uPlot) and keeps live pages fresh. No inline script anywhere:
   data comes from <script type="application/json"> blocks and from the app's own JSON endpoints. */
(function () {
  "use strict";
  var PALETTE = ["#2c6bed", "#c62f3b", "#1f8a4c", "#c77700", "#7b3fb8", "#0f8b8d", "#a0527a", "#5f6b7a"];
  var plots = {};

  function readJson(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function tables(chart) {
    return chart.series.map(function (s) { return [s.x, s.y]; });
  }

  function dataOf(chart) {
    if (chart.series.length === 1) return [chart.series[0].x, chart.series[0].y];
    return uPlot.join(tables(chart));
  }

  function countPoints(data) {
    var n = 0;
    for (var i = 1; i < data.length; i++) {
      for (var j = 0; j < data[i].length; j++) if (data[i][j] !== null && data[i][j] !== undefined) n++;
    }
    return n;
  }

  function draw(el, chart) {
    var data = dataOf(chart);
    var width = Math.max(280, el.clientWidth - 14);
    var series = [{ label: "step" }].concat(chart.series.map(function (s, i) {
      return { label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true,
               points: { show: data[0].length < 60 } };
    }));
    var opts = { width: width, height: 210, series: series, legend: { show: chart.series.length > 1 },
                 scales: { x: { time: false } }, axes: [{ label: "step" }, {}] };
    var target = el.querySelector(".plot") || el;
    if (plots[chart.id]) plots[chart.id].destroy();
    plots[chart.id] = new uPlot(opts, data, target);
    el.setAttribute("data-points", String(countPoints(data)));
    el.setAttribute("data-drawn", "1");
  }

  function drawAll(spec) {
    if (!spec) return;
    spec.charts.forEach(function (chart) {
      var el = document.querySelector('[data-chart="' + CSS.escape(chart.id) + '"]');
      if (el) draw(el, chart);
    });
  }

  function live(url) {
    // a run with no metrics flushed yet has no charts (and no chart data): its first rows reload it
    var spec = readJson("chart-data") || { charts: [] };
    function tick() {
      fetch(url, { headers: { "accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (!body) return;
          if (body.status !== "running") { window.location.reload(); return; }
          var byId = {};
          body.series.forEach(function (s) { byId[s.metric] = s; });
          var known = {};
          spec.charts.forEach(function (c) { known[c.id] = true; });
          var missing = body.series.some(function (s) { return !known["m-" + s.metric]; });
          if (missing) { window.location.reload(); return; }
          spec.charts.forEach(function (c) {
            var s = byId[c.metric];
            if (!s) return;
            c.series = [{ label: c.metric, x: s.x, y: s.y }];
            var el = document.querySelector('[data-chart="' + CSS.escape(c.id) + '"]');
            if (el) draw(el, c);
          });
        })
        .catch(function () {})
        .finally(function () { window.setTimeout(tick, 3000); });
    }
    window.setTimeout(tick, 3000);
  }

  function watchHead(url, seq) {
    var notice = document.getElementById("changed");
    function tick() {
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (body && body.seq !== seq && notice) notice.classList.remove("hidden");
        })
        .catch(function () {})
        .finally(function () { window.setTimeout(tick, 5000); });
    }
    window.setTimeout(tick, 5000);
  }

  function selection() {
    var form = document.getElementById("select-runs");
    if (!form) return;
    var button = form.querySelector("button[type=submit]");
    function update() {
      var n = form.querySelectorAll("input[name=runs]:checked").length;
      button.disabled = n === 0;
      button.textContent = n ? "Compare " + n + " run" + (n > 1 ? "s" : "") : "Compare selected";
    }
    form.addEventListener("change", update);
    update();
  }

  function start() {
    drawAll(readJson("chart-data"));
    var body = document.body;
    if (body.getAttribute("data-live")) live(body.getAttribute("data-live"));
    if (body.getAttribute("data-head")) watchHead(body.getAttribute("data-head"), Number(body.getAttribute("data-seq")));
    selection();
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(function () { drawAll(readJson("chart-data")); }, 200);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
