// Godel sign-in: POST /login as JSON with X-Requested-With (the API's CSRF rule), then the
// dashboard. The key is sent once and never stored here; the session is an HttpOnly cookie.
"use strict";
(() => {
  const form = document.getElementById("login-form");
  const input = document.getElementById("key");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    let response;
    try {
      response = await fetch("/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Requested-With": "godel-dashboard" },
        body: JSON.stringify({ key: input.value.trim() }),
      });
    } catch (err) {
      error.textContent = `Sign-in failed: ${err}`;
      return;
    }
    input.value = "";
    if (response.ok) {
      window.location.assign("/");
      return;
    }
    let body = {};
    try { body = await response.json(); } catch { body = {}; }
    error.textContent = `Not signed in (HTTP ${response.status}): ${body.detail || response.statusText}`;
  });
})();
