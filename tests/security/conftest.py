"""A small desk to attack: two companies, every role the authorization matrix needs, and secrets to leak.

Secrets are distinctive strings (a ticket summary, a message body, an internal note) that no
attacker's response may contain.
"""

from decimal import Decimal

import pytest

from accounts.models import Access, ContactPermission
from accounts.permissions import CREATE_TICKET
from chat import services
from chat.models import MessageTemplate
from tickets.services import add_time_entry

SECRET_SUMMARY = "Zebra-7731 payroll server password reset"
SECRET_BODY = "Quokka-4412 the admin password is hunter2"
SECRET_NOTE = "Narwhal-9925 internal: customer owes money"
THEIR_SUMMARY = "Ocelot-5519 their own ticket"


@pytest.fixture
def world(f):
    """Company A with a live chat, a waiting request and an invitation; company B; every role.

    Roles: carol (A, in the room: the participant), cora (A, waiting), cleo (A, invited),
    carl (A, idle, may chat), ken (A, chat denied), mallory (B: another company), dana (engineer
    in the queue and the room), sam (engineer in the queue), eve (engineer in no queue and no room),
    sue (supervisor).
    """
    f.enable_chat_globally(False)
    ours = f.make_company(name="Ours Ltd", chat=Access.ALLOW)
    theirs = f.make_company(name="Theirs Inc", chat=Access.ALLOW)
    carol = f.make_contact(company=ours, first_name="Carol", username="carol")
    cora = f.make_contact(company=ours, first_name="Cora", username="cora")
    cleo = f.make_contact(company=ours, first_name="Cleo", username="cleo")
    carl = f.make_contact(company=ours, first_name="Carl", username="carl")
    ken = f.make_contact(company=ours, first_name="Ken", username="ken", chat=Access.DENY)
    ContactPermission.objects.create(contact=carol, feature=CREATE_TICKET, access=Access.ALLOW)
    mallory = f.make_contact(company=theirs, first_name="Mallory", username="mallory")
    queue = f.make_queue(name="Service Desk", is_default=True)
    dana = f.make_engineer(display_name="Dana Reyes", username="dana", queues=[queue])
    sam = f.make_engineer(display_name="Sam Okafor", username="sam", queues=[queue])
    eve = f.make_engineer(display_name="Eve Outsider", username="eve")
    sue = f.make_engineer(display_name="Sue Super", username="sue", is_supervisor=True)

    ticket = f.make_ticket(contact=carol, summary=SECRET_SUMMARY)
    f.make_note(ticket=ticket, author=dana.user, text=SECRET_NOTE, internal=True)
    request = services.request_chat(contact=carol, ticket=ticket)
    room = services.answer_request(engineer=dana, request_id=request.pk)
    services.send_message(room_id=room.pk, user=carol.user, body=SECRET_BODY, client_msg_id="s1")
    time_entry = add_time_entry(
        ticket=ticket, engineer=dana, started=room.started_at, ended=room.started_at, hours=Decimal("0.25")
    )

    cora_ticket = f.make_ticket(contact=cora, summary="Cora's laptop")
    waiting = services.request_chat(contact=cora, ticket=cora_ticket)
    cleo_ticket = f.make_ticket(contact=cleo, summary="Cleo's printer")
    invitation = services.invite_contact(engineer=dana, ticket=cleo_ticket)
    carl_ticket = f.make_ticket(contact=carl, summary="Carl's phone")
    ken_ticket = f.make_ticket(contact=ken, summary="Ken's monitor")
    their_ticket = f.make_ticket(contact=mallory, summary=THEIR_SUMMARY)
    return {
        "ours": ours,
        "theirs": theirs,
        "queue": queue,
        "carol": carol,
        "cora": cora,
        "cleo": cleo,
        "carl": carl,
        "ken": ken,
        "mallory": mallory,
        "dana": dana,
        "sam": sam,
        "eve": eve,
        "sue": sue,
        "ticket": ticket,
        "room": room,
        "time_entry": time_entry,
        "request": request,
        "waiting": waiting,
        "invitation": invitation,
        "cora_ticket": cora_ticket,
        "cleo_ticket": cleo_ticket,
        "carl_ticket": carl_ticket,
        "ken_ticket": ken_ticket,
        "their_ticket": their_ticket,
    }


