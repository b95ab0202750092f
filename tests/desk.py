"""The service desk most chat tests start from: one typed `desk` fixture (tests/conftest.py offers it).

Ours Ltd may chat (by company). Its contact Carol Client has a ticket, and so has her colleague
Nina Patel. Dana Reyes and Sam Okafor are the members of the default queue, "Service Desk". Theo
Theirs of Theirs Inc (no chat permission) is another company's contact, with a ticket of his own.
A module that needs more adds it with `add_contact` / `add_engineer`; the browser tests give
everyone a password the server can check (tests/browser/conftest.py).
"""

from dataclasses import dataclass

import pytest

from accounts.models import Company, Contact, Engineer
from chat.models import ChatQueue
from tests import factories
from tickets.models import Ticket

TICKET_SUMMARY = "Outlook keeps asking for my password"


@dataclass(frozen=True)
class Desk:
    company: Company
    queue: ChatQueue
    dana: Engineer
    sam: Engineer
    contact: Contact  # Carol
    ticket: Ticket  # Carol's
    colleague: Contact  # Nina, of the same company
    colleague_ticket: Ticket
    outsider: Contact  # Theo, of another company
    outsider_ticket: Ticket

    @property
    def users(self) -> list:
        """Return everyone's user, engineers first."""
        return [person.user for person in (self.dana, self.sam, self.contact, self.colleague, self.outsider)]

    def add_contact(
        self, first_name: str, last_name: str = "Client", *, summary: str = TICKET_SUMMARY, **kw
    ) -> tuple[Contact, Ticket]:
        """Add a contact (of Ours Ltd unless `company=` says otherwise) and a ticket of theirs."""
        contact = factories.make_contact(
            company=kw.pop("company", self.company), first_name=first_name, last_name=last_name, **kw
        )
        return contact, factories.make_ticket(contact=contact, summary=summary)

    def add_notes(self) -> None:
        """Add two notes to Carol's ticket: a public one of hers and an internal one of Dana's."""
        factories.make_note(ticket=self.ticket, text="It started after this morning's update.")
        factories.make_note(
            ticket=self.ticket, author=self.dana.user, text="Probably the token cache; upsell MFA", internal=True
        )

    def add_engineer(self, display_name: str, **kw) -> Engineer:
        """Add an engineer to the default queue."""
        return factories.make_engineer(display_name=display_name, queues=[self.queue], **kw)


def make_desk() -> Desk:
    """Make the desk, with the same names and logins every time."""
    f = factories
    company = f.make_company(name="Ours Ltd", chat="allow")
    queue = f.make_queue(name="Service Desk", is_default=True)
    contact = f.make_contact(username="carol", first_name="Carol", last_name="Client", company=company)
    colleague = f.make_contact(username="nina", first_name="Nina", last_name="Patel", company=company)
    outsider = f.make_contact(
        username="theo", first_name="Theo", last_name="Theirs", company=f.make_company(name="Theirs Inc")
    )
    return Desk(
        company=company,
        queue=queue,
        dana=f.make_engineer(username="dana", display_name="Dana Reyes", queues=[queue]),
        sam=f.make_engineer(username="sam", display_name="Sam Okafor", queues=[queue]),
        contact=contact,
        ticket=f.make_ticket(contact=contact, summary=TICKET_SUMMARY),
        colleague=colleague,
        colleague_ticket=f.make_ticket(contact=colleague, summary="Scanner prints blank pages"),
        outsider=outsider,
        outsider_ticket=f.make_ticket(contact=outsider, summary="Their mail server is down"),
    )


@pytest.fixture
def desk(db) -> Desk:
    """The desk of this module's docstring, made afresh for each test."""
    return make_desk()
