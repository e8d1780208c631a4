// The console's only script: live updates and confirmations. Pages are rendered (and escaped) on the server;
// this script never builds markup from data. On a `changed` event it refetches the page and swaps in the
// server-rendered `#live` area, parsed by DOMParser (which runs no scripts).
"use strict";

(function () {
  const live = document.getElementById("live");
  const source = document.body.dataset.events;

  if (live && source && window.EventSource) {
    let busy = false;
    let again = false;
    const refresh = async function () {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        if (response.ok && !response.redirected) {
          const doc = new DOMParser().parseFromString(await response.text(), "text/html");
          const fresh = doc.getElementById("live");
          if (fresh) live.replaceChildren(...fresh.childNodes);
        }
      } finally {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    };
    const events = new EventSource(source);
    events.addEventListener("changed", refresh);
    window.addEventListener("pagehide", () => events.close());
  }

  // Forms that undo or announce something ask first.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
