// The designer's layout editor (designer_layouts.py). Fields, sections, tabs, related lists
// and compact fields are dragged (Sortable.js); each drop is sent to the server as one
// action ("move_field:price:0:1:2"...) through the hidden "drop" input and its button, with
// the YAML textarea's current text: the server applies the action to that text and answers
// the editor, the YAML and the preview again (htmx swaps #layout-workspace), so what was
// typed is kept. A label's change is sent the same way. Without this script the buttons
// still post, and the textarea is the editor.
"use strict";

(function () {
  function send(action) {
    var drop = document.getElementById("layout-drop");
    var button = document.getElementById("layout-drop-send");
    if (!drop || !button) return;
    drop.value = action;
    button.click();
  }

  function moved(evt) {
    return evt.from !== evt.to || evt.oldIndex !== evt.newIndex;
  }

  var common = {animation: 120, forceFallback: true, filter: "button, input, select", preventOnFilter: false};

  function sortable(element, options) {
    Sortable.create(element, Object.assign({}, common, options));
  }

  function setUp(root) {
    var editor = root.querySelector("#layout-editor");
    if (!editor || editor.dataset.ready || typeof Sortable === "undefined") return;
    editor.dataset.ready = "1";
    editor.querySelectorAll(".layout-zone").forEach(function (zone) {
      sortable(zone, {group: "layout-fields", onEnd: function (evt) {
        if (!moved(evt)) return;
        var field = evt.item.getAttribute("data-field");
        if (evt.to.id === "unplaced") { send("move_field:" + field); return; }
        send(["move_field", field, evt.to.getAttribute("data-tab"), evt.to.getAttribute("data-section"),
              evt.newIndex].join(":"));
      }});
    });
    editor.querySelectorAll(".layout-sections").forEach(function (list) {
      sortable(list, {group: "layout-sections", handle: ".section-handle", draggable: ".layout-section",
        onEnd: function (evt) {
          if (!moved(evt)) return;
          send(["move_section", evt.item.getAttribute("data-tab"), evt.item.getAttribute("data-section"),
                evt.to.getAttribute("data-tab"), evt.newIndex].join(":"));
        }});
    });
    var tabs = editor.querySelector("#layout-tabs");
    if (tabs) {
      sortable(tabs, {handle: ".tab-handle", draggable: ".layout-tab", onEnd: function (evt) {
        if (moved(evt)) send(["move_tab", evt.oldIndex, evt.newIndex].join(":"));
      }});
    }
    var related = editor.querySelector("#related-lists");
    if (related) {
      sortable(related, {onEnd: function (evt) {
        if (moved(evt)) send(["move_related", evt.oldIndex, evt.newIndex].join(":"));
      }});
    }
    var compact = editor.querySelector("#compact-fields");
    if (compact) {
      sortable(compact, {onEnd: function (evt) {
        if (moved(evt)) send(["move_compact", evt.item.getAttribute("data-field"), evt.newIndex].join(":"));
      }});
    }
  }

  // A label: sent when it changes; Enter sends it (instead of submitting the review).
  document.addEventListener("change", function (evt) {
    var input = evt.target;
    if (input instanceof HTMLInputElement && input.classList.contains("layout-label")) {
      send(input.getAttribute("data-action"));
    }
  });
  document.addEventListener("keydown", function (evt) {
    var input = evt.target;
    if (evt.key === "Enter" && input instanceof HTMLInputElement && input.classList.contains("layout-label")) {
      evt.preventDefault();
      input.blur();  // its change event sends it
    }
  });

  // The workspace is replaced after each action (its old element gone, so events on it do
  // not reach the document): the new editor is set up when it appears.
  document.addEventListener("DOMContentLoaded", function () {
    setUp(document);
    new MutationObserver(function () { setUp(document); }).observe(document.body, {childList: true, subtree: true});
  });
})();
