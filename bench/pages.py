"""Scenario 5: server time and query count of the heavy pages, at a small and at a large data size.

Runs in its own process with DATABASE_URL pointing at the benchmark's own PostgreSQL database
(run.py creates it from a migrated template), and prints one JSON line:

    python -m bench.pages '{"sizes": [[100, 2000], [10000, 200000]], "requests": 40}'

Pages are requested in-process with Django's test Client, so the time is the server's alone:
middleware, views, queries and templates, no network and no browser. Queries are counted with
an execute wrapper on the connection. The *live* state (waiting requests, the engineer's open and recent
sessions, the viewed ticket's chats) is the same at both sizes; only history grows, so a
query count that differs between the sizes is a query per row somewhere.
"""

import json
import os
import statistics
import sys
import time
from datetime import timedelta

COMPANIES = 10
VIEWED_TICKET_ROOMS = 6  # chats on the ticket whose detail page is measured
VIEWED_ROOM_MESSAGES = 40


def main(spec: dict) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deskchat.settings")
    django.setup()

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Company, CompanyPermission, Contact, Engineer
    from accounts.permissions import CHAT
    from chat import services
    from chat.models import ChatMessage, ChatParticipant, ChatQueue, ChatRequest, ChatRoom
    from tickets.models import Ticket

    User = get_user_model()
    unusable = make_password(None)
    now = timezone.now()

    def user(name, staff=False):
        return User.objects.create(
            username=name,
            first_name=name.title(),
            last_name="Bench",
            password=unusable,
            is_staff=staff,
            email=f"{name}@bench.invalid",
        )

    # --- The live state, identical at every size -------------------------------------------
    with transaction.atomic():
        companies = [Company.objects.create(name=f"Pages Co {n}") for n in range(COMPANIES)]
        for company in companies:
            CompanyPermission.objects.create(company=company, feature=CHAT, access="allow")
        contacts = [Contact.objects.create(user=user(f"pc{n}"), company=companies[n % COMPANIES]) for n in range(40)]
        queue = ChatQueue.objects.create(name="Pages Desk", is_default=True)
        supervisor = Engineer.objects.create(
            user=user("psup", staff=True),
            display_name="Sue Pervisor",
            is_supervisor=True,
            max_concurrent_chats=10,
            last_seen_at=now,
        )
        colleagues = [
            Engineer.objects.create(user=user(f"peng{n}", staff=True), display_name=f"Eng {n}", last_seen_at=now)
            for n in range(8)
        ]
        queue.members.add(supervisor, *colleagues)
        viewer = contacts[0]
    viewed = Ticket.objects.create(company=viewer.company, contact=viewer, summary="The ticket we look at")
    for n in range(VIEWED_TICKET_ROOMS):  # past chats on the viewed ticket, through the services
        request = services.request_chat(contact=viewer, ticket=viewed)
        room = services.answer_request(engineer=supervisor, request_id=request.pk)
        for m in range(VIEWED_ROOM_MESSAGES):
            services.send_message(
                room_id=room.pk,
                user=viewer.user if m % 2 else supervisor.user,
                body=f"history {n}.{m}",
                client_msg_id=f"h{n}-{m}",
            )
        services.end_room(room_id=room.pk, engineer=supervisor)
    for contact in contacts[1:4]:  # two open sessions and one just left, on the HUD
        ticket = Ticket.objects.create(company=contact.company, contact=contact, summary="Live chat")
        request = services.request_chat(contact=contact, ticket=ticket)
        room = services.answer_request(engineer=supervisor, request_id=request.pk)
        services.send_message(room_id=room.pk, user=contact.user, body="hello", client_msg_id="live")
        if contact == contacts[3]:
            services.leave_room(room_id=room.pk, user=supervisor.user)
    for contact in contacts[4:9]:  # five waiting in the queue
        ticket = Ticket.objects.create(company=contact.company, contact=contact, summary="Waiting")
        services.request_chat(contact=contact, ticket=ticket)

    client_browser, staff_browser = Client(), Client()
    client_browser.force_login(viewer.user)
    staff_browser.force_login(supervisor.user)
    pages = {
        "ticket list": (client_browser, "/tickets/"),
        "ticket detail + chat history": (client_browser, f"/tickets/{viewed.pk}/?tab=history"),
        "HUD": (staff_browser, "/hud/"),
        "supervisor": (staff_browser, "/hud/supervisor/"),
    }

    def grow(total_tickets: int, total_messages: int) -> None:
        """Add closed tickets with ended chats until the database holds the given totals."""
        have_tickets = Ticket.objects.count()
        add = max(0, total_tickets - have_tickets)
        if add:
            with transaction.atomic():
                tickets = Ticket.objects.bulk_create(
                    [
                        Ticket(
                            company=contacts[n % len(contacts)].company,
                            contact=contacts[n % len(contacts)],
                            summary=f"Old ticket {n}",
                            status=Ticket.Status.CLOSED,
                        )
                        for n in range(add)
                    ],
                    batch_size=2000,
                )
                # Half the new tickets had a chat, long ago.
                chatted = tickets[::2]
                requests = ChatRequest.objects.bulk_create(
                    [
                        ChatRequest(
                            kind=ChatRequest.Kind.CLIENT,
                            state=ChatRequest.State.ANSWERED,
                            ticket=t,
                            contact=t.contact,
                            queue=queue,
                            answered_by=supervisor,
                            answered_at=now,
                            expires_at=now,
                            ended_at=now,
                        )
                        for t in chatted
                    ],
                    batch_size=2000,
                )
                rooms = ChatRoom.objects.bulk_create(
                    [
                        ChatRoom(ticket=t, request=r, state=ChatRoom.State.ENDED, ended_at=now)
                        for t, r in zip(chatted, requests)
                    ],
                    batch_size=2000,
                )
                ChatParticipant.objects.bulk_create(
                    [
                        p
                        for t, room in zip(chatted, rooms)
                        for p in (
                            ChatParticipant(
                                room=room,
                                user_id=t.contact.user_id,
                                role=ChatParticipant.Role.CLIENT,
                                display_name="Client",
                                left_at=now,
                            ),
                            ChatParticipant(
                                room=room,
                                user=supervisor.user,
                                role=ChatParticipant.Role.ENGINEER,
                                display_name=supervisor.display_name,
                                left_at=now,
                            ),
                        )
                    ],
                    batch_size=4000,
                )
                room_ids = [r.pk for r in rooms]
                with connection.cursor() as cursor:
                    # Old: outside every "recent" window of the HUD and the supervisor's "today".
                    cursor.execute(
                        "UPDATE tickets_ticket SET created = now() - interval '60 days' * random() - "
                        "interval '2 days' WHERE id = ANY(%s)",
                        [[t.pk for t in tickets]],
                    )
                    cursor.execute(
                        "UPDATE chat_chatroom SET started_at = now() - interval '60 days' * random() - "
                        "interval '2 days' WHERE id = ANY(%s)",
                        [room_ids],
                    )
                    cursor.execute(
                        "UPDATE chat_chatroom SET ended_at = started_at + interval '10 minutes' WHERE id = ANY(%s)",
                        [room_ids],
                    )
                    cursor.execute(
                        "UPDATE chat_chatrequest SET requested_at = r.started_at, answered_at = r.started_at,"
                        " ended_at = r.ended_at, expires_at = r.started_at FROM chat_chatroom r "
                        "WHERE r.request_id = chat_chatrequest.id AND r.id = ANY(%s)",
                        [room_ids],
                    )
                    cursor.execute(
                        "UPDATE chat_chatparticipant p SET left_at = r.ended_at, joined_at = r.started_at "
                        "FROM chat_chatroom r WHERE r.id = p.room_id AND r.id = ANY(%s)",
                        [room_ids],
                    )
        have_messages = ChatMessage.objects.count()
        add_messages = max(0, total_messages - have_messages)
        if add_messages:
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM chat_chatroom WHERE last_seq = 0 AND state = 'ended' ORDER BY id")
                room_ids = [row[0] for row in cursor.fetchall()]
                per_room = -(-add_messages // max(1, len(room_ids)))
                cursor.execute(
                    "INSERT INTO chat_chatmessage (room_id, seq, author_id, author_name, kind, body, client_msg_id, created) "
                    "SELECT r.id, s.n, CASE WHEN s.n %% 2 = 0 THEN %s ELSE c.user_id END, "
                    "CASE WHEN s.n %% 2 = 0 THEN 'Sue Pervisor' ELSE 'Client' END, 'text', "
                    "'Old message number ' || s.n || ' about the printer that is still on fire', "
                    "'old-' || s.n, r.started_at + s.n * interval '5 seconds' "
                    "FROM chat_chatroom r JOIN chat_chatrequest q ON q.id = r.request_id "
                    "JOIN accounts_contact c ON c.id = q.contact_id, generate_series(1, %s) AS s(n) "
                    "WHERE r.id = ANY(%s)",
                    [supervisor.user_id, per_room, room_ids],
                )
                cursor.execute("UPDATE chat_chatroom r SET last_seq = %s WHERE r.id = ANY(%s)", [per_room, room_ids])
                cursor.execute("ANALYZE")

    def measure(n: int) -> dict:
        # Keep the live state live however long the seeding took: the engineer has a HUD open
        # (presence is refreshed every 15 s by a socket) and the waiting requests have not expired.
        Engineer.objects.update(last_seen_at=timezone.now())
        ChatRequest.objects.filter(state=ChatRequest.State.WAITING).update(
            expires_at=timezone.now() + timedelta(hours=1)
        )
        out = {}
        for name, (browser, url) in pages.items():
            for _ in range(3):  # warm-up: templates compiled, connections in the pool
                assert browser.get(url).status_code == 200, (name, url)
            queries = []
            # An execute wrapper, not CaptureQueriesContext: the request_started signal empties
            # the debug query log at the start of every request.
            with connection.execute_wrapper(lambda execute, sql, *rest: queries.append(sql) or execute(sql, *rest)):
                response = browser.get(url)
            assert response.status_code == 200
            times = []
            for _ in range(n):
                started = time.perf_counter()
                browser.get(url)
                times.append(time.perf_counter() - started)
            times.sort()
            out[name] = {
                "queries": len(queries),
                "bytes": len(response.content),
                "p50_ms": round(statistics.median(times) * 1000, 2),
                "p95_ms": round(times[max(0, int(round(0.95 * len(times))) - 1)] * 1000, 2),
            }
        return out

    def profile(directory: str, n: int = 20) -> None:
        """Write where each page's time goes (cProfile, by cumulative time) to <directory>/<page>.txt."""
        import cProfile
        import io
        import pstats

        os.makedirs(directory, exist_ok=True)
        for name, (browser, url) in pages.items():
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(n):
                browser.get(url)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
            with open(os.path.join(directory, name.replace(" ", "-").replace("+", "and") + ".txt"), "w") as file:
                file.write(f"{n} requests of {url}\n{out.getvalue()}")

    result = {"sizes": []}
    for tickets, messages in spec["sizes"]:
        started = time.perf_counter()
        grow(tickets, messages)
        seeded_s = time.perf_counter() - started
        result["sizes"].append(
            {
                "tickets": Ticket.objects.count(),
                "messages": ChatMessage.objects.count(),
                "seed_s": round(seeded_s, 1),
                "pages": measure(spec.get("requests", 40)),
            }
        )
        if spec.get("profile_dir"):
            profile(os.path.join(spec["profile_dir"], f"{tickets}-tickets"))
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))))
