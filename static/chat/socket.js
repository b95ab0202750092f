/* DeskChat's wire protocol in the browser: one module for the portal's chat dock (static/chat/client.js)
   and the Staff HUD (static/hud/hud.js); the supervisor view (static/hud/supervisor.js) uses its
   connection watcher only. docs/architecture.md ("Wire protocol") lists every frame both ways.

   htmx's ws extension opens the socket, sends the <form ws-send> forms and swaps in every fragment
   the server sends. This module does the rest of the protocol, the same way on both pages:
   - on every open, before htmx flushes what it queued, `sync` with the highest seq the page shows
     per room (the server holds live messages back until then), then send again every message
     never echoed, with its same client_msg_id (the server stores each once however often it
     arrives); a "not now" refusal (unavailable, rate_limited, busy) is retried later with that id too;
   - reconnect, with backoff, after the closes htmx does not retry itself (it retries only 1006,
     1011, 1012 and 1013), except a refusal (4401, 4403) that reconnecting cannot help; after a
     4503 (the server is busy taking sockets back), at the turn the server gave in its reason;
   - typing (started at most every 3 s, stopped after 4 s idle; a typing notice shown for 8 s at
     most, or until that room's next message from someone else), and a ping every 30 s;
   - read positions, coalesced: at most one `read` per room per second on this socket, only
     while the page is visible (and once when it becomes visible again), only when it advanced.
   Frames are read by a DOM parse of the fragment (DOMParser: inert, nothing runs), never by
   regular expressions: every root carries `data-event` and the data-* attributes scripts need.
   One global: window.DeskChatSocket. */
