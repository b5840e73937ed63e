/* The console dashboard's live refresh: every data-refresh-seconds, fetch the panels fragment
   (same origin, staff session) and swap it in. No inline script, so it runs under
   script-src 'self'. On an error the panels stay as they were and the status says so. */
(function () {
  "use strict";
  var panels = document.getElementById("console-panels");
  var status = document.getElementById("console-refresh-status");
  if (!panels) {
    return;
  }
  var url = panels.getAttribute("data-refresh-url");
  var seconds = Number(panels.getAttribute("data-refresh-seconds")) || 15;

  function schedule() {
    window.setTimeout(refresh, seconds * 1000);
  }

  function refresh() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(url, { credentials: "same-origin", redirect: "manual", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        panels.innerHTML = html;
        panels.setAttribute("data-refreshed", String(Number(panels.getAttribute("data-refreshed") || 0) + 1));
        if (status) {
          status.classList.remove("stale");
          status.textContent = "Updated " + new Date().toLocaleTimeString();
        }
      })
      .catch(function (error) {
        if (status) {
          status.classList.add("stale");
          status.textContent = "Not refreshed (" + error.message + "); retrying";
        }
      })
      .then(schedule);
  }

  schedule();
})();
