/* The Staff HUD in the browser.
 *
 * htmx and its ws extension open /ws/hud/, send the <form ws-send> forms and swap in every
 * fragment the server sends; static/chat/socket.js speaks the protocol (sync, resend with the same
 * client_msg_id, retry, typing, read positions), as it does for the portal. This file draws the screen:
 *   - what the sync names (the last message per session) and what is being read (the open tab);
 *   - put a refused message back in its box;
 *   - replace, never duplicate, a session or invitation the server sends again;
 *   - tabs with unread counts, and "Seen" under the last message the client has seen;
 *   - the queue's live timers and overdue state, the new-request alert (popup, desktop
 *     notification, repeating beep while unseen) with Launch and Dismiss;
 *   - templates into the message box and Copy chat log (static/deskchat/time.js fills the time
 *     entry's hours).
 * The CSP forbids inline script, so everything lives here and listens by delegation.
 */
(function () {
  "use strict";

  var hud = document.getElementById("hud");
  if (!hud) return;

  var BEEP_EVERY_MS = 4000;
  var OPEN_FOLLOWS_ACTION_MS = 15000;

  var lastQueue = null; // the #hud-queue element last adopted (a redraw replaces it)
  var knownRequests = new Set(); // request ids in the queue as last drawn
  var seenRequests = new Set(); // request ids the engineer has had in front of them
  var knownInvitations = new Set();
  var expectOpenAt = 0; // when the engineer pressed Answer or Join
  var activeRoom = "";
  var preferredRoom = sessionStorage.getItem("hud-active-room") || "";
  var scrolledTo = {}; // room -> last seq scrolled into view
  var audio = null;
  var lastError = null;
  var lastNotice = null;
  var baseTitle = document.title;

  // --- Small helpers --------------------------------------------------------------------------

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  function looking() {
    return !document.hidden && document.hasFocus();
  }

  function lastSeq(room, othersOnly) {
    var max = 0;
    $all("#room-" + room + "-messages > li[data-seq]" + (othersOnly ? ":not(.mine)" : "")).forEach(function (li) {
      max = Math.max(max, Number(li.dataset.seq) || 0);
    });
    return max;
  }

  function dismissedRooms() {
    try { return JSON.parse(localStorage.getItem("hud-dismissed-rooms") || "[]"); } catch (err) { return []; }
  }

  // --- The socket (static/chat/socket.js) -----------------------------------------------------

  var chat = DeskChatSocket.open(hud, {
    // Name every session on the page with its last message: the server sends what followed,
    // a fresh panel for any session not named, and holds live messages until it has this.
    rooms: function () {
      var rooms = {};
      panels().forEach(function (panel) { rooms[panel.dataset.room] = lastSeq(panel.dataset.room); });
      return rooms;
    },
    reading: reading,
    onRefused: putBack,
    onFrame: hasTargets,
    onSwapped: refresh,
    setConnection: setConnection,
    texts: {
      open: "Connected",
      4401: "Signed out: reload the page to sign in again.",
      4403: "This account cannot use the HUD.",
      4429: "Too many HUD windows are open: close one, and this one reconnects.",
      4503: "The chat server is busy reconnecting everyone. Back in a moment…",
    },
    ping: true,
  });

  function setConnection(state, text) {
    var box = $("#hud-connection");
    box.dataset.state = state === "live" ? "live" : "down";
    box.textContent = text;
  }

  /* A read position for a session no longer on the page (closed and dismissed) has nowhere to land. */
  function hasTargets(frame) {
    return !frame.events("read").some(function (root) { return !document.getElementById(root.id); });
  }

  /* Refused for good (too long, not allowed …): put the text back so nothing typed is lost. */
  function putBack(draft) {
    var form = $("#session-" + draft.room + " form.compose");
    var area = form && $("textarea", form);
    if (area && !area.value) {
      area.value = draft.body;
      $("[name=kind]", form).value = draft.kind || "text";
    }
  }

  // A session or invitation sent again replaces the one on the page instead of doubling it.
  document.body.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.hasAttribute || !target.hasAttribute("data-upsert")) return;
    var fragment = event.detail.fragment;
    Array.prototype.slice.call(fragment.children || []).forEach(function (incoming) {
      var old = incoming.id && document.getElementById(incoming.id);
      if (!old) return;
      var draft = $("form.compose textarea", old);
      var fresh = $("form.compose textarea", incoming);
      if (draft && fresh && draft.value) fresh.textContent = draft.value;
      htmx.remove(old);
    });
  });

  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (hud.contains(event.target)) refresh();
  });

  function refresh() {
    adoptQueue();
    reconcileInvitations();
    reconcileSessions();
    watchErrors();
  }

  hud.addEventListener("htmx:wsConfigSend", function (event) {
    var detail = event.detail;
    var params = detail.parameters;
    var form = event.target;
    detail.headers = null; // the socket has its session; keep the CSRF token off it
    if (params.action === "send") {
      var body = String(params.body || "");
      if (!body.trim()) {
        event.preventDefault();
        return;
      }
      params.client_msg_id = chat.track({ room: params.room_id, body: body, kind: params.kind || "text" });
      $("textarea", form).value = "";
      $("[name=kind]", form).value = "text";
      chat.stopTyping(params.room_id, true); // the message itself ends the notice on the other side
    } else if (params.action === "answer" || params.action === "join") {
      expectOpenAt = Date.now();
    } else if (params.action === "invite_engineer") {
      var menu = form.closest("details");
      if (menu) menu.open = false;
    }
  });

  // --- The queue: timers, red state, alerts ---------------------------------------------------

  function queueItems(queue) {
    return $all(".queue-item", queue);
  }

  function waitedSeconds(item, now) {
    return Number(item.dataset.waited || 0) + (now - Number(item.dataset.drawnAt || now)) / 1000;
  }

  function adoptQueue() {
    var queue = $("#hud-queue");
    if (!queue || queue === lastQueue) return;
    var live = lastQueue !== null; // the first queue is the one the page was rendered with
    lastQueue = queue;
    var now = performance.now();
    var ids = queueItems(queue).map(function (item) {
      item.dataset.drawnAt = String(now);
      return item.dataset.requestId;
    });
    var fresh = ids.filter(function (id) { return !knownRequests.has(id); });
    knownRequests = new Set(ids);
    syncAvailability(queue.dataset.availability);
    if (looking()) markSeen();
    if (queue.dataset.notify !== "1" || !ids.length) {
      hideAlert();
    } else if (live && fresh.length) {
      showAlert();
    }
    tick();
  }

  function tick() {
    var queue = $("#hud-queue");
    if (!queue) return;
    if (queue !== lastQueue) adoptQueue();
    var limit = Number(queue.dataset.alertSeconds || hud.dataset.alertSeconds || 30);
    var now = performance.now();
    var overdue = false;
    queueItems(queue).forEach(function (item) {
      var waited = waitedSeconds(item, now);
      var timer = $(".wait-timer", item);
      var text = clock(waited);
      if (timer && timer.textContent !== text) timer.textContent = text;
      var late = waited >= limit;
      item.classList.toggle("overdue", late);
      overdue = overdue || late;
    });
    queue.classList.toggle("overdue", overdue);
    queue.dataset.overdue = overdue ? "1" : "0";
    if (!$("#hud-alert").hidden) $("#hud-alert-text").textContent = alertText();
  }

  function alertText() {
    var queue = $("#hud-queue");
    var items = queue ? queueItems(queue) : [];
    var now = performance.now();
    var longest = items.reduce(function (most, item) { return Math.max(most, waitedSeconds(item, now)); }, 0);
    var who = items.length === 1 ? "1 person is" : items.length + " people are";
    return who + " waiting in the chat queue. Longest wait: " + clock(longest) + ".";
  }

  function showAlert() {
    var box = $("#hud-alert");
    $("#hud-alert-text").textContent = alertText();
    box.hidden = false;
    box.dataset.shown = String(Number(box.dataset.shown || 0) + 1);
    if (!looking()) notifyDesktop("DeskChat: chat queue", alertText(), "deskchat-queue", launch);
  }

  function hideAlert() {
    $("#hud-alert").hidden = true;
  }

  function markSeen() {
    knownRequests.forEach(function (id) { seenRequests.add(id); });
  }

  function launch() {
    hideAlert();
    markSeen();
    try { window.focus(); } catch (err) { /* not allowed: the click already focused us */ }
    var queue = $("#hud-queue");
    queue.scrollIntoView({ block: "start" });
    var answer = $(".queue-item button", queue);
    if (answer) answer.focus({ preventScroll: true });
  }

  $("#hud-alert-launch").addEventListener("click", launch);
  $("#hud-alert-dismiss").addEventListener("click", function () {
    hideAlert();
    markSeen();
  });

  function notifyDesktop(title, body, tag, onClick) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      var note = new Notification(title, { body: body, tag: tag, renotify: true, requireInteraction: true });
      note.onclick = function () {
        window.focus();
        note.close();
        if (onClick) onClick();
      };
      hud.dataset.desktopNotifications = String(Number(hud.dataset.desktopNotifications || 0) + 1);
    } catch (err) {
      // Some browsers only allow notifications from a service worker; the popup still shows.
    }
  }

  var permissionButton = $("#enable-notifications");
  function showPermissionButton() {
    permissionButton.hidden = !("Notification" in window) || Notification.permission !== "default";
  }
  permissionButton.addEventListener("click", function () {
    Notification.requestPermission().then(showPermissionButton, showPermissionButton);
  });
  showPermissionButton();

  // A beep made on the spot (no audio file), repeated while a request waits unseen and the
  // engineer is looking elsewhere. Browsers only let audio start after a user gesture, so the
  // audio context is created on the first click or key press on the page.
  function unlockAudio() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!audio) audio = new Context();
    if (audio.state === "suspended") audio.resume().catch(function () {});
  }
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);

  function beep() {
    unlockAudio();
    if (!audio) return;
    var start = audio.currentTime;
    [0, 0.25].forEach(function (offset) {
      var tone = audio.createOscillator();
      var gain = audio.createGain();
      tone.type = "sine";
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.3, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.18);
      tone.connect(gain);
      gain.connect(audio.destination);
      tone.start(start + offset);
      tone.stop(start + offset + 0.2);
    });
    hud.dataset.beeps = String(Number(hud.dataset.beeps || 0) + 1);
  }

  setInterval(function () {
    var queue = $("#hud-queue");
    if (!queue || queue.dataset.notify !== "1" || looking()) return;
    var unseen = Array.from(knownRequests).some(function (id) { return !seenRequests.has(id); });
    if (unseen) beep();
  }, BEEP_EVERY_MS);

  function whenLooking() {
    if (!looking()) return;
    markSeen();
    updateUnread();
  }
  document.addEventListener("visibilitychange", whenLooking);
  window.addEventListener("focus", whenLooking);

  // --- Availability ---------------------------------------------------------------------------

  function syncAvailability(value) {
    if (!value) return;
    hud.dataset.availability = value;
    $all("#availability-form input[name=availability]").forEach(function (radio) {
      radio.checked = radio.value === value;
    });
  }

  // --- Invitations into rooms -----------------------------------------------------------------

  function reconcileInvitations() {
    $all("#invitations > .room-invitation").forEach(function (card) {
      var room = card.dataset.room;
      if (document.getElementById("session-" + room) && $("#session-" + room).dataset.state !== "closed") {
        card.remove();
        return;
      }
      if (!knownInvitations.has(room)) {
        knownInvitations.add(room);
        if (!looking()) notifyDesktop("DeskChat: chat invitation", card.textContent.trim(), "deskchat-room-" + room, null);
      }
    });
  }

  // --- Sessions: tabs, state, unread ----------------------------------------------------------

  function panels() {
    return $all("#sessions > .session");
  }

  function makeTab(panel) {
    var tab = document.createElement("button");
    tab.type = "button";
    tab.id = "tab-room-" + panel.dataset.room;
    tab.className = "session-tab";
    tab.dataset.room = panel.dataset.room;
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", panel.id);
    var title = document.createElement("span");
    title.className = "tab-title";
    var unread = document.createElement("span");
    unread.className = "unread";
    unread.hidden = true;
    tab.appendChild(title);
    tab.appendChild(document.createTextNode(" "));
    tab.appendChild(unread);
    return tab;
  }

  function reconcileSessions() {
    var tablist = $("#session-tabs");
    var dismissed = dismissedRooms();
    panels().forEach(function (panel) {
      if (panel.dataset.state === "closed" && dismissed.indexOf(panel.dataset.room) >= 0) htmx.remove(panel);
    });
    var rooms = panels().map(function (panel) { return panel.dataset.room; });
    $all("[role=tab]", tablist).forEach(function (tab) {
      if (rooms.indexOf(tab.dataset.room) < 0) tab.remove();
    });
    var opened = null;
    panels().forEach(function (panel) {
      var room = panel.dataset.room;
      var tab = document.getElementById("tab-room-" + room);
      if (!tab) {
        tab = makeTab(panel);
        tablist.appendChild(tab);
        if (room === preferredRoom || Date.now() - expectOpenAt < OPEN_FOLLOWS_ACTION_MS) opened = room;
      }
      var closed = panel.dataset.state === "closed" || !!$("[data-event=room_closed]", panel);
      if (closed) closePanel(panel);
      tab.classList.toggle("closed", closed);
      $(".tab-title", tab).textContent = panel.dataset.title + (closed ? " (left)" : "");
      showSeen(panel);
    });
    if (opened) {
      expectOpenAt = 0;
      activate(opened, { focus: false });
    } else if (rooms.indexOf(activeRoom) < 0) {
      activate(rooms.indexOf(preferredRoom) >= 0 ? preferredRoom : rooms[0] || "", { focus: false });
    } else {
      showActive();
    }
    $("#no-sessions").hidden = rooms.length > 0;
    updateUnread();
  }

  function closePanel(panel) {
    if (panel.dataset.state === "closed" && panel.dataset.wrapped === "1") return;
    panel.dataset.state = "closed";
    panel.dataset.wrapped = "1";
    $all("button.after-leave", panel).forEach(function (button) { button.disabled = false; });
    $all("form.compose textarea, form.compose button", panel).forEach(function (field) { field.disabled = true; });
    chat.stopTyping(panel.dataset.room, true);
  }

  /* "Seen" under the last message the client has seen: as the panel was drawn (data-seen-seq),
     then as the latest read frame says (#room-N-seen); it stays put until the client reads on. */
  function showSeen(panel) {
    var room = panel.dataset.room;
    var position = document.getElementById("room-" + room + "-seen");
    var seq = Number((position && position.dataset.seq) || panel.dataset.seenSeq || 0);
    var target = null;
    $all("#room-" + room + "-messages > li[data-seq]").forEach(function (li) {
      if (Number(li.dataset.seq) <= seq) target = li;
    });
    var mark = $(".msg-seen", panel);
    if (mark && mark.parentNode === target) return;
    var list = $(".messages", panel);
    var atEnd = list && list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    if (mark) mark.remove();
    if (!target) return;
    mark = document.createElement("span");
    mark.className = "msg-seen";
    mark.textContent = "Seen";
    target.appendChild(mark);
    if (atEnd) list.scrollTop = list.scrollHeight; // the mark under the newest line stays in view
  }

  function activate(room, options) {
    activeRoom = room || "";
    if (room) {
      preferredRoom = room;
      sessionStorage.setItem("hud-active-room", room);
    }
    showActive();
    updateUnread();
    if (room && options && options.focus) {
      var box = $("#session-" + room + " form.compose textarea");
      if (box && !box.disabled) box.focus();
    }
  }

  function showActive() {
    panels().forEach(function (panel) {
      var on = panel.dataset.room === activeRoom;
      panel.hidden = !on;
      var tab = document.getElementById("tab-room-" + panel.dataset.room);
      if (tab) {
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
      }
    });
  }

  $("#session-tabs").addEventListener("click", function (event) {
    var tab = event.target.closest("[role=tab]");
    if (tab) activate(tab.dataset.room, { focus: true });
  });

  $("#session-tabs").addEventListener("keydown", function (event) {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    var tabs = $all("[role=tab]", this);
    var index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    var next = tabs[(index + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    activate(next.dataset.room, { focus: false });
    next.focus();
    event.preventDefault();
  });

  function updateUnread() {
    var total = 0;
    panels().forEach(function (panel) {
      var room = panel.dataset.room;
      var seq = lastSeq(room);
      var list = $(".messages", panel);
      if (room === activeRoom) {
        if (scrolledTo[room] !== seq && list) {
          list.scrollTop = list.scrollHeight;
          scrolledTo[room] = seq;
        }
        if (looking() && seq > Number(panel.dataset.readSeq || 0)) panel.dataset.readSeq = String(seq);
      }
      var readSeq = Number(panel.dataset.readSeq || 0);
      var count = 0;
      $all(".messages > li[data-seq]", panel).forEach(function (li) {
        if (Number(li.dataset.seq) > readSeq && !li.classList.contains("mine") && li.dataset.kind !== "system") count += 1;
      });
      total += count;
      var tab = document.getElementById("tab-room-" + room);
      var badge = tab && $(".unread", tab);
      if (badge) {
        badge.hidden = count === 0;
        badge.textContent = String(count);
        badge.setAttribute("aria-label", count + " unread");
        tab.dataset.unread = String(count);
      }
    });
    document.title = (total ? "(" + total + ") " : "") + baseTitle;
    chat.reportReads();
  }

  /* What the engineer is reading now, for socket.js to report: the open session, while they look. */
  function reading() {
    var panel = activeRoom && document.getElementById("session-" + activeRoom);
    var shown = {};
    // How far the engineer has read what others wrote: their own messages are never unread, and
    // reporting each one's echo would double what a message costs the server.
    if (panel && panel.dataset.state !== "closed" && looking()) shown[activeRoom] = lastSeq(activeRoom, true);
    return shown;
  }

  // --- Errors and notices ---------------------------------------------------------------------

  function watchErrors() {
    var box = $("#chat-errors");
    if (box && box !== lastError && box.dataset.event === "error") {
      lastError = box;
      fadeLater(box, 15000);
    }
    var notice = $("#chat-notice");
    if (notice && notice !== lastNotice && notice.dataset.event === "notice") {
      lastNotice = notice;
      fadeLater(notice, 8000);
    }
  }

  function fadeLater(element, ms) {
    setTimeout(function () { element.hidden = true; }, ms);
  }

  // --- Composing ------------------------------------------------------------------------------

  hud.addEventListener("keydown", function (event) {
    var area = event.target;
    if (area.tagName !== "TEXTAREA" || !area.closest("form.compose")) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      area.closest("form").requestSubmit();
    }
  });

  hud.addEventListener("input", function (event) {
    var area = event.target;
    var form = area.closest && area.closest("form.compose");
    if (!form || area.tagName !== "TEXTAREA") return;
    if (!area.value) $("[name=kind]", form).value = "text";
    chat.typing(form.dataset.room);
  });

  // --- Buttons: templates, Copy chat log, Enter time entry, Close ----------------------------

  hud.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || !hud.contains(button)) return;
    var panel = button.closest(".session");
    if (button.classList.contains("template-insert") && panel) {
      var form = $("form.compose", panel);
      var area = $("textarea", form);
      area.value = button.dataset.text;
      $("[name=kind]", form).value = button.dataset.kind;
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
    } else if (button.dataset.action === "copy-log" && panel) {
      copyLog(panel);
    } else if (button.dataset.action === "time-entry" && panel) {
      copyLog(panel); // htmx loads the form; the log goes to the clipboard as well
    } else if (button.dataset.action === "close-session" && panel) {
      var rooms = dismissedRooms().concat([panel.dataset.room]).slice(-100);
      localStorage.setItem("hud-dismissed-rooms", JSON.stringify(rooms));
      htmx.remove(panel);
      reconcileSessions();
    }
  });

  function copyLog(panel) {
    var url = panel.dataset.transcriptUrl;
    var status = $(".copy-status", panel);
    function fetchText() {
      return fetch(url, { credentials: "same-origin", headers: { Accept: "text/plain" } }).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      });
    }
    var copied;
    // ClipboardItem takes a promise, so the write starts inside the click (which browsers
    // require) even though the text is still being fetched.
    if (navigator.clipboard && window.ClipboardItem && navigator.clipboard.write) {
      copied = navigator.clipboard.write([new window.ClipboardItem({
        "text/plain": fetchText().then(function (text) { return new Blob([text], { type: "text/plain" }); }),
      })]);
    } else if (navigator.clipboard) {
      copied = fetchText().then(function (text) { return navigator.clipboard.writeText(text); });
    } else {
      copied = Promise.reject(new Error("no clipboard"));
    }
    status.textContent = "Copying the chat log…";
    copied.then(function () {
      status.textContent = "Chat log copied to the clipboard.";
      panel.dataset.copied = "1";
    }, function () {
      fetchText().then(function (text) {
        var box = $(".manual-copy", panel) || document.createElement("textarea");
        box.className = "manual-copy";
        box.readOnly = true;
        box.rows = 6;
        box.setAttribute("aria-label", "Chat log");
        box.value = text;
        status.after(box);
        box.select();
        status.textContent = "The browser blocked the clipboard: the chat log is selected below, copy it with Ctrl+C.";
      }, function () {
        status.textContent = "Could not load the chat log. Try again.";
      });
    });
  }

  // --- Start ----------------------------------------------------------------------------------

  refresh();
  setInterval(tick, 1000);
})();
