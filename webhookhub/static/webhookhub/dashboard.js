// The admin dashboard, live: polls its JSON (admin/dashboard/live.json) every few
// seconds, puts the new figures in place and redraws the charts of the last hour.
// Plain JavaScript, no build step; every word shown comes from the page (translated).
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var labels = JSON.parse(document.getElementById("dashboard-labels").textContent);
  var data = JSON.parse(document.getElementById("dashboard-live").textContent);
  var url = root.dataset.liveUrl;
  var every = 1000 * (parseInt(root.dataset.pollSeconds, 10) || 5);
  var lang = document.documentElement.lang || undefined;
  var number = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
  var tickNumber = new Intl.NumberFormat(lang, { maximumFractionDigits: 2 });
  var SVG = "http://www.w3.org/2000/svg";

  function fill(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (_, name) { return values[name]; });
  }
  function fmt(value) { return value === null || value === undefined ? "–" : number.format(value); }
  function counted(figure) {
    return figure.exact ? fmt(figure.count) : fill(labels.at_least, { n: fmt(figure.count) });
  }
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    var s = Math.floor(seconds);
    if (s < 60) return fill(labels.seconds, { s: s });
    if (s < 3600) return fill(labels.minutes, { m: Math.floor(s / 60) });
    if (s < 86400) return fill(labels.hours, { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
    return fill(labels.days, { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
  }
  // Times as the server shows them (its time zone), not the browser's.
  function clock(epochSeconds, withSeconds) {
    var d = new Date((epochSeconds + data.utc_offset_seconds) * 1000);
    return d.toISOString().slice(11, withSeconds ? 19 : 16);
  }
  function set(id, text, href) {
    var el = document.getElementById(id);
    if (!el) return;
    if (el.textContent !== text) el.textContent = text;
    if (href && el.getAttribute("href") !== href) el.setAttribute("href", href);
  }
  function mark(id, cls, on) {
    var el = document.getElementById(id);
    var card = el && el.closest(".wh-card");
    if (card) card.classList.toggle(cls, !!on);
  }

  function render() {
    set("live-backlog", counted(data.backlog), data.links.backlog);
    mark("live-backlog", "bad", data.backlog.count);
    set("live-backlog-age", age(data.backlog_age_seconds));
    set("live-in-flight", counted(data.in_flight), data.links.in_flight);
    set("live-open-circuits", fmt(data.open_circuits), data.links.open_circuits);
    mark("live-open-circuits", "bad", data.open_circuits);
    var waiting = data.waiting;
    set("live-waiting-total", waiting.exact ? fmt(waiting.total) : fill(labels.at_least, { n: fmt(waiting.total) }));
    mark("live-waiting-total", "warn", waiting.total);
    Object.keys(waiting.reasons).forEach(function (reason) {
      set("waiting-" + reason, fmt(waiting.reasons[reason]), waiting.links[reason]);
    });
    document.getElementById("waiting-capped").hidden = waiting.exact;
    set("live-events-rate", fmt(data.events_per_s_last_minute));
    set("live-events-hour", fmt(data.hour.events));
    set("live-success-rate", data.hour.success_rate === null ? "–" : fmt(data.hour.success_rate) + " %");
    set("live-ok-hour", fmt(data.hour.attempts_ok));
    set("live-failed-hour", fmt(data.hour.attempts_failed));
    set("live-p50", fmt(data.hour.p50_ms));
    set("live-p95", fmt(data.hour.p95_ms));
    var computed = Date.parse(data.computed_at) / 1000;
    set("live-status", fill(labels.updated, { time: clock(computed, true) }));
    var charts = root.querySelectorAll(".wh-live-chart");
    for (var i = 0; i < charts.length; i++) draw(charts[i]);
  }

  // Round axis values from 0 to at least `peak` (1, 2, 2.5 or 5 × 10^n), as charts.py.
  function ticks(peak) {
    if (!(peak > 0)) return [0, 1];
    var raw = peak / 4, magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * magnitude; })
      .filter(function (s) { return s >= raw; })[0];
    var out = [];
    for (var v = 0; v < peak + step - 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
    return out;
  }
  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function draw(figure) {
    var plot = figure.querySelector(".plot");
    var keys = figure.dataset.series.split(" ");
    var t = data.series.t;
    var width = Math.max(240, plot.clientWidth), height = plot.clientHeight || 170;
    var left = 44, right = 8, top = 8, bottom = 20;
    var w = width - left - right, h = height - top - bottom;
    var peak = 0, any = false;
    keys.forEach(function (key) {
      data.series[key].forEach(function (v) {
        if (v !== null) { if (v > 0) any = true; if (v > peak) peak = v; }
      });
    });
    var axis = ticks(figure.dataset.max ? Math.max(peak, +figure.dataset.max) : peak);
    var top_value = axis[axis.length - 1] || 1;
    var t0 = t[0], t1 = t[t.length - 1] + data.step_seconds;
    function x(ts) { return left + (w * (ts - t0)) / (t1 - t0); }
    function y(v) { return top + h - (h * v) / top_value; }

    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img" });
    svg.setAttribute("aria-label", figure.querySelector("figcaption").textContent);
    axis.forEach(function (v) {
      svg.appendChild(el("line", { "class": "grid", x1: left, x2: left + w, y1: y(v), y2: y(v) }));
      svg.appendChild(el("text", { x: left - 4, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }, tickNumber.format(v)));
    });
    // A time label every 10 minutes, on the server's clock.
    var first = Math.ceil((t0 + data.utc_offset_seconds) / 600) * 600 - data.utc_offset_seconds;
    for (var ts = first; x(ts) <= left + w - 16; ts += 600) {  // no label cut at the edge
      svg.appendChild(el("line", { "class": "axis", x1: x(ts), x2: x(ts), y1: top + h, y2: top + h + 4 }));
      svg.appendChild(el("text", { x: x(ts), y: height - 4, "text-anchor": "middle" }, clock(ts, false)));
    }
    svg.appendChild(el("line", { "class": "axis", x1: left, x2: left + w, y1: top + h, y2: top + h }));
    if (!any) {
      svg.appendChild(el("text", { "class": "empty", x: left + w / 2, y: top + h / 2, "text-anchor": "middle" }, labels.empty));
    } else {
      keys.forEach(function (key) {
        var values = data.series[key], d = "", pen = "M";
        values.forEach(function (v, i) {
          if (v === null) { pen = "M"; return; }
          var px = x(t[i] + data.step_seconds / 2).toFixed(1), py = y(v).toFixed(1);
          d += pen + px + "," + py;
          pen = "L";
          // A value with no neighbour would be a line of no length: a dot instead.
          if ((i === 0 || values[i - 1] === null) && (i === values.length - 1 || values[i + 1] === null)) {
            svg.appendChild(el("circle", { cx: px, cy: py, r: 1.5, "class": "dot s-" + key }));
          }
        });
        if (d) svg.appendChild(el("path", { d: d, "class": "s-" + key }));
      });
    }
    var legend = figure.querySelector(".wh-legend");
    if (!legend) {
      legend = document.createElement("ul");
      legend.className = "wh-legend";
      keys.forEach(function (key) {
        var item = document.createElement("li");
        var swatch = document.createElement("span");
        swatch.className = "sw s-" + key;
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(labels[key]));
        legend.appendChild(item);
      });
      figure.insertBefore(legend, plot);
    }
    plot.replaceChildren(svg);
  }

  var timer = null, busy = false;
  function poll() {
    timer = null;
    if (busy) return;
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (fresh) { data = fresh; render(); })
      .catch(function (error) {
        var since = clock(Date.parse(data.computed_at) / 1000, true);
        set("live-status", fill(labels.stale, { time: since, error: error.message }));
      })
      .then(function () { busy = false; schedule(); });
  }
  function schedule() {
    if (timer === null && !document.hidden) timer = setTimeout(poll, every);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(timer); timer = null; } else { poll(); }
  });
  var resized = null;
  window.addEventListener("resize", function () {
    clearTimeout(resized);
    resized = setTimeout(render, 150);
  });
  render();
  schedule();
})();
