// Godel dashboard: the charts, drawn from the server's history (GET /api/v1/history: the
// last hour, so a tab opened mid-incident sees it at once) plus each new sample the stream
// brings. Drawn at the SVG's real pixel size, so labels keep their shape on a phone.
"use strict";
window.GodelCharts = (() => {
  const { $, num, call } = window.GodelUI;
  const HOUR_S = 3600;
  const MIN_SPAN_S = 300;
  const H = 140;
  const TOP = 20;
  const BOTTOM = 16;
  let hist = { interval_s: 5, keep: 720, t: [], series: {} };

  // ---- the samples ------------------------------------------------------------------------
  async function load() {
    const [status, body] = await call("GET", "/api/v1/history");
    if (status !== 200) return;
    // Keep what this tab saw before the server's first sample (a restarted API starts empty).
    const first = body.t.length ? body.t[0] : Infinity;
    const keep = hist.t.filter((t) => t < first).length;
    const merged = { interval_s: body.interval_s, keep: body.keep, t: hist.t.slice(0, keep).concat(body.t),
      series: {} };
    for (const name of Object.keys(body.series)) {
      const mine = (hist.series[name] || []).slice(0, keep);
      merged.series[name] = mine.concat(body.series[name]);
    }
    hist = merged;
    trim();
    draw();
  }
  function add(sample) {
    if (!sample || (hist.t.length && sample.t <= hist.t[hist.t.length - 1])) return;
    hist.t.push(sample.t);
    for (const name of Object.keys(sample)) {
      if (name === "t") continue;
      if (!hist.series[name]) hist.series[name] = hist.t.slice(0, -1).map(() => null);
      hist.series[name].push(sample[name]);
    }
    trim();
    draw();
  }
  function trim() {
    const extra = hist.t.length - hist.keep;
    if (extra <= 0) return;
    hist.t.splice(0, extra);
    Object.values(hist.series).forEach((values) => values.splice(0, extra));
  }
  // A counter's rate between samples; null (a gap) across a missing figure, a pause in the
  // sampling or a counter that went down (a replayed dead letter starts its attempts again).
  function rates(name) {
    const values = hist.series[name] || [];
    const out = [];
    for (let i = 1; i < hist.t.length; i += 1) {
      const dt = hist.t[i] - hist.t[i - 1];
      const a = values[i - 1];
      const b = values[i];
      const ok = a !== null && b !== null && dt > 0 && dt <= hist.interval_s * 2.5 && b >= a;
      out.push({ t: hist.t[i], v: ok ? (b - a) / dt : null });
    }
    return out;
  }
  const levels = (name) => hist.t.map((t, i) => ({ t, v: (hist.series[name] || [])[i] ?? null }));

  // ---- drawing ----------------------------------------------------------------------------
  function svg(name, attrs, content) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    if (content !== undefined) node.textContent = content;
    return node;
  }
  function segments(points, gapS) {
    const out = [[]];
    let last = null;
    for (const p of points) {
      const gap = p.v === null || (last !== null && p.t - last > gapS);
      if (gap && out[out.length - 1].length) out.push([]);
      if (p.v !== null) out[out.length - 1].push(p);
      last = p.t;
    }
    return out.filter((segment) => segment.length > 0);
  }
  function spanLabel(span) {
    return span >= HOUR_S - 1 ? "last hour" : `last ${Math.max(1, Math.round(span / 60))} min`;
  }
  function downRuns(x, from) {
    const down = hist.series.down || [];
    const nodes = [];
    let start = null;
    hist.t.forEach((t, i) => {
      if (down[i] === 1 && start === null) start = t;
      const end = down[i] !== 1 || i === hist.t.length - 1;
      if (start !== null && end) {
        const x0 = x(Math.max(start, from));
        nodes.push(svg("rect", { x: x0, y: TOP, width: Math.max(2, x(t) - x0), height: H - TOP - BOTTOM,
          class: "down" }));
        start = null;
      }
    });
    return nodes;
  }
  function drawChart(chart, series, unit) {
    const W = Math.max(200, Math.round(chart.getBoundingClientRect().width || 600));
    chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const end = hist.t.length ? hist.t[hist.t.length - 1] : Date.now() / 1000;
    const from = Math.max(end - HOUR_S, Math.min(hist.t.length ? hist.t[0] : end, end - MIN_SPAN_S));
    const span = end - from;
    const shown = series.map((points) => points.filter((p) => p.t >= from));
    const values = shown.flat().filter((p) => p.v !== null).map((p) => p.v);
    const max = Math.max(1, ...values);
    const x = (t) => ((t - from) / span) * (W - 2) + 1;
    const y = (v) => H - BOTTOM - (v / max) * (H - TOP - BOTTOM);
    const nodes = [...downRuns(x, from),
      svg("line", { x1: 0, x2: W, y1: TOP, y2: TOP }),
      svg("line", { x1: 0, x2: W, y1: H - BOTTOM, y2: H - BOTTOM }),
      svg("text", { x: 4, y: 13 }, `max ${max < 10 ? max.toFixed(1) : num(max)}${unit}`),
      svg("text", { x: 4, y: H - 3 }, `−${Math.round(span / 60)} min`),
      svg("text", { x: W - 4, y: H - 3, "text-anchor": "end" }, "now")];
    const gap = hist.interval_s * 2.5;
    shown.forEach((points, i) => segments(points, gap).forEach((segment) => {
      if (segment.length === 1) {
        const p = segment[0];
        nodes.push(svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 1.5, class: `s${i}` }));
        return;
      }
      const coords = segment.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
      nodes.push(svg("polyline", { points: coords, class: `s${i}` }));
    }));
    if (!values.length) nodes.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no samples yet"));
    chart.replaceChildren(...nodes);
    chart.dataset.samples = String(hist.t.filter((t) => t >= from).length);
    chart.dataset.from = String(hist.t.length ? hist.t[0] : "");
    return span;
  }
  function draw() {
    const span = drawChart($("chart-throughput"),
      [rates("processed"), rates("accepted"), [], rates("failed")], "/s");
    drawChart($("chart-depth"),
      [levels("pending"), levels("undispatched"), levels("delayed"), levels("dead")], "");
    document.querySelectorAll(".span-label").forEach((node) => { node.textContent = spanLabel(span); });
  }
  let pending = false;
  window.addEventListener("resize", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  });

  return { load, add, draw };
})();
