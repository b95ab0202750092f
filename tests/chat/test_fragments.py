"""The markup of a message (chat.fragments.message_html): every chat view lists messages with it."""

from chat.fragments import message_frames, message_html, messages_html

MESSAGE = {
    "room_id": 7,
    "seq": 3,
    "author_id": 11,
    "author_name": "Carol <Client>",
    "kind": "text",
    "body": "Line one <script>alert(1)</script>\nline & two",
    "client_msg_id": "c-1",
    "created": "2026-12-01T10:15:00+00:00",
}


def test_a_live_message_carries_what_the_browser_and_tools_read():
    """Its id, room, seq, kind and client_msg_id, and 'mine' for the viewer's own."""
    html = message_html(MESSAGE, viewer_id=11)
    assert html.startswith(
        '<li id="msg-7-3" class="msg msg-text mine" data-seq="3" data-room="7" data-kind="text" '
        'data-client-msg-id="c-1">'
    )
    assert '<time datetime="2026-12-01T10:15:00+00:00" data-when>Dec 1, 2026 10:15</time>' in html
    assert " mine" not in message_html(MESSAGE, viewer_id=12)


def test_a_message_time_is_written_in_the_viewers_time_zone():
    """The socket activates its viewer's zone; the payload carries the moment, not its text."""
    from django.utils import timezone

    with timezone.override("America/New_York"):
        html = message_html(MESSAGE, viewer_id=11)
    assert '<time datetime="2026-12-01T10:15:00+00:00" data-when>Dec 1, 2026 05:15</time>' in html


def test_person_typed_text_is_escaped_and_line_breaks_kept():
    """Names and bodies never become markup; a newline in a body becomes <br>."""
    html = message_html(MESSAGE, viewer_id=None)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;<br>line &amp; two" in html
    assert "Carol &lt;Client&gt;" in html


def test_system_messages_are_one_line_without_an_author():
    html = message_html({**MESSAGE, "kind": "system", "body": "Dana joined.", "author_id": None})
    assert '<span class="msg-system">Dana joined.</span> <time' in html and "msg-author" not in html


def test_the_chat_history_labels_greetings_and_farewells_for_staff_and_carries_no_ids():
    html = message_html({**MESSAGE, "kind": "greeting"}, history=True, labels=True)
    assert html.startswith('<li class="msg msg-greeting">') and '<span class="msg-kind">Greeting</span>' in html
    assert "data-seq" not in html and 'id="' not in html
    assert "msg-kind" not in message_html({**MESSAGE, "kind": "greeting"})


def test_the_clients_chat_history_shows_a_greeting_without_its_label():
    """A client reads people's words: no "Greeting" or "Farewell" label in their Chat history."""
    for kind in ("greeting", "farewell"):
        html = message_html({**MESSAGE, "kind": kind}, history=True)
        assert "msg-kind" not in html and "Greeting" not in html and "Farewell" not in html
        assert "alert(1)" in html


def test_a_frame_appends_the_messages_to_their_room():
    class Viewer:
        pk = 11

    [frame] = message_frames([MESSAGE, {**MESSAGE, "seq": 4}], viewer=Viewer())
    assert frame.startswith('<ol id="room-7-messages" hx-swap-oob="beforeend" data-event="messages" data-room="7">')
    assert frame.count("<li ") == 2 and frame.endswith("</li></ol>")
    assert str(messages_html([])) == ""
