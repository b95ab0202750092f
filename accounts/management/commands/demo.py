"""Create demo companies, people, tickets, queues and permissions. Safe to run again."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import (
    Access,
    Company,
    CompanyPermission,
    Contact,
    ContactPermission,
    Engineer,
    GlobalFeature,
    GlobalPermissions,
)
from accounts.permissions import CHAT, CREATE_TICKET, resolve_feature
from chat.models import ChatQueue, MessageTemplate
from tickets.models import Board, Ticket, TicketNote

DEMO_PASSWORD = "deskchat-demo"

ENGINEERS = [
    # username, first, last, supervisor
    ("dana", "Dana", "Reyes", False),
    ("sam", "Sam", "Okafor", False),
    ("alex", "Alex", "Morgan", True),
]

COMPANIES = {
    # name: (company chat override, [(username, first, last, contact chat override)])
    "Contoso Dental": (Access.ALLOW, [("carol", "Carol", "Diaz", None), ("ken", "Ken", "Adams", Access.DENY)]),
    "Fabrikam Legal": (Access.DENY, [("fiona", "Fiona", "Lee", Access.ALLOW), ("frank", "Frank", "Moss", None)]),
    "Northwind Freight": (None, [("nina", "Nina", "Patel", None), ("omar", "Omar", "Haddad", None)]),
}

TICKETS = [
    # summary, board, priority, notes [(author username, text, internal)]
    (
        "Outlook keeps asking for my password",
        "Service Desk",
        "high",
        [
            (None, "It started this morning after the Windows update.", False),
            ("dana", "Likely the modern-auth token. Check the credential manager first.", True),
        ],
    ),
    (
        "New starter needs a laptop on Monday",
        "Service Desk",
        "medium",
        [(None, "Her name is Priya, she starts in accounts.", False)],
    ),
    ("VPN drops every ten minutes", "Network", "critical", [("sam", "Firewall logs show IKE rekey failures.", True)]),
    ("Printer on floor 2 prints blank pages", "Service Desk", "low", []),
]


class Command(BaseCommand):
    help = "Load demo data (idempotent) and print the demo logins."

    @transaction.atomic
    def handle(self, *args, **options):
        boards = {name: Board.objects.get_or_create(name=name)[0] for name in ("Service Desk", "Network")}
        self._global_permissions()
        engineers = {username: self._engineer(username, first, last, sup) for username, first, last, sup in ENGINEERS}
        self._superuser()
        self._queues(engineers, boards)
        self._templates()
        for company_name, (company_access, contacts) in COMPANIES.items():
            company, _ = Company.objects.get_or_create(name=company_name)
            if company_access:
                CompanyPermission.objects.update_or_create(
                    company=company, feature=CHAT, defaults={"access": company_access}
                )
            people = [self._contact(company, *person) for person in contacts]
            if not company.tickets.exists():
                self._tickets(company, people, boards, engineers)
        self._print_logins()

    def _global_permissions(self):
        settings = GlobalPermissions.load()
        settings.master_switch = True
        settings.save()
        for feature in (CHAT, CREATE_TICKET):
            GlobalFeature.objects.get_or_create(settings=settings, feature=feature, defaults={"enabled": True})

    def _user(self, username, first, last, **extra):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com", **extra},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        return user

    def _engineer(self, username, first, last, supervisor):
        user = self._user(username, first, last, is_staff=True)
        engineer, _ = Engineer.objects.get_or_create(
            user=user, defaults={"display_name": f"{first} {last}", "is_supervisor": supervisor}
        )
        return engineer

    def _superuser(self):
        user = self._user("admin", "Ada", "Admin", is_staff=True, is_superuser=True)
        Engineer.objects.get_or_create(
            user=user,
            defaults={"display_name": "Ada Admin", "is_supervisor": True, "availability": Engineer.Availability.AWAY},
        )

    def _contact(self, company, username, first, last, chat_access):
        user = self._user(username, first, last)
        contact, _ = Contact.objects.get_or_create(user=user, defaults={"company": company, "phone": "+1 555 0100"})
        if chat_access:
            ContactPermission.objects.update_or_create(contact=contact, feature=CHAT, defaults={"access": chat_access})
        return contact

    def _queues(self, engineers, boards):
        desk, _ = ChatQueue.objects.get_or_create(name="Service Desk", defaults={"is_default": True, "order": 100})
        desk.members.add(*engineers.values())
        network, created = ChatQueue.objects.get_or_create(name="Network Team", defaults={"order": 10})
        if created:
            network.boards.add(boards["Network"])
        network.members.add(engineers["sam"], engineers["alex"])

    def _templates(self):
        MessageTemplate.objects.get_or_create(
            kind=MessageTemplate.Kind.GREETING,
            name="Standard greeting",
            owner=None,
            defaults={
                "body": "Hi {client_first_name}, this is {engineer_name} from the service desk. "
                "I'm looking at ticket #{ticket_number} with you now."
            },
        )
        MessageTemplate.objects.get_or_create(
            kind=MessageTemplate.Kind.FAREWELL,
            name="Standard farewell",
            owner=None,
            defaults={
                "body": "Thanks {client_first_name}! I'll note what we did on ticket #{ticket_number}. Have a good day."
            },
        )

    def _tickets(self, company, people, boards, engineers):
        for index, (summary, board, priority, notes) in enumerate(TICKETS):
            contact = people[index % len(people)]
            ticket = Ticket.objects.create(
                company=company,
                contact=contact,
                summary=summary,
                priority=priority,
                board=boards[board],
                description=f"Reported by {contact.name}.",
                assigned_engineer=engineers["dana"] if index == 0 else None,
                status=Ticket.Status.IN_PROGRESS if notes else Ticket.Status.NEW,
            )
            for author, text, internal in notes:
                user = engineers[author].user if author else contact.user
                TicketNote.objects.create(ticket=ticket, author=user, text=text, internal=internal)

    def _print_logins(self):
        out = self.stdout
        out.write(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
        out.write("  Administrator: admin (Django admin at /admin/)")
        for username, first, last, supervisor in ENGINEERS:
            out.write(f"  Engineer:      {username:6} {first} {last}{' (supervisor)' if supervisor else ''}")
        for contact in Contact.objects.select_related("user", "company").order_by("company__name", "user__username"):
            chat = resolve_feature(contact, CHAT)
            out.write(
                f"  Client:        {contact.user.username:6} {contact.name}, {contact.company.name}: chat {chat.label.lower()}"
            )
        out.write("")
