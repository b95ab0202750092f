/*
 * The staff pages' socket status (the HUD and the supervisor view): what the status line says
 * when a socket opens or closes, and reconnecting with backoff after the close codes htmx's ws
 * extension leaves alone (it retries only 1006, 1011, 1012 and 1013 by itself). After 4401 and
 * 4403 reconnecting cannot help, so the line says what to do instead.
 */
(function () {
  "use strict";
  var HTMX_RETRIES = [1006, 1011, 1012, 1013];
  var LOST = "Connection lost. Reconnecting…";

  // watch(root, setConnection, closeText): root carries hx-ext="ws"; setConnection(state, text)
  // draws the status line; closeText maps close codes to what the line says for them.
  function watch(root, setConnection, closeText) {
    var reconnects = 0;
    root.addEventListener("htmx:wsOpen", function () { reconnects = 0; });
    root.addEventListener("htmx:wsClose", function (event) {
      var code = event.detail.event.code;
      setConnection("down", closeText[code] || LOST);
      if (code === 4401 || code === 4403 || HTMX_RETRIES.indexOf(code) >= 0) return;
      var wrapper = event.detail.socketWrapper;
      var wait = Math.min(30000, 1000 * Math.pow(2, reconnects)) * (0.5 + Math.random());
      reconnects += 1;
      setTimeout(function () { if (document.body.contains(root)) wrapper.reconnect(); }, wait);
    });
    root.addEventListener("htmx:wsError", function () { setConnection("down", LOST); });
  }

  window.DeskChatConnection = { watch: watch };
})();
