// Diff tools of the workspace and review pages: "show more lines" around hunks (read from the
// pinned commit), the hide-whitespace toggle (remembered in localStorage), and the layout:
// the server sends one (unified or split), and a diff in the other layout than the page's
// (.workspace[data-diff-view], set by workspace.js) is fetched again in the right one.
// Intra-line marks and the file tree are plain server markup and need no script.
(function () {
  "use strict";

  var STORE_KEY = "marlin.diff.hideWhitespace";
  var STEP = 20; // lines per "show more"
  var ALL_UP_TO = 40; // a gap this small is shown whole in one click

  function hidesWhitespace() {
    try {
      return window.localStorage.getItem(STORE_KEY) === "1";
    } catch (e) {
      return false; // storage blocked: the toggle still works for this page
    }
  }

  function rememberWhitespace(hide) {
    try {
      window.localStorage.setItem(STORE_KEY, hide ? "1" : "0");
    } catch (e) {
      /* storage blocked: nothing to remember */
    }
  }

  // ---- Show more lines ----------------------------------------------------------------

  function button(slot, label, title, start, end) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "d-expand-button";
    b.textContent = label;
    b.title = title;
    b.setAttribute("aria-label", title);
    b.dataset.start = String(start);
    b.dataset.end = String(end);
    slot.appendChild(b);
  }

  function renderSlot(slot) {
    slot.replaceChildren();
    var start = Number(slot.dataset.gapStart);
    if (slot.hasAttribute("data-tail")) {
      button(slot, "↓ " + STEP, "Show " + STEP + " more lines below", start, start + STEP - 1);
      return;
    }
    var end = Number(slot.dataset.gapEnd);
    var size = end - start + 1;
    if (size <= 0) {
      slot.remove();
      return;
    }
    if (size <= ALL_UP_TO) {
      button(slot, "↕ " + size, "Show all " + size + " hidden lines", start, end);
    } else {
      button(slot, "↑ " + STEP, "Show " + STEP + " more lines above", end - STEP + 1, end);
    }
  }

  // A file sent later keeps the height its rows will take (CSSOM, allowed by the CSP), so
  // the page has its full length and does not jump as files arrive.
  function sizePlaceholders(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll(".diff-lazy[data-rows]").forEach(function (el) {
      el.style.minHeight = (Number(el.dataset.rows) * 1.45 + 1.5) + "em";
    });
  }

  function fillExpanders(root) {
    if (!root || !root.querySelectorAll) return;
    sizePlaceholders(root);
    root.querySelectorAll(".d-expand:not([data-ready])").forEach(function (slot) {
      slot.setAttribute("data-ready", "");
      renderSlot(slot);
    });
  }

  // The matching slot in both tables (unified and split) of the file.
  function twinSlots(file, slot) {
    var selector = slot.hasAttribute("data-tail")
      ? ".d-expand[data-tail]"
      : '.d-expand[data-hunk="' + slot.dataset.hunk + '"]';
    return Array.prototype.slice.call(file.querySelectorAll(selector));
  }

  function insertRows(file, slot, tbodies) {
    ["unified", "split"].forEach(function (kind) {
      var table = file.querySelector("table.diff-" + kind);
      var rows = tbodies[kind] ? Array.prototype.slice.call(tbodies[kind].rows) : [];
      if (!table || !rows.length) return;
      var target = table.querySelector(
        slot.hasAttribute("data-tail")
          ? ".d-expand[data-tail]"
          : '.d-expand[data-hunk="' + slot.dataset.hunk + '"]'
      );
      if (!target) return;
      var row = target.closest("tr");
      if (slot.hasAttribute("data-tail")) {
        row.before.apply(row, rows); // below what was shown, above the "more" row
      } else {
        row.after.apply(row, rows); // right under the header: nearer lines came first
      }
    });
  }

  function expand(buttonEl) {
    var slot = buttonEl.closest(".d-expand");
    var file = buttonEl.closest("details.diff-file");
    var section = buttonEl.closest(".diff-view");
    if (!slot || !file || !section || !section.dataset.contextUrl) return;
    var start = Number(buttonEl.dataset.start);
    var end = Number(buttonEl.dataset.end);
    var params = new URLSearchParams({
      file: file.dataset.file,
      side: "old",
      start: String(start),
      end: String(end),
    });
    if (section.dataset.whitespace === "hide") params.set("whitespace", "hide");
    twinSlots(file, slot).forEach(function (s) {
      s.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    });
    fetch(section.dataset.contextUrl + "?" + params.toString(), {
      credentials: "same-origin",
      headers: { "HX-Request": "true" },
    })
      .then(function (response) {
        if (!response.ok) {
          return response.text().then(function (text) { throw new Error(text); });
        }
        return response.text();
      })
      .then(function (html) {
        // The rows come from our own endpoint, rendered by Django from escaped, highlighted
        // HTML (repos.highlighting): parsing them is as safe as the page's own diff markup.
        // An inert <template> parses them without running anything.
        var template = document.createElement("template");
        template.innerHTML = html;
        var tbodies = {
          unified: template.content.querySelector('tbody[data-rows="unified"]'),
          split: template.content.querySelector('tbody[data-rows="split"]'),
        };
        var count = tbodies.unified ? tbodies.unified.rows.length : 0;
        insertRows(file, slot, tbodies);
        twinSlots(file, slot).forEach(function (s) {
          if (s.hasAttribute("data-tail")) {
            if (count < end - start + 1) {
              s.closest("tr").remove(); // the file ends here
              return;
            }
            s.dataset.gapStart = String(end + 1);
          } else {
            s.dataset.gapEnd = String(start - 1);
          }
          renderSlot(s);
        });
      })
      .catch(function (error) {
        twinSlots(file, slot).forEach(function (s) {
          s.querySelectorAll("button").forEach(function (b) {
            b.disabled = false;
            b.title = "Could not load the lines: " + error.message;
          });
        });
      });
  }

  // ---- Hide whitespace ----------------------------------------------------------------

  function ensureToggle() {
    var toggles = document.querySelectorAll("[data-toggle-whitespace]");
    if (!toggles.length) {
      var toolbar = document.querySelector(".toolbar");
      if (!toolbar || !document.querySelector(".diff-view[data-diff-url], .ab-diff-lazy, .ab-diff-body")) {
        return;
      }
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-toggle-whitespace", "");
      b.textContent = "Hide whitespace";
      toolbar.appendChild(b);
    }
    syncToggles();
  }

  function syncToggles() {
    var hide = hidesWhitespace();
    document.querySelectorAll("[data-toggle-whitespace]").forEach(function (b) {
      b.setAttribute("aria-pressed", hide ? "true" : "false");
      b.title = hide ? "Whitespace-only changes are hidden" : "Hide whitespace-only changes";
    });
  }

  function swap(oldNode, url) {
    return fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        // Our own endpoint's fragment (the same escaped markup the page was rendered with).
        var template = document.createElement("template");
        template.innerHTML = html.trim();
        var fresh = template.content.firstElementChild;
        if (!fresh || !oldNode.isConnected) return;
        sizePlaceholders(fresh); // before htmx watches them come into view
        oldNode.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh); // later files load when shown
        fillExpanders(fresh);
        fresh.dispatchEvent(new CustomEvent("marlin:diff-swapped", { bubbles: true }));
      });
  }

  function wantedLayout() {
    var ws = document.querySelector(".workspace[data-diff-view]");
    return ws && ws.dataset.diffView === "split" ? "split" : "unified";
  }

  function withView(url, hide, layout) {
    var params = new URLSearchParams({ layout: layout });
    if (hide) params.set("whitespace", "hide");
    return url + (url.indexOf("?") < 0 ? "?" : "&") + params.toString();
  }

  // Fetch again every diff shown otherwise than asked (whitespace hidden or not, layout).
  function applyView() {
    var hide = hidesWhitespace();
    var layout = wantedLayout();
    var differs = function (el, layoutOf) {
      return (el.dataset.whitespace === "hide") !== hide || (layoutOf || layout) !== layout;
    };
    var jobs = [];
    document.querySelectorAll(".diff-view[data-diff-url]").forEach(function (section) {
      if (section.closest(".ab-diff-body")) return; // swapped with its A vs B wrapper below
      if (!differs(section, section.dataset.layout)) return;
      jobs.push(swap(section, withView(section.dataset.diffUrl, hide, layout)));
    });
    document.querySelectorAll(".ab-diff-body[data-ab-url]").forEach(function (body) {
      if (!differs(body, body.dataset.layout)) return;
      jobs.push(swap(body, withView(body.dataset.abUrl, hide, layout)));
    });
    return Promise.all(jobs);
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var expandButton = target.closest(".d-expand-button");
    if (expandButton) {
      event.preventDefault();
      expand(expandButton);
      return;
    }
    var toggle = target.closest("[data-toggle-whitespace]");
    if (toggle) {
      event.preventDefault();
      rememberWhitespace(!hidesWhitespace());
      syncToggles();
      applyView();
    }
  });

  // The A vs B placeholder loads after the choices were made: ask for the same view.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.classList && elt.classList.contains("ab-diff-lazy")) {
      if (hidesWhitespace()) event.detail.parameters.whitespace = "hide";
      event.detail.parameters.layout = wantedLayout();
    }
  });
  document.addEventListener("marlin:diff-layout", function () { applyView(); });
  document.addEventListener("htmx:load", function (event) {
    fillExpanders(event.detail && event.detail.elt);
  });

  function start() {
    fillExpanders(document);
    ensureToggle();
    applyView();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
