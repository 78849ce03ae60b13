/* Shared by every UI page: escaping, JSON fetches with the CSRF header, and the plan-then-run dialog. */
(function () {
  "use strict";
  var meta = function (n) { var m = document.querySelector("meta[name=\"" + n + "\"]"); return m ? m.content : ""; };
  var csrf = meta("csrf-token");
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c]; });
  }
  function get(path) { return fetch(path, { credentials: "same-origin" }).then(function (r) { return r.json(); }); }
  function post(path, body) {
    return fetch(path, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { j._status = r.status; return j; }); });
  }
  var $ = function (id) { return document.getElementById(id); };
  var pending = null;

  function closeModal() { $("modal").hidden = true; pending = null; }

  /* Plan first (a dry run through the CLI's planner), show it, run only on confirmation. */
  function action(params) {
    $("modal").hidden = false;
    $("modal-title").textContent = params.action === "resume" ? "Resume backfill " + params.backfill_id :
      params.action.charAt(0).toUpperCase() + params.action.slice(1) + (params.select ? " " + params.select : " everything");
    $("modal-plan").textContent = "planning…";
    $("modal-error").textContent = "";
    $("modal-ok").disabled = true;
    post("/api/plan", params).then(function (plan) {
      if (plan.error) { $("modal-plan").textContent = ""; $("modal-error").textContent = plan.error; return; }
      $("modal-plan").textContent = "$ " + plan.command + "\n\n" + plan.lines.join("\n");
      $("modal-ok").disabled = !!plan.empty;
      $("modal-ok").textContent = plan.empty ? "Nothing to run" : "Run " + (plan.total || "") + (params.action === "check" ? " checks" : " unit(s)");
      pending = params;
    });
  }

  function start() {
    if (!pending) return;
    var params = pending;
    $("modal-ok").disabled = true;
    $("modal-plan").textContent += "\n\nstarting…";
    post("/api/jobs", params).then(function (job) {
      if (job.error) { $("modal-error").textContent = job.error; return; }
      var tries = 0;
      (function poll() {
        get("/api/jobs/" + job.id).then(function (j) {
          if (j.run_id) { location.href = "/runs/" + j.run_id; return; }
          if (j.finished) { $("modal-plan").textContent = j.lines.join("\n"); if (j.error) $("modal-error").textContent = j.error; return; }
          if (++tries < 600) setTimeout(poll, 250);
        });
      })();
    });
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("[data-action]") : null;
    if (!b) return;
    e.preventDefault();
    var p = { action: b.getAttribute("data-action") };
    if (p.action === "resume") p.backfill_id = parseInt(b.getAttribute("data-backfill"), 10);
    else {
      p.select = b.getAttribute("data-select") || window.SQA.selection || "";
      var parts = $("act-partitions"), mode = $("act-mode");
      if (parts && parts.value.trim()) p.partitions = parts.value.trim();
      if (mode) p.mode = mode.value;
    }
    action(p);
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !$("modal").hidden) closeModal(); });
  $("modal-cancel").addEventListener("click", closeModal);
  $("modal-ok").addEventListener("click", start);
  window.SQA = { esc: esc, get: get, post: post, action: action, selection: "",
                 readOnly: meta("read-only") === "true" };
})();
