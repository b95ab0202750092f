"""Every chat state change through chat/services.py: routing, requests, rooms and messages.

These run inside a rolled-back transaction. The tests that need several connections at once
live in test_concurrency.py (threads on PostgreSQL), test_consumers.py (sockets and events) and
tests/multiprocess (real daphne processes).
"""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Engineer
from chat import selectors, services
from chat.errors import ChatError
from chat.models import ChatMessage, ChatParticipant, ChatQueue, ChatRequest, ChatRoom, MessageTemplate, RoomInvitation
from tests.queries import statements_run
from tickets.models import Ticket, TicketNote

pytestmark = pytest.mark.django_db


def online(engineer: Engineer) -> Engineer:
    """Mark an engineer as having a HUD socket open now."""
    Engineer.objects.filter(pk=engineer.pk).update(last_seen_at=timezone.now())
    engineer.refresh_from_db()
    return engineer


def past(seconds: int = 1):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def room(desk):
    """An active room: Carol's request answered by Dana."""
    request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
    return services.answer_request(engineer=desk.dana, request_id=request.pk)


def bodies(room) -> list[str]:
    return list(ChatMessage.objects.filter(room=room).order_by("seq").values_list("body", flat=True))


# --- Routing ---------------------------------------------------------------------------------


class TestRouting:
    def test_a_ticket_goes_to_the_queue_of_its_company(self, f, desk):
        """A queue that names the ticket's company takes it; the default does not."""
        network = f.make_queue(name="Acme desk", order=10)
        network.companies.add(desk.company)
        assert services.route_queue(desk.ticket) == network

    def test_a_ticket_goes_to_the_queue_of_its_board(self, f, desk):
        """A queue that names the ticket's board takes it."""
        board = f.make_board("Network")
        queue = f.make_queue(name="Network team", order=10)
        queue.boards.add(board)
        on_board = f.make_ticket(contact=desk.contact, board=board)
        assert services.route_queue(on_board) == queue
        assert services.route_queue(desk.ticket) == desk.queue  # no board: not this queue

    def test_a_ticket_goes_to_the_queue_of_its_priority(self, f, desk):
        """A queue that lists the ticket's priority takes it; other priorities pass by."""
        urgent = f.make_queue(name="Urgent", order=10, priorities=["high", "critical"])
        critical = f.make_ticket(contact=desk.contact, priority=Ticket.Priority.CRITICAL)
        assert services.route_queue(critical) == urgent
        assert services.route_queue(desk.ticket) == desk.queue  # medium

    def test_every_rule_a_queue_sets_must_match(self, f, desk):
        """A queue for one company's urgent tickets does not take that company's medium ones."""
        queue = f.make_queue(name="Acme urgent", order=10, priorities=["critical"])
        queue.companies.add(desk.company)
        other_company = f.make_ticket(priority=Ticket.Priority.CRITICAL)
        assert services.route_queue(desk.ticket) == desk.queue
        assert services.route_queue(other_company) == desk.queue
        urgent = f.make_ticket(contact=desk.contact, priority=Ticket.Priority.CRITICAL)
        assert services.route_queue(urgent) == queue

    def test_a_rule_left_empty_matches_anything(self, f, desk):
        """A queue with only a company rule takes that company's tickets on any board and priority."""
        queue = f.make_queue(name="Acme", order=10)
        queue.companies.add(desk.company)
        ticket = f.make_ticket(contact=desk.contact, board=f.make_board(), priority=Ticket.Priority.LOW)
        assert services.route_queue(ticket) == queue

    def test_queues_are_tried_in_their_order(self, f, desk):
        """When two queues match, the lower order wins whatever the names or creation order."""
        late = f.make_queue(name="A first by name", order=50)
        late.companies.add(desk.company)
        early = f.make_queue(name="Z last by name", order=5)
        early.companies.add(desk.company)
        assert services.route_queue(desk.ticket) == early

    def test_the_default_queue_catches_what_no_other_queue_takes(self, f, desk):
        """A ticket matching no rule lands in the default queue, even when it sorts first."""
        other = f.make_queue(name="Other company", order=1)
        other.companies.add(f.make_company())
        ChatQueue.objects.filter(pk=desk.queue.pk).update(order=0)
        assert services.route_queue(desk.ticket) == desk.queue

    def test_a_request_with_no_queue_to_go_to_is_refused_clearly(self, f, desk):
        """With no default queue and no matching rule, Join Chat says chat is not staffed and stores nothing."""
        ChatQueue.objects.filter(pk=desk.queue.pk).delete()
        other = f.make_queue(name="Other company")
        other.companies.add(f.make_company())
        with pytest.raises(ChatError) as refused:
            services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert refused.value.code == "no_queue"
        assert "not staffed" in refused.value.message
        assert not ChatRequest.objects.exists()

    def test_the_request_records_the_queue_it_was_routed_to(self, f, desk):
        """request_chat stores the routed queue, so only its members see the request."""
        urgent = f.make_queue(name="Urgent", order=10, priorities=["critical"])
        ticket = f.make_ticket(contact=desk.contact, priority=Ticket.Priority.CRITICAL)
        request = services.request_chat(contact=desk.contact, ticket=ticket)
        assert request.queue == urgent


