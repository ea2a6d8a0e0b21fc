// Godel dashboard: keeps the server-rendered page live over GET /api/v1/stream (EventSource).
// Plain JS, no build step. Everything from the server is set as text, never as HTML.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const WINDOW_S = 300;
  const HISTORY_KEY = "godel.history";
  const FEED_ROWS = 12;

  // ---- formatting -------------------------------------------------------------------------
  const num = (n) => (n === null || n === undefined ? "—" : Math.round(n).toLocaleString("en-US"));
  const when = (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "—");
  function bytes(n) {
    let v = Number(n || 0);
    for (const unit of ["B", "KiB", "MiB", "GiB"]) {
      if (v < 1024 || unit === "GiB") return unit === "B" ? `${v} B` : `${v.toFixed(1)} ${unit}`;
      v /= 1024;
    }
    return `${v.toFixed(1)} GiB`;
  }
  function ago(ts) {
    if (!ts) return "—";
    const s = Math.max(0, Math.round(Date.now() / 1000 - ts));
    if (s < 120) return `${s}s ago`;
    return s < 7200 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
  }

  // ---- DOM helpers ------------------------------------------------------------------------
  function text(id, value) {
    const node = $(id);
    if (node && node.textContent !== String(value)) node.textContent = String(value);
  }
  function cell(value, cls) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "—" : String(value);
    if (cls) td.className = cls;
    return td;
  }
  function tag(value) {
    const td = document.createElement("td");
    const span = document.createElement("span");
    span.className = `tag ${value}`;
    span.textContent = value;
    td.appendChild(span);
    return td;
  }
  function fill(tbodyId, items, toCells, emptyText) {
    const body = $(tbodyId);
    const rows = items.map((item) => {
      const tr = document.createElement("tr");
      toCells(item).forEach((td) => tr.appendChild(td));
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(emptyText);
      td.colSpan = body.closest("table").tHead.rows[0].cells.length;
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  // ---- the link banner --------------------------------------------------------------------
  function renderLink(link) {
    const down = link.state !== "connected";
    document.body.dataset.state = link.state;
    $("banner").className = `banner ${down ? "down" : "up"}`;
    $("banner-down").hidden = !down;
    $("banner-up").hidden = down;
    document.title = `Godel — ${down ? "Redis Connection Error" : "connected"}`;
    text("link-state", link.state);
    $("link-since").dataset.ts = link.since;
    text("link-since", when(link.since));
    text("link-reason", link.reason || "unknown");
    text("link-error", link.last_error || "");
    text("up-since", when(link.since));
    $("mem-stale").hidden = !down;
    if (down) renderQueues(null, deadInLedger);  // Redis's numbers are unknown from now on
    tickAgo();
  }
  function tickAgo() {
    text("link-ago", ago(Number($("link-since").dataset.ts)));
  }

  // ---- status ------------------------------------------------------------------------------
  let deadInLedger = 0;
  function renderStatus(s) {
    deadInLedger = (s.events || {}).dead || 0;
    renderLink(s.link);
    text("db-state", s.database);
    text("workers", (s.workers || []).length);
    text("uptime", `${Math.round(s.uptime_s)}s`);
    text("undispatched", num(s.undispatched));
    text("banner-backlog", num(s.undispatched));
    text("replayed", num(s.replay.replayed_total));
    text("reconciled", num(s.replay.reconciled_total));
    text("transitions", num((s.stats.transitions || {}).fallback || 0));
    text("last-replay", `${num(s.replay.replayed)} events in ${(s.replay.duration_s || 0).toFixed(2)} s`);
    text("replay-progress", s.stats.replay_in_progress ? "replay running…" : "");
    renderQueues(s.queues, deadInLedger);
    renderMemory(s.redis_memory);
    renderLedger(s.events || {});
    fill("agents", s.agents || [], (a) => [cell(a.id), tag(a.status), cell(a.last_event_type),
      cell(num(a.events_applied), "n")], "no agents yet");
    fill("processed", s.processed || [], (e) => [cell(e.type), cell(e.agent_id),
      cell(e.id, "id"), cell(when(e.processed_at))], "none yet");
    record(s);
    drawCharts();
  }
  function renderQueues(q, ledgerDead) {
    const dead = q ? q.dead || {} : {};
    text("q-pending", q ? num(q.pending) : "—");
    text("q-processing", q ? num(q.processing) : "—");
    text("q-delayed", q ? num(q.delayed) : "—");
    text("q-dead", num(q ? Object.values(dead).reduce((a, b) => a + b, 0) : ledgerDead));
    fill("dead-types", Object.entries(dead), ([t, n]) => [cell(t), cell(num(n), "n")],
      q ? "none" : "Redis unavailable");
  }
  function renderMemory(m) {
    const pct = m.max ? (100 * m.used) / m.max : null;
    $("mem-bar").style.width = `${Math.min(pct || 0, 100)}%`;
    $("mem-bar").parentElement.classList.toggle("high", pct !== null && pct > 80);
    text("mem-used", bytes(m.used));
    text("mem-max", m.max ? bytes(m.max) : "no maxmemory");
    text("mem-pct", pct === null ? "" : `(${pct.toFixed(1)} %)`);
    text("mem-policy", m.policy_safe ? "noeviction (safe)" : "may evict queue keys");
    text("mem-aof", m.aof_enabled ? "on" : "off");
  }
  function renderLedger(counts) {
    const list = $("ledger-counts");
    const items = Object.entries(counts).map(([status, n]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = status;
      dd.textContent = num(n);
      div.append(dt, dd);
      return div;
    });
    list.replaceChildren(...items);
  }

  // ---- live ledger feed --------------------------------------------------------------------
  const feed = [];
  function renderFeed(batch) {
    feed.unshift(...batch.events.slice().reverse());
    feed.length = Math.min(feed.length, FEED_ROWS);
    fill("feed", feed, (e) => [cell(e.seq, "n"), cell(e.type), tag(e.status),
      cell(e.dispatched ? "yes" : "not yet")], "waiting for new events…");
  }

  // ---- history and charts ------------------------------------------------------------------
  let history = [];
  try { history = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]"); } catch { history = []; }
  function record(s) {
    const counts = s.events || {};
    const q = s.queues || {};
    history.push({
      t: s.at,
      processed: counts.processed || 0,
      accepted: Object.values(counts).reduce((a, b) => a + b, 0),
      pending: q.pending ?? null,
      delayed: q.delayed ?? null,
      undispatched: s.undispatched ?? null,
    });
    history = history.filter((h) => h.t >= s.at - WINDOW_S - 5);
    if (history.length % 5 === 0) sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history));
  }
  function rates(key) {
    const out = [];
    for (let i = 1; i < history.length; i += 1) {
      const dt = history[i].t - history[i - 1].t;
      const dv = history[i][key] - history[i - 1][key];
      if (dt > 5) out.push({ t: history[i].t, v: null });  // the stream was away: a gap
      else if (dt > 0 && dv >= 0) out.push({ t: history[i].t, v: dv / dt });
    }
    return out;
  }
  const levels = (key) => history.map((h) => ({ t: h.t, v: h[key] }));
  function segments(points) {
    const out = [[]];
    for (const p of points) {
      if (p.v !== null) out[out.length - 1].push(p);
      else if (out[out.length - 1].length) out.push([]);
    }
    return out.filter((segment) => segment.length > 1);
  }
  function drawCharts() {
    drawChart($("chart-throughput"), [rates("processed"), rates("accepted")]);
    drawChart($("chart-depth"), [levels("pending"), levels("undispatched"), levels("delayed")]);
  }
  function svg(name, attrs, content) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    if (content !== undefined) node.textContent = content;
    return node;
  }
  function drawChart(chart, series) {
    const W = 600, H = 120, TOP = 18, now = history.length ? history[history.length - 1].t : 0;
    const max = Math.max(1, ...series.flat().filter((p) => p.v !== null).map((p) => p.v));
    const x = (t) => ((t - (now - WINDOW_S)) / WINDOW_S) * W;
    const y = (v) => H - 4 - (v / max) * (H - TOP - 4);
    const nodes = [svg("line", { x1: 0, x2: W, y1: TOP, y2: TOP }),
      svg("text", { x: 6, y: 13 }, `max ${max < 10 ? max.toFixed(1) : num(max)}`),
      svg("text", { x: W - 6, y: 13, "text-anchor": "end" }, "−5 min … now")];
    series.forEach((points, i) => segments(points).forEach((segment) => {
      const coords = segment.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
      nodes.push(svg("polyline", { points: coords, class: `s${i}` }));
    }));
    chart.replaceChildren(...nodes);
  }

  // ---- the stream --------------------------------------------------------------------------
  function pill(label, cls) {
    const node = $("stream-state");
    node.textContent = label;
    node.className = `pill ${cls}`;
  }
  function connect() {
    const es = new EventSource("/api/v1/stream?interval=1");
    es.onopen = () => pill("live", "live");
    es.onerror = () => {
      pill("API unreachable — retrying", "lost");
      if (es.readyState === EventSource.CLOSED) {
        // An EventSource does not show the status: a 401 means the session is over.
        fetch("/health", { credentials: "same-origin" }).then((r) => {
          if (r.status === 401) window.location.assign("/login");
        }).catch(() => {});
        setTimeout(connect, 2000);
      }
    };
    es.addEventListener("status", (e) => renderStatus(JSON.parse(e.data)));
    es.addEventListener("link", (e) => renderLink(JSON.parse(e.data)));
    es.addEventListener("events", (e) => renderFeed(JSON.parse(e.data)));
  }

  // ---- operator actions --------------------------------------------------------------------
  // The session cookie (HttpOnly, SameSite=Strict) is the credential; the API also wants
  // X-Requested-With on every write made with it (its CSRF rule).
  const isAdmin = document.body.dataset.admin === "yes";
  function show(message, isError) {
    const out = $("action-result");
    out.textContent = message;
    out.className = `result${isError ? " error" : ""}`;
  }
  async function admin(method, path) {
    let response;
    try {
      response = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: { "X-Requested-With": "godel-dashboard" },
      });
    } catch (err) {
      show(`${method} ${path} failed: ${err}`, true);
      return null;
    }
    let body;
    try { body = await response.json(); } catch { body = { detail: response.statusText }; }
    if (response.status === 401) {
      window.location.assign("/login");  // the session expired or its key was revoked
      return null;
    }
    if (!response.ok) {
      show(`${method} ${path} → HTTP ${response.status}: ${body.detail || JSON.stringify(body)}`, true);
      return null;
    }
    return body;
  }
  async function recover() {
    show("Recovering: probing Redis and replaying the ledger…");
    const r = await admin("POST", "/admin/recovery/redis");
    if (!r) return;
    const line = `Recovery: link ${r.state}; replayed ${num(r.replayed)} events in ${r.duration_s} s; ` +
      `${num(r.remaining)} still undispatched`;
    show(r.error ? `${line}\nRedis still failing: ${r.error}` : line, Boolean(r.error));
  }
  async function warm() {
    show("Warming the Redis cache from the database…");
    const r = await admin("POST", "/admin/cache/warm");
    if (r) show(`Cache warmed: ${num(r.warmed)} agents in ${r.duration_s} s`);
  }
  async function loadDead() {
    const r = await admin("GET", "/admin/dead");
    if (!r) return;
    $("dead-table").hidden = false;
    const redis = r.redis || {};
    const types = Array.from(new Set([...Object.keys(r.types), ...Object.keys(redis)])).sort();
    fill("dead-admin", types, (t) => [cell(t), cell(num(r.types[t] || 0), "n"),
      cell(r.redis ? num(redis[t] || 0) : "—", "n"), actions(t)], "no dead letters");
    show(`Dead letters: ${num(r.total)} in the ledger`);
  }
  function actions(type) {
    const td = document.createElement("td");
    for (const [action, label, cls] of [["inspect", "Inspect", ""], ["replay", "Replay", ""],
      ["purge", "Purge", "danger"]]) {
      const b = document.createElement("button");
      b.textContent = label;
      b.dataset.action = action;
      b.dataset.type = type;
      if (cls) b.className = cls;
      if (action !== "inspect" && !isAdmin) b.disabled = true;
      td.appendChild(b);
    }
    return td;
  }
  async function inspect(type) {
    const r = await admin("GET", `/admin/dead/events?type=${encodeURIComponent(type)}&limit=20`);
    if (!r) return;
    const heading = document.createElement("h3");
    heading.textContent = `${type}: oldest ${r.events.length} dead letters`;
    const items = r.events.map((e) => {
      const d = document.createElement("details");
      d.className = "dead";
      const summary = document.createElement("summary");
      summary.textContent = `${e.id} · attempts ${e.attempts} · ${e.last_error || "no error"}`;
      const pre = document.createElement("pre");
      pre.textContent = `payload: ${JSON.stringify(e.payload, null, 2)}\n` +
        `error: ${e.last_error}\nattempts: ${e.attempts}\nagent: ${e.agent_id || "—"}\n` +
        `created: ${when(e.created_at)}\nlast attempt: ${when(e.updated_at)}`;
      d.append(summary, pre);
      return d;
    });
    $("dead-detail").replaceChildren(heading, ...items);
  }
  async function bulk(action, type) {
    const verb = action === "purge" ? "Purge (discard)" : "Replay";
    if (!window.confirm(`${verb} every dead letter of type ${type}?`)) return;
    const r = await admin("POST", `/admin/dead/${action}?type=${encodeURIComponent(type)}`);
    if (!r) return;
    await loadDead();
    show(action === "purge" ? `Purged ${num(r.purged)} dead letters of ${type}` :
      `Replayed ${num(r.replayed)} dead letters of ${type} (${num(r.pushed)} pushed to Redis now)`);
    $("dead-detail").replaceChildren();
  }

  async function logout() {
    try {
      await fetch("/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Requested-With": "godel-dashboard" },
      });
    } finally {
      window.location.assign("/login");
    }
  }

  function wire() {
    if ($("logout")) $("logout").addEventListener("click", logout);
    $("btn-recover").addEventListener("click", recover);
    $("btn-warm").addEventListener("click", warm);
    $("btn-dead").addEventListener("click", loadDead);
    $("dead-admin").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-action]");
      if (!b) return;
      if (b.dataset.action === "inspect") inspect(b.dataset.type);
      else bulk(b.dataset.action, b.dataset.type);
    });
    setInterval(tickAgo, 1000);
  }

  wire();
  if (history.length > 1) drawCharts();
  // First paint: the width comes as data, not a style attribute (the CSP has no inline style).
  $("mem-bar").style.width = `${Math.min(Number($("mem-bar").dataset.pct) || 0, 100)}%`;
  connect();
})();
