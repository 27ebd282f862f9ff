// The calendar's drag and drop (native HTML5): an item dropped on another day, or hour,
// sends a PATCH to the record's reschedule endpoint with the version the page showed; the
// calendar is then read again, so what it shows is what was stored. A refusal (a stale
// version, a read-only field) is said above it. Server text is only set with textContent.
"use strict";

(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function say(text) {
    var box = document.getElementById("calendar-message");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  function refusal(problem) {
    var errors = (problem && problem.errors) || {};
    var messages = [];
    Object.keys(errors).forEach(function (key) {
      errors[key].forEach(function (m) { messages.push(key + ": " + m); });
    });
    if (messages.length) return messages.join("; ");
    return (problem && problem.detail) || "the move was refused";
  }

  // The calendar read again from the server: the page's own HTML, its #calendar swapped in.
  function reread() {
    return fetch(window.location.href, {headers: {"Accept": "text/html"}})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("calendar");
        var old = document.getElementById("calendar");
        if (fresh && old) {
          old.replaceWith(document.importNode(fresh, true));
          setUp(document.getElementById("calendar"));
        }
      });
  }

  function move(calendar, item, cell) {
    var body = new URLSearchParams({field: calendar.dataset.field, date: cell.dataset.day,
                                    version: item.dataset.version});
    if (cell.dataset.hour !== undefined) body.set("hour", cell.dataset.hour);
    if (calendar.dataset.end) body.set("end", calendar.dataset.end);
    var url = "/e/" + calendar.dataset.entity + "/" + item.dataset.id + "/reschedule";
    item.classList.add("moving");
    calendar.setAttribute("aria-busy", "true");
    return fetch(url, {method: "PATCH", body: body,
                       headers: {"Accept": "application/json", "x-csrftoken": csrfToken()}})
      .then(function (response) {
        return response.json().then(function (data) { return {ok: response.ok, data: data}; });
      })
      .then(function (result) {
        say(result.ok ? "" : "“" + item.dataset.title + "” was not moved: " + refusal(result.data));
      }, function () {
        say("“" + item.dataset.title + "” was not moved: the server could not be reached");
      })
      .then(reread)
      .then(function () {
        var now = document.getElementById("calendar");
        if (now) now.setAttribute("aria-busy", "false");
      });
  }

  function setUp(calendar) {
    if (!calendar) return;
    calendar.addEventListener("dragstart", function (evt) {
      var item = evt.target.closest ? evt.target.closest("li.calendar-item[draggable]") : null;
      if (!item) return;
      evt.dataTransfer.setData("text/plain", item.dataset.id);
      evt.dataTransfer.effectAllowed = "move";
      calendar.dataset.dragging = item.dataset.id;
    });
    calendar.addEventListener("dragend", function () { delete calendar.dataset.dragging; });
    calendar.addEventListener("dragover", function (evt) {
      var cell = evt.target.closest ? evt.target.closest("[data-day]") : null;
      if (!cell || !calendar.dataset.dragging) return;
      evt.preventDefault();
      evt.dataTransfer.dropEffect = "move";
    });
    calendar.addEventListener("drop", function (evt) {
      var cell = evt.target.closest ? evt.target.closest("[data-day]") : null;
      var id = calendar.dataset.dragging;
      if (!cell || !id) return;
      evt.preventDefault();
      var item = calendar.querySelector('li.calendar-item[data-id="' + CSS.escape(id) + '"]');
      delete calendar.dataset.dragging;
      if (!item || item.closest("[data-day]") === cell) return;
      cell.querySelector("ol.calendar-items").appendChild(item);
      move(calendar, item, cell);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUp(document.getElementById("calendar"));
  });
})();