class TestFirstOffer:
    @pytest.fixture
    def assigned(self, f, desk):
        """The ticket's engineer (not in the queue), available and online."""
        lee = online(f.make_engineer(display_name="Lee"))
        Ticket.objects.filter(pk=desk.ticket.pk).update(assigned_engineer=lee)
        desk.ticket.refresh_from_db()
        return lee

    def test_the_assigned_engineer_is_offered_the_request_first(self, desk, assigned, settings):
        """The ticket's available, online engineer gets the request alone for the offer window."""
        settings.CHAT_OFFER_WINDOW_SECONDS = 15
        before = timezone.now()
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert request.offered_to == assigned
        assert before + timedelta(seconds=15) <= request.offer_until <= timezone.now() + timedelta(seconds=15)
        assert list(selectors.queue_summary(engineer=assigned)["requests"]) == [request]
        assert list(selectors.queue_summary(engineer=desk.dana)["requests"]) == []

    def test_queue_members_cannot_answer_during_the_offer_window(self, desk, assigned):
        """A member answering a request offered to someone else is told there is no such request."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        with pytest.raises(ChatError) as refused:
            services.answer_request(engineer=desk.dana, request_id=request.pk)
        assert refused.value.code == "not_found"
        room = services.answer_request(engineer=assigned, request_id=request.pk)
        assert room.participants.filter(user=assigned.user).exists()

    def test_the_queue_sees_the_request_once_the_window_ends(self, desk, assigned):
        """After offer_until, every member sees and may answer it, before any sweep runs."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        ChatRequest.objects.filter(pk=request.pk).update(offer_until=past())
        assert list(selectors.queue_summary(engineer=desk.dana)["requests"]) == [request]
        services.answer_request(engineer=desk.sam, request_id=request.pk)

    def test_release_due_offers_opens_ended_windows_to_the_queue_once(self, desk, assigned):
        """release_due_offers releases each ended offer once and leaves running windows alone."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert services.release_due_offers() == []
        ChatRequest.objects.filter(pk=request.pk).update(offer_until=past())
        assert services.release_due_offers() == [request.pk]
        assert services.release_due_offers() == []
        request.refresh_from_db()
        assert request.offer_released
        ChatRequest.objects.filter(pk=request.pk).update(offer_until=timezone.now() + timedelta(hours=1))
        assert list(selectors.queue_summary(engineer=desk.dana)["requests"]) == [request]  # released stays open

    @pytest.mark.parametrize("why", ["away", "busy", "offline", "long_gone", "at_limit"])
    def test_the_assigned_engineer_is_not_offered_it_when_not_alertable(self, f, desk, assigned, why):
        """Away, busy, offline or at their chat limit: the request goes straight to the whole queue."""
        if why in ("away", "busy"):
            Engineer.objects.filter(pk=assigned.pk).update(availability=why)
        elif why == "offline":
            Engineer.objects.filter(pk=assigned.pk).update(last_seen_at=None)
        elif why == "long_gone":
            Engineer.objects.filter(pk=assigned.pk).update(last_seen_at=past(3600))
        else:
            Engineer.objects.filter(pk=assigned.pk).update(max_concurrent_chats=1)
            other = f.make_ticket(contact=f.make_contact(chat="allow"))
            invitation = services.invite_contact(engineer=assigned, ticket=other)
            services.accept_invitation(contact=other.contact, request_id=invitation.pk)  # one open chat
        desk.ticket.refresh_from_db()
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert request.offered_to is None and request.offer_until is None
        assert list(selectors.queue_summary(engineer=desk.dana)["requests"]) == [request]

    def test_an_unassigned_ticket_goes_straight_to_the_queue(self, desk):
        """With no assigned engineer there is no offer window."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert request.offered_to is None
        assert list(selectors.queue_summary(engineer=desk.sam)["requests"]) == [request]


# --- Client requests ---------------------------------------------------------------------------


