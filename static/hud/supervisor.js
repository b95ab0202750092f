/*
 * The supervisor view (templates/hud/supervisor.html): the board arrives over its socket
 * (chat/sockets/supervisor.py) each time it changes; between two boards, the longest waits tick on here,
 * from the seconds the server counted (so the browser's clock does not matter), as the HUD's
 * queue does. Waits read m:ss, the HUD's clock.
 */
(function () {
  "use strict";
  var root = document.getElementById("supervisor");
  if (!root) return;
  var status = document.getElementById("supervisor-connection");
  var drawnAt = performance.now();

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(s).padStart(2, "0");
  }

  function tick() {
    var elapsed = (performance.now() - drawnAt) / 1000;
    root.querySelectorAll(".wait-timer[data-waited]").forEach(function (timer) {
      var text = clock(Number(timer.dataset.waited || 0) + elapsed);
      if (timer.textContent !== text) timer.textContent = text;
    });
  }

  function setConnection(state, text) {
    status.dataset.state = state === "live" ? "live" : "down";
    status.textContent = text;
  }

  // The status line and reconnecting are static/chat/socket.js's, as on the HUD.
  DeskChatSocket.watch(root, setConnection, {
    open: "Live",
    4401: "Signed out: reload the page to sign in again.",
    4403: "Only supervisors can watch the desk.",
    4429: "Too many HUD windows are open: close one, and this one reconnects.",
    4503: "The chat server is busy reconnecting everyone. Back in a moment…",
  });
  root.addEventListener("htmx:wsAfterMessage", function () {
    drawnAt = performance.now();
    tick();
  });
  setInterval(tick, 1000);
})();
