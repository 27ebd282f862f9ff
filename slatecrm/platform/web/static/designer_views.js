// The views designer's structured editor (templates/_view_editor.html): a list's columns and
// a board's card fields are chips dragged into order (Sortable.js), added from a select and
// removed; each chip carries its hidden input, so the order posted is the order shown. Sort
// rows are added by cloning the blank last one. The filter is checked by the server (htmx);
// a change of type fetches that type's inputs (htmx), which are set up again here.
"use strict";

(function () {
  function setUp(root) {
    root.querySelectorAll("ul[data-chips]").forEach(function (list) {
      if (list.dataset.ready || typeof Sortable === "undefined") return;
      list.dataset.ready = "1";
      Sortable.create(list, {animation: 120, forceFallback: true, handle: ".drag-handle"});
    });
  }

  function chip(list, name, label) {
    var item = document.createElement("li");
    item.className = "field-chip";
    item.dataset.field = name;
    var handle = document.createElement("span");
    handle.className = "drag-handle";
    handle.setAttribute("aria-hidden", "true");
    handle.textContent = "⠿";
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = list.dataset.chips;
    input.value = name;
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small remove-chip";
    remove.setAttribute("aria-label", "Remove " + label);
    remove.textContent = "×";
    item.append(handle, input, document.createTextNode(label + " "), remove);
    return item;
  }

  document.addEventListener("change", function (evt) {
    var select = evt.target;
    if (!(select instanceof HTMLSelectElement) || !select.classList.contains("add-chip")) return;
    var name = select.value;
    var list = document.getElementById(select.dataset.chipsFor);
    select.value = "";
    if (!name || !list || list.querySelector('li[data-field="' + CSS.escape(name) + '"]')) return;
    var label = select.querySelector('option[value="' + CSS.escape(name) + '"]').textContent.replace(/ \([^)]*\)$/, "");
    list.appendChild(chip(list, name, label));
  });

  document.addEventListener("click", function (evt) {
    var target = evt.target;
    if (!(target instanceof Element)) return;
    if (target.classList.contains("remove-chip")) {
      target.closest("li.field-chip").remove();
    } else if (target.id === "add-sort-row") {
      var rows = document.getElementById("vf-sort");
      var row = rows.querySelector("li.sort-row:last-child").cloneNode(true);
      row.querySelectorAll("select").forEach(function (s) { s.selectedIndex = 0; });
      rows.appendChild(row);
    }
  });

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  document.addEventListener("htmx:after:swap", function () { setUp(document); });
})();
