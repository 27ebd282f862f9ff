// SlateCRM's own script: the kanban board's drag and drop (Sortable.js), posting each
// drop to the record's move endpoint. Everything else is plain HTML enhanced by htmx.
// Server text is only ever set with textContent, never as HTML.
"use strict";

(function () {
  function showMessage(text, link) {
    var box = document.getElementById("board-message");
    if (!box) return;
    box.textContent = text;
    if (link) {
      box.appendChild(document.createTextNode(" "));
      var a = document.createElement("a");
      a.href = link;
      a.textContent = "Open it to fill in the fields";
      box.appendChild(a);
    }
    box.hidden = false;
  }

  // The CSRF token of this page (web/csrf.py): every change the script posts carries it.
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function refreshTotals(board) {
    fetch(board.dataset.refresh, {headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        data.columns.forEach(function (column) {
          board.querySelectorAll('[data-stage="' + CSS.escape(column.stage) + '"]').forEach(function (el) {
            if (el.classList.contains("column-count")) el.textContent = String(column.count);
            if (el.classList.contains("column-sum")) el.textContent = column.total;
          });
        });
      });
  }

  function refusal(problem, field) {
    var errors = (problem && problem.errors) || {};
    if (errors[field] && errors[field].length) return errors[field].join("; ");
    var messages = [];
    Object.keys(errors).forEach(function (key) {
      errors[key].forEach(function (m) { messages.push(m); });
    });
    return messages.length ? messages.join("; ") : ((problem && problem.detail) || "the move was refused");
  }

  function setUpBoard(board) {
    if (typeof Sortable === "undefined") return;
    board.querySelectorAll("ol.cards").forEach(function (list) {
      Sortable.create(list, {
        group: "board-" + board.dataset.field,
        animation: 120,
        onEnd: function (evt) {
          if (evt.from === evt.to) return;
          var card = evt.item;
          var stage = evt.to.dataset.stage;
          var body = new URLSearchParams({field: board.dataset.field, stage: stage,
                                          version: card.dataset.version});
          var url = "/e/" + board.dataset.entity + "/" + card.dataset.id + "/move";
          card.classList.add("moving");
          fetch(url, {method: "POST", body: body,
                      headers: {"Accept": "application/json", "x-csrftoken": csrfToken()}})
            .then(function (response) {
              return response.json().then(function (data) {
                return {ok: response.ok, status: response.status, data: data};
              });
            })
            .then(function (result) {
              card.classList.remove("moving");
              if (result.ok) {
                card.dataset.version = String(result.data.version);
                var box = document.getElementById("board-message");
                if (box) box.hidden = true;
                refreshTotals(board);
                return;
              }
              // Refused: the card snaps back to where it was, and the board says why.
              var back = evt.from.children[evt.oldIndex] || null;
              evt.from.insertBefore(card, back);
              // The edit form opens at the stage aimed at (a refusal of its required fields),
              // its form logic showing what the stage asks for; a stale card opens as stored.
              var edit = "/e/" + board.dataset.entity + "/" + card.dataset.id + "/edit";
              if (result.status === 422) {
                edit += "?" + new URLSearchParams([[board.dataset.field, stage]]).toString();
              }
              showMessage("“" + card.dataset.title + "” was not moved: " + refusal(result.data, board.dataset.field),
                          edit);
            })
            .catch(function () {
              card.classList.remove("moving");
              evt.from.insertBefore(card, evt.from.children[evt.oldIndex] || null);
              showMessage("“" + card.dataset.title + "” was not moved: the server could not be reached");
            });
        }
      });
    });
  }

  // The filter bar stays in place while htmx swaps the results under it: mark the
  // expression input invalid (for screen readers too) when the results carry its error.
  function syncFilterState() {
    var input = document.getElementById("list-filter");
    var error = document.getElementById("filter-error");
    if (!input || !error) return;
    if (error.textContent.trim()) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  document.addEventListener("htmx:after:swap", syncFilterState);

  // "Select all on this page" needs a script, so it only appears when one runs.
  function showSelectAll() {
    var all = document.getElementById("select-all");
    if (all) all.hidden = false;
  }
  document.addEventListener("htmx:after:swap", showSelectAll);
  document.addEventListener("change", function (evt) {
    if (evt.target && evt.target.id === "select-all") {
      document.querySelectorAll('#bulk input[name="ids"]').forEach(function (box) {
        box.checked = evt.target.checked;
      });
    }
  });

  // Line items: the form holds hidden blank rows; "Add a line" (shown only when a script
  // runs: without one the form offers a few blank rows) reveals the next one.
  function showLineButtons() {
    document.querySelectorAll("button[data-lines-add]").forEach(function (button) {
      var more = document.querySelector("#f-" + button.dataset.linesAdd + " tr.line[hidden]");
      button.hidden = !more;
    });
  }
  document.addEventListener("click", function (evt) {
    var button = evt.target && evt.target.closest ? evt.target.closest("button[data-lines-add]") : null;
    if (!button) return;
    var row = document.querySelector("#f-" + button.dataset.linesAdd + " tr.line[hidden]");
    if (!row) return;
    row.hidden = false;
    var first = row.querySelector("input:not([type=hidden]):not([type=number])");
    if (first) first.focus();
    showLineButtons();
  });

  // A layout's tabs (templates/_tabs.html): one panel shown at a time, first the one holding
  // an invalid field (a form shown again with its errors), else the one the address names.
  function setUpTabs(bar) {
    var links = Array.prototype.slice.call(bar.querySelectorAll("a[data-tab]"));
    function panel(link) { return document.getElementById(link.dataset.tab); }
    function choose(chosen) {
      links.forEach(function (link) {
        var on = link === chosen;
        link.setAttribute("aria-selected", on ? "true" : "false");
        var shown = panel(link);
        if (shown) shown.hidden = !on;
      });
    }
    var start = links.find(function (link) {
      var shown = panel(link);
      return shown && shown.querySelector('[aria-invalid="true"], .form-row.invalid');
    }) || links.find(function (link) { return location.hash === "#" + link.dataset.tab; }) || links[0];
    if (start) choose(start);
    bar.addEventListener("click", function (evt) {
      var link = evt.target && evt.target.closest ? evt.target.closest("a[data-tab]") : null;
      if (!link) return;
      evt.preventDefault();
      choose(link);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var board = document.getElementById("board");
    if (board) setUpBoard(board);
    showSelectAll();
    showLineButtons();
    document.querySelectorAll("nav.tabs").forEach(setUpTabs);
  });
})();
