"""Exactly one winner, with real concurrency on PostgreSQL.

Each worker is a thread with its own database connection (Django gives every thread its own),
released together by a barrier, so the conditional UPDATEs in chat/services.py really race.
The service tests in test_services.py run inside one rolled-back transaction and cannot show this.
"""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from chat import services
from chat.errors import ChatError
from chat.models import ChatMessage, ChatParticipant, ChatRequest, ChatRoom

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 20


def race(count: int, work) -> list:
    """Run work(i) in `count` threads that start together; return each result or exception."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as error:  # noqa: BLE001 - the test judges every outcome
            results[i] = error
        finally:
            connection.close()  # give the connection back to the pool

    # The test's own connection goes back first, so every worker can get one from the pool at once.
    connection.close()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    close_old_connections()
    return results


@pytest.fixture
def waiting(f):
    """A waiting request in a queue of 20 engineers."""
    company = f.make_company(chat="allow")
    contact = f.make_contact(company=company)
    ticket = f.make_ticket(contact=contact)
    queue = f.make_queue(name="Service Desk", is_default=True)
    engineers = [f.make_engineer(display_name=f"Engineer {n}", queues=[queue]) for n in range(WORKERS)]
    request = services.request_chat(contact=contact, ticket=ticket)
    return {"request": request, "engineers": engineers, "contact": contact}


@pytest.fixture
def events(monkeypatch):
    """Record every event published after commit, from any thread."""
    published: list[tuple[str, dict]] = []
    lock = threading.Lock()

    def record(group, event):
        with lock:
            published.append((group, event))

    monkeypatch.setattr("deskchat.events.publish", record)
    return published


def test_twenty_parallel_answers_give_one_room_and_nineteen_taken_refusals(waiting, events):
    """20 engineers answer one request at the same moment: one gets the room, 19 are told it was taken."""
    request_id = waiting["request"].pk
    engineers = waiting["engineers"]

    results = race(WORKERS, lambda i: services.answer_request(engineer=engineers[i], request_id=request_id))

    rooms = [r for r in results if isinstance(r, ChatRoom)]
    refusals = [r for r in results if isinstance(r, ChatError)]
    assert len(rooms) == 1, results
    assert [r.code for r in refusals] == ["taken"] * (WORKERS - 1), results
    assert all(r.message == "A colleague already answered this chat." for r in refusals)
    assert ChatRoom.objects.filter(request_id=request_id).count() == 1
    request = ChatRequest.objects.get(pk=request_id)
    winner = engineers[results.index(rooms[0])]
    assert request.state == ChatRequest.State.ANSWERED and request.answered_by_id == winner.pk
    # Only the winner is in the room (with the client), and only the winner was told a room opened.
    in_room = set(ChatParticipant.objects.filter(room=rooms[0]).values_list("user_id", flat=True))
    assert in_room == {waiting["contact"].user_id, winner.user_id}
    opened = [group for group, event in events if event["type"] == "room.opened"]
    assert opened == [f"user.{winner.user_id}"]


def test_a_request_swept_by_concurrent_sweepers_expires_exactly_once(waiting, events):
    """Several processes sweeping the same due request at once: one expires it, and its queue hears once."""
    request = waiting["request"]
    ChatRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    events.clear()

    results = race(8, lambda i: services.expire_due_requests())

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Counter(request_id for expired in results for request_id in expired) == {request.pk: 1}
    request.refresh_from_db()
    assert request.state == ChatRequest.State.EXPIRED and request.ended_at is not None
    told = [group for group, event in events if event["type"] == "request.changed"]
    assert told == [f"user.{waiting['contact'].user_id}"]


def test_an_answer_racing_the_expiry_has_one_outcome(waiting, events):
    """Answers and sweeps at the deadline: the request ends in exactly one state, with at most one room."""
    request = waiting["request"]
    engineers = waiting["engineers"]
    # The deadline falls while the answers arrive, staggered around it.
    ChatRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() + timedelta(milliseconds=200))

    def work(i: int):
        if i % 2:
            time.sleep(i * 0.02)
            return services.answer_request(engineer=engineers[i], request_id=request.pk)
        while True:  # a sweeper: keep sweeping until the request falls due
            if services.expire_due_requests() or ChatRequest.objects.get(pk=request.pk).state != "waiting":
                return "swept"

    results = race(10, work)

    request.refresh_from_db()
    rooms = [r for r in results if isinstance(r, ChatRoom)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, ChatError) and e.code in ("taken", "not_waiting") for e in errors), errors
    if request.state == ChatRequest.State.ANSWERED:
        assert len(rooms) == 1
    else:
        assert request.state == ChatRequest.State.EXPIRED and rooms == []
    assert ChatRoom.objects.filter(request_id=request.pk).count() == len(rooms)
    assert len([e for g, e in events if e["type"] == "request.changed"]) == 1


@pytest.fixture
def chat(waiting):
    """An active room: the waiting request answered by the first engineer."""
    room = services.answer_request(engineer=waiting["engineers"][0], request_id=waiting["request"].pk)
    return {"room": room, "contact": waiting["contact"], "engineer": waiting["engineers"][0]}


def test_a_message_is_one_statement_and_one_commit(chat, events):
    """Outside a transaction, a message costs one round trip: the chat_send_message call, committed alone.

    Every ORM call of a daphne process shares one thread, so each round trip of the hottest write
    holds up every socket of the process (docs/benchmarks.md).
    """
    from django.test.utils import CaptureQueriesContext

    user = chat["contact"].user
    with CaptureQueriesContext(connection) as queries:
        message, created = services.send_message(room_id=chat["room"].pk, user=user, body="Hello", client_msg_id="m1")
    assert [q["sql"].split("(")[0] for q in queries.captured_queries] == ["SELECT * FROM chat_send_message"]
    assert created and message.author_name == ChatParticipant.objects.get(room=chat["room"], user=user).display_name
    assert events[-1][1]["message"]["seq"] == message.seq
    stored = ChatMessage.objects.get(pk=message.pk)
    assert (stored.seq, stored.body, stored.author_id, stored.created) == (
        message.seq,
        "Hello",
        user.pk,
        message.created,
    )


def test_a_refused_message_gives_its_sequence_number_back(f, chat, events):
    """A send by someone not in the room, and a retried one, take no seq: the next message follows on."""
    room, user = chat["room"], chat["contact"].user
    first, _ = services.send_message(room_id=room.pk, user=user, body="one", client_msg_id="a")
    with pytest.raises(ChatError) as refused:
        services.send_message(room_id=room.pk, user=f.make_contact().user, body="intruder", client_msg_id="x")
    assert refused.value.code == "not_participant"
    again, created = services.send_message(room_id=room.pk, user=user, body="one", client_msg_id="a")
    assert (again.pk, created) == (first.pk, False)
    second, _ = services.send_message(room_id=room.pk, user=user, body="two", client_msg_id="b")
    assert second.seq == first.seq + 1
    room.refresh_from_db()
    assert room.last_seq == second.seq


def test_a_message_racing_its_authors_leave_is_refused_once_the_leave_commits(chat, events):
    """A send that waits for the room's lock while its author leaves sees the leave, not the old presence.

    The send's statement starts while the leave holds the room's row lock; once the leave commits,
    the author is no longer in the room, so the message is refused and no seq is lost.
    """
    from django.db import transaction

    room, engineer = chat["room"], chat["engineer"]
    left = threading.Event()
    outcome: dict = {}

    def leave():
        try:
            with transaction.atomic():
                services.leave_room(room_id=room.pk, user=engineer.user)
                left.set()
                time.sleep(0.5)  # hold the room's lock while the send below waits for it
        finally:
            connection.close()

    def send():
        left.wait(10)
        try:
            services.send_message(room_id=room.pk, user=engineer.user, body="late", client_msg_id="late")
        except ChatError as error:
            outcome["error"] = error.code
        finally:
            connection.close()

    connection.close()
    threads = [threading.Thread(target=leave), threading.Thread(target=send)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    close_old_connections()
    assert outcome == {"error": "not_participant"}
    seqs = list(ChatMessage.objects.filter(room=room).order_by("seq").values_list("seq", "body"))
    assert [s for s, _ in seqs] == list(range(1, len(seqs) + 1))
    assert seqs[-1][1] == f"{engineer.display_name} left."
