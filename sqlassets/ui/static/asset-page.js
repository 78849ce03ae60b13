/* The asset page: raw / compiled code tabs (compiled fetched on demand: it may need dbt to compile). */
(function () {
  "use strict";
  var page = document.querySelector(".asset-page");
  var key = page.getAttribute("data-key");
  var loaded = false;
  document.querySelectorAll(".tab").forEach(function (t) {
    t.addEventListener("click", function () {
      document.querySelectorAll(".tab").forEach(function (x) { x.classList.toggle("on", x === t); });
      var which = t.getAttribute("data-tab");
      document.getElementById("code-raw").hidden = which !== "raw";
      var comp = document.getElementById("code-compiled");
      comp.hidden = which !== "compiled";
      if (which === "compiled" && !loaded && !comp.textContent.trim()) {
        loaded = true;
        comp.textContent = "compiling…";
        SQA.get("/api/compiled/" + key).then(function (r) { comp.textContent = r.sql || ("-- " + (r.note || r.error || "no compiled SQL")); });
      }
    });
  });
  window.SQA.selection = key;
})();
