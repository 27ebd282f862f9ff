// The designer's pipeline page: drag the stages into a new order (Sortable.js); dropping
// one submits the order form, whose answer is the plan to apply. Without this script the
// page's up / down buttons do the same.
"use strict";

(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var list = document.querySelector("#stage-order[data-sortable]");
    if (!list || typeof Sortable === "undefined") return;
    Sortable.create(list, {
      animation: 120,
      forceFallback: true,
      handle: ".drag-handle",
      onEnd: function (evt) {
        if (evt.oldIndex === evt.newIndex) return;
        document.getElementById("order-form").requestSubmit(document.getElementById("review-order"));
      }
    });
  });
})();