class TestRequests:
    def test_a_request_costs_four_queries_however_long_the_contacts_history(self, desk, settings):
        """Join Chat reads the contact's standing (one query), routes, asks whether anyone in the queue
        could take it, and inserts: nothing per past request.

        A burst of Join Chats queues on each process's one database thread (docs/benchmarks.md).
        """
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        settings.CHAT_REQUEST_RATE_PER_MINUTE = 0
        for _ in range(5):
            old = services.request_chat(contact=desk.contact, ticket=desk.ticket)
            services.cancel_request(contact=desk.contact, request_id=old.pk)
        with CaptureQueriesContext(connection) as queries:
            request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
        assert request.state == "waiting"
        assert len(statements) == 4, statements

    def test_a_request_waits_in_its_queue_with_its_timestamps(self, desk, settings):
        """Join Chat stores a waiting request with requested_at and the pickup deadline."""
        settings.CHAT_PICKUP_TIMEOUT_SECONDS = 120
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert request.state == "waiting" and request.kind == "client"
        assert request.queue == desk.queue
        assert request.requested_at is not None
        assert abs((request.expires_at - request.requested_at) - timedelta(seconds=120)) < timedelta(seconds=2)
        assert request.answered_at is None and request.ended_at is None

    def test_asking_twice_for_the_same_ticket_returns_the_same_request(self, desk):
        """A second Join Chat (another tab) returns the waiting request instead of a second one."""
        first = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        again = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert again.pk == first.pk
        assert ChatRequest.objects.count() == 1

    def test_a_contact_waits_for_one_chat_at_a_time(self, f, desk):
        """Asking about another ticket while a request waits is refused and names the waiting ticket."""
        services.request_chat(contact=desk.contact, ticket=desk.ticket)
        other = f.make_ticket(contact=desk.contact)
        with pytest.raises(ChatError) as refused:
            services.request_chat(contact=desk.contact, ticket=other)
        assert refused.value.code == "already_waiting"
        assert f"#{desk.ticket.pk}" in refused.value.message

    def test_the_database_keeps_one_waiting_request_per_contact(self, desk):
        """The partial unique constraint refuses a second waiting request whatever the code path."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        with pytest.raises(IntegrityError), transaction.atomic():
            ChatRequest.objects.create(
                ticket=desk.ticket, contact=desk.contact, queue=desk.queue, expires_at=request.expires_at
            )
        ChatRequest.objects.create(
            ticket=desk.ticket,
            contact=desk.contact,
            queue=desk.queue,
            expires_at=request.expires_at,
            state="cancelled",
        )  # finished ones don't count

    def test_an_unrelated_integrity_error_is_not_read_as_another_tab(self, desk, monkeypatch):
        """Only one_waiting_request_per_contact means "another tab asked first"; any other refusal propagates."""

        def refused_elsewhere(**kwargs):
            with transaction.atomic():
                ChatQueue.objects.create(name=desk.queue.name)  # the queue names' unique constraint

        monkeypatch.setattr(services, "_request_chat", refused_elsewhere)
        with pytest.raises(IntegrityError):
            services.request_chat(contact=desk.contact, ticket=desk.ticket)

    def test_a_request_past_its_deadline_does_not_block_a_new_one(self, desk):
        """Join Chat after the pickup timeout, before any sweep, expires the old request and queues a new one."""
        old = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        ChatRequest.objects.filter(pk=old.pk).update(expires_at=past())
        new = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert new.pk != old.pk and new.state == "waiting"
        old.refresh_from_db()
        assert old.state == "expired" and old.ended_at is not None

    def test_a_contact_in_a_chat_cannot_queue_for_another(self, f, desk, room):
        """While chatting, Join Chat is refused."""
        with pytest.raises(ChatError) as refused:
            services.request_chat(contact=desk.contact, ticket=f.make_ticket(contact=desk.contact))
        assert refused.value.code == "already_chatting"

    def test_cancelling_takes_the_request_out_of_the_queue(self, desk):
        """Cancel ends the request, records ended_at, and a second cancel is refused."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        services.cancel_request(contact=desk.contact, request_id=request.pk)
        request.refresh_from_db()
        assert request.state == "cancelled" and request.ended_at is not None
        assert list(selectors.queue_summary(engineer=desk.dana)["requests"]) == []
        with pytest.raises(ChatError) as refused:
            services.cancel_request(contact=desk.contact, request_id=request.pk)
        assert refused.value.code == "not_waiting"

    def test_only_the_requesting_contact_can_cancel(self, f, desk):
        """Another contact's cancel leaves the request waiting."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        colleague = f.make_contact(company=desk.company)
        with pytest.raises(ChatError):
            services.cancel_request(contact=colleague, request_id=request.pk)
        request.refresh_from_db()
        assert request.state == "waiting"

    def test_a_request_expires_only_once_its_pickup_time_has_passed(self, desk):
        """expire_request refuses a request still in time, expires a due one once, and records ended_at."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert services.expire_request(request_id=request.pk) is False
        ChatRequest.objects.filter(pk=request.pk).update(expires_at=past())
        assert services.expire_request(request_id=request.pk) is True
        assert services.expire_request(request_id=request.pk) is False
        request.refresh_from_db()
        assert request.state == "expired" and request.ended_at is not None

    def test_expire_due_requests_expires_the_due_ones_and_returns_their_ids(self, f, desk):
        """Only requests past their deadline expire; the call returns exactly those ids."""
        due = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        ChatRequest.objects.filter(pk=due.pk).update(expires_at=past())
        other = f.make_contact(company=desk.company)
        in_time = services.request_chat(contact=other, ticket=f.make_ticket(contact=other))
        assert services.expire_due_requests() == [due.pk]
        assert services.expire_due_requests() == []
        in_time.refresh_from_db()
        assert in_time.state == "waiting"

    def test_a_due_request_can_no_longer_be_answered(self, desk):
        """Past its deadline, answering is refused even before a sweep marks it expired."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        ChatRequest.objects.filter(pk=request.pk).update(expires_at=past())
        with pytest.raises(ChatError) as refused:
            services.answer_request(engineer=desk.dana, request_id=request.pk)
        assert refused.value.code == "not_waiting"
        assert not ChatRoom.objects.exists()

    @pytest.mark.parametrize("expired_first", [False, True])
    def test_a_callback_request_ends_the_wait_and_leaves_a_ticket_note(self, desk, expired_first):
        """A waiting or expired request becomes a callback, noted (visibly to the client) on the ticket."""
        desk.contact.phone = "555-0100"
        desk.contact.save()
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        if expired_first:
            ChatRequest.objects.filter(pk=request.pk).update(expires_at=past())
            services.expire_due_requests()
        services.request_callback(contact=desk.contact, request_id=request.pk, text="  Call after 3pm  ")
        request.refresh_from_db()
        assert request.state == "callback" and request.ended_at is not None
        note = TicketNote.objects.get(ticket=desk.ticket)
        assert not note.internal
        # The client's own note, in the first person, as the ticket page shows it under their name.
        assert note.author == desk.contact.user
        assert note.text == "Please call me back on 555-0100 instead of chatting.\n\nMy question:\nCall after 3pm"
        assert note.text.endswith("Call after 3pm")

    def test_an_answered_request_cannot_become_a_callback(self, desk, room):
        """Once answered, a callback is refused and no note is written."""
        with pytest.raises(ChatError) as refused:
            services.request_callback(contact=desk.contact, request_id=room.request_id)
        assert refused.value.code == "not_waiting"
        assert not TicketNote.objects.filter(text__contains="callback").exists()

    def test_answering_records_who_and_when(self, desk):
        """answer_request records answered_by and answered_at, and puts both people in the room."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        room = services.answer_request(engineer=desk.dana, request_id=request.pk)
        request.refresh_from_db()
        assert request.state == "answered" and request.answered_by == desk.dana
        assert request.requested_at <= request.answered_at
        roles = dict(room.participants.values_list("user_id", "role"))
        assert roles == {desk.contact.user_id: "client", desk.dana.user_id: "engineer"}
        assert room.ticket_id == desk.ticket.pk

    def test_a_second_answer_is_told_the_request_was_taken(self, desk, room):
        """The second engineer to answer gets ChatError("taken") and no second room exists."""
        with pytest.raises(ChatError) as refused:
            services.answer_request(engineer=desk.sam, request_id=room.request_id)
        assert refused.value.code == "taken"
        assert ChatRoom.objects.count() == 1


class TestInvitations:
    def test_an_engineer_invites_the_contact_and_they_accept(self, desk):
        """Accepting opens a room with the inviting engineer already in it, and records the answer."""
        invitation = services.invite_contact(engineer=desk.dana, ticket=desk.ticket)
        assert invitation.kind == "invitation" and invitation.state == "waiting"
        room = services.accept_invitation(contact=desk.contact, request_id=invitation.pk)
        invitation.refresh_from_db()
        assert invitation.state == "answered" and invitation.answered_by == desk.dana
        assert invitation.answered_at is not None
        assert {p.user_id for p in selectors.participants(room.pk)} == {desk.dana.user_id, desk.contact.user_id}
        assert bodies(room) == ["Carol Client joined."]

    def test_the_contact_rejects_an_invitation(self, desk):
        """Reject ends the invitation; accepting it afterwards is refused."""
        invitation = services.invite_contact(engineer=desk.dana, ticket=desk.ticket)
        services.reject_invitation(contact=desk.contact, request_id=invitation.pk)
        invitation.refresh_from_db()
        assert invitation.state == "rejected" and invitation.ended_at is not None
        with pytest.raises(ChatError) as refused:
            services.accept_invitation(contact=desk.contact, request_id=invitation.pk)
        assert refused.value.code == "not_waiting"
        assert not ChatRoom.objects.exists()

    def test_the_inviter_can_withdraw_an_invitation_and_nobody_else_can(self, desk):
        """Only the engineer who sent an invitation can cancel it."""
        invitation = services.invite_contact(engineer=desk.dana, ticket=desk.ticket)
        with pytest.raises(ChatError):
            services.cancel_invitation(engineer=desk.sam, request_id=invitation.pk)
        services.cancel_invitation(engineer=desk.dana, request_id=invitation.pk)
        invitation.refresh_from_db()
        assert invitation.state == "cancelled"

    def test_one_invitation_waits_per_contact(self, desk):
        """A second invitation while one waits is refused."""
        services.invite_contact(engineer=desk.dana, ticket=desk.ticket)
        with pytest.raises(ChatError) as refused:
            services.invite_contact(engineer=desk.sam, ticket=desk.ticket)
        assert refused.value.code == "already_invited"

    def test_a_contact_without_chat_permission_cannot_be_invited(self, f, desk):
        """Inviting a contact whose chat permission is denied is refused."""
        denied = f.make_contact(company=desk.company, chat="deny")
        with pytest.raises(ChatError) as refused:
            services.invite_contact(engineer=desk.dana, ticket=f.make_ticket(contact=denied))
        assert refused.value.code == "not_allowed"

    def test_an_invitation_past_its_deadline_cannot_be_accepted(self, desk):
        """Accepting after the pickup timeout is refused; the sweep expires it."""
        invitation = services.invite_contact(engineer=desk.dana, ticket=desk.ticket)
        ChatRequest.objects.filter(pk=invitation.pk).update(expires_at=past())
        with pytest.raises(ChatError):
            services.accept_invitation(contact=desk.contact, request_id=invitation.pk)
        assert services.expire_due_requests() == [invitation.pk]

    def test_a_contact_in_a_chat_cannot_accept_an_invitation(self, f, desk, room):
        """An invitation accepted while the contact chats elsewhere is refused: one chat at a time."""
        invitation = ChatRequest.objects.create(
            kind="invitation",
            ticket=f.make_ticket(contact=desk.contact),
            contact=desk.contact,
            invited_by=desk.sam,
            expires_at=timezone.now() + timedelta(minutes=5),
        )
        with pytest.raises(ChatError) as refused:
            services.accept_invitation(contact=desk.contact, request_id=invitation.pk)
        assert refused.value.code == "already_chatting"
        assert ChatRoom.objects.count() == 1


