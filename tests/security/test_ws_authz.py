"""The authorization matrix over the websockets: every action of both consumers, every role.

An attacker's frame names a real target of company A (its room, a waiting request, an invitation,
a ticket). It must get an error frame, change nothing, and no frame it receives may carry
company A's secrets. The legitimate role's same frame succeeds. `test_every_action_has_rows`
fails when a consumer grows an action without rows here.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat.models import ChatMessage, ChatParticipant, ChatRequest, ChatRoom, RoomInvitation
from chat.sockets.client import ClientSocket
from chat.sockets.hud import HudSocket
from tests.chat.wsutil import client_socket, connect, staff_socket

from .conftest import SECRET_BODY, SECRET_SUMMARY

pytestmark = pytest.mark.django_db(transaction=True)

SECRETS = (SECRET_BODY, SECRET_SUMMARY)

# action -> {role: frame builder}; each attacker expects one of the listed error codes, or no answer.
SILENT: set = set()
CLIENT_ATTACKS = {
    "request_chat": {
        "mallory": (lambda w: {"ticket_id": w["ticket"].pk}, {"not_found"}),
        "ken": (lambda w: {"ticket_id": w["ken_ticket"].pk}, {"not_allowed"}),
    },
    "cancel": {
        "mallory": (lambda w: {"request_id": w["waiting"].pk}, {"not_waiting"}),
        "ken": (lambda w: {"request_id": w["waiting"].pk}, {"not_waiting"}),
    },
    "callback": {
        "mallory": (lambda w: {"request_id": w["waiting"].pk, "body": "x"}, {"not_waiting"}),
        "ken": (lambda w: {"request_id": w["waiting"].pk, "body": "x"}, {"not_waiting"}),
    },
    "note": {r: (lambda w: {"request_id": w["waiting"].pk, "body": "x"}, {"not_waiting"}) for r in ("mallory", "ken")},
    # A refused draft is dropped unanswered (chat.sockets.client.ClientSocket.write_drafts): SILENT, and nothing changes.
    "draft": {r: (lambda w: {"request_id": w["waiting"].pk, "body": "x"}, SILENT) for r in ("mallory", "ken")},
    "accept_invitation": {
        "mallory": (lambda w: {"request_id": w["invitation"].pk}, {"not_found"}),
        "ken": (lambda w: {"request_id": w["invitation"].pk}, {"not_found"}),
    },
    "reject_invitation": {
        "mallory": (lambda w: {"request_id": w["invitation"].pk}, {"not_waiting"}),
        "ken": (lambda w: {"request_id": w["invitation"].pk}, {"not_waiting"}),
    },
    "send": {
        r: (lambda w: {"room_id": w["room"].pk, "body": "let me in", "client_msg_id": "x1"}, {"not_participant"})
        for r in ("mallory", "ken")
    },
    "typing": {
        r: (lambda w: {"room_id": w["room"].pk, "typing": True}, {"not_participant"}) for r in ("mallory", "ken")
    },
    "read": {r: (lambda w: {"room_id": w["room"].pk, "seq": 1}, {"not_participant"}) for r in ("mallory", "ken")},
    "leave": {r: (lambda w: {"room_id": w["room"].pk}, {"not_participant"}) for r in ("mallory", "ken")},
}
STAFF_ATTACKS = {
    "answer": {"eve": (lambda w: {"request_id": w["waiting"].pk}, {"not_found"})},
    "end": {"eve": (lambda w: {"room_id": w["room"].pk}, {"not_participant"})},
    "invite_engineer": {"eve": (lambda w: {"room_id": w["room"].pk, "engineer_id": w["eve"].pk}, {"not_participant"})},
    "join": {"eve": (lambda w: {"room_id": w["room"].pk}, {"not_allowed"})},
    # Engineers may invite any ticket's contact (they see every ticket), but not one denied chat.
    "invite_contact": {"eve": (lambda w: {"ticket_id": w["ken_ticket"].pk}, {"not_allowed"})},
    "cancel_invitation": {"eve": (lambda w: {"request_id": w["invitation"].pk}, {"not_waiting"})},
    "send": {
        "eve": (lambda w: {"room_id": w["room"].pk, "body": "let me in", "client_msg_id": "x1"}, {"not_participant"})
    },
    "typing": {"eve": (lambda w: {"room_id": w["room"].pk}, {"not_participant"})},
    "read": {"eve": (lambda w: {"room_id": w["room"].pk, "seq": 1}, {"not_participant"})},
    "leave": {"eve": (lambda w: {"room_id": w["room"].pk}, {"not_participant"})},
}
# Actions with no target to attack: they act on the sender's own state only.
UNTARGETED = {"ping", "sync", "set_availability"}


def _actions(consumer_class) -> set:
    return set(consumer_class.actions(consumer_class()).keys())


def test_every_action_has_rows():
    """Each consumer action is attacked below, or acts only on the sender's own state."""
    assert _actions(ClientSocket) - UNTARGETED == set(CLIENT_ATTACKS)
    assert _actions(HudSocket) - UNTARGETED == set(STAFF_ATTACKS)


