"""Ticket reads: every one answers "may this user see it?" before it answers anything else."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils import timezone

from tickets import selectors
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_companies(f):
    """Two companies with a contact and a ticket each."""
    ours = f.make_contact(first_name="Olive")
    theirs = f.make_contact(first_name="Theo")
    return {
        "contact": ours,
        "ticket": f.make_ticket(contact=ours, summary="Our printer"),
        "other_contact": theirs,
        "other_ticket": f.make_ticket(contact=theirs, summary="Their server"),
    }


def test_a_contact_sees_only_their_company_tickets(f, two_companies):
    """A contact sees every ticket of their company, including colleagues', and none of others'."""
    colleague = f.make_contact(company=two_companies["contact"].company)
    colleagues_ticket = f.make_ticket(contact=colleague, summary="Colleague's laptop")

    visible = set(selectors.visible_tickets(user=two_companies["contact"].user))

    assert visible == {two_companies["ticket"], colleagues_ticket}


def test_an_engineer_sees_every_ticket(f, two_companies):
    """Engineers work on every company's tickets."""
    engineer = f.make_engineer()

    visible = set(selectors.visible_tickets(user=engineer.user))

    assert visible == {two_companies["ticket"], two_companies["other_ticket"]}


def test_a_user_who_is_neither_contact_nor_engineer_sees_nothing(f, two_companies):
    """A bare account, or an anonymous visitor, sees no tickets at all."""
    assert list(selectors.visible_tickets(user=f.make_user())) == []
    assert list(selectors.visible_tickets(user=AnonymousUser())) == []


def test_get_ticket_for_user_returns_a_visible_ticket(two_companies):
    """A contact gets their own company's ticket."""
    ticket = selectors.get_ticket_for_user(user=two_companies["contact"].user, ticket_id=two_companies["ticket"].pk)

    assert ticket == two_companies["ticket"]


def test_get_ticket_for_user_hides_another_company_ticket_as_404(two_companies):
    """Another company's ticket answers 404, exactly like a missing one, so nothing leaks."""
    with pytest.raises(Http404):
        selectors.get_ticket_for_user(user=two_companies["contact"].user, ticket_id=two_companies["other_ticket"].pk)
    with pytest.raises(Http404):
        selectors.get_ticket_for_user(user=two_companies["contact"].user, ticket_id=999_999)


@pytest.mark.parametrize("ticket_id", ["abc", None, 2**80], ids=["text", "none", "huge"])
def test_get_ticket_for_user_answers_404_for_malformed_ids(f, ticket_id):
    """Ids that are not usable numbers are simply not found."""
    engineer = f.make_engineer()

    with pytest.raises(Http404):
        selectors.get_ticket_for_user(user=engineer.user, ticket_id=ticket_id)


def test_list_notes_hides_internal_notes_from_contacts(f, two_companies):
    """Clients read public notes only; engineers read every note, internal ones included."""
    ticket = two_companies["ticket"]
    public = f.make_note(ticket=ticket, text="Public")
    internal = f.make_note(ticket=ticket, author=f.make_engineer().user, text="Secret", internal=True)

    assert list(selectors.list_notes_for_user(user=two_companies["contact"].user, ticket=ticket)) == [public]
    engineer = f.make_engineer()
    assert list(selectors.list_notes_for_user(user=engineer.user, ticket=ticket)) == [public, internal]


def test_note_count_counts_only_notes_the_user_may_read(f, two_companies):
    """The list's note count does not give away how many internal notes a ticket has."""
    ticket = two_companies["ticket"]
    f.make_note(ticket=ticket, text="Public")
    f.make_note(ticket=ticket, author=f.make_engineer().user, text="Secret", internal=True)
    f.make_note(ticket=ticket, author=f.make_engineer().user, text="Also secret", internal=True)

    [as_contact] = selectors.list_tickets_for_user(user=two_companies["contact"].user)
    as_engineer = selectors.list_tickets_for_user(user=f.make_engineer().user).get(pk=ticket.pk)

    assert as_contact.note_count == 1
    assert as_engineer.note_count == 3


def test_search_matches_summary_number_and_company(f):
    """The search box finds tickets by summary words, by number with or without #, and by company."""
    engineer = f.make_engineer()
    printer = f.make_ticket(company=f.make_company(name="Acme Widgets"), summary="Printer jams")
    vpn = f.make_ticket(company=f.make_company(name="Globex"), summary="VPN drops")

    def search(query):
        return set(selectors.list_tickets_for_user(user=engineer.user, query=query))

    assert search("printer") == {printer}
    assert search("GLOBEX") == {vpn}
    assert search(str(vpn.pk)) == {vpn}
    assert search(f"#{printer.pk}") == {printer}
    assert search("nothing like this") == set()


def test_search_by_number_never_reaches_another_company(two_companies):
    """Typing another company's ticket number into a contact's search finds nothing."""
    found = selectors.list_tickets_for_user(
        user=two_companies["contact"].user, query=f"#{two_companies['other_ticket'].pk}"
    )

    assert list(found) == []


def test_status_filter_separates_open_and_finished_tickets(f):
    """ "open" means neither resolved nor closed; a status value filters on exactly that status."""
    engineer = f.make_engineer()
    new = f.make_ticket(status=Ticket.Status.NEW)
    waiting = f.make_ticket(status=Ticket.Status.WAITING_CLIENT)
    resolved = f.make_ticket(status=Ticket.Status.RESOLVED)
    closed = f.make_ticket(status=Ticket.Status.CLOSED)

    def filtered(status):
        return set(selectors.list_tickets_for_user(user=engineer.user, status=status))

    assert filtered("open") == {new, waiting}
    assert filtered("resolved") == {resolved}
    assert filtered("closed") == {closed}
    assert filtered("") == {new, waiting, resolved, closed}
    assert filtered("bogus") == {new, waiting, resolved, closed}


def test_list_query_count_stays_flat_as_tickets_grow(f, django_assert_num_queries):
    """The list fetches companies, contacts and boards with the tickets: one query for any number."""
    engineer = f.make_engineer()
    board = f.make_board()
    for _ in range(5):
        f.make_ticket(board=board, assigned_engineer=engineer)

    with django_assert_num_queries(1):
        rows = [
            (t.company.name, t.contact.name, t.board.name, t.assigned_engineer.display_name, t.note_count)
            for t in selectors.list_tickets_for_user(user=engineer.user)
        ]

    assert len(rows) == 5


def test_list_shows_newest_tickets_first(f):
    """The list is ordered newest first even though its note count makes it a GROUP BY query."""
    engineer = f.make_engineer()
    now = timezone.now()
    tickets = [f.make_ticket(summary=f"Ticket {n}") for n in range(3)]
    for age, ticket in enumerate(tickets):
        Ticket.objects.filter(pk=ticket.pk).update(created=now - timedelta(days=age))
    # Oldest row inserted last, so insertion (pk) order cannot pass for the right answer.
    Ticket.objects.filter(pk=tickets[0].pk).update(created=now - timedelta(days=10))

    listed = list(selectors.list_tickets_for_user(user=engineer.user))

    assert listed == [tickets[1], tickets[2], tickets[0]]
    assert selectors.list_tickets_for_user(user=engineer.user).ordered