# --- Rooms -----------------------------------------------------------------------------------


class TestRooms:
    def test_the_engineer_joining_is_announced_and_the_client_is_not(self, room):
        """An answered room opens with one system message, "Dana joined."."""
        assert bodies(room) == ["Dana Reyes joined."]
        assert room.messages.get().kind == "system"

    def test_the_room_stays_open_while_the_engineer_remains(self, desk, room):
        """The client leaving alone does not end the chat."""
        services.leave_room(room_id=room.pk, user=desk.contact.user)
        room.refresh_from_db()
        assert room.is_active
        assert [p.user_id for p in selectors.participants(room.pk)] == [desk.dana.user_id]

    def test_the_room_ends_when_the_client_and_every_engineer_have_left(self, desk, room):
        """The last one out ends the room and the transcript becomes an internal ticket note."""
        services.send_message(room_id=room.pk, user=desk.contact.user, body="My printer is smoking")
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        room.refresh_from_db()
        assert room.is_active  # the client is still there
        services.leave_room(room_id=room.pk, user=desk.contact.user)
        room.refresh_from_db()
        assert room.state == "ended" and room.ended_at is not None
        assert room.request.ended_at is not None
        note = TicketNote.objects.get(ticket=desk.ticket)
        assert note.internal
        assert "Carol Client: My printer is smoking" in note.text
        assert "* Dana Reyes left." in note.text

    def test_an_engineer_ends_the_room_for_everyone(self, desk, room):
        """end_room closes every participation, says who ended it and files the transcript once."""
        services.end_room(room_id=room.pk, engineer=desk.dana)
        room.refresh_from_db()
        assert room.state == "ended"
        assert not ChatParticipant.objects.filter(room=room, left_at__isnull=True).exists()
        assert bodies(room)[-1] == "Dana Reyes ended the chat."
        assert TicketNote.objects.filter(ticket=desk.ticket, internal=True).count() == 1
        with pytest.raises(ChatError) as refused:
            services.send_message(room_id=room.pk, user=desk.contact.user, body="hello?")
        assert refused.value.code == "room_ended"

    def test_only_an_engineer_in_the_room_can_end_it(self, desk, room):
        """Another engineer's end_room is refused."""
        with pytest.raises(ChatError) as refused:
            services.end_room(room_id=room.pk, engineer=desk.sam)
        assert refused.value.code == "not_participant"
        room.refresh_from_db()
        assert room.is_active

    def test_leaving_a_room_you_are_not_in_is_refused(self, f, room):
        """leave_room by a stranger is refused; an ended room says so."""
        with pytest.raises(ChatError) as refused:
            services.leave_room(room_id=room.pk, user=f.make_user())
        assert refused.value.code == "not_participant"
        with pytest.raises(ChatError) as refused:
            services.leave_room(room_id=room.pk + 1000, user=f.make_user())
        assert refused.value.code == "not_found"

    def test_an_invited_engineer_joins_the_room(self, desk, room):
        """invite_engineer announces the invitation; join_room adds Sam and accepts it."""
        invitation = services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam)
        assert invitation.state == "pending" and not invitation.transfer
        services.join_room(room_id=room.pk, engineer=desk.sam)
        invitation.refresh_from_db()
        assert invitation.state == "accepted"
        assert bodies(room)[-2:] == ["Dana Reyes invited Sam Okafor.", "Sam Okafor joined."]
        engineers = [p.display_name for p in selectors.participants(room.pk)]
        assert engineers[:2] == ["Dana Reyes", "Sam Okafor"] and engineers[2] == "Carol Client"  # engineers first

    def test_inviting_twice_keeps_one_pending_invitation(self, desk, room):
        """A second invite of the same engineer returns the pending one and says nothing new."""
        first = services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam)
        again = services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam)
        assert again.pk == first.pk
        assert bodies(room).count("Dana Reyes invited Sam Okafor.") == 1

    def test_nobody_joins_a_room_uninvited(self, desk, room):
        """join_room without an invitation (and never having been in it) is refused."""
        with pytest.raises(ChatError) as refused:
            services.join_room(room_id=room.pk, engineer=desk.sam)
        assert refused.value.code == "not_allowed"

    def test_invite_refuses_yourself_and_someone_already_in(self, desk, room):
        """Inviting yourself or a present colleague is refused; a non-participant cannot invite."""
        with pytest.raises(ChatError):
            services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.dana)
        with pytest.raises(ChatError) as refused:
            services.invite_engineer(room_id=room.pk, by=desk.sam, engineer=desk.sam)
        assert refused.value.code == "not_participant"

    def test_a_transfer_hands_the_chat_over(self, desk, room):
        """With transfer, the inviter leaves when the colleague joins and the room stays active."""
        services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam, transfer=True)
        services.join_room(room_id=room.pk, engineer=desk.sam)
        room.refresh_from_db()
        assert room.is_active
        present = {p.user_id for p in selectors.participants(room.pk)}
        assert present == {desk.sam.user_id, desk.contact.user_id}
        assert bodies(room)[-3:] == [
            "Dana Reyes asked Sam Okafor to take over the chat.",
            "Sam Okafor joined.",
            "Dana Reyes left.",
        ]

    def test_a_transfer_accepted_after_the_inviter_left_announces_no_second_departure(self, desk, room):
        """If the inviter already left, joining does not post "Dana left." again."""
        services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam, transfer=True)
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        left_at = ChatParticipant.objects.get(room=room, user=desk.dana.user).left_at
        services.join_room(room_id=room.pk, engineer=desk.sam)
        assert bodies(room).count("Dana Reyes left.") == 1
        assert ChatParticipant.objects.get(room=room, user=desk.dana.user).left_at == left_at

    def test_an_engineer_who_left_may_rejoin(self, desk, room):
        """A participant who left can come back while the room is active."""
        services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam)
        services.join_room(room_id=room.pk, engineer=desk.sam)
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        services.join_room(room_id=room.pk, engineer=desk.dana)
        assert ChatParticipant.objects.get(room=room, user=desk.dana.user).left_at is None

    def test_pending_invitations_are_declined_when_the_room_ends(self, desk, room):
        """An invitation to an ended room is closed, and joining it is refused."""
        services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam)
        services.end_room(room_id=room.pk, engineer=desk.dana)
        assert RoomInvitation.objects.get(room=room).state == "declined"
        with pytest.raises(ChatError) as refused:
            services.join_room(room_id=room.pk, engineer=desk.sam)
        assert refused.value.code == "room_ended"


