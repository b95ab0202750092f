"""What one call of the hot paths costs the database thread, measured alone (no sockets, no load).

    python -m bench.costs            # starts its own private PostgreSQL, about 30 seconds
    python -m bench.costs --profile "send_message"   # also: where that call's time goes (cProfile)

A daphne process runs every ORM call of every socket in one thread (Channels'
`database_sync_to_async`), so these per-call times, added up, are what bounds a process: at
8 ms per message a process cannot store more than about 125 messages a second, whatever the
rest of the machine does. Each call is timed as the consumer makes it, with the connection
handed back to the pool between calls (`close_old_connections`, as Channels does), and with
the events it publishes held for the event loop, as `deskchat.events.call_service` holds them
(sending them from this thread would add a thread start per event that the server never pays).
"""

import json
import subprocess
import sys

from bench.infra import ROOT, PrivatePostgres, django_env, run_python

CODE = r'''
import json, statistics, time
import django
django.setup()
from django.db import close_old_connections, connection
from accounts.models import Contact, Engineer
from chat import fragments, screens, selectors, services
from chat.models import ChatParticipant

clients = list(ChatParticipant.objects.filter(role="client").select_related("user")[:10])
contact = Contact.objects.select_related("user", "company").get(user=clients[0].user)
engineer = Engineer.objects.filter(user__username__startswith="k-e").first()
engineer_ids = list(Engineer.objects.values_list("pk", flat=True)[:20])
from django.conf import settings
from tickets.models import Ticket
settings.CHAT_REQUEST_RATE_PER_MINUTE = 0  # the same contact asks 200 times here
waiting = Contact.objects.select_related("user", "company").get(user__username="k-qc0")
waiting_ticket = Ticket.objects.filter(contact=waiting).first()

def request_and_cancel(i):
    request = services.request_chat(contact=waiting, ticket=waiting_ticket)
    services.cancel_request(contact=waiting, request_id=request.pk)

def join_chat_and_cancel(i):
    """What one Join Chat costs: its trip to the database thread (services.join_chat), its drawing, then a cancel."""
    queued = services.join_chat(contact=waiting, ticket_id=waiting_ticket.pk)
    fragments.client_state(fragments.waiting_dialog(waiting, queued))
    services.cancel_request(contact=waiting, request_id=queued.request.pk)

from accounts.roles import who

def who_uncached(i):
    """What a socket's first who() costs: the user object holds no profile yet, as a new socket's."""
    clients[0].user._state.fields_cache.clear()
    return who(clients[0].user)

from deskchat.events import _run_holding_events

def as_served(fn):
    """Run fn as call_service does: events are held for the event loop, not sent from this thread."""
    def run(i):
        result, _events, error = _run_holding_events(fn, (i,), {})
        if error is not None:
            raise error
        return result
    return run

def timed(fn, n=200):
    times = []
    for i in range(n):
        close_old_connections()
        started = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - started)
        close_old_connections()
    times.sort()
    return {"p50_ms": round(statistics.median(times) * 1000, 2), "p95_ms": round(times[int(0.95 * n)] * 1000, 2)}

def queries(fn):
    seen = []
    with connection.execute_wrapper(lambda execute, sql, *rest: seen.append(sql) or execute(sql, *rest)):
        fn(0)
    return len(seen)

calls = {
    "send_message": lambda i: services.send_message(room_id=clients[i % 10].room_id, user=clients[i % 10].user,
                                                    body="cost", client_msg_id=f"cost-{i}-{time.monotonic_ns()}"),
    "request_chat + cancel_request": request_and_cancel,
    "Join Chat trip + cancel_request": join_chat_and_cancel,
    "client_state (fragment)": lambda i: screens.client_dialog(contact),
    "staff_queue (one engineer)": lambda i: selectors.queue_summary(engineer=engineer),
    "queue_snapshot (20 engineers)": lambda i: selectors.queue_snapshot(engineer_ids=engineer_ids),
    "who (a contact)": who_uncached,
    "rooms_for_socket": lambda i: selectors.rooms_for_socket(user=clients[0].user),
    "messages_after (catch-up)": lambda i: selectors.messages_after(room_id=clients[0].room_id, seq=0),
}
calls = {name: as_served(fn) for name, fn in calls.items()}
results = {name: {**timed(fn), "queries": queries(fn)} for name, fn in calls.items()}
import os
if os.environ.get("COSTS_PROFILE"):  # where one call's time goes, by cumulative time
    import cProfile, pstats, sys  # noqa: E401
    fn = calls[os.environ["COSTS_PROFILE"]]
    seen = []
    with connection.execute_wrapper(lambda execute, sql, *rest: seen.append(sql) or execute(sql, *rest)):
        fn(0)
    print("\n".join(f"{n + 1:3}. {sql[:400]}" for n, sql in enumerate(seen)), file=sys.stderr)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(200):
        fn(i)
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
print(json.dumps(results))
'''


def main() -> None:
    profile = sys.argv[sys.argv.index("--profile") + 1] if "--profile" in sys.argv else ""
    pg = PrivatePostgres().launch()
    try:
        pg.create_database("bench_costs")
        env = django_env(database_url=pg.url("bench_costs"))
        run_python("django", "migrate", "--noinput", "-v", "0", env=env)
        run_python(
            "bench.seed",
            json.dumps({"tag": "k", "chats": 10, "per_engineer": 3, "burst_clients": 1, "burst_engineers": 1}),
            env=env,
        )
        run = subprocess.run(
            [sys.executable, "-c", CODE],
            cwd=ROOT,
            env={**env, "COSTS_PROFILE": profile},
            capture_output=True,
            text=True,
            check=True,
        )
        out = run.stdout
        if profile:
            print(run.stderr)
        results = json.loads(out.strip().splitlines()[-1])
        print(f"{'call':28} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
        for name, r in results.items():
            print(f"{name:28} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['queries']:>8}")
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