def user_of(world, role: str):
    """Return the auth user behind a role name (None for the anonymous visitor)."""
    if role == "anonymous":
        return None
    return world[role].user


# --- XSS ------------------------------------------------------------------------------------

PAYLOADS = [
    '<script>alert("xss-1")</script>',
    '"><img src=x onerror=alert("xss-2")>',
    "'><svg/onload=alert('xss-3')>",
    '[xss-4](javascript:alert(4)) **xss-4** <a href="javascript:alert(4)">xss-4</a>',
    "{{ xss-5 }} {% debug %} ${alert('xss-5')} {client_first_name}",
    '<iframe srcdoc="<script>alert(6)</script>">xss-6</iframe><div hx-get="/evil" hx-trigger="load">xss-6</div>',
]
EVIL = " ".join(PAYLOADS)
MARKERS = [f"xss-{n}" for n in range(1, 7)]


@pytest.fixture
def evil(f):
    """A desk where every person-typed field holds the payloads, with a finished and a live chat."""
    f.enable_chat_globally(True)
    company = f.make_company(name="Evil " + PAYLOADS[0])
    contact = f.make_contact(company=company, first_name=PAYLOADS[1], last_name=PAYLOADS[2], username="evil")
    queue = f.make_queue(name="Desk " + PAYLOADS[3], is_default=True)
    dana = f.make_engineer(display_name="Dana " + PAYLOADS[2], username="dana", queues=[queue], is_supervisor=True)
    sam = f.make_engineer(display_name="Sam " + PAYLOADS[0], username="sam", queues=[queue])
    ticket = f.make_ticket(contact=contact, summary=EVIL[:200], description=EVIL, assigned_engineer=dana)
    f.make_note(ticket=ticket, text=EVIL)
    f.make_note(ticket=ticket, author=dana.user, text=EVIL, internal=True)
    MessageTemplate.objects.create(kind="greeting", name="Hi " + PAYLOADS[1], body="Hello {client_first_name} " + EVIL)
    # A finished chat: its transcript is an internal note and part of the chat history.
    request = services.request_chat(contact=contact, ticket=ticket)
    done = services.answer_request(engineer=dana, request_id=request.pk)
    for n, payload in enumerate(PAYLOADS):
        author = contact.user if n % 2 else dana.user
        services.send_message(room_id=done.pk, user=author, body=payload, client_msg_id=f"e{n}")
    services.end_room(room_id=done.pk, engineer=dana)
    # A live chat, and a request waiting in the queue from a second evil contact.
    request = services.request_chat(contact=contact, ticket=ticket)
    live = services.answer_request(engineer=dana, request_id=request.pk)
    services.send_message(room_id=live.pk, user=contact.user, body=EVIL, client_msg_id="live")
    services.invite_engineer(room_id=live.pk, by=dana, engineer=sam)
    other = f.make_contact(company=company, first_name=PAYLOADS[5], last_name=PAYLOADS[3], username="evil2")
    waiting_ticket = f.make_ticket(contact=other, summary=PAYLOADS[2])
    waiting = services.request_chat(contact=other, ticket=waiting_ticket)
    callback_ticket = f.make_ticket(contact=other, summary="callback " + PAYLOADS[0])
    return {
        "contact": contact,
        "other": other,
        "dana": dana,
        "sam": sam,
        "ticket": ticket,
        "done": done,
        "live": live,
        "waiting": waiting,
        "waiting_ticket": waiting_ticket,
        "callback_ticket": callback_ticket,
        "company": company,
        "queue": queue,
    }
