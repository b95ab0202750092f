"""Seed a private fault-test database and print what the test needs as JSON (last line of stdout).

Run as a subprocess with DATABASE_URL pointing at the private PostgreSQL cluster, so the test
process's own database settings are never touched:

    python -m tests.faults.seed '{"chats": 50, "waiting": 10, "expiring": [3, 4, 5]}'

- chats: live rooms, each with one contact and one engineer (answered through the services).
- waiting: waiting client requests in the default queue with a long deadline, for answer races.
- expiring: one waiting request per entry, expiring that many seconds from now.
- engineers: extra queue members without rooms (for answer races).

Every user gets a database session; the test sends its key as the `sessionid` cookie.
"""

import json
import os
import sys
from datetime import timedelta


def main(spec: dict) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deskchat.settings")
    django.setup()

    from django.conf import settings

    # Nobody signs in with these passwords (the test sends a session cookie), and the default
    # hasher spends most of a second per user: 100 users took minutes on a busy machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from chat import services
    from chat.models import ChatRequest
    from tests import factories as f

    def session(user) -> str:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        return store.session_key

    company = f.make_company(name="Faults Ltd", chat="allow")
    queue = f.make_queue(name="Service Desk", is_default=True)
    out = {"chats": [], "waiting": [], "expiring": [], "engineers": []}

    for n in range(spec.get("chats", 0)):
        contact = f.make_contact(company=company, first_name=f"Client{n}")
        engineer = f.make_engineer(display_name=f"Eng{n}", queues=[queue])
        ticket = f.make_ticket(contact=contact, summary=f"Chat {n}")
        request = services.request_chat(contact=contact, ticket=ticket)
        room = services.answer_request(engineer=engineer, request_id=request.pk)
        out["chats"].append(
            {
                "room_id": room.pk,
                "client": {"user_id": contact.user_id, "session": session(contact.user)},
                "engineer": {"user_id": engineer.user_id, "session": session(engineer.user)},
            }
        )

    for n in range(spec.get("engineers", 0)):
        engineer = f.make_engineer(display_name=f"Racer{n}", queues=[queue])
        out["engineers"].append(
            {"engineer_id": engineer.pk, "user_id": engineer.user_id, "session": session(engineer.user)}
        )

    now = timezone.now()
    deadlines = [(3600, "waiting")] * spec.get("waiting", 0) + [(s, "expiring") for s in spec.get("expiring", [])]
    for n, (seconds, key) in enumerate(deadlines):
        contact = f.make_contact(company=company, first_name=f"Waiter{n}")
        ticket = f.make_ticket(contact=contact, summary=f"Waiting {n}")
        request = ChatRequest.objects.create(
            kind=ChatRequest.Kind.CLIENT,
            ticket=ticket,
            contact=contact,
            queue=queue,
            expires_at=now + timedelta(seconds=seconds),
        )
        out[key].append(
            {
                "request_id": request.pk,
                "expires_at": request.expires_at.isoformat(),
                "client": {"user_id": contact.user_id, "session": session(contact.user)},
            }
        )
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))))
