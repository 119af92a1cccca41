// Line comments over the diffs of the workspace and review pages. The comments come from
// #line-comments-data (templates/tasks/_line_comments.html); the diff markup is cached per
// diff, so the comments are inserted here as rows after the lines they are on, in both the
// unified and the split table. Comment text only ever goes in through textContent.
(() => {
  "use strict";
  const source = document.getElementById("line-comments-data");
  if (!source) return;
  const data = JSON.parse(source.textContent);
  const files = data.files || {}; // file anchor -> {candidate, path}
  const addUrls = data.add_urls || {}; // candidate id -> URL; absent: read only
  let comments = data.comments || [];
  const status = document.getElementById("line-comments-status");
  // A line number's anchor: "<file anchor>-L12" (unified, before), "-R12" (after), and
  // "-sL12" / "-sR12" in the split table.
  const LINE_ID = /^(c\d+-f\d+)-(s?)([LR])(\d+)$/;

  const csrf = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  };
  const say = (message) => { if (status) status.textContent = message; };

  // Which candidate and path a diff file is: the markup's own attributes first (a diff
  // swapped in later, e.g. with whitespace hidden, may number its files differently), else
  // the page's data.
  const fileInfo = (anchor) => {
    const details = document.getElementById(anchor);
    if (details && details.dataset.path && details.dataset.candidate) {
      return { candidate: Number(details.dataset.candidate), path: details.dataset.path };
    }
    return files[anchor] || null;
  };
  const anchorOf = (candidate, path) => {
    const details = Array.from(document.querySelectorAll("details.diff-file[data-path]")).find(
      (d) => d.dataset.path === path && Number(d.dataset.candidate) === candidate);
    if (details) return details.id;
    const found = Object.keys(files).find((a) =>
      files[a].candidate === candidate && files[a].path === path);
    return found && document.getElementById(found) ? found : null;
  };
  const sideWord = (side) => (side === "old" ? "before the change" : "after the change");
  const lineWords = (line, end) => (end && end !== line ? `lines ${line}–${end}` : `line ${line}`);

  // The row of a line in one table ("" unified, "s" split), or null if not on the page.
  const rowOf = (anchor, split, side, line) => {
    const link = document.getElementById(`${anchor}-${split}${side === "old" ? "L" : "R"}${line}`);
    return link ? link.closest("tr") : null;
  };
  const columnsOf = (row) => Array.from(row.cells).reduce((n, c) => n + (c.colSpan || 1), 0);

  const textBlock = (text) => {
    // Line breaks kept without relying on CSS; each line is a text node.
    const block = document.createElement("div");
    block.className = "line-comment-text";
    text.split("\n").forEach((part, i) => {
      if (i) block.appendChild(document.createElement("br"));
      block.appendChild(document.createTextNode(part));
    });
    return block;
  };

  const commentBox = (comment) => {
    const box = document.createElement("div");
    box.className = `line-comment line-comment-${comment.role}`;
    box.dataset.commentId = String(comment.id);
    const meta = document.createElement("p");
    meta.className = "line-comment-meta";
    const who = document.createElement("strong");
    who.textContent = comment.author;
    meta.appendChild(who);
    let where = ` on ${lineWords(comment.line, comment.end_line)} (${sideWord(comment.side)})`;
    if (comment.is_draft) where += " · draft: sent with your decision";
    meta.appendChild(document.createTextNode(where));
    box.appendChild(meta);
    box.appendChild(textBlock(comment.text));
    if (comment.delete_url) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "line-comment-delete";
      remove.textContent = "Delete";
      remove.addEventListener("click", () => deleteComment(comment, remove));
      box.appendChild(remove);
    }
    return box;
  };

  // A comment row sits right after its line's row; comments on the same line share it.
  const threadAfter = (row, key) => {
    let next = row.nextElementSibling;
    while (next && next.classList.contains("line-comment-row")) {
      if (next.dataset.key === key) return next.querySelector("td");
      next = next.nextElementSibling;
    }
    const tr = document.createElement("tr");
    tr.className = "line-comment-row";
    tr.dataset.key = key;
    const td = document.createElement("td");
    td.colSpan = columnsOf(row);
    tr.appendChild(td);
    row.after(tr);
    return td;
  };

  const render = () => {
    document.querySelectorAll("tr.line-comment-row").forEach((tr) => tr.remove());
    comments.forEach((comment) => {
      const anchor = anchorOf(comment.candidate, comment.path);
      if (!anchor) return;
      const last = comment.end_line || comment.line;
      ["", "s"].forEach((split) => {
        const row = rowOf(anchor, split, comment.side, last);
        if (row) {
          threadAfter(row, `${comment.side}${last}`).appendChild(commentBox(comment));
        }
      });
    });
  };

  const post = (url, fields) => {
    const body = new FormData();
    Object.entries(fields).forEach(([k, v]) => body.append(k, v === null ? "" : String(v)));
    return fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
    });
  };
  const failure = async (response) => {
    try {
      return (await response.json()).detail || `Not saved (${response.status}).`;
    } catch (e) {
      return `Not saved (${response.status}).`;
    }
  };

  async function deleteComment(comment, button) {
    button.disabled = true;
    const response = await post(comment.delete_url, {}).catch(() => null);
    if (response && response.ok) {
      comments = comments.filter((c) => c.id !== comment.id);
      render();
      say("Comment deleted.");
    } else {
      button.disabled = false;
      say(response ? await failure(response) : "Not deleted: the server could not be reached.");
    }
  }

  // The open form: one at a time, in the table where the person asked for it.
  let open = null; // {anchor, side, line, end, split, row, tr, label, error}

  const closeForm = () => {
    if (!open) return;
    const back = document.getElementById(
      `${open.anchor}-${open.split}${open.side === "old" ? "L" : "R"}${open.line}`);
    open.tr.remove();
    open = null;
    if (back) back.focus();
  };

  const placeForm = () => {
    const row = rowOf(open.anchor, open.split, open.side, open.end || open.line) || open.row;
    let after = row;
    while (after.nextElementSibling && after.nextElementSibling.classList.contains("line-comment-row")) {
      after = after.nextElementSibling;
    }
    after.after(open.tr);
    open.tr.querySelector("td").colSpan = columnsOf(row);
    open.label.textContent =
      `Comment on ${lineWords(open.line, open.end)} (${sideWord(open.side)}) of ${open.path}`;
  };

  const openForm = (link) => {
    const match = LINE_ID.exec(link.id);
    // Lines shown by "expand context" are outside the change: they take no comments.
    if (!match || link.closest("tr.d-expanded")) return false;
    const [, anchor, split, letter, number] = match;
    const info = fileInfo(anchor);
    if (!info || !addUrls[String(info.candidate)]) return false;
    const side = letter === "L" ? "old" : "new";
    const line = Number(number);
    closeForm();
    const tr = document.createElement("tr");
    tr.className = "line-comment-form-row";
    const td = document.createElement("td");
    const form = document.createElement("form");
    form.className = "line-comment-form";
    const label = document.createElement("label");
    const id = `line-comment-text-${anchor}`;
    label.htmlFor = id;
    const textarea = document.createElement("textarea");
    textarea.id = id;
    textarea.name = "text";
    textarea.rows = 3;
    textarea.maxLength = 5000;
    textarea.required = true;
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "primary";
    save.textContent = "Save comment";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    const error = document.createElement("p");
    error.className = "errors line-comment-error";
    error.setAttribute("role", "alert");
    form.append(label, textarea, save, cancel, error);
    td.appendChild(form);
    tr.appendChild(td);
    open = {
      anchor, side, line, end: null, split, row: link.closest("tr"), tr, label, error,
      path: info.path, url: addUrls[String(info.candidate)],
    };
    placeForm();
    cancel.addEventListener("click", closeForm);
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        closeForm();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        // Ctrl+Enter saves this comment; it must not reach the page's submit shortcut.
        event.preventDefault();
        event.stopPropagation();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!open) return;
      save.disabled = true;
      const sent = open;
      const response = await post(sent.url, {
        path: sent.path, side: sent.side, line: sent.line, end_line: sent.end, text: textarea.value,
      }).catch(() => null);
      save.disabled = false;
      if (response && response.status === 201) {
        comments.push(await response.json());
        closeForm();
        render();
        say("Comment saved.");
      } else {
        error.textContent = response ? await failure(response)
          : "Not saved: the server could not be reached. Your text is still here.";
      }
    });
    textarea.focus();
    return true;
  };

  // Shift-click a second line number of the same file and side: the comment covers the range.
  const extendForm = (link) => {
    const match = LINE_ID.exec(link.id);
    if (!open || !match || link.closest("tr.d-expanded")) return false;
    const [, anchor, split, letter, number] = match;
    const side = letter === "L" ? "old" : "new";
    if (anchor !== open.anchor || split !== open.split || side !== open.side) return false;
    const other = Number(number);
    const first = Math.min(open.line, other);
    const last = Math.max(open.end || open.line, other);
    open.line = first;
    open.end = last > first ? last : null;
    placeForm();
    open.tr.querySelector("textarea").focus();
    return true;
  };

  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("td.d-no a[id]");
    if (!link || !link.closest("details.diff-file")) return;
    const handled = event.shiftKey ? extendForm(link) || openForm(link) : openForm(link);
    if (handled) {
      event.preventDefault();
      // Still a permalink to the line, as without comments.
      history.replaceState(null, "", `#${link.id}`);
    }
  });

  const isTyping = (el) => !!el && (el.isContentEditable || el.tagName === "TEXTAREA" ||
    el.tagName === "SELECT" || (el.tagName === "INPUT" &&
      !["radio", "checkbox", "button", "submit", "reset"].includes(el.type)));

  // The line in focus: a focused line number, or a focused element inside a diff row
  // (its line after the change if it has one), or the line the address points at.
  const focusedLine = () => {
    const el = document.activeElement;
    if (el && el.matches && el.matches("td.d-no a[id]")) return el;
    const row = el && el.closest ? el.closest("details.diff-file tr") : null;
    const pick = (scope) => scope && (scope.querySelector('td.d-no a[id*="-R"]') ||
      scope.querySelector("td.d-no a[id]"));
    if (row && pick(row)) return pick(row);
    const target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    return target && LINE_ID.test(target.id) ? target : null;
  };

  document.addEventListener("keydown", (event) => {
    if (event.key !== "c" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) return;
    const link = focusedLine();
    if (!link) return;
    if (openForm(link)) event.preventDefault();
  });

  // Large files arrive later (htmx): lay their comments over them once they are in.
  document.addEventListener("htmx:load", render);
  document.addEventListener("htmx:afterSwap", render);
  document.addEventListener("marlin:diff-swapped", render); // whitespace hidden or shown
  render();
})();
