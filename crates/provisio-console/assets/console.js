// Provisio console: the one script. It only refreshes a page's live region
// (#live, data-live="true") while something is still running; every page
// works without it (reloading shows the same).
(function () {
  "use strict";
  const every = 1500;
  function refresh() {
    const live = document.getElementById("live");
    if (!live || live.dataset.live !== "true") return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        const next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (next) {
          live.replaceWith(next);
        }
        setTimeout(refresh, every);
      })
      .catch(function () { setTimeout(refresh, every * 4); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(refresh, every); });
})();
