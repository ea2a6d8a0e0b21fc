// Godel dashboard: keeps the server-rendered page live over GET /api/v1/stream (EventSource).
// The page's colour is the worst of: red (Redis link down, or the ledger not answering),
// amber (a problem in `attention`: dead letters or retries growing, no live worker, Redis
// memory high), grey (this page lost its stream: every figure is stale), else green.
"use strict";
(() => {
  const { $, num, utc, local, duration, ago, bytes, text, cell, time, tag, idCell, fill, show, api } =
    window.GodelUI;
  const charts = window.GodelCharts;
  const triage = window.GodelTriage;
  const FEED_ROWS = 12;
  const STALE_AFTER_MS = 5000;  // no status for this long: the stream is as good as lost

  // ---- the page's state ---------------------------------------------------------------------
  let link = { state: document.body.dataset.state };
  let attention = [];
  let stale = false;
  let staleSince = null;
  let lastMessage = Date.now();
  function overall() {
    if (stale) return "stale";
    if (link.state !== "connected" || attention.some((a) => a.level === "down")) return "down";
    return attention.length ? "warn" : "ok";
  }
  function paint() {
    const state = overall();
    document.body.dataset.overall = state;
    $("banner").className = `banner ${state}`;
    $("banner-stale").hidden = !stale;
  }
  function setStale(value) {
    if (value === stale) return;
    stale = value;
    staleSince = value ? lastMessage / 1000 : null;
    if (value) {
      $("stale-since").textContent = utc(staleSince);
      $("stale-since").title = local(staleSince);
      text("stale-ago", ago(staleSince));
    }
    pill(value ? "disconnected — retrying" : "live", value ? "lost" : "live");
    paint();
  }
  function pill(label, cls) {
    const node = $("stream-state");
    node.textContent = label;
    node.className = `pill ${cls}`;
  }

  // ---- the link banner ----------------------------------------------------------------------
  function renderLink(next) {
    link = next;
    const down = link.state !== "connected";
    document.body.dataset.state = link.state;
    $("banner-down").hidden = !down;
    $("banner-up").hidden = down;
    document.title = `Godel — ${down ? "Redis Connection Error" : "connected"}`;
    text("link-state", link.state);
    $("link-since").dataset.ts = link.since;
    text("link-since", utc(link.since));
    $("link-since").title = local(link.since);
    text("link-reason", link.reason || "unknown");
    text("link-error", link.last_error || "");
    text("up-since", utc(link.since));
    $("mem-stale").hidden = !down;
    if (down) renderQueues(null, deadInLedger);  // Redis's numbers are unknown from now on
    paint();
    tick();
  }
  let attentionKey = null;
  function renderAttention(items) {
    attention = items || [];
    const key = JSON.stringify(attention);
    if (key !== attentionKey) {
      attentionKey = key;
      $("attention").replaceChildren(...attention.map((a) => {
        const li = document.createElement("li");
        li.className = a.level;
        const b = document.createElement("b");
        b.textContent = a.text;
        const runbook = document.createElement("a");
        runbook.href = a.runbook;
        runbook.target = "_blank";
        runbook.rel = "noopener";
        runbook.textContent = "Runbook";
        li.append(b, document.createTextNode(` ${a.todo} `), runbook);
        return li;
      }));
    }
    paint();
  }
  function tick() {
    text("link-ago", ago(Number($("link-since").dataset.ts)));
    if (staleSince) text("stale-ago", ago(staleSince));
    if (!stale && Date.now() - lastMessage > STALE_AFTER_MS) setStale(true);
  }

  // ---- status -------------------------------------------------------------------------------
  let deadInLedger = 0;
  function renderStatus(s) {
    lastMessage = Date.now();
    setStale(false);
    pill("live", "live");
    deadInLedger = (s.events || {}).dead || 0;
    renderLink(s.link);
    renderAttention(s.attention);
    text("db-state", s.database);
    text("workers", num(s.fleet ? s.fleet.alive : (s.workers || []).length));
    text("uptime", duration(s.uptime_s));
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
    fill("agents", s.agents || [], (a) => [cell(a.id), tag(a.status), cell(a.last_event_type, "opt"),
      cell(num(a.events_applied), "n")], "no agents yet");
    fill("processed", s.processed || [], (e) => [cell(e.type), cell(e.agent_id, "opt"),
      idCell(e.id), cell(e.lane), time(e.processed_at, "opt")], "none yet");
    triage.update(s);
    charts.add(s.sample);
  }
  function renderQueues(q, ledgerDead) {
    const dead = q ? q.dead || {} : {};
    text("q-pending", q ? num(q.pending) : "—");
    text("q-processing", q ? num(q.processing) : "—");
    text("q-delayed", q ? num(q.delayed) : "—");
    text("q-dead", num(q ? Object.values(dead).reduce((a, b) => a + b, 0) : ledgerDead));
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
    const items = Object.entries(counts).map(([status, n]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = status;
      dd.textContent = num(n);
      div.append(dt, dd);
      return div;
    });
    $("ledger-counts").replaceChildren(...items);
  }

  // ---- live ledger feed: the lane that took each event, else where it waits ---------------
  const feed = [];
  const lane = (e) => e.lane || (e.status === "processed" ? "—" : e.dispatched ? "redis" : "ledger");
  function renderFeed(batch) {
    feed.unshift(...batch.events.slice().reverse());
    feed.length = Math.min(feed.length, FEED_ROWS);
    fill("feed", feed, (e) => [cell(e.seq, "n"), cell(e.type), tag(e.status), cell(lane(e))],
      "waiting for new events…");
  }

  // ---- the stream ---------------------------------------------------------------------------
  function connect() {
    const es = new EventSource("/api/v1/stream?interval=1");
    es.onopen = () => charts.load();  // the history, again after a break: it fills the gap
    es.onerror = () => {
      setStale(true);
      if (es.readyState === EventSource.CLOSED) {
        // An EventSource does not show the status: a 401 means the session is over.
        fetch("/health", { credentials: "same-origin" }).then((r) => {
          if (r.status === 401) window.location.assign("/login");
        }).catch(() => {});
        setTimeout(connect, 2000);
      }
    };
    es.addEventListener("status", (e) => renderStatus(JSON.parse(e.data)));
    es.addEventListener("link", (e) => {
      lastMessage = Date.now();
      renderLink(JSON.parse(e.data));
    });
    es.addEventListener("events", (e) => renderFeed(JSON.parse(e.data)));
  }

  // ---- operator actions ---------------------------------------------------------------------
  async function recover(outId) {
    show(outId, "Recovering: probing Redis and replaying the ledger…");
    const r = await api("POST", "/admin/recovery/redis", outId);
    if (!r) return;
    const line = `Recovery: link ${r.state}; replayed ${num(r.replayed)} events in ${r.duration_s} s; ` +
      `${num(r.remaining)} still undispatched`;
    show(outId, r.error ? `${line}\nRedis still failing: ${r.error}` : line, Boolean(r.error));
  }
  async function warm() {
    show("action-result", "Warming the Redis cache from the database…");
    const r = await api("POST", "/admin/cache/warm", "action-result");
    if (r) show("action-result", `Cache warmed: ${num(r.warmed)} agents in ${r.duration_s} s`);
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

  if ($("logout")) $("logout").addEventListener("click", logout);
  $("btn-recover").addEventListener("click", () => recover("action-result"));
  $("banner-recover").addEventListener("click", () => recover("banner-result"));
  $("btn-warm").addEventListener("click", warm);
  setInterval(tick, 1000);
  // First paint: the width comes as data, not a style attribute (the CSP has no inline style).
  $("mem-bar").style.width = `${Math.min(Number($("mem-bar").dataset.pct) || 0, 100)}%`;
  connect();
})();
