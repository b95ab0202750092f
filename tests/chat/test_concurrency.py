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
from chat.models import ChatParticipant, ChatRequest, ChatRoom
from chat.services import ChatError

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