class TestReturningToTheQueue:
    """The last engineer leaving a client's room puts the chat back in the queue (issue 13)."""

    def test_the_last_engineer_leaving_puts_the_request_back_in_the_queue_with_its_place(self, desk, room, f):
        """Dana leaves: the request waits again, in its original place, left by Dana, with a new deadline,
        and the room stays open with the client and its history."""
        other = services.request_chat(contact=f.make_contact(company=desk.company), ticket=desk.ticket)
        request = room.request
        services.send_message(room_id=room.pk, user=desk.contact.user, body="My printer is smoking")
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        request.refresh_from_db()
        room.refresh_from_db()
        assert request.state == "waiting" and request.is_returning
        assert request.left_by == desk.dana and request.returned_at is not None
        assert request.expires_at > timezone.now() + timedelta(seconds=200)
        assert room.is_active and bodies(room)[-1] == "Dana Reyes left."
        assert selectors.queue_position(request) == 1 and selectors.queue_position(other) == 2
        shown = selectors.queue_summary(engineer=online(desk.sam))["requests"]
        assert [r.pk for r in shown] == [request.pk, other.pk]
        chat = selectors.current_chat_for_contact(contact=desk.contact)
        assert chat["state"] == "waiting" and chat["room"] == room and chat["position"] == 1

    def test_another_engineer_answers_it_and_joins_the_same_room(self, desk, room):
        """Sam answers the returning request: no new room, the history stays, Sam is announced."""
        services.send_message(room_id=room.pk, user=desk.contact.user, body="My printer is smoking")
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        again = services.answer_request(engineer=desk.sam, request_id=room.request_id)
        assert again.pk == room.pk and ChatRoom.objects.count() == 1
        assert bodies(room) == ["Dana Reyes joined.", "My printer is smoking", "Dana Reyes left.", "Sam Okafor joined."]
        request = ChatRequest.objects.get(pk=room.request_id)
        assert request.state == "answered" and request.answered_by == desk.sam
        present = {p.user_id for p in selectors.participants(room.pk)}
        assert present == {desk.sam.user_id, desk.contact.user_id}

    def test_a_second_answer_to_a_returning_request_is_taken(self, desk, room, f):
        """Exactly one winner, as for a new request."""
        lee = f.make_engineer(display_name="Lee", queues=[desk.queue])
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        services.answer_request(engineer=desk.sam, request_id=room.request_id)
        with pytest.raises(ChatError) as refused:
            services.answer_request(engineer=lee, request_id=room.request_id)
        assert refused.value.code == "taken"

    def test_an_unanswered_return_expires_ends_the_room_and_offers_the_note(self, desk, room):
        """The pickup timeout applies: expiry ends the room (transcript filed) and the dialog offers the note."""
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        ChatRequest.objects.filter(pk=room.request_id).update(expires_at=past())
        assert services.expire_due_requests() == [room.request_id]
        room.refresh_from_db()
        assert room.state == "ended"
        assert bodies(room)[-1] == "No engineer was free to take the chat back in time."
        assert TicketNote.objects.filter(ticket=desk.ticket, internal=True).count() == 1
        assert selectors.current_chat_for_contact(contact=desk.contact)["state"] == "expired"

    def test_the_client_leaving_while_returning_ends_the_room_and_the_wait(self, desk, room):
        """Leaving the room takes the request out of the queue too."""
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        services.leave_room(room_id=room.pk, user=desk.contact.user)
        room.refresh_from_db()
        assert room.state == "ended"
        assert ChatRequest.objects.get(pk=room.request_id).state == "cancelled"
        assert selectors.queue_summary(engineer=online(desk.sam))["requests"] == []

    def test_cancelling_or_a_callback_while_returning_ends_the_room(self, desk, room):
        """The dialog's cross (cancel) ends the room with the wait; so does a callback."""
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        services.request_callback(contact=desk.contact, request_id=room.request_id, text="after 3pm")
        room.refresh_from_db()
        assert room.state == "ended" and bodies(room)[-1] == "Carol Client asked for a callback instead."
        assert ChatRequest.objects.get(pk=room.request_id).state == "callback"

    def test_an_invited_colleague_joining_takes_it_out_of_the_queue(self, desk, room):
        """A transfer nobody accepted in time returns the chat; if Sam joins later, it leaves the queue."""
        services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam, transfer=True)
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        assert ChatRequest.objects.get(pk=room.request_id).state == "waiting"
        services.join_room(room_id=room.pk, engineer=desk.sam)
        request = ChatRequest.objects.get(pk=room.request_id)
        assert request.state == "answered" and request.answered_by == desk.sam

    def test_one_engineer_of_two_leaving_returns_nothing(self, desk, room):
        """While an engineer remains, the chat stays with them."""
        services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam)
        services.join_room(room_id=room.pk, engineer=desk.sam)
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        assert ChatRequest.objects.get(pk=room.request_id).state == "answered"

    def test_an_engineers_invitation_room_ends_when_its_engineer_leaves(self, desk):
        """An invitation has no queue to go back to: its room ends instead of leaving the client alone."""
        invitation = services.invite_contact(engineer=desk.dana, ticket=desk.ticket)
        room = services.accept_invitation(contact=desk.contact, request_id=invitation.pk)
        services.leave_room(room_id=room.pk, user=desk.dana.user)
        room.refresh_from_db()
        assert room.state == "ended"


