// The web chat page. Everything shown is set with textContent: a message can never become markup.
"use strict";

(function () {
  const KEY = "webcare.conversation";
  const transcript = document.getElementById("transcript");
  const form = document.getElementById("composer");
  const text = document.getElementById("text");
  const name = document.getElementById("name");
  const status = document.getElementById("status");
  let conversation = localStorage.getItem(KEY);

  // The page speaks the browser's language where webcare does (Dutch or English), else both, as it is written.
  const primary = (navigator.language || "").toLowerCase().split(/[-_]/)[0];
  const LANG = primary === "nl" || primary === "en" ? primary : null;
  if (LANG) {
    document.documentElement.lang = LANG;
    document.title = LANG === "nl" ? "Klantenservice" : "Customer service";
    for (const e of document.querySelectorAll("[data-lang]")) e.hidden = e.dataset.lang !== LANG;
    for (const e of document.querySelectorAll(".both")) e.hidden = true;
    for (const e of document.querySelectorAll("[data-placeholder-" + LANG + "]")) {
      e.placeholder = e.getAttribute("data-placeholder-" + LANG);
    }
  }
  const FAILED = {
    nl: "Er ging iets mis; probeer het nog eens.",
    en: "Something went wrong; please try again.",
  };

  function newId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Shows the server's error message (in the browser's language where it knows it), or a general one.
  async function showError(response) {
    let message = LANG ? FAILED[LANG] : FAILED.nl + " / " + FAILED.en;
    try { message = (await response.json()).error.message; } catch (_) { /* keep the default */ }
    status.textContent = message;
  }

  // The conversation id, asked for once; null (with the reason shown) when the server refused one.
  async function ensureConversation() {
    if (conversation && /^[0-9a-f]{64}$/.test(conversation)) return conversation;
    const response = await fetch("/chat/api/session", { method: "POST" });
    if (!response.ok) {
      await showError(response);
      return null;
    }
    conversation = (await response.json()).conversation;
    localStorage.setItem(KEY, conversation);
    return conversation;
  }

  function render(lines) {
    const items = lines.map((line) => {
      const li = document.createElement("li");
      li.className = "line " + line.direction;
      li.dataset.id = line.id;
      const p = document.createElement("p");
      p.textContent = line.text;
      li.appendChild(p);
      for (const button of line.buttons || []) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "choice";
        b.textContent = button.text;
        b.addEventListener("click", () => send({ button: button.data }));
        li.appendChild(b);
      }
      return li;
    });
    transcript.replaceChildren(...items);
    transcript.scrollTop = transcript.scrollHeight;
  }

  async function refresh() {
    if (!conversation) return;
    const response = await fetch("/chat/api/transcript?conversation=" + encodeURIComponent(conversation));
    if (response.ok) render(await response.json());
  }

  async function send(body) {
    status.textContent = "";
    const id = await ensureConversation();
    if (!id) return false;
    const response = await fetch("/chat/api/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(Object.assign(
        { conversation: id, id: newId(), name: name.value, language: navigator.language || undefined }, body)),
    });
    if (!response.ok) {
      await showError(response);
      return false;
    }
    listen();
    await refresh();
    return true;
  }

  let source = null;
  function listen() {
    if (source || !conversation) return;
    source = new EventSource("/chat/api/events?conversation=" + encodeURIComponent(conversation));
    source.addEventListener("changed", refresh);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = text.value.trim();
    if (!value) return;
    if (await send({ text: value })) text.value = "";
  });

  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  if (conversation) {
    listen();
    refresh();
  }
})();
