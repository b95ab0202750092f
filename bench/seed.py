"""Seed benchmark users, rooms and sessions; print what the load generator needs as JSON.

Run in a subprocess whose DATABASE_URL (or SQLITE_PATH) points at the benchmark's own database:

    python -m bench.seed '{"tag": "s1", "chats": 200, "per_engineer": 3}'
    python -m bench.seed '{"tag": "q", "burst_clients": 100, "burst_engineers": 20}'
    python -m bench.seed '{"tag": "i", "idle_portal": 4500, "idle_hud": 500}'

Logins: sessions are written straight into django_session, not made through the login form.
Thousands of form logins would each cost a PBKDF2 hash (a million iterations) and measure the
password hasher, not chat; the session a socket presents is the same either way. Users get an
unusable password for the same reason. Rows are bulk-inserted; rooms start as answered requests
with both participants present, as `answer_request` would leave them.
"""

import json
import os
import sys
from datetime import timedelta


def main(spec: dict) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deskchat.settings")
    django.setup()

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from accounts.models import Company, CompanyPermission, Contact, Engineer
    from accounts.permissions import CHAT
    from chat.models import ChatParticipant, ChatQueue, ChatRequest, ChatRoom
    from tickets.models import Ticket

    User = get_user_model()
    tag = spec.get("tag", "b")
    unusable = make_password(None)
    now = timezone.now()
    store = SessionStore()

    def users(prefix: str, count: int, *, staff: bool = False) -> list:
        return User.objects.bulk_create(
            [
                User(
                    username=f"{tag}-{prefix}{n}",
                    first_name=prefix.title(),
                    last_name=str(n),
                    email=f"{tag}-{prefix}{n}@bench.invalid",
                    password=unusable,
                    is_staff=staff,
                )
                for n in range(count)
            ],
            batch_size=1000,
        )

    def sessions(user_list: list) -> list[str]:
        rows, keys = [], []
        for user in user_list:
            key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
            data = {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
            rows.append(Session(session_key=key, session_data=store.encode(data), expire_date=now + timedelta(days=1)))
            keys.append(key)
        Session.objects.bulk_create(rows, batch_size=1000)
        return keys

    def contacts(prefix: str, count: int, company) -> list:
        made = users(prefix, count)
        return Contact.objects.bulk_create([Contact(user=u, company=company) for u in made], batch_size=1000), made

    def engineers(prefix: str, count: int, *, limit: int, queue=None) -> tuple[list, list]:
        made = users(prefix, count, staff=True)
        engs = Engineer.objects.bulk_create(
            [
                Engineer(
                    user=u,
                    display_name=f"{prefix.title()} {n}",
                    availability=Engineer.Availability.AVAILABLE,
                    max_concurrent_chats=limit,
                    last_seen_at=now,
                )
                for n, u in enumerate(made)
            ],
            batch_size=1000,
        )
        if queue is not None:
            queue.members.add(*engs)
        return engs, made

    out: dict = {}
    with transaction.atomic():
        company, created = Company.objects.get_or_create(name="Bench Ltd")
        if created:
            CompanyPermission.objects.create(company=company, feature=CHAT, access="allow")
        queue = ChatQueue.objects.filter(is_default=True).first() or ChatQueue.objects.create(
            name="Service Desk", is_default=True
        )

        if spec.get("chats"):
            n_chats, per = spec["chats"], spec.get("per_engineer", 3)
            n_engineers = -(-n_chats // per)
            contact_list, contact_users = contacts("c", n_chats, company)
            # Engineers are kept out of the queue: this scenario measures chat, not queue alerts.
            engineer_list, engineer_users = engineers("e", n_engineers, limit=per)
            tickets = Ticket.objects.bulk_create(
                [Ticket(company=company, contact=c, summary=f"Bench chat {n}") for n, c in enumerate(contact_list)],
                batch_size=1000,
            )
            requests = ChatRequest.objects.bulk_create(
                [
                    ChatRequest(
                        kind=ChatRequest.Kind.CLIENT,
                        state=ChatRequest.State.ANSWERED,
                        ticket=t,
                        contact=c,
                        queue=queue,
                        answered_by=engineer_list[n // per],
                        answered_at=now,
                        expires_at=now + timedelta(minutes=5),
                    )
                    for n, (t, c) in enumerate(zip(tickets, contact_list))
                ],
                batch_size=1000,
            )
            rooms = ChatRoom.objects.bulk_create(
                [ChatRoom(ticket=t, request=r) for t, r in zip(tickets, requests)], batch_size=1000
            )
            participants = []
            for n, room in enumerate(rooms):
                participants.append(
                    ChatParticipant(
                        room=room, user=contact_users[n], role=ChatParticipant.Role.CLIENT, display_name=f"Client {n}"
                    )
                )
                participants.append(
                    ChatParticipant(
                        room=room,
                        user=engineer_users[n // per],
                        role=ChatParticipant.Role.ENGINEER,
                        display_name=engineer_list[n // per].display_name,
                    )
                )
            ChatParticipant.objects.bulk_create(participants, batch_size=2000)
            client_keys, engineer_keys = sessions(contact_users), sessions(engineer_users)
            out["clients"] = [{"session": k, "rooms": [rooms[n].pk]} for n, k in enumerate(client_keys)]
            out["engineers"] = [
                {"session": k, "rooms": [r.pk for r in rooms[e * per : (e + 1) * per]]}
                for e, k in enumerate(engineer_keys)
            ]

        if spec.get("burst_clients"):
            contact_list, contact_users = contacts("qc", spec["burst_clients"], company)
            tickets = Ticket.objects.bulk_create(
                [Ticket(company=company, contact=c, summary=f"Bench burst {n}") for n, c in enumerate(contact_list)],
                batch_size=1000,
            )
            _, engineer_users = engineers("qe", spec.get("burst_engineers", 20), limit=1000, queue=queue)
            out["burst_clients"] = [{"session": k, "ticket_id": t.pk} for k, t in zip(sessions(contact_users), tickets)]
            out["burst_engineers"] = [{"session": k} for k in sessions(engineer_users)]

        if spec.get("idle_portal") or spec.get("idle_hud"):
            _, portal_users = contacts("ic", spec.get("idle_portal", 0), company)
            _, hud_users = engineers("ie", spec.get("idle_hud", 0), limit=3)
            out["idle_portal"] = sessions(portal_users)
            out["idle_hud"] = sessions(hud_users)
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))))