class TestNobodyAvailable:
    """A request nobody online could take says so at once (issue 13)."""

    def test_a_request_with_nobody_online_is_made_and_flagged(self, desk):
        """Nobody has a HUD open: the request still waits, flagged nobody_available."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert request.state == "waiting" and request.nobody_available and request.offers_alternatives

    def test_a_request_with_an_available_engineer_online_is_not_flagged(self, desk):
        online(desk.dana)
        assert not services.request_chat(contact=desk.contact, ticket=desk.ticket).nobody_available

    @pytest.mark.parametrize("how", ["away", "busy", "offline", "full"])
    def test_the_sweeper_flags_the_wait_when_the_last_engineer_goes(self, desk, f, how, settings):
        """The last engineer who could take it goes away, busy, offline (no refresh for the presence
        timeout) or reaches their chat limit: the next sweep flags the request once; coming back unflags it."""
        dana = online(desk.dana)
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert not request.nobody_available
        if how in ("away", "busy"):
            Engineer.objects.filter(pk=dana.pk).update(availability=how)
        elif how == "offline":
            Engineer.objects.filter(pk=dana.pk).update(last_seen_at=past(settings.CHAT_PRESENCE_TIMEOUT_SECONDS + 1))
        else:
            Engineer.objects.filter(pk=dana.pk).update(max_concurrent_chats=1)
            other = services.request_chat(contact=f.make_contact(company=desk.company), ticket=desk.ticket)
            services.answer_request(engineer=dana, request_id=other.pk)
        assert services.sweep()["unstaffed"] == [request.pk]
        assert services.sweep()["unstaffed"] == []  # once
        request.refresh_from_db()
        assert request.nobody_available
        Engineer.objects.filter(pk=dana.pk).update(
            availability="available", last_seen_at=timezone.now(), max_concurrent_chats=None
        )
        assert services.sweep()["unstaffed"] == [request.pk]
        request.refresh_from_db()
        assert not request.nobody_available

    def test_setting_availability_flags_at_once(self, desk):
        """The last one going away is told to the waiting client without waiting for a sweep."""
        dana = online(desk.dana)
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        services.set_availability(engineer=dana, availability="away")
        request.refresh_from_db()
        assert request.nobody_available

    def test_leaving_a_note_instead_cancels_the_wait_and_notes_the_ticket(self, desk):
        """The note is the client's own, visible on the ticket; the request leaves the queue."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        services.leave_note_instead(contact=desk.contact, request_id=request.pk, text="  VPN drops hourly ")
        request.refresh_from_db()
        assert request.state == "cancelled"
        note = TicketNote.objects.get(ticket=desk.ticket)
        assert note.text == "VPN drops hourly" and note.author == desk.contact.user and not note.internal
        # A note like one added on the ticket page: the ticket moves up the engineers' lists.
        assert Ticket.objects.get(pk=desk.ticket.pk).updated == note.created

    def test_an_empty_note_is_refused_and_the_request_keeps_waiting(self, desk):
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        with pytest.raises(ChatError) as refused:
            services.leave_note_instead(contact=desk.contact, request_id=request.pk, text="  ")
        assert refused.value.code == "empty"
        request.refresh_from_db()
        assert request.state == "waiting" and not TicketNote.objects.exists()

    def test_a_note_on_someone_elses_request_is_refused(self, desk, f):
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        with pytest.raises(ChatError) as refused:
            services.leave_note_instead(contact=f.make_contact(), request_id=request.pk, text="hi")
        assert refused.value.code == "not_waiting"
        assert ChatRequest.objects.get(pk=request.pk).state == "waiting"


class TestDrafts:
    """The question typed while waiting is stored on the request for the HUD's queue (issue 13)."""

    def test_a_draft_is_stored_on_one_line_and_shown_to_the_queue(self, desk):
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert services.save_draft(contact=desk.contact, request_id=request.pk, text="Outlook\n  asks  again")
        assert not services.save_draft(contact=desk.contact, request_id=request.pk, text="Outlook asks again")
        shown = selectors.queue_summary(engineer=online(desk.sam))["requests"]
        assert shown[0].draft == "Outlook asks again"

    def test_a_draft_for_another_contacts_or_an_answered_request_is_refused(self, desk, f):
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        with pytest.raises(ChatError) as refused:
            services.save_draft(contact=f.make_contact(company=desk.company), request_id=request.pk, text="x")
        assert refused.value.code == "not_waiting"
        services.answer_request(engineer=desk.dana, request_id=request.pk)
        with pytest.raises(ChatError):
            services.save_draft(contact=desk.contact, request_id=request.pk, text="x")
        assert ChatRequest.objects.get(pk=request.pk).draft == ""

    def test_an_overlong_or_non_text_draft_is_refused(self, desk):
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        for text, code in (("x" * 501, "too_long"), (["x"], "bad_frame")):
            with pytest.raises(ChatError) as refused:
                services.save_draft(contact=desk.contact, request_id=request.pk, text=text)
            assert refused.value.code == code


# --- Messages --------------------------------------------------------------------------------


