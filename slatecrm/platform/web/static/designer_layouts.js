// The designer's layout editor: fields are chips dragged between sections and the
// "unplaced" tray (Sortable.js). After each drop the layout's YAML textarea is rewritten
// (as JSON, which is YAML) from the chips, keeping the rest of the layout, and a change
// event asks for the form preview. Without this script the textarea is the editor.
"use strict";

(function () {
  function rewrite(editor, area) {
    var body = JSON.parse(editor.getAttribute("data-layout"));
    var tabs = body.tabs || [{label: "", sections: body.sections || []}];
    editor.querySelectorAll(".layout-zone[data-section]").forEach(function (zone) {
      var section = tabs[+zone.getAttribute("data-tab")].sections[+zone.getAttribute("data-section")];
      section.fields = Array.prototype.map.call(zone.querySelectorAll(".chip"), function (chip) {
        return chip.getAttribute("data-field");
      });
    });
    if (body.tabs) body.tabs = tabs; else body.sections = tabs[0].sections;
    editor.setAttribute("data-layout", JSON.stringify(body));
    area.value = JSON.stringify(body, null, 2);
    area.dispatchEvent(new Event("change", {bubbles: true}));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var editor = document.getElementById("layout-editor");
    var area = document.getElementById("layout-yaml");
    if (!editor || !area || typeof Sortable === "undefined") return;
    editor.querySelectorAll(".layout-zone").forEach(function (zone) {
      Sortable.create(zone, {
        group: "layout-fields",
        animation: 120,
        forceFallback: true,
        onEnd: function () { rewrite(editor, area); }
      });
    });
  });
})();
