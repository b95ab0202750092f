"""The chat's websockets, in the same layers as its pages: thin handlers over services and screens.

- `frames.py`: reading a frame's fields, and the per-socket rate limit;
- `shared.py`: the reads a process's sockets share (the queue, the supervisor board, one user's);
- `base.py`: what every socket does (sign-in check, the cap per user, frames checked on arrival,
  one worker per socket, groups, error frames);
- `rooms.py`: what both chat sockets do in a room (sync, send, typing, read, leave, delivery);
- `client.py`, `hud.py`, `supervisor.py`: one socket kind each, a handler per frame or event.

A handler parses one frame, calls one service (through deskchat.events.call_service) or reads
one screen (chat.screens, in the database thread), and sends what chat.fragments renders from
it. No ORM code runs here, so nothing here runs ORM code on the event loop's thread.
"""