class TestMessages:
    def test_sequence_numbers_are_gapless_and_increasing(self, desk, room):
        """Each message, the system ones included, takes the room's next seq."""
        for n in range(5):
            user = desk.contact.user if n % 2 else desk.dana.user
            services.send_message(room_id=room.pk, user=user, body=f"m{n}")
        seqs = list(ChatMessage.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
        assert seqs == [1, 2, 3, 4, 5, 6]
        room.refresh_from_db()
        assert room.last_seq == 6

    def test_sequences_are_per_room(self, f, desk, room):
        """Another room counts from 1 on its own."""
        other_contact = f.make_contact(company=desk.company)
        request = services.request_chat(contact=other_contact, ticket=f.make_ticket(contact=other_contact))
        other = services.answer_request(engineer=desk.sam, request_id=request.pk)
        message, _ = services.send_message(room_id=other.pk, user=other_contact.user, body="hi")
        assert message.seq == 2

    def test_a_retried_send_returns_the_stored_message(self, desk, room):
        """The same client_msg_id from the same author makes one message; the retry says it is not new."""
        first, created = services.send_message(room_id=room.pk, user=desk.contact.user, body="hi", client_msg_id="c1")
        again, created_again = services.send_message(
            room_id=room.pk, user=desk.contact.user, body="hi", client_msg_id="c1"
        )
        assert created and not created_again
        assert again.pk == first.pk
        assert ChatMessage.objects.filter(room=room, kind="text").count() == 1

    @pytest.mark.postgres
    def test_an_unrelated_integrity_error_is_not_read_as_a_retried_send(self, desk, room, monkeypatch):
        """Only unique_client_msg_id means "sent already"; a refusal by another constraint propagates.

        PostgreSQL names the constraint that refused. SQLite names none, so there the values are
        checked against the constraint, and a clash in the data reads as a retry (deskchat.sql.violates).
        """
        first, _ = services.send_message(room_id=room.pk, user=desk.contact.user, body="hi", client_msg_id="c1")

        def refused_elsewhere(**kwargs):
            with transaction.atomic():
                ChatMessage.objects.create(room=room, seq=first.seq, author=desk.dana.user, body="x")

        monkeypatch.setattr(services, "_store_in_one_statement", refused_elsewhere)
        with pytest.raises(IntegrityError):
            services.send_message(room_id=room.pk, user=desk.contact.user, body="hi", client_msg_id="c1")

    def test_client_msg_ids_are_per_author(self, desk, room):
        """Two people may pick the same client_msg_id; both messages are kept."""
        services.send_message(room_id=room.pk, user=desk.contact.user, body="a", client_msg_id="x")
        services.send_message(room_id=room.pk, user=desk.dana.user, body="b", client_msg_id="x")
        assert ChatMessage.objects.filter(room=room, client_msg_id="x").count() == 2

    def test_the_database_refuses_a_duplicate_client_msg_id(self, desk, room):
        """The unique (room, author, client_msg_id) constraint backs the check."""
        message, _ = services.send_message(room_id=room.pk, user=desk.contact.user, body="a", client_msg_id="x")
        with pytest.raises(IntegrityError), transaction.atomic():
            ChatMessage.objects.create(room=room, seq=99, author=desk.contact.user, body="b", client_msg_id="x")

    def test_messages_without_a_client_msg_id_are_never_merged(self, desk, room):
        """Sends with no client_msg_id are all kept."""
        for _ in range(2):
            services.send_message(room_id=room.pk, user=desk.contact.user, body="same")
        assert bodies(room).count("same") == 2

    @pytest.mark.parametrize("body, code", [("", "empty"), ("   \n ", "empty"), (None, "bad_frame"), (42, "bad_frame")])
    def test_empty_or_non_text_messages_are_refused(self, desk, room, body, code):
        """Nothing is stored for an empty or non-text body."""
        with pytest.raises(ChatError) as refused:
            services.send_message(room_id=room.pk, user=desk.contact.user, body=body)
        assert refused.value.code == code
        assert bodies(room) == ["Dana Reyes joined."]

    def test_messages_over_the_limit_are_refused_with_the_limit_named(self, desk, room, settings):
        """A body over CHAT_MESSAGE_MAX_LENGTH is refused; one at the limit is stored."""
        settings.CHAT_MESSAGE_MAX_LENGTH = 50
        with pytest.raises(ChatError) as refused:
            services.send_message(room_id=room.pk, user=desk.contact.user, body="x" * 51)
        assert refused.value.code == "too_long" and "50" in refused.value.message
        services.send_message(room_id=room.pk, user=desk.contact.user, body="x" * 50)

    def test_only_participants_post(self, desk, room):
        """A stranger's send is refused, and so is one after leaving."""
        with pytest.raises(ChatError) as refused:
            services.send_message(room_id=room.pk, user=desk.sam.user, body="hi")
        assert refused.value.code == "not_participant"
        services.invite_engineer(room_id=room.pk, by=desk.dana, engineer=desk.sam)
        services.join_room(room_id=room.pk, engineer=desk.sam)
        services.leave_room(room_id=room.pk, user=desk.sam.user)
        with pytest.raises(ChatError):
            services.send_message(room_id=room.pk, user=desk.sam.user, body="one more thing")

    def test_greetings_and_farewells_come_from_engineers_only(self, desk, room):
        """An engineer may send a greeting; a contact's greeting is refused; unknown kinds are refused."""
        message, _ = services.send_message(room_id=room.pk, user=desk.dana.user, body="Hi!", kind="greeting")
        assert message.kind == "greeting"
        with pytest.raises(ChatError) as refused:
            services.send_message(room_id=room.pk, user=desk.contact.user, body="Hi!", kind="greeting")
        assert refused.value.code == "not_allowed"
        with pytest.raises(ChatError):
            services.send_message(room_id=room.pk, user=desk.dana.user, body="Hi!", kind="system")

    def test_the_read_position_never_goes_back(self, desk, room):
        """mark_read keeps the furthest position and clips it to the last message."""
        for n in range(3):
            services.send_message(room_id=room.pk, user=desk.dana.user, body=f"m{n}")
        user, role = desk.contact.user, ChatParticipant.Role.CLIENT
        assert services.mark_read(room_id=room.pk, user=user, seq=3, role=role) == 3
        assert services.mark_read(room_id=room.pk, user=user, seq=1, role=role) == 3
        assert services.mark_read(room_id=room.pk, user=user, seq=999, role=role) == 4
        assert ChatParticipant.objects.get(room=room, user=user).last_read_seq == 4

    def test_many_reads_are_two_statements_and_end_where_one_by_one_reads_would(self, desk, room):
        """mark_reads (a process's batch) leaves every position where mark_read, report by report,
        would: furthest kept, clipped to the last message, a stranger's and a wrong role's ignored;
        and it costs one SELECT and one UPDATE however many reports there are."""
        waiting = services.request_chat(contact=desk.colleague, ticket=desk.colleague_ticket)
        other = services.answer_request(engineer=desk.dana, request_id=waiting.pk)
        for n in range(3):
            services.send_message(room_id=room.pk, user=desk.dana.user, body=f"m{n}")
        client, engineer = ChatParticipant.Role.CLIENT, ChatParticipant.Role.ENGINEER
        reports = [
            services.ReadReport(room_id=room.pk, user=desk.contact.user, seq=3, role=client),
            services.ReadReport(room_id=room.pk, user=desk.dana.user, seq=999, role=engineer),  # clipped to 4
            services.ReadReport(room_id=room.pk, user=desk.sam.user, seq=2, role=engineer),  # never in the room
            services.ReadReport(room_id=room.pk, user=desk.contact.user, seq=4, role=engineer),  # not her role
            services.ReadReport(room_id=other.pk, user=desk.colleague.user, seq=1, role=client),
        ]
        with statements_run() as run:
            services.mark_reads(reports=reports)
        assert [sql.split()[0] for sql in run] == ["SELECT", "UPDATE"], run
        stored = dict(ChatParticipant.objects.values_list("pk", "last_read_seq"))
        with transaction.atomic():
            for report in reports:
                try:
                    services.mark_read(room_id=report.room_id, user=report.user, seq=report.seq, role=report.role)
                except ChatError:
                    pass
            expected = dict(ChatParticipant.objects.values_list("pk", "last_read_seq"))
            transaction.set_rollback(True)
        assert stored == expected
        assert ChatParticipant.objects.get(room=room, user=desk.contact.user).last_read_seq == 3
        assert ChatParticipant.objects.get(room=room, user=desk.dana.user).last_read_seq == 4
        # Reports not ahead change nothing, and a later batch never moves a position back.
        with statements_run() as stale:
            services.mark_reads(
                reports=[services.ReadReport(room_id=room.pk, user=desk.contact.user, seq=1, role=client)]
            )
        assert [sql.split()[0] for sql in stale] == ["SELECT"], stale
        assert ChatParticipant.objects.get(room=room, user=desk.contact.user).last_read_seq == 3

    def test_a_read_is_one_statement_and_a_stale_one_writes_nothing(self, desk, room):
        """The common path of mark_read is one UPDATE (no transaction around it); a read that is
        not ahead is that UPDATE changing nothing and one SELECT, and stores nothing."""
        for n in range(3):
            services.send_message(room_id=room.pk, user=desk.dana.user, body=f"m{n}")
        user, role = desk.contact.user, ChatParticipant.Role.CLIENT
        with statements_run() as ahead:
            assert services.mark_read(room_id=room.pk, user=user, seq=3, role=role) == 3
        assert len(ahead) == 1 and ahead[0].startswith("UPDATE"), ahead
        with statements_run() as stale:
            assert services.mark_read(room_id=room.pk, user=user, seq=2, role=role) == 3
        assert [sql.split()[0] for sql in stale] == ["UPDATE", "SELECT"], stale
        assert ChatParticipant.objects.get(room=room, user=user).last_read_seq == 3

    def test_only_a_clients_advance_is_published(self, desk, room, django_capture_on_commit_callbacks, monkeypatch):
        """A client reading further tells the room (for the HUD's "Seen"); a stale read, and an
        engineer's read, are stored (or not) but told to nobody."""
        published = []
        monkeypatch.setattr("deskchat.events.publish", lambda group, event: published.append((group, event)))
        services.send_message(room_id=room.pk, user=desk.dana.user, body="Hello")
        published.clear()
        carol, dana = desk.contact.user, desk.dana.user
        with django_capture_on_commit_callbacks(execute=True):
            services.mark_read(room_id=room.pk, user=carol, seq=2, role=ChatParticipant.Role.CLIENT)
            services.mark_read(room_id=room.pk, user=carol, seq=2, role=ChatParticipant.Role.CLIENT)
            services.mark_read(room_id=room.pk, user=dana, seq=2, role=ChatParticipant.Role.ENGINEER)
        assert published == [
            (f"room.{room.pk}", {"type": "room.read", "room_id": room.pk, "user_id": carol.pk, "seq": 2})
        ]
        assert ChatParticipant.objects.get(room=room, user=dana).last_read_seq == 2

    def test_only_participants_mark_read(self, desk, room):
        """A stranger's read position is refused (a stranger's typing is refused by the socket, which
        knows its rooms: tests/chat/test_consumers.py and tests/security/test_ws_authz.py)."""
        with pytest.raises(ChatError) as refused:
            services.mark_read(room_id=room.pk, user=desk.sam.user, seq=1, role=ChatParticipant.Role.ENGINEER)
        assert refused.value.code == "not_participant"


class TestTemplates:
    def test_placeholders_are_filled_for_the_room(self, desk, room):
        """{client_first_name}, {engineer_name} and {ticket_number} are filled; unknown ones stay."""
        template = MessageTemplate.objects.create(
            kind="greeting",
            name="Hello",
            body="Hi {client_first_name}, {engineer_name} here about ticket #{ticket_number}. {unknown}",
        )
        text = selectors.render_template(template, room=room, engineer=desk.dana)
        assert text == f"Hi Carol, Dana Reyes here about ticket #{desk.ticket.pk}. {{unknown}}"

    def test_an_engineer_sees_their_own_and_the_global_templates(self, desk):
        """templates_for lists the engineer's own templates and global ones, never a colleague's."""
        mine = MessageTemplate.objects.create(kind="greeting", name="Mine", body="x", owner=desk.dana)
        shared = MessageTemplate.objects.create(kind="farewell", name="Bye", body="y")
        MessageTemplate.objects.create(kind="greeting", name="Sam's", body="z", owner=desk.sam)
        assert set(selectors.templates_for(engineer=desk.dana)) == {mine, shared}


class TestAvailability:
    def test_an_engineer_sets_their_availability(self, desk):
        """Available, Busy and Away are accepted; anything else is refused."""
        services.set_availability(engineer=desk.dana, availability="away")
        assert Engineer.objects.get(pk=desk.dana.pk).availability == "away"
        with pytest.raises(ChatError):
            services.set_availability(engineer=desk.dana, availability="offline")
        with pytest.raises(ChatError):
            services.set_availability(engineer=desk.dana, availability="<script>")

    def test_touch_presence_makes_an_engineer_online(self, desk):
        """A HUD socket's refresh marks the engineer online."""
        assert not selectors.is_online(desk.dana)
        services.touch_presence([desk.dana.pk])
        desk.dana.refresh_from_db()
        assert selectors.is_online(desk.dana)


def test_a_read_far_past_any_message_is_clipped_not_a_database_error(desk, room):
    """A made-up seq beyond what the column holds reads as the last message (PostgreSQL raised DataError)."""
    from chat.models import ChatParticipant

    user = desk.contact.user
    last = services.mark_read(room_id=room.pk, user=user, seq=2**40, role=ChatParticipant.Role.CLIENT)
    room.refresh_from_db()
    assert last == room.last_seq
