// Rich text fields: the Squire editor (vendor/squire.js, pinned in vendor.lock.json) over
// each <textarea data-rich-text>, with a small toolbar. The textarea stays the form's input:
// it is kept in step with the editor and sent as usual, so the form works the same without
// JavaScript (where the textarea is shown). No inline script or style (the app's CSP): the
// toolbar's buttons are wired here. The server sanitises whatever is sent; the cleaning
// below only keeps pasted markup to what the server would keep anyway.
(function () {
  "use strict";

  var ALLOWED = ["P", "BR", "B", "STRONG", "I", "EM", "U", "S", "A", "UL", "OL", "LI", "BLOCKQUOTE",
                 "CODE", "PRE", "H2", "H3", "H4"];
  var DROPPED = ["SCRIPT", "STYLE", "TEMPLATE", "IFRAME", "OBJECT", "NOSCRIPT", "TITLE"];
  var SAFE_LINK = /^(https?:|mailto:)/i;

  function cleanNode(node) {
    Array.prototype.slice.call(node.childNodes).forEach(function (child) {
      if (child.nodeType === Node.COMMENT_NODE) { child.remove(); return; }
      if (child.nodeType !== Node.ELEMENT_NODE) { return; }
      if (DROPPED.indexOf(child.tagName) >= 0) { child.remove(); return; }
      cleanNode(child);
      if (ALLOWED.indexOf(child.tagName) < 0) {
        while (child.firstChild) { node.insertBefore(child.firstChild, child); }
        child.remove();
        return;
      }
      Array.prototype.slice.call(child.attributes).forEach(function (attribute) {
        var keep = child.tagName === "A" && attribute.name === "href" && SAFE_LINK.test(attribute.value.trim());
        if (!keep) { child.removeAttribute(attribute.name); }
      });
    });
  }

  // Squire's hook for HTML it is given (setHTML, paste): parsed inertly in a <template>.
  function sanitizeToDOMFragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    cleanNode(template.content);
    return document.importNode(template.content, true);
  }

  var BUTTONS = [
    ["B", "Bold", "B", "bold", "removeBold"],
    ["I", "Italic", "I", "italic", "removeItalic"],
    ["U", "Underline", "U", "underline", "removeUnderline"],
    ["S", "Strike through", "S", "strikethrough", "removeStrikethrough"],
    ["• List", "Bulleted list", "UL", "makeUnorderedList", "removeList"],
    ["1. List", "Numbered list", "OL", "makeOrderedList", "removeList"],
    ["Quote", "Quote", "BLOCKQUOTE", "increaseQuoteLevel", "decreaseQuoteLevel"],
    ["Code", "Code", "CODE", "toggleCode", "toggleCode"],
  ];

  function enhance(textarea) {
    if (textarea.dataset.enhanced || typeof window.Squire !== "function") { return; }
    textarea.dataset.enhanced = "true";
    var label = document.querySelector('label[for="' + textarea.id + '"]');
    var name = label ? label.textContent.replace(/\s*\*\s*$/, "").trim() : textarea.name;

    var box = document.createElement("div");
    box.className = "rich-text-editor";
    var toolbar = document.createElement("div");
    toolbar.className = "rich-text-toolbar";
    toolbar.setAttribute("role", "toolbar");
    toolbar.setAttribute("aria-label", "Formatting: " + name);
    var area = document.createElement("div");
    area.className = "rich-text-area";
    area.id = textarea.id + "__editor";
    area.setAttribute("role", "textbox");
    area.setAttribute("aria-multiline", "true");
    area.setAttribute("aria-label", name);
    box.appendChild(toolbar);
    box.appendChild(area);
    textarea.parentNode.insertBefore(box, textarea.nextSibling);
    textarea.hidden = true;
    if (label) { label.htmlFor = area.id; }

    var editor = new window.Squire(area, {
      blockTag: "P",
      sanitizeToDOMFragment: sanitizeToDOMFragment,
    });
    editor.setHTML(textarea.value);

    function sync() { textarea.value = editor.getHTML(); }
    editor.addEventListener("input", sync);
    area.addEventListener("focusout", function () {
      sync();
      textarea.dispatchEvent(new Event("change", { bubbles: true }));  // the live validation
    });

    var toggles = [];
    BUTTONS.forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = spec[0];
      button.setAttribute("aria-label", spec[1]);
      button.setAttribute("aria-pressed", "false");
      toggles.push([button, spec[2]]);
      button.addEventListener("click", function () {
        var on = editor.hasFormat(spec[2]);
        editor[on ? spec[4] : spec[3]]();
        sync();
        editor.focus();
      });
      toolbar.appendChild(button);
    });
    // Each button says whether the selection has its format (bold here, in a list…).
    editor.addEventListener("pathChange", function () {
      toggles.forEach(function (toggle) {
        toggle[0].setAttribute("aria-pressed", editor.hasFormat(toggle[1]) ? "true" : "false");
      });
    });
    var link = document.createElement("button");
    link.type = "button";
    link.className = "small";
    link.textContent = "Link";
    link.setAttribute("aria-label", "Link");
    link.addEventListener("click", function () {
      var address = window.prompt("Link to (https://…, mailto:…)", "https://");
      if (address && SAFE_LINK.test(address.trim())) {
        editor.makeLink(address.trim());
        sync();
      }
      editor.focus();
    });
    toolbar.appendChild(link);
    var form = textarea.form;
    if (form) { form.addEventListener("submit", sync); form.addEventListener("formdata", sync); }
  }

  function enhanceAll(root) {
    Array.prototype.forEach.call((root || document).querySelectorAll("textarea[data-rich-text]"), enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { enhanceAll(document); });
  } else {
    enhanceAll(document);
  }
})();
