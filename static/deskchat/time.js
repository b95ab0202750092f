/*
 * The one way the browser writes a moment: DeskChat.when(date) gives "Dec 2, 2026 05:12", the
 * text deskchat/timefmt.py's format_when writes on the server, in the browser's time zone.
 *
 * It also tells the server which time zone that is: the deskchat_tz cookie holds
 * Intl.DateTimeFormat().resolvedOptions().timeZone, and the server renders every page and socket
 * frame in it. Until the cookie has made one round trip (the very first page), the server wrote
 * its own zone (<body data-time-zone>); then this script rewrites each <time data-when> in place.
 */
(function () {
  "use strict";
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var COOKIE = "deskchat_tz";

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function when(date) {
    if (!(date instanceof Date)) date = new Date(date);
    if (isNaN(date.getTime())) return "";
    return MONTHS[date.getMonth()] + " " + date.getDate() + ", " + date.getFullYear() + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  // Read back what when() writes (the time entry's start and end), as a moment in this zone.
  function parseWhen(text) {
    var m = /^\s*([A-Z][a-z]{2}) (\d{1,2}), (\d{4}) (\d{1,2}):(\d{2})\s*$/.exec(text || "");
    if (!m || MONTHS.indexOf(m[1]) < 0) return NaN;
    return new Date(+m[3], MONTHS.indexOf(m[1]), +m[2], +m[4], +m[5]).getTime();
  }

  function redraw(root) {
    (root || document).querySelectorAll("time[data-when][datetime]").forEach(function (el) {
      var text = when(el.getAttribute("datetime"));
      if (text && el.textContent !== text) el.textContent = text;
    });
  }

  var zone = browserZone();
  // IANA names (Area/City) are cookie-safe as they are; anything else is not sent.
  if (zone && /^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) {
    document.cookie = COOKIE + "=" + zone + "; path=/; max-age=31536000; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  // Only when the server wrote another zone than the browser's: normally there is nothing to do.
  function serverWroteAnotherZone() {
    return zone && document.body && document.body.dataset.timeZone && document.body.dataset.timeZone !== zone;
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (serverWroteAnotherZone()) redraw(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (serverWroteAnotherZone()) redraw(event.target);
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (serverWroteAnotherZone()) redraw(document);
  });

  // A time entry's hours follow its start and end, rounded up as the server does (the HUD's
  // form from a chat and the ticket page's correction).
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form.time-entry");
    if (!form || (event.target.name !== "started" && event.target.name !== "ended")) return;
    var started = parseWhen(form.elements.started.value);
    var ended = parseWhen(form.elements.ended.value);
    if (isNaN(started) || isNaN(ended) || ended < started) return;
    var step = Number(form.dataset.rounding || 0);
    var minutes = (ended - started) / 60000;
    if (step > 0) minutes = Math.max(1, Math.ceil(Number((minutes / step).toFixed(6)))) * step;
    form.elements.hours.value = (minutes / 60).toFixed(2);
  });

  window.DeskChat = window.DeskChat || {};
  window.DeskChat.when = when;
  window.DeskChat.parseWhen = parseWhen;
  window.DeskChat.timeZone = zone;
})();