(function () {
  "use strict";

  var HTMX_RETRIES = [1006, 1011, 1012, 1013];
  var REFUSED = [4401, 4403]; // signed out or not allowed: reconnecting would not help
  var TRY_LATER = 4503; // the server is busy taking sockets back: come back when its reason says (ms)
  var RETRYABLE = ["unavailable", "rate_limited", "busy"];
  var RETRY_JITTER = 0.25; // each wait is that ±25%, so refused tabs do not all come back at once
  var READ_EVERY_MS = 1000;
  var TYPING_EVERY_MS = 3000;
  var TYPING_IDLE_MS = 4000;
  var TYPING_SHOWN_MS = 8000;
  var PING_EVERY_MS = 30000;
  var LOST = "Connection lost. Reconnecting…";

  // --- Frames: parsed as HTML, read through the DOM ------------------------------------------

  /* A frame as the server sent it: its root elements, parsed into a document of their own, which
     is inert (nothing in it loads or runs). htmx parses it again to swap it in. */
  function Frame(message) {
    var parsed = new DOMParser().parseFromString(typeof message === "string" ? message : "", "text/html");
    this.roots = Array.prototype.slice.call(parsed.body.children);
  }

  /* The roots of this frame with data-event="event". */
  Frame.prototype.events = function (event) {
    return this.roots.filter(function (root) { return root.dataset.event === event; });
  };

  /* Every element of the frame, roots included, that matches the selector. */
  Frame.prototype.all = function (selector) {
    var found = [];
    this.roots.forEach(function (root) {
      if (root.matches(selector)) found.push(root);
      found.push.apply(found, root.querySelectorAll(selector));
    });
    return found;
  };

  function parse(message) { return new Frame(message); }

  // --- The connection: status line and reconnecting ------------------------------------------

  /* Follow a ws-connect element's socket. setConnection(state, text, code) draws the page's status
     line: state is "live", "down" (reconnecting) or "refused" (4401, 4403: not retried); texts maps
     close codes, and "open", "down" and "refused", to what the line says. */
  function watch(root, setConnection, texts) {
    texts = texts || {};
    var reconnects = 0;
    var live = null; // the socket open now
    var downText = ""; // why the socket is down, as its close code said
    root.addEventListener("htmx:wsOpen", function (event) {
      if (event.target !== root) return;
      reconnects = 0;
      downText = "";
      live = event.detail.event.target;
      setConnection("live", texts.open || "Connected");
    });
    root.addEventListener("htmx:wsClose", function (event) {
      if (event.target !== root) return;
      var code = event.detail.event.code;
      if (live === event.detail.event.target) live = null;
      var refused = REFUSED.indexOf(code) >= 0;
      var state = refused ? "refused" : "down";
      downText = texts[code] || texts[state] || LOST;
      setConnection(state, downText, code);
      if (refused || HTMX_RETRIES.indexOf(code) >= 0) return; // htmx reconnects these itself
      var wrapper = event.detail.socketWrapper;
      var wait = Math.min(30000, 1000 * Math.pow(2, reconnects)) * (0.5 + Math.random());
      if (code === TRY_LATER) {
        // The server is taking back many sockets at once and gave this one a turn (ms): keep it, give or take 10%.
        wait = (parseInt(event.detail.event.reason, 10) || 2000) * (0.9 + Math.random() * 0.2);
      }
      reconnects += 1;
      window.setTimeout(function () {
        if (document.body.contains(root) && !(live && live.readyState === WebSocket.OPEN)) wrapper.reconnect();
      }, wait);
    });
    root.addEventListener("htmx:wsError", function (event) {
      // An error after a close (a retry refused again) keeps the reason the close gave (4429's text).
      if (event.target === root) setConnection("down", downText || texts.down || LOST);
    });
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // --- Pending messages: sent (or queued) but not yet echoed ---------------------------------

  /* The messages sent and not echoed yet, [{id, room, body, kind}]: in sessionStorage under `key`
     (the portal's survive moving to another page), else in memory. */
  function Outbox(key) {
    this.key = key || null;
    this.items = [];
  }

  Outbox.prototype.list = function () {
    if (!this.key) return this.items.slice();
    try { return JSON.parse(sessionStorage.getItem(this.key)) || []; } catch (e) { return this.items.slice(); }
  };

  Outbox.prototype.save = function (items) {
    this.items = items.slice();
    if (!this.key) return;
    try { sessionStorage.setItem(this.key, JSON.stringify(items)); } catch (e) { this.key = null; } // private mode: memory only
  };

  Outbox.prototype.find = function (id) {
    return this.list().filter(function (item) { return item.id === id; })[0] || null;
  };

  Outbox.prototype.drop = function (ids) {
    var items = this.list();
    var left = items.filter(function (item) { return ids.indexOf(item.id) < 0; });
    if (left.length !== items.length) this.save(left);
    return left.length !== items.length;
  };

  // --- The chat socket ------------------------------------------------------------------------

  /* Speak the chat protocol on root's socket (the element with ws-connect). Options, all optional
     but `rooms`:
       rooms()          {room id: highest seq the page shows}, what `sync` names;
       reading()        {room id: seq} of the rooms the page shows the newest messages of now;
       pendingKey       where the pending messages are kept (sessionStorage), else in memory;
       resendable(item) whether a pending message goes again after an open (false drops it);
       onRefused(item, code)  a pending message the server refused for good (put the text back);
       onPending()      the pending messages changed;
       onFrame(frame)   a frame arrived, before htmx swaps it in (false: swap nothing); onSwapped(frame) after;
       setConnection, texts   as for watch();
       ping             send a ping every 30 s (keeps proxies from closing a quiet socket). */
  function open(root, options) {
    var socket = new ChatSocket(root, options);
    socket.listen();
    return socket;
  }

  function ChatSocket(root, options) {
    this.root = root;
    this.options = options;
    this.wrapper = null; // htmx's socket wrapper (its public interface), known from the first open
    this.early = []; // frames asked for before the first open
    this.pending = new Outbox(options.pendingKey);
    this.retryDelays = {};
    this.retrying = {}; // client_msg_id -> true: in the next retry round
    this.retryTimer = null;
    this.readSent = {}; // room -> seq reported on this socket
    this.readAt = {}; // room -> when it was reported
    this.readTimer = null;
    this.typingState = {}; // room -> {sentAt, timer}
    this.typingShown = {}; // room -> timer that clears the notice shown
    this.frame = null; // the frame being swapped in
    this.held = null; // frames waiting, after an open, for the server's first frame (opened)
  }

  ChatSocket.prototype.listen = function () {
    var self = this;
    var root = this.root;
    root.addEventListener("htmx:wsOpen", function (event) {
      if (event.target === root) self.opened(event);
    });
    root.addEventListener("htmx:wsClose", function (event) {
      if (event.target !== root) return;
      if (window.deskchatSocket === event.detail.event.target) window.deskchatSocket = null;
      self.turnedAway();
    });
    // After the handlers above: the status line is drawn once the socket is known open (or gone).
    watch(root, this.options.setConnection || function () {}, this.options.texts);
    root.addEventListener("htmx:wsBeforeMessage", function (event) {
      if (event.target !== root) return;
      if (self.held) self.admitted();
      var frame = parse(event.detail.message);
      self.heard(frame);
      if (self.options.onFrame && self.options.onFrame(frame) === false) {
        event.preventDefault(); // htmx swaps nothing of it
        return;
      }
      self.frame = frame;
    });
    root.addEventListener("htmx:wsAfterMessage", function (event) {
      if (event.target !== root) return;
      var frame = self.frame || parse(event.detail.message);
      self.frame = null;
      self.swapped(frame);
    });
    document.addEventListener("visibilitychange", function () { self.reportReads(); });
    if (this.options.ping) {
      window.setInterval(function () { self.send({ action: "ping" }, true); }, PING_EVERY_MS);
    }
  };

  /* On every open: sync, the messages never echoed, then what was asked for before the first open.
     htmx:wsOpen fires before htmx flushes its own queue, so these go first. */
  ChatSocket.prototype.opened = function (event) {
    this.wrapper = event.detail.socketWrapper;
    window.deskchatSocket = event.detail.event.target;
    this.readSent = {};
    this.wrapper.sendImmediately(JSON.stringify({ action: "sync", rooms: this.options.rooms() }));
    this.resendPending(this.wrapper.queue);
    // What the person did while offline (Answer, Join, Leave …) waits for the server's first frame:
    // a socket turned away (4503, 4429) is accepted and closed at once, and would drop it unread.
    this.held = this.early.splice(0).concat(this.wrapper.queue.splice(0).map(function (entry) { return entry.message; }));
    this.reportReads();
  };

  /* The server's first frame on this socket: it is really in, so what was held goes, in order. */
  ChatSocket.prototype.admitted = function () {
    var held = this.held;
    this.held = null;
    var wrapper = this.wrapper;
    (held || []).forEach(function (text) { wrapper.sendImmediately(text); });
  };

  /* Closed before its first frame: what was held waits in htmx's queue for the next open. */
  ChatSocket.prototype.turnedAway = function () {
    if (!this.held || !this.wrapper) return;
    var queue = this.wrapper.queue;
    this.held.reverse().forEach(function (text) { queue.unshift({ message: text }); });
    this.held = null;
  };

  ChatSocket.prototype.isOpen = function () {
    return !!(this.wrapper && window.deskchatSocket && window.deskchatSocket.readyState === WebSocket.OPEN);
  };

  /* Send a frame. Frames that only matter now (typing, read, ping) are dropped while offline
     (`liveOnly`); the rest wait in htmx's queue (or ours, before the first open) for the next open. */
  ChatSocket.prototype.send = function (frame, liveOnly) {
    var text = JSON.stringify(frame);
    if (liveOnly) {
      if (this.isOpen() && !this.held) this.wrapper.sendImmediately(text);
    } else if (this.held) {
      this.held.push(text); // after what waits already for the server's first frame
    } else if (this.wrapper) {
      this.wrapper.send(text);
    } else {
      this.early.push(text);
    }
  };

  // --- Messages: a client_msg_id each, kept until echoed -------------------------------------

  /* Keep a message the page is sending (a ws-send form's parameters) as pending; return its new
     client_msg_id, which the page puts in the frame. */
  ChatSocket.prototype.track = function (message) {
    var item = { id: newId(), room: String(message.room), body: message.body };
    if (message.kind) item.kind = message.kind;
    this.pending.save(this.pending.list().concat([item]));
    this.changed();
    return item.id;
  };

  ChatSocket.prototype.changed = function () {
    if (this.options.onPending) this.options.onPending();
  };

  ChatSocket.prototype.sendPending = function (item) {
    var frame = { action: "send", room_id: Number(item.room), body: item.body, client_msg_id: item.id };
    if (item.kind) frame.kind = item.kind;
    this.wrapper.sendImmediately(JSON.stringify(frame));
  };

  /* After an open: send again what was never echoed, unless htmx's own queue holds it already. */
  ChatSocket.prototype.resendPending = function (queue) {
    var self = this;
    var queued = (queue || []).map(function (entry) {
      try { return JSON.parse(entry.message).client_msg_id; } catch (e) { return null; }
    });
    var dropped = [];
    this.pending.list().forEach(function (item) {
      if (self.options.resendable && !self.options.resendable(item)) dropped.push(item.id);
      else if (queued.indexOf(item.id) < 0) self.sendPending(item);
    });
    this.pending.drop(dropped);
    this.changed();
  };

  /* Drop pending messages the page now shows as delivered (echoed with their client_msg_id). */
  ChatSocket.prototype.settle = function () {
    var root = this.root;
    var echoed = this.pending.list().filter(function (item) {
      return !!root.querySelector('li[data-seq][data-client-msg-id="' + CSS.escape(item.id) + '"]');
    }).map(function (item) { return item.id; });
    if (echoed.length && this.pending.drop(echoed)) this.changed();
  };

  /* A refusal that says "not now" (the database restarting, sending too fast, the server busy) keeps the message
     pending and sends it again later with the SAME client_msg_id: a new id for a message whose
     COMMIT's reply was lost would store it twice. Any other refusal hands it back to the page. */
  ChatSocket.prototype.refused = function (id, code) {
    var item = this.pending.find(id);
    if (!item) return;
    if (RETRYABLE.indexOf(code) >= 0) {
      this.retryLater(id);
      return;
    }
    this.pending.drop([id]);
    this.changed();
    if (this.options.onRefused) this.options.onRefused(item, code);
  };

  /* One retry round per socket: the messages refused meanwhile go again together, in the order
     they were typed, so a retried message never overtakes an earlier one. */
  ChatSocket.prototype.retryLater = function (id) {
    var self = this;
    var delay = Math.min((this.retryDelays[id] || 1000) * 2, 15000);
    this.retryDelays[id] = delay;
    this.retrying[id] = true;
    if (this.retryTimer) return; // the round already planned takes it along
    var wait = delay * (1 - RETRY_JITTER + Math.random() * 2 * RETRY_JITTER);
    this.retryTimer = window.setTimeout(function () {
      var due = self.retrying;
      self.retryTimer = null;
      self.retrying = {};
      self.pending.list().forEach(function (item) {
        if (due[item.id] && self.isOpen()) self.sendPending(item); // else the next open sends it
      });
      Object.keys(self.retryDelays).forEach(function (key) {
        if (!self.pending.find(key)) delete self.retryDelays[key];
      });
    }, wait);
  };

  // --- What arrives ---------------------------------------------------------------------------

  /* Before the swap: refusals of pending messages, and messages that end a typing notice. */
  ChatSocket.prototype.heard = function (frame) {
    var self = this;
    frame.events("error").forEach(function (root) {
      if (root.dataset.clientMsgId) self.refused(root.dataset.clientMsgId, root.dataset.error);
    });
  };

  /* After the swap: settle what was echoed, time out typing notices, report reads. */
  ChatSocket.prototype.swapped = function (frame) {
    var self = this;
    frame.events("typing").forEach(function (root) { self.showTyping(root.dataset.room); });
    frame.all("li.msg[data-seq]:not(.mine):not(.msg-system)").forEach(function (li) {
      self.clearTyping(li.dataset.room);
    });
    this.settle();
    if (this.options.onSwapped) this.options.onSwapped(frame);
    this.reportReads();
  };

  ChatSocket.prototype.showTyping = function (room) {
    var self = this;
    window.clearTimeout(this.typingShown[room]);
    this.typingShown[room] = window.setTimeout(function () { self.clearTyping(room); }, TYPING_SHOWN_MS);
  };

  ChatSocket.prototype.clearTyping = function (room) {
    var notice = document.getElementById("room-" + room + "-typing");
    if (notice && notice.textContent) notice.textContent = "";
  };

  // --- Typing ---------------------------------------------------------------------------------

  /* The user typed in a room's message box: say so at most every 3 s, and stop after 4 s idle. */
  ChatSocket.prototype.typing = function (room) {
    var self = this;
    room = String(room);
    if (!this.isOpen()) return;
    var state = this.typingState[room] || (this.typingState[room] = { sentAt: 0, timer: null });
    var now = Date.now();
    if (now - state.sentAt > TYPING_EVERY_MS) {
      state.sentAt = now;
      this.send({ action: "typing", room_id: Number(room), typing: true }, true);
    }
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(function () { self.stopTyping(room); }, TYPING_IDLE_MS);
  };

  /* Say typing stopped, if it was said to start. `quietly` when the room is closed for the user, or
     when a message is sent: its arrival ends the notice on every other screen (see swapped), so a
     frame saying so would only double what each message costs the server. */
  ChatSocket.prototype.stopTyping = function (room, quietly) {
    var state = this.typingState[String(room)];
    if (!state || !state.sentAt) return;
    window.clearTimeout(state.timer);
    state.sentAt = 0;
    if (!quietly) this.send({ action: "typing", room_id: Number(room), typing: false }, true);
  };

  // --- Read positions -------------------------------------------------------------------------

  /* Report how far the page shows each room it is reading: at most once a second per room, only
     while the page is visible and the socket open, only when the seq advanced. A burst of
     messages costs a report when it starts and one a second after, with the newest seq then.
     Call it whenever what the page shows may have changed; a due report calls it again itself. */
  ChatSocket.prototype.reportReads = function () {
    if (document.visibilityState !== "visible" || !this.isOpen() || !this.options.reading) return;
    var self = this;
    var now = Date.now();
    var wait = Infinity;
    var shown = this.options.reading() || {};
    Object.keys(shown).forEach(function (room) {
      var seq = shown[room];
      if (!(seq > (self.readSent[room] || 0))) return;
      var due = (self.readAt[room] || 0) + READ_EVERY_MS - now;
      if (due > 0) {
        wait = Math.min(wait, due);
        return;
      }
      self.readSent[room] = seq;
      self.readAt[room] = now;
      self.send({ action: "read", room_id: Number(room), seq: seq }, true);
    });
    if (wait < Infinity && !this.readTimer) {
      this.readTimer = window.setTimeout(function () {
        self.readTimer = null;
        self.reportReads();
      }, wait);
    }
  };

  window.DeskChatSocket = { open: open, watch: watch, parse: parse, newId: newId };
})();
