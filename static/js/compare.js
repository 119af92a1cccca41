// How the two candidates are compared (side by side, one at a time at full width, or the
// direct A vs B diff) and the judgement panel's fold. State lives on .workspace as data
// attributes that the CSS reads, and is remembered across pages. Without script the page
// shows both candidates side by side with the panel open, which is complete.
(() => {
  "use strict";
  const ws = document.querySelector(".workspace");
  if (!ws) return;
  // A page without the A vs B panel (a judging task: its slots may be swapped) has two modes.
  const MODES = document.querySelector("[data-set-compare=ab]")
    ? ["side", "single", "ab"]
    : ["side", "single"];
  const remember = (key, value) => {
    try { localStorage.setItem(key, value); } catch (e) { /* private mode */ }
  };
  const recall = (key) => {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  };
  const press = (selector, attribute, value) =>
    document.querySelectorAll(selector).forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset[attribute] === value)));

  const setCompare = (mode) => {
    // A mode this page lacks (remembered from another page) is shown as side by side, and
    // the remembered choice is kept for the pages that have it.
    const known = MODES.includes(mode);
    if (!known) mode = "side";
    ws.dataset.compare = mode;
    if (known) remember("marlin.compare", mode);
    press("[data-set-compare]", "setCompare", mode);
    if (mode === "ab") {
      // The A vs B diff is built on first sight (htmx "revealed" or this event).
      document.querySelectorAll("[data-mode-panel=ab] [hx-get]").forEach((el) => {
        if (window.htmx) window.htmx.trigger(el, "marlin:show-ab");
      });
    }
  };
  const setFocus = (slot) => {
    ws.dataset.focus = slot === "B" ? "B" : "A";
    remember("marlin.focus", ws.dataset.focus);
    press("[data-set-focus]", "setFocus", ws.dataset.focus);
  };
  setFocus(recall("marlin.focus"));
  setCompare(recall("marlin.compare"));
  document.querySelectorAll("[data-set-compare]").forEach((b) =>
    b.addEventListener("click", () => setCompare(b.dataset.setCompare)));
  document.querySelectorAll("[data-set-focus]").forEach((b) =>
    b.addEventListener("click", () => {
      setFocus(b.dataset.setFocus);
      setCompare("single");
    }));

  // The panel folds to a bar (mostly for narrow screens, where it sits at the bottom).
  const panel = document.getElementById("judgement-panel");
  const toggle = document.querySelector("[data-toggle-panel]");
  const setFolded = (folded) => {
    if (!panel || !toggle) return;
    panel.classList.toggle("folded", folded);
    toggle.setAttribute("aria-expanded", String(!folded));
  };
  if (panel && toggle) {
    // Narrow screens start folded: the sheet would otherwise cover most of the diff.
    const narrowScreen = window.matchMedia("(max-width: 1099px)");
    const fold = () => {
      const saved = recall("marlin.panelFolded");
      setFolded(narrowScreen.matches && saved !== "0");
    };
    fold();
    narrowScreen.addEventListener("change", fold);
    toggle.addEventListener("click", () => {
      setFolded(!panel.classList.contains("folded"));
      remember("marlin.panelFolded", panel.classList.contains("folded") ? "1" : "0");
    });
    // Anything that moves focus into the panel (a shortcut, Tab, an error) unfolds it.
    panel.addEventListener("focusin", () => setFolded(false));
  }

  const isTyping = (el) => !!el && (el.isContentEditable || el.tagName === "TEXTAREA" ||
    el.tagName === "SELECT" || (el.tagName === "INPUT" &&
      !["radio", "checkbox", "button", "submit", "reset"].includes(el.type)));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    if (document.querySelector("dialog[open]")) return;
    let handled = true;
    if (event.key === "t") {
      if (ws.dataset.compare === "single") setFocus(ws.dataset.focus === "A" ? "B" : "A");
      setCompare("single");
    } else if (event.key === "v") {
      setCompare(MODES[(MODES.indexOf(ws.dataset.compare) + 1) % MODES.length]);
    } else if (event.key === "w") {
      const button = document.querySelector("[data-toggle-whitespace]");
      if (button) button.click(); else handled = false;
    } else if (event.key === "p" && toggle) {
      toggle.click();
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });
})();
