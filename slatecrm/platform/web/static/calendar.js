// The calendar's drag and drop (native HTML5): an item dropped on another day, or hour,
// sends a PATCH to the record's reschedule endpoint with the version the page showed; the
// calendar is then read again, so what it shows is what was stored. A refusal (a stale
// version, a read-only field) is said above it. Server text is only set with textContent.
// The keyboard does the same without a mouse: a focused item moves a day with the left and
// right arrows, and with up and down a week (month, all-day row) or an hour (an hour slot);
// focus stays on the item after the calendar is read again.
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

  // `to` is a cell's dataset, or the day (and hour) a key press aims at: {day, hour}.
  function move(calendar, item, to) {
    var body = new URLSearchParams({field: calendar.dataset.field, date: to.day,
                                    version: item.dataset.version});
    if (to.hour !== undefined) body.set("hour", to.hour);
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
        return now;
      });
  }

  function shifted(day, days) {
    var d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }

  // Where an arrow key sends an item in `cell`, or null when the key does not move it.
  var STEPS = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -1, ArrowDown: 1};
  function aim(cell, key) {
    var step = STEPS[key];
    if (step === undefined) return null;
    var hour = cell.dataset.hour;
    if (key === "ArrowLeft" || key === "ArrowRight") return {day: shifted(cell.dataset.day, step), hour: hour};
    if (hour === undefined) return {day: shifted(cell.dataset.day, 7 * step)};
    var next = Number(hour) + step;
    if (next < 0 || next > 23) return null;
    return {day: cell.dataset.day, hour: String(next)};
  }

  function onKey(calendar, evt) {
    var item = evt.target;
    if (!item.matches || !item.matches("li.calendar-item[draggable]") || evt.altKey || evt.ctrlKey ||
        evt.metaKey || calendar.getAttribute("aria-busy") === "true") return;
    var to = aim(item.closest("[data-day]"), evt.key);
    if (!to) return;
    evt.preventDefault();
    var id = item.dataset.id;
    move(calendar, item, to).then(function (now) {
      var again = now && now.querySelector('li.calendar-item[data-id="' + CSS.escape(id) + '"]');
      if (again) again.focus();
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
      move(calendar, item, cell.dataset);
    });
    calendar.addEventListener("keydown", function (evt) { onKey(calendar, evt); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUp(document.getElementById("calendar"));
  });
})();
