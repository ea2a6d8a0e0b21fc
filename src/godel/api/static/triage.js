// Godel dashboard: triage. Find an event by id; retrying events with their next attempt and
// last error; dead letters per type and one by one (replay or delete a single letter), with
// totals and pages; the fleet's workers; event types no handler matched.
"use strict";
window.GodelTriage = (() => {
  const { $, num, utc, local, ago, until, text, cell, time, tag, idCell, button, fill, isAdmin,
    show, api } = window.GodelUI;
  const PAGE = 10;

  // ---- find an event by id ------------------------------------------------------------------
  function field(dl, name, value, title) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    if (title) dd.title = title;
    dl.append(dt, dd);
  }
  function lane(e) {
    if (e.lane) return e.status === "processed" ? `processed through ${e.lane}` : `last tried via ${e.lane}`;
    if (e.status === "processed" || e.status === "purged") return "—";
    return e.dispatched ? "waiting in redis" : "waiting in the ledger (undispatched)";
  }
  async function find(id) {
    const out = $("search-result");
    $("search-id").value = id;
    const e = await api("GET", `/api/v1/events/${encodeURIComponent(id)}`, "search-result");
    if (!e) return;
    const dl = document.createElement("dl");
    dl.className = "kv";
    field(dl, "id", e.id);
    field(dl, "type", e.type);
    field(dl, "status", e.worker ? `${e.status} (held by ${e.worker})` : e.status);
    field(dl, "lane", lane(e));
    field(dl, "attempts", e.attempts);
    if (e.status === "retrying") field(dl, "next attempt", `${utc(e.available_at)} (${until(e.available_at)})`);
    field(dl, "last error", e.last_error);
    field(dl, "agent", e.agent_id);
    field(dl, "created", utc(e.created_at), local(e.created_at));
    field(dl, "updated", utc(e.updated_at), local(e.updated_at));
    field(dl, "processed", utc(e.processed_at), local(e.processed_at));
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(e.payload, null, 2);
    const parts = [dl, pre];
    if (e.status === "dead") {
      const row = document.createElement("div");
      row.className = "row";
      row.append(button("Replay", { action: "replay-one", id: e.id }, "", true),
        button("Delete", { action: "purge-one", id: e.id }, "danger", true));
      parts.push(row);
    }
    out.className = "";
    out.replaceChildren(...parts);
  }

  // ---- a list of pages: the first live from the snapshot, the next ones asked for -----------
  class Pager {
    constructor(name, fetchPage, render) {
      this.name = name;
      this.fetchPage = fetchPage;  // (cursor) => {events, next_cursor, total}
      this.render = render;  // (events) => void
      this.cursors = [];  // the cursor of each page shown after the first
      $(`${name}-next`).addEventListener("click", () => this.next());
      $(`${name}-first`).addEventListener("click", () => this.first());
    }
    get live() { return this.cursors.length === 0; }
    async first() {
      this.cursors = [];
      await this.refresh();
    }
    async next() {
      if (this.nextCursor === null || this.nextCursor === undefined) return;
      this.cursors.push(this.nextCursor);
      await this.refresh();
    }
    async refresh() {
      const cursor = this.live ? null : this.cursors[this.cursors.length - 1];
      const page = await this.fetchPage(cursor);
      if (page) this.show(page);
    }
    show(page) {
      this.nextCursor = page.next_cursor;
      this.render(page.events);
      const start = this.cursors.length * PAGE;
      const total = page.total ?? "?";
      text(`${this.name}-range`, page.events.length
        ? `${num(start + 1)}–${num(start + page.events.length)} of ${num(total)}` : `0 of ${num(total)}`);
      $(`${this.name}-next`).hidden = page.next_cursor === null || page.next_cursor === undefined;
      $(`${this.name}-first`).hidden = this.live;
    }
  }

  // ---- retrying ---------------------------------------------------------------------------------
  let retryingTotal = 0;
  const retrying = new Pager("retrying", async (cursor) => {
    const q = `status=retrying&limit=${PAGE}${cursor !== null ? `&cursor=${cursor}` : ""}`;
    const page = await api("GET", `/api/v1/events?${q}`, "search-result");
    return page && { ...page, total: retryingTotal };
  // Relative times are part of the rows' data, so a row is redrawn when its "in 3s" moves.
  }, (events) => fill("retrying", events.map((e) => [e, until(e.available_at)]), ([e, next]) => [
    idCell(e.id), cell(e.type, "opt"), cell(num(e.attempts), "n opt"),
    cell(next, "", utc(e.available_at)), cell(e.last_error, "err")], "nothing is retrying"));

  // ---- dead letters -----------------------------------------------------------------------------
  let deadType = null;  // letters of this type only (null: every type)
  let deadTotals = null;
  const letters = new Pager("letters", async (cursor) => {
    const q = [`limit=${PAGE}`];
    if (deadType) q.push(`type=${encodeURIComponent(deadType)}`);
    if (cursor !== null) q.push(`cursor=${cursor}`);
    return api("GET", `/admin/dead/events?${q.join("&")}`, "dead-result");
  }, (events) => fill("letters", events, (e) => [idCell(e.id), cell(e.type, "opt"),
    time(e.died_at), cell(num(e.attempts), "n opt"), cell(e.last_error, "opt err"), letterActions(e)],
  "no dead letters"));
  function letterActions(e) {
    const td = document.createElement("td");
    td.className = "actions";
    td.append(button("Details", { action: "details", id: e.id }, "opt"),
      button("Replay", { action: "replay-one", id: e.id }, "", true),
      button("Delete", { action: "purge-one", id: e.id }, "danger", true));
    return td;
  }
  function typeActions(type) {
    const td = document.createElement("td");
    td.className = "actions";
    td.append(button("Show", { action: "inspect", type }),
      button("Replay all", { action: "replay", type }, "", true),
      button("Purge all", { action: "purge", type }, "danger", true));
    return td;
  }
  function renderDead(s) {
    const ledger = s.dead_types;
    const redis = (s.queues || {}).dead || {};
    if (ledger === null || ledger === undefined) return;  // the ledger is not answering
    const types = Array.from(new Set([...Object.keys(ledger), ...Object.keys(redis)])).sort();
    const total = Object.values(ledger).reduce((a, b) => a + b, 0);
    text("dead-total", `${num(total)} in the ledger`);
    fill("dead-admin", types.map((t) => [t, ledger[t] || 0, s.queues ? redis[t] || 0 : null]),
      ([t, n, r]) => [cell(t), cell(num(n), "n"), cell(r === null ? "—" : num(r), "n opt"), typeActions(t)],
      "no dead letters");
    const key = JSON.stringify(ledger);
    if (key !== deadTotals) {  // a letter died, or was replayed or purged: show it
      deadTotals = key;
      if (letters.live) letters.refresh();
    }
  }
  function showType(type) {
    deadType = type;
    text("letters-title", type ? `Letters of type ${type}, oldest first` : "Letters, all types, oldest first");
    $("letters-all").hidden = !type;
    letters.first();
  }
  async function details(id) {
    const e = await api("GET", `/admin/dead/events/${encodeURIComponent(id)}`, "dead-result");
    if (!e) return;
    const box = document.createElement("details");
    box.className = "dead";
    box.open = true;
    const summary = document.createElement("summary");
    summary.textContent = `${e.id} · ${e.type} · attempts ${e.attempts} · ${e.last_error || "no error"}`;
    const pre = document.createElement("pre");
    pre.textContent = `payload: ${JSON.stringify(e.payload, null, 2)}\nerror: ${e.last_error}\n` +
      `attempts: ${e.attempts}\nagent: ${e.agent_id || "—"}\ncreated: ${utc(e.created_at)}\n` +
      `died: ${utc(e.died_at)}\n${e.last_traceback ? `\n${e.last_traceback}` : ""}`;
    box.append(summary, pre);
    $("dead-detail").replaceChildren(box);
  }
  async function act(action, b) {
    const { id, type } = b.dataset;
    const one = action.endsWith("-one");
    const verb = action.startsWith("purge") ? "purge" : "replay";
    const what = one ? `dead letter ${id}` : `every dead letter of type ${type}`;
    if (verb === "purge" && !window.confirm(`Delete ${what} for good? It cannot be replayed afterwards.`)) return;
    if (!one && verb === "replay" && !window.confirm(`Replay ${what}?`)) return;
    const q = one ? `id=${encodeURIComponent(id)}` : `type=${encodeURIComponent(type)}`;
    const r = await api("POST", `/admin/dead/${verb}?${q}`, "dead-result");
    if (!r) return;
    show("dead-result", verb === "purge"
      ? (one ? `Deleted dead letter ${id}` : `Purged ${num(r.purged)} dead letters of ${type}`)
      : (one ? `Replayed dead letter ${id} (${r.pushed ? "pushed to Redis" : "waits for the replay"})`
        : `Replayed ${num(r.replayed)} dead letters of ${type} (${num(r.pushed)} pushed to Redis now)`));
    $("dead-detail").replaceChildren();
    await letters.refresh();
    if (one && $("search-id").value === id && $("search-result").firstChild) await find(id);
  }

  // ---- workers and unhandled types --------------------------------------------------------------
  function held(w) {
    const redis = w.held_redis === null || w.held_redis === undefined ? "?" : num(w.held_redis);
    return `${redis} / ${num(w.held_ledger)}`;
  }
  function renderWorkers(fleet) {
    if (!fleet) return;
    text("workers-note", `(${num(fleet.alive)} alive; heartbeat every ${fleet.heartbeat_s}s)`);
    const rows = fleet.workers.map((w) => [w, ago(w.started_at), ago(w.heartbeat_at)]);
    fill("workers-table", rows, ([w, started, beat]) => [cell(w.name), tag(w.status),
      cell(started, "opt", utc(w.started_at)), cell(beat, "", utc(w.heartbeat_at)),
      cell(held(w)), cell(num(w.processed), "n opt")], "no workers have registered");
  }

  function update(s) {
    retryingTotal = (s.events || {}).retrying || 0;
    text("retrying-total", `(${num(retryingTotal)} in all)`);
    if (retrying.live) {
      retrying.show({ events: (s.retrying || []).slice(0, PAGE),
        next_cursor: retryingTotal > PAGE ? (s.retrying[PAGE - 1] || {}).seq ?? null : null,
        total: retryingTotal });
    }
    renderDead(s);
    renderWorkers(s.fleet);
    fill("unhandled", Object.entries(s.unhandled || {}), ([t, n]) => [cell(t), cell(num(n), "n")],
      "none: every event matched a handler");
  }
  function wire() {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("search-id").value.trim();
      if (id) find(id);
    });
    $("letters-all").addEventListener("click", () => showType(null));
    document.addEventListener("click", (event) => {
      const b = event.target.closest("button");
      if (!b) return;
      if (b.dataset.find) {
        find(b.dataset.find);
        $("search").scrollIntoView({ block: "nearest" });
        return;
      }
      const action = b.dataset.action;
      if (!action) return;
      if (action === "inspect") showType(b.dataset.type);
      else if (action === "details") details(b.dataset.id);
      else if (["replay", "purge", "replay-one", "purge-one"].includes(action)) act(action, b);
    });
    if (!isAdmin) document.body.classList.add("read-only");
  }

  wire();
  return { update, find };
})();
