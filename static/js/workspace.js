// The compare-and-judge workspace: view toggle, file navigation, autosave, active time and
// keyboard shortcuts. Plain script, no build step; every feature also works without it.
(() => {
  "use strict";
  const ws = document.querySelector(".workspace");
  if (!ws) return;
  const form = document.getElementById("judgement");
  const csrf = () => (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value || "";
  const post = (url, data, options = {}) => {
    data.append("csrfmiddlewaretoken", csrf());
    return fetch(url, { method: "POST", body: data, credentials: "same-origin", ...options });
  };

  // Split or unified diffs; remembered across pages. The server sends one layout (the
  // cookie's); diff_tools.js fetches the other when this changes ("marlin:diff-layout").
  const setView = (view) => {
    ws.dataset.diffView = view;
    try { localStorage.setItem("marlin.diffView", view); } catch (e) { /* private mode */ }
    document.cookie = `marlin_diff_view=${view}; path=/; max-age=31536000; SameSite=Lax`;
    document.querySelectorAll("[data-set-view]").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.setView === view)));
    document.dispatchEvent(new CustomEvent("marlin:diff-layout", { detail: { layout: view } }));
  };
  let saved = null;
  try { saved = localStorage.getItem("marlin.diffView"); } catch (e) { saved = null; }
  setView(saved === "split" ? "split" : "unified");
  document.querySelectorAll("[data-set-view]").forEach((b) =>
    b.addEventListener("click", () => setView(b.dataset.setView)));

  // Next / previous changed file, across both candidates.
  let fileIndex = -1;
  const jumpFile = (step) => {
    const files = Array.from(document.querySelectorAll(".diff-file"));
    if (!files.length) return;
    fileIndex = (fileIndex + step + files.length) % files.length;
    files[fileIndex].open = true;
    files[fileIndex].scrollIntoView({ block: "start" });
    const summary = files[fileIndex].querySelector("summary");
    if (summary) summary.focus();
  };

  // Autosave: the form goes to the server shortly after each change, and at once when the
  // page is hidden or left (closed tab, link), before which a pending timer would never
  // fire; keepalive lets that request outlive the page (the CSRF token travels in the body,
  // where Django also looks for it). A reload asks for the new page before the old one is
  // hidden, so the tab also keeps a copy of each change until the server confirms it, and a
  // reloaded page takes that copy back and saves it.
  const status = document.getElementById("draft-status");
  const draftKey = ws.dataset.draftKey ? `marlin.draft:${ws.dataset.draftKey}` : "";
  const store = (action) => {
    try { return action(window.sessionStorage); } catch (e) { return null; /* storage off */ }
  };
  if (form && ws.dataset.draftUrl) {
    let timer = null;
    let dirty = false;
    let submitting = false;
    const serialise = () => {
      const data = new URLSearchParams(new FormData(form));
      data.delete("csrfmiddlewaretoken");
      return data;
    };
    const save = (leaving) => {
      clearTimeout(timer);
      // The submit carries everything; a draft saved after it would be ignored.
      if (!dirty || submitting) return;
      dirty = false;
      const data = serialise();
      const sent = data.toString();
      // Browsers refuse keepalive bodies over 64 KB; a huge draft is then sent plainly,
      // which still completes when the page is only hidden.
      const keepalive = leaving && sent.length < 60000;
      post(ws.dataset.draftUrl, data, { keepalive }).then((r) => {
        if (r.status === 204) {
          store((s) => { if (s.getItem(draftKey) === sent) s.removeItem(draftKey); });
          return "Draft saved";
        }
        return r.ok ? r.text() : "Draft not saved";
      }).then((text) => { if (status) status.textContent = text; }).catch(() => {
        dirty = true;
        if (status) status.textContent = "Draft not saved (offline?)";
      });
    };
    const later = (ms) => {
      dirty = true;
      if (draftKey) store((s) => s.setItem(draftKey, serialise().toString()));
      clearTimeout(timer);
      timer = setTimeout(save, ms);
    };
    // Earlier turns' fields (while revising) sit outside the <form> and name it with form=.
    const ours = (event) => event.target && event.target.form === form;
    document.addEventListener("input", (event) => { if (ours(event)) later(600); });
    document.addEventListener("change", (event) => { if (ours(event)) later(150); });
    form.addEventListener("submit", () => { submitting = true; clearTimeout(timer); });
    window.addEventListener("pagehide", () => save(true));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") save(true);
    });

    const kept = draftKey ? store((s) => s.getItem(draftKey)) : null;
    if (kept !== null && kept !== serialise().toString()) {
      new URLSearchParams(kept).forEach((value, name) => {
        const field = form.elements.namedItem(name);
        // A radio group's RadioNodeList checks the radio with that value.
        if (field && "value" in field) field.value = value;
      });
      later(0);
    }
  } else if (ws.dataset.draftKey) {
    // No form: the task is not being judged any more, so the tab's copies are done with.
    const prefix = `marlin.draft:${ws.dataset.draftKey.split(":")[0]}:`;
    store((s) => Object.keys(s).filter((k) => k.startsWith(prefix)).forEach((k) => s.removeItem(k)));
  }

  // One submit per page: a double click would post the judgement twice. The "submit" event
  // fires only once the browser's validation passed, so a blocked form keeps its buttons.
  // A second submit event is cancelled at once, since a click may come before any timer
  // runs; the buttons are disabled only on the next tick, because a disabled submitter is
  // left out of the posted form (its action=follow_up, its formaction) and the browser builds
  // that after the event. A submit another listener cancelled, or a page restored from the
  // back/forward cache, gets its buttons back.
  if (form) {
    let sent = false;
    const setButtons = (disabled) => Array.from(form.elements)
      .filter((el) => el.type === "submit").forEach((b) => { b.disabled = disabled; });
    form.addEventListener("submit", (event) => {
      if (sent) { event.preventDefault(); return; }
      if (event.defaultPrevented) return;
      sent = true;
      setTimeout(() => {
        if (event.defaultPrevented) sent = false; else setButtons(true);
      }, 0);
    });
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) { sent = false; setButtons(false); }
    });
  }

  // Active time: seconds with the page visible and touched in the last minute.
  if (ws.dataset.heartbeatUrl) {
    let lastUse = Date.now();
    let lastTick = Date.now();
    let pending = 0;
    ["keydown", "mousemove", "mousedown", "scroll", "input", "touchstart"].forEach((name) =>
      document.addEventListener(name, () => { lastUse = Date.now(); }, { passive: true }));
    setInterval(() => {
      const now = Date.now();
      if (document.visibilityState === "visible" && now - lastUse < 60000) {
        pending += (now - lastTick) / 1000;
      }
      lastTick = now;
    }, 1000);
    const flush = () => {
      const seconds = Math.floor(pending);
      if (seconds < 1) return;
      pending -= seconds;
      const data = new FormData();
      data.append("seconds", String(seconds));
      post(ws.dataset.heartbeatUrl, data).catch(() => { pending += seconds; });
    };
    setInterval(flush, 15000);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") flush();
    });
  }

  // Keyboard shortcuts; never while typing in a field.
  const help = document.getElementById("shortcuts");
  const isTyping = (el) => !!el && (el.isContentEditable || el.tagName === "TEXTAREA" ||
    el.tagName === "SELECT" || (el.tagName === "INPUT" &&
      !["radio", "checkbox", "button", "submit", "reset"].includes(el.type)));
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && form) {
      const submit = form.querySelector('button[name="action"][value="submit"]');
      if (submit) { event.preventDefault(); submit.click(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    const radios = form ? form.querySelectorAll('input[name="preference"]') : [];
    let handled = true;
    if (event.key === "?" && help) {
      if (help.open) help.close(); else help.showModal();
    } else if (event.key === "u") {
      setView("unified");
    } else if (event.key === "s") {
      setView("split");
    } else if (event.key === "j") {
      jumpFile(1);
    } else if (event.key === "k") {
      jumpFile(-1);
    } else if (/^[1-7]$/.test(event.key) && radios.length === 7) {
      const radio = radios[Number(event.key) - 1];
      radio.checked = true;
      radio.focus();
      radio.dispatchEvent(new Event("change", { bubbles: true }));
    } else if (event.key === "f" && form) {
      const field = form.querySelector("#id_justification");
      if (field) field.focus();
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });
  document.querySelectorAll("[data-open-shortcuts]").forEach((b) =>
    b.addEventListener("click", () => help && help.showModal()));
})();
