"""chat.wire, the one reader of server frames (the tests' and the load generator's)."""

import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.wire import events, is_message, may_carry, messages, parse, queue_items
from tests.chat.wsutil import staff_socket
from tests.conftest import ROOT

MESSAGE = (
    '<ol id="room-7-messages" hx-swap-oob="beforeend" data-event="messages" data-room="7">'
    '<li id="msg-7-3" class="msg msg-text" data-seq="3" data-room="7" data-kind="text" data-client-msg-id="c-1">'
    '<div class="msg-meta"><span class="msg-author">Carol</span> <time datetime="2026-01-01T10:00:00+00:00" data-when>'
    '10:00</time></div><div class="msg-body">Fish &amp; chips</div></li></ol>'
)


def test_a_message_is_read_by_its_attributes_whatever_their_order_or_classes():
    """The same message written with its attributes in another order and other classes reads the same."""
    shuffled = (
        '<ol data-room="7" data-event="messages"><li data-client-msg-id="c-1" data-kind="text" data-room="7" '
        'class="msg other mine" data-seq="3"><div class="msg-body">Fish &amp; chips</div></li></ol>'
    )
    for frame in (MESSAGE, shuffled):
        (item,) = messages(parse(frame))
        assert (item.number("seq"), item.number("room"), item.data("client-msg-id")) == (3, 7, "c-1")
        assert "Fish & chips" in item.text
    (frame,) = events(parse(MESSAGE), "messages")
    assert frame.event == "messages" and frame.children[0].tag == "li"


def test_a_read_position_carries_a_seq_but_is_no_message():
    read = '<div id="room-7-read-4" hx-swap-oob="true" hidden data-event="read" data-room="7" data-user="4" data-seq="9"></div>'
    (element,) = parse(read)
    assert element.event == "read" and element.attrs["hidden"] == ""
    assert not is_message(element) and messages([element]) == []


def test_elements_nest_and_a_stray_end_tag_closes_nothing():
    """Children are kept; an end tag with no open element of its name is ignored, as browsers do."""
    (section,) = parse('<section data-event="queue"><ul></p><li data-request-id="5"><a>x</a></li></ul> tail</section>')
    (item,) = queue_items(section)
    assert item.number("request-id") == 5 and item.children[0].tag == "a"
    assert section.text == "x tail"


def test_numbers_are_whole_numbers_or_none():
    (element,) = parse('<div data-event="x" data-a="12" data-b="" data-c="-1" data-d="²"></div>')
    assert [element.number(k) for k in "abcde"] == [12, None, None, None, None]


def test_the_pre_check_finds_the_frame_types_a_reader_wants():
    assert may_carry(MESSAGE, "pong", "messages") and not may_carry(MESSAGE, "typing", "read")


def test_the_reader_needs_no_django():
    """bench/loadgen.py imports it without setting Django up."""
    code = "import sys, chat.wire; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.django_db(transaction=True)
async def test_queue_items_carry_their_request_and_ticket(desk):  # noqa: F811 - the fixture
    """The load generator answers what the HUD lists and matches it to its tickets by these two."""
    request = await sync_to_async(services.request_chat)(contact=desk.contact, ticket=desk.ticket)
    dana = await staff_socket(desk.dana.user)
    queue = await dana.wait_event("queue", count=1)
    (item,) = queue_items(queue)
    assert (item.number("request-id"), item.number("ticket-id")) == (request.pk, desk.ticket.pk)
    await dana.close()
