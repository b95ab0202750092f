/* DeskChat: the client's chat dock (templates/chat/_dock.html).

   htmx's ws extension connects the socket and swaps in every fragment the server sends;
   static/chat/socket.js speaks the protocol (chat/sockets/), as it does for the HUD: sync,
   resend with the same client_msg_id, retry, reconnect, typing, read positions. This file draws
   what the client sees between fragments and tells socket.js what the page shows:
   - what `sync` names (the highest seq per room) and which room is being read (the dialog open on
     a visible page); the messages not echoed yet shown as pending (kept in sessionStorage, so
     they survive moving to another page), and a refused one's text put back in the box;
   - the live wait timer from the server's timestamp, the compose lock and its reason, the
     reconnecting indicator;
   - the message list opens at its newest message and follows new ones unless the client has
     scrolled up (then a "New messages" button), the unread count while minimised, alerts cleared
     when the state they were about changes, the words of Join Chat while a chat is open, and the
     ticket's tabs redrawn when the chat on that ticket ends.
   No inline script or style anywhere (the CSP forbids it): state shows through data attributes
   that static/css/deskchat.css styles. */
(function () {
  "use strict";

  var dock = document.getElementById("chat-dock");
  if (!dock) return;

  var PENDING_KEY = "deskchat.pending";
  var DRAFT_KEY = "deskchat.draft";
  var SEEN_KEY = "deskchat.seen"; // per room, the highest seq the client had on screen
  var NEAR_BOTTOM_PX = 24;
  var MIN_COOKIE = "deskchat_dock_min";
  var DISMISSED_COOKIE = "deskchat_dock_dismissed";
  // Said on close code 4429, CHAT_MAX_SOCKETS_PER_USER (chat.sockets.shared.CLOSE_TOO_MANY_SOCKETS).
  var TOO_MANY_SOCKETS_TEXT = "Too many DeskChat windows are open: close one, and this one reconnects.";
  // Said on close code 4503: the server is taking many sockets back at once (deskchat/admission.py).
  var BUSY_TEXT = "Chat is busy reconnecting everyone. Back in a moment…";
  var DRAFT_EVERY_MS = 1000; // the question typed while waiting goes to the engineers' queue at most this often
  var DRAFT_MAX = 500; // chat.models.DRAFT_MAX_LENGTH
  var KEPT_KEY = "deskchat.kept"; // the "nobody is free / engineer left" choices the client chose to wait through

  var input = document.getElementById("chat-input");
  var compose = document.getElementById("chat-compose");
  var sendButton = document.getElementById("chat-send");
  var lockLine = document.getElementById("chat-lock");
  var live = document.getElementById("chat-live");
  var headStatus = document.getElementById("chat-head-status");
  var headLabel = document.getElementById("chat-head-label");
  var unreadBadge = document.getElementById("chat-unread");
  var scroller = document.getElementById("chat-room");
  var jumpButton = document.getElementById("chat-jump");

  var clockOffset = 0; // server clock minus this browser's clock, in ms
  var dismissedRoom = "";
  var focusOnOpen = false;
  var unread = 0;
  var following = true; // the message list is scrolled to its end, so new messages are followed
  var shownKey = null; // the server state the dialog last drew (see stateKey)
  var tabsDue = false; // the chat on this page's ticket ended: redraw the ticket's tabs
  var arrived = false; // a message from someone else came in since the last redraw
  var lastInvitation = "";
  var participantsOpen = false;
  var loaded = false;
  var callbackTicketUrl = ""; // the ticket page a callback request was sent from, until it is noted
  var draftTimer = null;
  var draftSent = {}; // request id -> the draft the server has

  // --- Small helpers -------------------------------------------------------------------------

  function byId(id) { return document.getElementById(id); }

  function getCookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function setCookie(name, value) {
    document.cookie = name + "=" + encodeURIComponent(value) + "; path=/; SameSite=Lax" + (value ? "" : "; max-age=0");
  }

  function load(key, fallback) {
    try { return JSON.parse(sessionStorage.getItem(key)) || fallback; } catch (e) { return fallback; }
  }

  function store(key, value) {
    try { sessionStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode: keep in memory only */ }
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var ss = (s < 10 ? "0" : "") + s;
    return h ? h + ":" + (m < 10 ? "0" : "") + m + ":" + ss : m + ":" + ss;
  }

  function socketOpen() { return chat.isOpen(); }

  function send(frame, liveOnly) { chat.send(frame, liveOnly); }

  // --- What the page shows now ---------------------------------------------------------------

  function status() { return byId("chat-status"); }

  function panel() { return document.querySelector("#chat-room .chat-room[data-room]"); }

  /* The room the client can still act in: a room shown as closed (left or ended) is not one, so
     nothing (read positions, typing) is sent for it any more. */
  function roomId() {
    var st = status();
    if (!st || st.dataset.state !== "chatting") return "";
    var section = panel();
    return section && section.dataset.room === st.dataset.roomId && isClosed(section) ? "" : st.dataset.roomId;
  }

  function isClosed(section) {
    var slot = section && byId("room-" + section.dataset.room + "-closed");
    return !!(slot && slot.textContent.trim());
  }

  function engineerPresent(room) {
    var box = byId("room-" + room + "-participants");
    if (box && box.hasAttribute("data-engineers")) return box.dataset.engineers !== "";
    var st = status();
    return !!(st && st.dataset.engineerPresent === "1");
  }

  function hasAlert() {
    return !!(byId("chat-errors").textContent.trim() || byId("chat-notice").textContent.trim());
  }

  function computeView() {
    var st = status();
    var state = st ? st.dataset.state : "idle";
    var section = panel();
    if (state === "waiting") return "waiting";
    if (state === "chatting" && st.dataset.roomId !== dismissedRoom) {
      var current = section && section.dataset.room === st.dataset.roomId;
      if (!current || !isClosed(section)) return "chatting";
    }
    // Before "ended": a chat returned to the queue that nobody took back ends its room and expires.
    if (state === "expired" && getCookie(DISMISSED_COOKIE) !== st.dataset.requestId) return "expired";
    if (section && isClosed(section) && section.dataset.room !== dismissedRoom) return "ended";
    return hasAlert() ? "message" : "idle";
  }

  /* What the server says the dialog is about; alerts said about an earlier state go when it changes. */
  function stateKey() {
    var st = status();
    var section = panel();
    var slot = section && byId("room-" + section.dataset.room + "-closed");
    return [st ? st.dataset.state : "", st ? st.dataset.requestId : "", st ? st.dataset.roomId : "",
      section ? section.dataset.room : "", slot ? slot.dataset.state || "" : ""].join("|");
  }

  /* Errors are about what the client just tried, so any change of state makes them stale. A notice
     tells of the change itself (a callback noted), so only a new chat (waiting, chatting) clears it. */
  function clearStaleAlerts() {
    var key = stateKey();
    if (shownKey !== null && key !== shownKey) {
      clearAlert("chat-errors");
      var st = status();
      if (st && (st.dataset.state === "waiting" || roomId())) clearAlert("chat-notice");
    }
    shownKey = key;
    // "You are not in this chat" about a room the client has just left says nothing new.
    var errors = byId("chat-errors");
    if (!roomId() && ["not_participant", "room_ended"].indexOf(errors.dataset.error) >= 0) clearAlert("chat-errors");
  }

  function lockReason(view) {
    if (view === "waiting") return "waiting";
    if (view === "chatting" && !engineerPresent(roomId())) return "absent";
    return view === "chatting" ? "" : "closed";
  }

  /* The highest seq this page shows per room: what `sync` tells the server after an open. */
  function knownRooms() {
    var rooms = {};
    document.querySelectorAll("#chat-room .chat-room[data-room]").forEach(function (section) {
      var highest = 0;
      section.querySelectorAll("li[data-seq]").forEach(function (li) {
        highest = Math.max(highest, parseInt(li.dataset.seq, 10) || 0);
      });
      rooms[section.dataset.room] = highest;
    });
    return rooms;
  }

  function highestSeq(room) {
    return knownRooms()[room] || 0;
  }

  function highestOthersSeq(room) {
    var max = 0;
    document.querySelectorAll("#room-" + room + "-messages > li[data-seq]:not(.mine)").forEach(function (li) {
      max = Math.max(max, Number(li.dataset.seq) || 0);
    });
    return max;
  }

  // --- Pending messages: sent (or queued) but not yet echoed by the server -------------------

  function renderPending() {
    var list = byId("chat-pending");
    var room = roomId();
    list.textContent = "";
    chat.pending.list().forEach(function (item) {
      if (item.room !== room) return;
      var li = document.createElement("li");
      li.className = "msg msg-text mine pending";
      li.dataset.pendingId = item.id;
      var meta = document.createElement("div");
      meta.className = "msg-meta";
      meta.textContent = socketOpen() ? "Sending…" : "Waiting for the connection to send…";
      var body = document.createElement("div");
      body.className = "msg-body";
      body.textContent = item.body;
      li.appendChild(meta);
      li.appendChild(body);
      list.appendChild(li);
    });
  }

  /* After an open, a message of the current chat goes again; one from a chat that is no longer
     current goes back into the message box instead (or is dropped with the chat dismissed). */
  function resendable(item) {
    var room = roomId();
    if (room && item.room === room) return true;
    if (room || item.room !== dismissedRoom) restoreText(item.body);
    return false;
  }

  function restoreText(text) {
    if (!text) return;
    input.value = input.value.trim() ? input.value + "\n" + text : text;
    saveDraft();
  }

  function saveDraft() { store(DRAFT_KEY, input.value); }

  /* A note landed on a ticket: if this page shows that ticket, redraw its notes in place. */
  function reloadTicketNotes(ticketUrl) {
    if (ticketUrl && location.pathname === ticketUrl) redrawTicketTabs("notes");
  }

  /* Redraw the ticket's tabs (Notes, Chat history) in place, on the tab given or the one open, keeping
     what the client was writing in "Add a note" (and the focus in it). */
  function redrawTicketTabs(tab) {
    if (!byId("ticket-tabs")) return;
    var history = byId("tab-history");
    tab = tab || (history && history.getAttribute("aria-selected") === "true" ? "history" : "notes");
    var box = byId("id_text");
    var draft = box ? box.value : "";
    var focused = box && document.activeElement === box;
    htmx.ajax("GET", location.pathname + "?tab=" + tab, { target: "#ticket-tabs", swap: "outerHTML" }).then(function () {
      var again = byId("id_text");
      if (!again || !draft || again.value) return;
      again.value = draft;
      if (focused) { again.focus(); again.setSelectionRange(draft.length, draft.length); }
    });
  }

  /* The ticket this page shows, if it is a ticket page. */
  function pageTicket() {
    var article = document.querySelector("article.ticket[data-ticket-id]");
    return article ? article.dataset.ticketId : "";
  }

  // --- The message list: open at the newest, follow new messages unless scrolled up ---------

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= NEAR_BOTTOM_PX;
  }

  function scrollToNewest() {
    scroller.scrollTop = scroller.scrollHeight;
    following = true;
    jumpButton.hidden = true;
  }

  /* After new content: stay at the end if the client was there, else offer a way down. */
  function follow(newFromOthers) {
    if (!scroller.clientHeight) return; // hidden (minimised, waiting): scrolled when shown
    if (following) scrollToNewest();
    else if (newFromOthers) jumpButton.hidden = false;
  }

  // --- Unread messages: counted against what the client had on screen, kept across pages ----

  function seenSeq(room) { return load(SEEN_KEY, {})[room] || 0; }

  function markSeen(room) {
    var seen = load(SEEN_KEY, {});
    var seq = highestSeq(room);
    if (seq > (seen[room] || 0)) { seen[room] = seq; store(SEEN_KEY, seen); }
  }

  function countUnread() {
    var room = roomId();
    if (!room) return 0;
    var after = seenSeq(room);
    return Array.prototype.filter.call(
      document.querySelectorAll("#room-" + room + "-messages li[data-seq]:not(.mine):not(.msg-system)"),
      function (li) { return parseInt(li.dataset.seq, 10) > after; }
    ).length;
  }

  // --- Join Chat: while a chat waits or runs, the button opens it instead ------------------

  function updateJoinButtons(view) {
    var st = status();
    var open = st && (view === "waiting" || view === "chatting") ? st.dataset.ticketId || "" : "";
    document.querySelectorAll("[data-chat-join]").forEach(function (button) {
      var label = !open ? "Join Chat" : open === button.dataset.chatJoin ? "Open chat" : "Chat open on #" + open;
      if (button.textContent !== label) button.textContent = label;
      button.dataset.chatOpen = open;
      var help = byId(button.getAttribute("aria-describedby"));
      var said = open ? "Shows your chat about ticket #" + open + "." : "Chat live with the service desk about this ticket.";
      if (help && help.textContent !== said) help.textContent = said;
    });
  }

  // --- Drawing the dock ----------------------------------------------------------------------

  function say(text) {
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function refresh() {
    var before = dock.dataset.view;
    clearStaleAlerts();
    var view = computeView();
    dock.dataset.view = view;
    var st = status();
    if (st && !st.dataset.offsetRead && st.dataset.now) {
      var serverNow = Date.parse(st.dataset.now);
      if (!isNaN(serverNow)) clockOffset = serverNow - Date.now();
      st.dataset.offsetRead = "1";
    }

    var reason = lockReason(view);
    // Engineers come and go with only the participant list redrawn: keep the state line in step.
    var stateLine = view === "chatting" && st ? st.querySelector(".state-line[data-present]") : null;
    if (stateLine) {
      var said = stateLine.dataset[reason === "absent" ? "absent" : "present"];
      if (stateLine.textContent !== said) stateLine.textContent = said;
    }
    // A chat waiting again after its engineer left still shows its history (static/css/deskchat.css).
    dock.dataset.returning = view === "waiting" && st && st.dataset.returning === "1" ? "1" : "";
    var kept = load(KEPT_KEY, []);
    document.querySelectorAll("#chat-offer [data-chat-choices]").forEach(function (choices) {
      var keep = kept.indexOf(choices.dataset.key) >= 0;
      choices.hidden = keep;
      var link = byId("chat-offer").querySelector(".chat-callback-link");
      if (link) link.hidden = !keep;
    });
    compose.dataset.lock = reason;
    compose.hidden = reason === "closed";
    sendButton.disabled = reason !== "";
    var why = reason === "waiting" || reason === "absent" ? compose.dataset["lock" + reason.charAt(0).toUpperCase() + reason.slice(1)] : "";
    if (lockLine.textContent !== why) lockLine.textContent = why;

    if (before !== view) {
      if (view !== "idle" && view !== "message" && loaded) setMinimized(false);
      if (view === "waiting") { draftSent = {}; sendDraftSoon(); }
      if (view === "waiting") say("You are in the queue for a chat.");
      else if (view === "chatting" && before === "waiting") say("An engineer answered your chat.");
      else if (view === "ended") say(roomEnded() ? "The chat has ended." : "You left the chat.");
      else if (view === "expired") say("Nobody could answer in time. You can leave a note on the ticket or ask for a callback.");
      if (focusOnOpen && (view === "waiting" || view === "chatting")) {
        focusOnOpen = false;
        input.focus();
      }
      if (view === "expired" || view === "ended") {
        var first = view === "expired" ? document.querySelector("#chat-offer textarea") : document.querySelector("#chat-leave .chat-cross");
        if (first && dock.contains(document.activeElement)) first.focus();
      }
    }

    document.querySelectorAll("#chat-dock textarea[data-chat-draft]").forEach(function (area) {
      if (area !== input && !area.value && !area.dataset.filled) {
        area.value = input.value || load(DRAFT_KEY, "");
        area.dataset.filled = "1";
      }
    });
    document.querySelectorAll("#chat-dock details.participants").forEach(function (details) {
      if (participantsOpen && !details.open) details.open = true;
    });
    localizeTimes();
    chat.settle();
    renderPending();
    updateJoinButtons(view);
    if (before !== view || !loaded) following = true; // a chat (re)appearing opens at its newest message
    jumpButton.hidden = jumpButton.hidden || (view !== "chatting" && view !== "ended");
    markRead();
    unread = countUnread();
    tick();
    follow(arrived);
    arrived = false;
    if (tabsDue) { tabsDue = false; redrawTicketTabs(); }
    loaded = true;
  }

  /* Whether the chat shown has ended for everyone (rather than been left by the client). */
  function roomEnded() {
    var section = panel();
    var slot = section && byId("room-" + section.dataset.room + "-closed");
    return !!(slot && slot.dataset.state === "ended");
  }

  function localizeTimes() {
    document.querySelectorAll("#chat-room time[datetime]:not([data-local])").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) el.textContent = window.DeskChat.when(when); // the one format (static/deskchat/time.js)
      el.dataset.local = "1";
    });
  }

  function tick() {
    var now = Date.now() + clockOffset;
    var waited = "";
    document.querySelectorAll("#chat-dock .wait-timer[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (!isNaN(since)) {
        waited = clock((now - since) / 1000);
        if (el.textContent !== waited) el.textContent = waited;
      }
    });
    var view = dock.dataset.view;
    var text = "";
    var label = "Chat";
    if (view === "waiting") text = "· waiting " + waited;
    else if (view === "ended") label = roomEnded() ? "Chat ended" : "You left the chat";
    else if (view === "expired") text = "· nobody answered";
    if (headStatus.textContent !== text) headStatus.textContent = text;
    if (headLabel.textContent !== label) headLabel.textContent = label;
    var count = view === "chatting" ? unread : 0;
    unreadBadge.hidden = !count;
    if (unreadBadge.textContent !== String(count)) {
      unreadBadge.textContent = String(count);
      unreadBadge.title = count === 1 ? "1 new message" : count + " new messages";
    }
  }

  function setMinimized(minimized) {
    var toggle = dock.querySelector("[data-chat-minimize]");
    if (minimized) dock.dataset.minimized = "1";
    else delete dock.dataset.minimized;
    toggle.setAttribute("aria-expanded", minimized ? "false" : "true");
    setCookie(MIN_COOKIE, minimized ? "1" : "");
    if (!minimized) {
      if (following) scrollToNewest();
      markRead();
      unread = countUnread();
      tick();
    }
  }

  function visible() {
    return document.visibilityState === "visible" && !dock.dataset.minimized && dock.dataset.view === "chatting";
  }

  /* The client has the chat in front of them: count it seen (unread badge), and let socket.js
     report the read, coalesced. */
  function markRead() {
    var room = roomId();
    if (!room || !visible()) return;
    markSeen(room);
    chat.reportReads();
  }

  function clearAlert(id) {
    var el = byId(id);
    if (el) { el.textContent = ""; el.removeAttribute("data-error"); el.removeAttribute("data-client-msg-id"); }
  }

  function clearAlerts() {
    clearAlert("chat-errors");
    clearAlert("chat-notice");
  }

  /* The cross when there is nothing to leave: close the dialog until something new happens. */
  function dismiss() {
    var view = dock.dataset.view;
    var st = status();
    if (view === "expired" && st) setCookie(DISMISSED_COOKIE, st.dataset.requestId);
    if (view === "ended") {
      var section = panel();
      dismissedRoom = section ? section.dataset.room : dismissedRoom;
      byId("chat-room").textContent = "";
      var gone = chat.pending.list().filter(function (item) { return item.room === dismissedRoom; });
      chat.pending.drop(gone.map(function (item) { return item.id; }));
      renderPending();
    }
    clearAlerts();
    refresh();
  }

  function stopTyping() {
    var room = roomId();
    if (room) chat.stopTyping(room);
  }

  // --- The socket (static/chat/socket.js) -----------------------------------------------------

  function setConn(state, why) {
    dock.dataset.conn = { live: "open", down: "reconnecting", refused: "closed" }[state];
    var text = dock.querySelector(".chat-conn-text");
    text.textContent = state === "live" ? "Reconnecting…" : why; // shown only while not open
    renderPending();
    if (state === "live") clearOfflineNotes();
  }

  /* Before the swap: what the frame will change that only the page before it can tell. */
  function beforeSwap(frame) {
    if (frame.all("li.msg-text:not(.mine), li.msg-greeting:not(.mine), li.msg-farewell:not(.mine)").length) arrived = true;
    // The chat on this page's ticket has just ended (its closed line was empty until now).
    frame.events("room_closed").forEach(function (closed) {
      var slot = byId(closed.id);
      if (closed.dataset.state === "ended" && closed.dataset.ticketId === pageTicket() && !(slot && slot.textContent.trim())) {
        tabsDue = true;
      }
    });
  }

  function afterSwap() {
    var notice = byId("chat-notice");
    if (callbackTicketUrl && notice && (notice.dataset.notice === "callback" || notice.dataset.notice === "note_added")) {
      // What the client typed went onto the ticket with the callback request.
      input.value = "";
      saveDraft();
      reloadTicketNotes(callbackTicketUrl);
      callbackTicketUrl = "";
    }
    var invitation = byId("chat-invitation");
    var invited = invitation ? invitation.dataset.requestId : "";
    if (invited && invited !== lastInvitation) {
      var accept = invitation.querySelector("button.primary");
      if (accept) accept.focus();
    }
    lastInvitation = invited;
    refresh();
  }

  /* The room the client is reading now, for socket.js to report: the chat shown on a visible page. */
  function reading() {
    var room = roomId();
    var shown = {};
    // How far the client has read what others wrote: their own messages are never unread, and
    // reporting each one's echo would double what a message costs the server.
    if (room && visible()) shown[room] = highestOthersSeq(room);
    return shown;
  }

  var chat = DeskChatSocket.open(dock, {
    rooms: knownRooms,
    reading: reading,
    pendingKey: PENDING_KEY,
    resendable: resendable,
    onRefused: function (item) { restoreText(item.body); },
    onPending: renderPending,
    onFrame: beforeSwap,
    onSwapped: afterSwap,
    setConnection: setConn,
    texts: { down: "Reconnecting…", refused: "Disconnected: reload the page", 4429: TOO_MANY_SOCKETS_TEXT, 4503: BUSY_TEXT },
    ping: true,
  });

  // --- What the client does ------------------------------------------------------------------

  document.addEventListener("htmx:wsConfigSend", function (evt) {
    var form = evt.target;
    if (!dock.contains(form)) return;
    clearAlerts();
    if (form === compose) {
      var body = input.value.trim();
      var room = roomId();
      if (lockReason(dock.dataset.view) !== "" || !body || !room) { evt.preventDefault(); return; }
      evt.detail.parameters.room_id = room;
      evt.detail.parameters.body = body;
      evt.detail.parameters.client_msg_id = chat.track({ room: room, body: body });
      input.value = "";
      saveDraft();
      chat.stopTyping(room, true); // the message itself ends the notice on the other side
      scrollToNewest(); // what the client sends is always brought into view
    } else if (form.hasAttribute("data-chat-note-instead")) {
      evt.detail.parameters.body = input.value.trim();
      callbackTicketUrl = form.dataset.ticketUrl || "";
    } else if (form.hasAttribute("data-chat-callback")) {
      var note = document.querySelector("#chat-offer textarea");
      evt.detail.parameters.body = (note && note.value.trim()) || input.value.trim();
      callbackTicketUrl = form.dataset.ticketUrl || "";
    } else if (form.closest("#chat-invitation")) {
      focusOnOpen = true;
    }
  });

  // The socket carries these forms; the browser must never submit them itself.
  document.addEventListener("submit", function (evt) {
    if (evt.target.hasAttribute("ws-send") && dock.contains(evt.target)) evt.preventDefault();
  }, true);

  compose.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (!sendButton.disabled) compose.requestSubmit();
    }
  });

  /* While waiting, tell the engineers' queue what the question is: debounced, and bounded in length. */
  function sendDraftSoon() {
    window.clearTimeout(draftTimer);
    draftTimer = window.setTimeout(function () {
      var st = status();
      if (dock.dataset.view !== "waiting" || !st || !st.dataset.requestId) return;
      var text = input.value.replace(/\s+/g, " ").trim().slice(0, DRAFT_MAX);
      if (draftSent[st.dataset.requestId] === text) return;
      draftSent[st.dataset.requestId] = text;
      send({ action: "draft", request_id: st.dataset.requestId, body: text }, true);
    }, DRAFT_EVERY_MS);
  }

  input.addEventListener("input", function () {
    saveDraft();
    sendDraftSoon();
    var room = roomId();
    if (room && lockReason(dock.dataset.view) === "") chat.typing(room);
  });

  dock.addEventListener("toggle", function (evt) {
    if (evt.target.matches && evt.target.matches("details.participants")) participantsOpen = evt.target.open;
  }, true);

  dock.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && dock.dataset.view !== "idle" && !dock.dataset.minimized && byId("chat-dialog").contains(evt.target)) {
      setMinimized(true);
      dock.querySelector("[data-chat-minimize]").focus();
    }
  });

  document.addEventListener("click", function (evt) {
    var target = evt.target.closest ? evt.target : evt.target.parentElement;
    var cross = target.closest(".chat-cross");
    if (cross && dock.contains(cross)) {
      var view = dock.dataset.view;
      if (cross.hasAttribute("data-chat-close") || (view !== "waiting" && view !== "chatting")) {
        evt.preventDefault();
        dismiss();
      } else {
        clearAlerts();
      }
      return;
    }
    if (target.closest("[data-chat-minimize]")) {
      setMinimized(!dock.dataset.minimized);
      return;
    }
    var keep = target.closest("[data-chat-keep-waiting]");
    if (keep && dock.contains(keep)) {
      var choices = keep.closest("[data-chat-choices]");
      var kept = load(KEPT_KEY, []);
      if (choices && kept.indexOf(choices.dataset.key) < 0) store(KEPT_KEY, kept.concat([choices.dataset.key]).slice(-20));
      refresh();
      input.focus();
      return;
    }
    var join = target.closest("[data-chat-join]");
    if (join && join.dataset.chatOpen) {
      // A chat is already waiting or running: show it rather than ask for another.
      setMinimized(false);
      input.focus();
      return;
    }
    if (join) {
      clearAlerts();
      setCookie(DISMISSED_COOKIE, "");
      setMinimized(false);
      focusOnOpen = true;
      send({ action: "request_chat", ticket_id: parseInt(join.dataset.chatJoin, 10) });
      // The window only opens when the server answers: meanwhile say why nothing happens yet.
      if (!socketOpen()) showOfflineNote(join);
    }
  });

  function showOfflineNote(button) {
    var note = button.parentNode.querySelector(".join-offline-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "join-offline-note";
      note.setAttribute("role", "status");
      button.insertAdjacentElement("afterend", note);
    }
    note.textContent = dock.querySelector(".chat-conn-text").textContent + " Your request is sent once connected.";
  }

  function clearOfflineNotes() {
    document.querySelectorAll(".join-offline-note").forEach(function (note) { note.remove(); });
  }

  // The note offered after a timeout goes to the tickets' own endpoint (htmx POST, CSRF header).
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.target;
    if (!form.hasAttribute || !form.hasAttribute("data-chat-note")) return;
    var notice = byId("chat-notice");
    if (evt.detail.successful) {
      setCookie(DISMISSED_COOKIE, form.dataset.requestId);
      input.value = "";
      saveDraft();
      notice.textContent = "";
      var p = document.createElement("p");
      p.appendChild(document.createTextNode("Your note is on "));
      var link = document.createElement("a");
      link.href = form.dataset.ticketUrl;
      link.textContent = "ticket #" + form.dataset.ticket;
      p.appendChild(link);
      p.appendChild(document.createTextNode(". We will get back to you there."));
      notice.appendChild(p);
      notice.dataset.notice = "note_added";
      reloadTicketNotes(form.dataset.ticketUrl);
    } else {
      var errors = byId("chat-errors");
      errors.textContent = "";
      var line = document.createElement("p");
      line.textContent = "Your note could not be added. Write something, then try again.";
      errors.appendChild(line);
    }
    refresh();
  });

  scroller.addEventListener("scroll", function () {
    following = nearBottom();
    if (following) jumpButton.hidden = true;
  });

  jumpButton.addEventListener("click", function () {
    scrollToNewest();
    input.focus();
  });

  document.addEventListener("visibilitychange", function () {
    markRead();
    unread = countUnread();
    tick();
  });
  window.setInterval(tick, 1000);

  var draft = load(DRAFT_KEY, "");
  if (draft && !input.value) input.value = draft;
  lastInvitation = (byId("chat-invitation") || {}).dataset ? byId("chat-invitation").dataset.requestId : "";
  refresh();
})();