@sync_to_async
def snapshot(world):
    """What an attack must not change: company A's room, request, invitation and messages."""
    return (
        list(ChatMessage.objects.order_by("pk").values_list("pk", "body")),
        list(ChatRequest.objects.order_by("pk").values_list("pk", "state", "draft")),
        list(ChatParticipant.objects.order_by("pk").values_list("pk", "left_at")),
        list(ChatRoom.objects.order_by("pk").values_list("pk", "state")),
        list(RoomInvitation.objects.order_by("pk").values_list("pk", "state")),
    )


async def _attack(world, role, path, action, frame, codes):
    before = await snapshot(world)
    opener = client_socket if path == "/ws/chat/" else staff_socket
    socket = await opener(world[role].user)
    try:
        await socket.send(action="sync", rooms={str(world["room"].pk): 0})
        await socket.send(action=action, **frame(world))
        if codes is SILENT:
            await asyncio.sleep(0.3)  # a dropped draft is written (and refused) in the background
        else:
            error = await socket.wait_event("error")
            assert error.attrs["data-error"] in codes, (role, action, error.attrs["data-error"], error.text)
        await socket.send(action="ping")
        await socket.wait_event("pong")
        await socket.drain(0.2)
        if codes is SILENT:
            assert not [e for e in socket.received if e.attrs.get("data-event") == "error"], (role, action)
        raw = "".join(e.text + " ".join(e.attrs.values()) for e in socket.received)
        for secret in SECRETS:
            assert secret not in raw, f"{role} received {secret!r} after {action}"
        assert await snapshot(world) == before, f"{role}'s {action} changed company A's chat"
    finally:
        await socket.close()


@pytest.mark.parametrize("action,role", [(a, r) for a, roles in CLIENT_ATTACKS.items() for r in roles])
async def test_client_socket_attacks_are_refused(world, action, role):
    """Another company's contact and a contact without chat get an error frame for A's targets."""
    frame, codes = CLIENT_ATTACKS[action][role]
    await _attack(world, role, "/ws/chat/", action, frame, codes)


@pytest.mark.parametrize("action", list(STAFF_ATTACKS))
async def test_hud_socket_attacks_are_refused(world, action):
    """An engineer in no queue and not in the room gets an error frame for every targeted action."""
    frame, codes = STAFF_ATTACKS[action]["eve"]
    await _attack(world, "eve", "/ws/hud/", action, frame, codes)


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/hud/", "/ws/hud/supervisor/"])
async def test_anonymous_sockets_are_closed_before_any_action(path):
    """Without a session, the handshake is refused with 4401, so no action can ever be sent."""
    _, connected, code = await connect(None, path, cookie=False)
    assert not connected and code == 4401


@pytest.mark.parametrize(
    "role,path",
    [
        ("eve", "/ws/chat/"),
        ("dana", "/ws/chat/"),
        ("carol", "/ws/hud/"),
        ("mallory", "/ws/hud/"),
        ("ken", "/ws/hud/"),
        ("carol", "/ws/hud/supervisor/"),
        ("dana", "/ws/hud/supervisor/"),  # an engineer, not a supervisor
    ],
)
async def test_the_wrong_kind_of_user_is_closed_with_4403(world, role, path):
    """Engineers cannot open the client socket and contacts cannot open the HUD socket."""
    _, connected, code = await connect(world[role].user, path)
    assert not connected and code == 4403


@pytest.mark.parametrize("role,path", [("mallory", "/ws/chat/"), ("ken", "/ws/chat/"), ("eve", "/ws/hud/")])
async def test_sync_never_shows_a_room_the_user_was_not_in(world, role, path):
    """Naming company A's room in a sync returns nothing of it."""
    opener = client_socket if path == "/ws/chat/" else staff_socket
    socket = await opener(world[role].user)
    await socket.send(action="sync", rooms={str(world["room"].pk): 0, str(world["room"].pk + 1): 0})
    await socket.send(action="ping")
    await socket.wait_event("pong")
    await socket.drain(0.2)
    assert not socket.messages(world["room"].pk)
    assert not [e for e in socket.received if e.attrs.get("data-room") == str(world["room"].pk)]
    await socket.close()


@pytest.mark.parametrize("role", ["mallory", "ken"])
async def test_other_clients_do_not_hear_the_room(world, role):
    """A message sent in A's room reaches its participants, not another contact's open socket."""
    spy = await client_socket(world[role].user)
    carol = await client_socket(world["carol"].user)
    await spy.send(action="sync", rooms={})
    await carol.send(action="sync", rooms={})
    await carol.send(action="send", room_id=world["room"].pk, body="Quokka-second secret", client_msg_id="s2")
    await carol.wait_message(world["room"].pk, 3)
    await spy.drain(0.3)
    assert not spy.messages(world["room"].pk)
    assert all("Quokka" not in e.text for e in spy.received)
    await spy.close()
    await carol.close()


