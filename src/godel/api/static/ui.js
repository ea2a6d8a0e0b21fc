// Godel dashboard: what every part of the page shares (formats, DOM helpers, the API call).
// Plain JS, no build step. Everything from the server is set as text, never as HTML.
"use strict";
window.GodelUI = (() => {
  const $ = (id) => document.getElementById(id);

  // ---- formats: one time format with its zone (UTC); the local time in the tooltip --------
  const num = (n) => (n === null || n === undefined ? "—" : Math.round(n).toLocaleString("en-US"));
  function utc(ts) {
    if (!ts) return "—";
    return `${new Date(ts * 1000).toISOString().slice(0, 19).replace("T", " ")} UTC`;
  }
  // Today's times as `06:40:33 UTC`, older ones in full: for narrow table columns.
  function utcShort(ts) {
    const full = utc(ts);
    return ts && full.slice(0, 10) === utc(now()).slice(0, 10) ? full.slice(11) : full;
  }
  const local = (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "");
  function duration(seconds) {
    let s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    const units = [[Math.floor(s / 86400), "d"], [Math.floor((s % 86400) / 3600), "h"],
      [Math.floor((s % 3600) / 60), "m"], [s % 60, "s"]];
    const first = units.findIndex(([n]) => n > 0);
    return units.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(" ");
  }
  const now = () => Date.now() / 1000;
  const ago = (ts) => (ts ? `${duration(now() - ts)} ago` : "—");
  function until(ts) {
    if (!ts) return "—";
    const left = ts - now();
    return left >= 1 ? `in ${duration(left)}` : "due now";
  }
  function bytes(n) {
    let v = Number(n || 0);
    for (const unit of ["B", "KiB", "MiB", "GiB"]) {
      if (v < 1024 || unit === "GiB") return unit === "B" ? `${v} B` : `${v.toFixed(1)} ${unit}`;
      v /= 1024;
    }
    return `${v.toFixed(1)} GiB`;
  }

  // ---- DOM ------------------------------------------------------------------------------
  function text(id, value) {
    const node = typeof id === "string" ? $(id) : id;
    if (node && node.textContent !== String(value)) node.textContent = String(value);
  }
  function cell(value, cls, title) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    if (cls) td.className = cls;
    td.title = title || td.textContent;
    return td;
  }
  function time(ts, cls) {
    return cell(utcShort(ts), cls, `${utc(ts)} (${local(ts)} local)`);
  }
  function tag(value, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    const span = document.createElement("span");
    span.className = `tag ${value}`;
    span.textContent = value;
    td.appendChild(span);
    return td;
  }
  // An event id that finds the event when clicked (see triage.js).
  function idCell(id, cls) {
    const td = document.createElement("td");
    td.className = `id ${cls || ""}`.trim();
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.dataset.find = id;
    b.textContent = id;
    b.title = `find ${id}`;
    td.appendChild(b);
    return td;
  }
  function button(label, data, cls, needsAdmin) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    Object.entries(data).forEach(([k, v]) => { b.dataset[k] = v; });
    if (cls) b.className = cls;
    if (needsAdmin && !isAdmin) {
      b.disabled = true;
      b.title = "needs an admin login";
    }
    return b;
  }
  const seen = new WeakMap();  // tbody -> the data it shows: redraw only what changed
  function fill(tbodyId, items, toCells, emptyText) {
    const body = $(tbodyId);
    const key = JSON.stringify([items, emptyText]);
    if (seen.get(body) === key) return;
    seen.set(body, key);
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

  // ---- the API --------------------------------------------------------------------------
  // The session cookie (HttpOnly, SameSite=Strict) is the credential; the API also wants
  // X-Requested-With on every write made with it (its CSRF rule).
  const isAdmin = document.body.dataset.admin === "yes";
  function show(outId, message, isError) {
    const out = $(outId);
    out.textContent = message;
    out.className = `${out.tagName === "PRE" ? "result" : "note"}${isError ? " error" : ""}`;
  }
  // Returns [status, body]; status 0 when the API could not be reached.
  async function call(method, path) {
    let response;
    try {
      response = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: { "X-Requested-With": "godel-dashboard" },
      });
    } catch (err) {
      return [0, { detail: `the API could not be reached (${err.message || err})` }];
    }
    let body;
    try { body = await response.json(); } catch { body = { detail: response.statusText }; }
    if (response.status === 401) window.location.assign("/login");  // session over
    return [response.status, body];
  }
  // The body of a 2xx answer; otherwise the error is shown in `outId` and null returned.
  async function api(method, path, outId) {
    const [status, body] = await call(method, path);
    if (status >= 200 && status < 300) return body;
    if (status !== 401 && outId) {
      const why = status ? `HTTP ${status}: ${body.detail || JSON.stringify(body)}` : body.detail;
      show(outId, `${method} ${path} → ${why}`, true);
    }
    return null;
  }

  return { $, num, utc, utcShort, local, duration, ago, until, bytes, text, cell, time, tag, idCell,
    button, fill, isAdmin, show, call, api };
})();
