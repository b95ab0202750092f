"""Who a user is: the one answer every view, socket and template asks for."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.utils.functional import SimpleLazyObject

from accounts.models import Contact, Engineer
from accounts.roles import Role, who
from tests.queries import statements_run

pytestmark = pytest.mark.django_db


def fresh(user):
    """Return the user as a new request would load it: nothing cached on the object."""
    return get_user_model().objects.get(pk=user.pk)


@pytest.mark.parametrize("user", [None, AnonymousUser()], ids=["none", "anonymous"])
def test_nobody_signed_in_is_anonymous_with_nothing(user):
    """No user, or the anonymous one, is anonymous: no profile, no admin, no admin pages."""
    found = who(user)
    assert found.role == Role.ANONYMOUS
    assert (found.engineer, found.contact, found.is_admin) == (None, None, False)
    assert not (found.is_engineer or found.is_contact or found.is_supervisor or found.has_admin_pages())


def test_a_contact_is_a_contact_with_their_company_in_one_query(f):
    """A client's user is a contact; the profile, its company and its user come in one query."""
    contact = f.make_contact(company=f.make_company(name="Ours Ltd"))
    user = fresh(contact.user)
    with statements_run() as seen:
        found = who(user)
        assert found.contact.company.name == "Ours Ltd"
        assert found.contact.user is user
    assert len(seen) == 1
    assert found.role == Role.CONTACT and found.is_contact and not found.is_engineer
    assert found.contact == contact and found.engineer is None
    assert not found.is_supervisor


@pytest.mark.parametrize("supervisor", [False, True])
def test_an_engineer_is_an_engineer_and_a_supervisor_only_when_flagged(f, supervisor):
    """An engineer's user is an engineer; is_supervisor follows the profile's flag."""
    engineer = f.make_engineer(is_supervisor=supervisor)
    found = who(fresh(engineer.user))
    assert found.role == Role.ENGINEER and found.is_engineer and not found.is_contact
    assert found.engineer == engineer and found.contact is None
    assert found.is_supervisor is supervisor


def test_a_user_with_both_profiles_is_an_engineer_and_never_a_contact(f):
    """Staff with a contact profile too never get a client's view: the engineer wins, contact is None."""
    engineer = f.make_engineer()
    Contact.objects.create(user=engineer.user, company=f.make_company())
    for user in (engineer.user, fresh(engineer.user)):
        found = who(user)
        assert found.role == Role.ENGINEER
        assert found.engineer == engineer
        assert found.contact is None
        assert not found.is_contact


def test_a_user_with_neither_profile_is_other(f):
    """A signed-in user who is neither client nor engineer (an administrator, say) is OTHER."""
    found = who(f.make_user())
    assert found.role == Role.OTHER
    assert (found.engineer, found.contact, found.is_admin) == (None, None, False)


def test_a_superuser_is_an_admin_with_admin_pages(f):
    """A superuser is an admin, whatever their profile, and the admin has pages for them."""
    root = who(f.make_user(is_staff=True, is_superuser=True))
    assert root.role == Role.OTHER and root.is_admin and root.has_admin_pages()
    engineer = f.make_engineer()
    engineer.user.is_superuser = True
    assert who(engineer.user).is_admin and who(engineer.user).is_engineer


def test_admin_pages_need_an_active_staff_user_with_some_permission(f):
    """An engineer (the Engineers group's template permissions) has admin pages; staff without any
    permission, an inactive superuser and a contact have none."""
    assert who(fresh(f.make_engineer().user)).has_admin_pages()
    assert not who(f.make_user(is_staff=True)).has_admin_pages()
    assert not who(f.make_user(is_staff=True, is_superuser=True, is_active=False)).has_admin_pages()
    assert not who(f.make_contact().user).has_admin_pages()


def test_asking_again_about_the_same_user_object_reads_nothing(f):
    """The profiles stay on the user object, so a request or a socket reads them once."""
    user = fresh(f.make_contact().user)
    who(user)
    with statements_run() as seen:
        assert who(user).is_contact
    assert seen == []


def test_a_profile_made_after_asking_is_seen_on_the_same_user_object(f):
    """The cache is Django's own relation cache: making the profile for this user object updates it."""
    user = f.make_user()
    assert who(user).role == Role.OTHER
    engineer = Engineer.objects.create(user=user, display_name="Late Starter")
    assert who(user).engineer == engineer


def test_a_lazy_request_user_is_asked_through(f):
    """request.user is a lazy object; who() answers for the user inside it."""
    engineer = f.make_engineer()
    lazy = SimpleLazyObject(lambda: fresh(engineer.user))
    assert who(lazy).engineer == engineer
    assert who(lazy).engineer.user.pk == engineer.user.pk