async def test_a_forged_engineer_id_cannot_change_someone_elses_availability(world):
    """set_availability acts on the sender only, whatever ids the frame carries."""
    eve = await staff_socket(world["eve"].user)
    await eve.send(
        action="set_availability", availability="away", engineer_id=world["dana"].pk, user_id=world["dana"].user_id
    )
    await eve.send(action="ping")
    await eve.wait_event("pong")
    dana = await sync_to_async(lambda: world["dana"].__class__.objects.get(pk=world["dana"].pk))()
    assert dana.availability == "available"
    await eve.close()


# --- The legitimate roles get through ---------------------------------------------------------


async def test_the_participant_client_may_do_everything(world):
    """Carol sends, types, reads and leaves her room; Cora cancels her request; Cleo accepts her invitation."""
    room_id = world["room"].pk
    carol = await client_socket(world["carol"].user)
    await carol.send(action="sync", rooms={})
    await carol.wait_message(room_id, 2)
    await carol.send(action="send", room_id=room_id, body="hello", client_msg_id="ok-1")
    await carol.wait_message(room_id, 3)
    await carol.send(action="typing", room_id=room_id, typing=True)
    await carol.send(action="read", room_id=room_id, seq=3)
    await carol.send(action="leave", room_id=room_id)
    await carol.wait_event("room_closed", room=room_id)
    assert not [e for e in carol.received if e.attrs.get("data-event") == "error"]
    await carol.close()

    cora = await client_socket(world["cora"].user)
    await cora.send(action="callback", request_id=world["waiting"].pk, body="call me")
    await cora.wait_event("notice")
    assert (await sync_to_async(ChatRequest.objects.get)(pk=world["waiting"].pk)).state == "callback"
    await cora.close()

    cleo = await client_socket(world["cleo"].user)
    await cleo.send(action="accept_invitation", request_id=world["invitation"].pk)
    await cleo.wait_event("client_state", state="chatting")
    await cleo.close()

    carl = await client_socket(world["carl"].user)
    await carl.send(action="request_chat", ticket_id=world["carl_ticket"].pk)
    state = await carl.wait_event("client_state", state="waiting")
    await carl.send(action="cancel", request_id=int(state.attrs["data-request-id"]))
    await carl.wait_event("client_state", state="idle")
    await carl.close()


async def test_a_client_may_reject_their_own_invitation(world):
    """Cleo rejects the invitation addressed to her."""
    cleo = await client_socket(world["cleo"].user)
    await cleo.send(action="reject_invitation", request_id=world["invitation"].pk)
    await cleo.send(action="ping")
    await cleo.wait_event("pong")
    assert (await sync_to_async(ChatRequest.objects.get)(pk=world["invitation"].pk)).state == "rejected"
    await cleo.close()


async def test_the_participant_engineer_may_do_everything(world):
    """Dana answers, invites, ends; Sam joins when invited; Dana cancels her invitation and invites a contact."""
    room_id = world["room"].pk
    dana = await staff_socket(world["dana"].user)
    await dana.send(action="sync", rooms={})
    await dana.wait_message(room_id, 2)
    await dana.send(action="send", room_id=room_id, body="hi", client_msg_id="d-1")
    await dana.wait_message(room_id, 3)
    await dana.send(action="typing", room_id=room_id)
    await dana.send(action="read", room_id=room_id, seq=3)
    await dana.send(action="invite_engineer", room_id=room_id, engineer_id=world["sam"].pk)
    await dana.wait_event("notice")
    sam = await staff_socket(world["sam"].user)
    await sam.send(action="join", room_id=room_id)
    await sam.wait_event("session")
    await sam.send(action="answer", request_id=world["waiting"].pk)
    await sam.wait_for(lambda e: e.attrs.get("data-event") == "session" and e.attrs.get("data-room") != str(room_id))
    await dana.send(action="cancel_invitation", request_id=world["invitation"].pk)
    await dana.send(action="invite_contact", ticket_id=world["carl_ticket"].pk)
    await dana.send(action="end", room_id=room_id)
    await dana.wait_event("room_closed", room=room_id)
    await dana.send(action="ping")
    await dana.wait_event("pong")
    assert not [e for e in dana.received if e.attrs.get("data-event") == "error"], [
        e.attrs for e in dana.received if e.attrs.get("data-event") == "error"
    ]
    assert (await sync_to_async(ChatRequest.objects.get)(pk=world["invitation"].pk)).state == "cancelled"
    assert await sync_to_async(ChatRequest.objects.filter(contact=world["carl"], kind="invitation").exists)()
    await dana.close()
    await sam.close()


async def test_the_supervisor_flag_grants_no_room_access(world):
    """A supervisor who is not in the room cannot read or end it either."""
    sue = await staff_socket(world["sue"].user)
    await sue.send(action="end", room_id=world["room"].pk)
    assert (await sue.wait_event("error")).attrs["data-error"] == "not_participant"
    await sue.close()
    assert (await sync_to_async(ChatRoom.objects.get)(pk=world["room"].pk)).state == "active"
