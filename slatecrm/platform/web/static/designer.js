// The designer's pages. A page showing a plan scrolls to it. The field form: a choice's options are rows dragged to reorder (Sortable.js),
// added and removed, each with a colour picker writing into the row's posted colour. The
// order the rows have when the form is posted is the options' order. Rule inputs are
// checked by the server through htmx (no rule engine here).
(function () {
  "use strict";
  function blankRow(list) {
    var row = list.querySelector("li.option-row").cloneNode(true);
    row.querySelectorAll("input").forEach(function (input) {
      input.value = input.classList.contains("colour") ? "#94a3b8" : "";
    });
    return row;
  }
  function setUp(root) {
    var list = root.querySelector("#option-rows");
    if (!list || list.dataset.ready) return;
    list.dataset.ready = "1";
    if (typeof Sortable !== "undefined") {
      Sortable.create(list, {handle: ".handle", animation: 120});
    }
  }
  document.addEventListener("click", function (evt) {
    var target = evt.target;
    if (!(target instanceof Element)) return;
    if (target.id === "add-option") {
      var list = document.getElementById("option-rows");
      var row = blankRow(list);
      list.appendChild(row);
      row.querySelector('input[name="option_key"]').focus();
    } else if (target.classList.contains("remove-option")) {
      var rows = document.querySelectorAll("#option-rows li.option-row");
      var mine = target.closest("li.option-row");
      if (rows.length > 1) { mine.remove(); } else { mine.querySelectorAll("input").forEach(function (i) { i.value = ""; }); }
    }
  });
  document.addEventListener("input", function (evt) {
    var target = evt.target;
    if (target instanceof HTMLInputElement && target.classList.contains("colour")) {
      var posted = target.closest("li.option-row").querySelector('input[name="option_colour"]');
      posted.value = target.value;
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    setUp(document);
    // A reviewed change: the plan (or its refusal) is what to read next.
    var plan = document.getElementById("plan");
    if (plan) plan.scrollIntoView({block: "start"});
  });
  document.addEventListener("htmx:after:swap", function () { setUp(document); });
})();
