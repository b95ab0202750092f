"""Permission resolution: contact over company over global, with the deciding level.

The exhaustive test states the rules of issue 2 in its own words (`expected_decision`) and
checks every combination through the database, so a slip in `decide()` or in the queries that
feed it shows up here.
"""

import itertools

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.models import Access, CompanyPermission, Contact, ContactPermission, GlobalFeature, GlobalPermissions
from accounts.permissions import (
    CHAT,
    CREATE_TICKET,
    FEATURES,
    annotate_feature_access,
    contact_may,
    decision_from_annotations,
    resolve_feature,
)

pytestmark = pytest.mark.django_db

MASTER_SWITCH = [True, False]
GLOBAL_FLAG = ["on", "off", None]  # None: no GlobalFeature row for the feature
OVERRIDES = ["allow", "deny", "inherit", None]  # None: no permission row at that level

COMBINATIONS = list(itertools.product(MASTER_SWITCH, GLOBAL_FLAG, OVERRIDES, OVERRIDES))


def combination_id(combination) -> str:
    master, global_flag, company, contact = combination
    return (
        f"master-{'on' if master else 'off'}"
        f"/global-{global_flag or 'norow'}"
        f"/company-{company or 'norow'}"
        f"/contact-{contact or 'norow'}"
    )


def expected_decision(
    *, master: bool, global_flag: str | None, company: str | None, contact: str | None
) -> tuple[bool, str]:
    """State issue 2's rules directly: the first level with a verdict decides, else deny."""
    if contact == "allow":
        return True, "contact"
    if contact == "deny":
        return False, "contact"
    if company == "allow":
        return True, "company"
    if company == "deny":
        return False, "company"
    # The global flag counts only while the master switch is on, and only if it is set at all.
    if master and global_flag == "on":
        return True, "global"
    if master and global_flag == "off":
        return False, "global"
    return False, "default"


def configure(
    *,
    contact: Contact,
    feature: str,
    master: bool,
    global_flag: str | None,
    company: str | None,
    contact_access: str | None,
) -> None:
    """Write one combination of settings into the database for one contact and feature."""
    settings = GlobalPermissions.load()
    settings.master_switch = master
    settings.save()
    GlobalFeature.objects.filter(settings=settings, feature=feature).delete()
    if global_flag is not None:
        GlobalFeature.objects.create(settings=settings, feature=feature, enabled=global_flag == "on")
    CompanyPermission.objects.filter(company=contact.company, feature=feature).delete()
    if company is not None:
        CompanyPermission.objects.create(company=contact.company, feature=feature, access=company)
    ContactPermission.objects.filter(contact=contact, feature=feature).delete()
    if contact_access is not None:
        ContactPermission.objects.create(contact=contact, feature=feature, access=contact_access)


def test_the_combinations_cover_every_case():
    """The matrix has 2 × 3 × 4 × 4 = 96 cases, and every level decides at least one of them."""
    assert len(COMBINATIONS) == 96
    levels = {expected_decision(master=m, global_flag=g, company=c, contact=p)[1] for m, g, c, p in COMBINATIONS}
    assert levels == {"contact", "company", "global", "default"}


@pytest.mark.parametrize("combination", COMBINATIONS, ids=[combination_id(c) for c in COMBINATIONS])
def test_resolve_feature_for_every_combination(f, combination):
    """Each setting combination resolves to the rule's verdict and names the level that decided."""
    master, global_flag, company, contact_access = combination
    contact = f.make_contact()
    configure(
        contact=contact,
        feature=CHAT,
        master=master,
        global_flag=global_flag,
        company=company,
        contact_access=contact_access,
    )

    decision = resolve_feature(contact, CHAT)

    allowed, level = expected_decision(master=master, global_flag=global_flag, company=company, contact=contact_access)
    assert (decision.allowed, decision.level) == (allowed, level)
    assert bool(decision) is allowed
    assert decision.label == f"{'Allowed' if allowed else 'Denied'} (by {level})"


def test_without_any_global_row_the_answer_is_denied_by_default(f):
    """With no GlobalPermissions row at all (a fresh install), nobody may chat."""
    GlobalPermissions.objects.all().delete()
    contact = f.make_contact()

    decision = resolve_feature(contact, CHAT)

    assert (decision.allowed, decision.level) == (False, "default")


def test_another_company_or_contact_override_does_not_leak(f):
    """Overrides apply only to their own company and contact."""
    f.enable_chat_globally(enabled=False)
    neighbour_company = f.make_company(chat=Access.ALLOW)
    f.make_contact(company=neighbour_company, chat=Access.ALLOW)
    contact = f.make_contact()

    decision = resolve_feature(contact, CHAT)

    assert (decision.allowed, decision.level) == (False, "global")


def test_unknown_feature_raises_value_error(f):
    """Asking about a feature that is not registered is a programming error, not a quiet no."""
    contact = f.make_contact()

    with pytest.raises(ValueError, match="unknown feature 'teleport'"):
        resolve_feature(contact, "teleport")
    with pytest.raises(ValueError):
        contact_may(contact.user, "teleport")


def test_chat_and_create_ticket_are_registered_features():
    """Chat is the first feature; creating tickets is the second, with no migration of its own."""
    assert CHAT in FEATURES
    assert CREATE_TICKET in FEATURES


def test_contact_may_answers_for_a_contact_user(f):
    """contact_may looks up the user's contact and resolves the feature for it."""
    f.enable_chat_globally(enabled=False)
    contact = f.make_contact(chat=Access.ALLOW)

    decision = contact_may(contact.user, CHAT)

    assert (decision.allowed, decision.level) == (True, "contact")


def test_contact_may_denies_an_engineer_by_default(f):
    """An engineer is not a contact, so even a global grant does not make them one."""
    f.enable_chat_globally(enabled=True)
    engineer = f.make_engineer()

    decision = contact_may(engineer.user, CHAT)

    assert (decision.allowed, decision.level) == (False, "default")


def test_contact_may_denies_a_user_who_is_neither_contact_nor_engineer(f):
    """A plain user account with no contact profile is refused by default."""
    f.enable_chat_globally(enabled=True)
    user = f.make_user()

    assert (contact_may(user, CHAT).allowed, contact_may(user, CHAT).level) == (False, "default")


@pytest.mark.parametrize("user", [AnonymousUser(), None], ids=["anonymous", "none"])
def test_contact_may_denies_an_anonymous_user_by_default(f, user):
    """Nobody signed in may use any feature."""
    f.enable_chat_globally(enabled=True)

    decision = contact_may(user, CHAT)

    assert (decision.allowed, decision.level) == (False, "default")


def test_create_ticket_is_independent_of_chat(f):
    """Granting chat everywhere grants nothing for create_ticket, and denying chat takes nothing away."""
    f.enable_chat_globally(enabled=True)
    allowed_chat = f.make_contact(company=f.make_company(chat=Access.ALLOW), chat=Access.ALLOW)
    denied_chat = f.make_contact(company=f.make_company(chat=Access.DENY), chat=Access.DENY)
    CompanyPermission.objects.create(company=denied_chat.company, feature=CREATE_TICKET, access=Access.ALLOW)

    assert (resolve_feature(allowed_chat, CHAT).allowed, resolve_feature(allowed_chat, CHAT).level) == (True, "contact")
    create = resolve_feature(allowed_chat, CREATE_TICKET)
    assert (create.allowed, create.level) == (False, "default")

    assert resolve_feature(denied_chat, CHAT).allowed is False
    create = resolve_feature(denied_chat, CREATE_TICKET)
    assert (create.allowed, create.level) == (True, "company")


def test_global_flag_of_one_feature_does_not_apply_to_another(f):
    """Turning create_ticket on globally leaves chat at its own (absent) global flag."""
    settings = GlobalPermissions.load()
    settings.master_switch = True
    settings.save()
    GlobalFeature.objects.create(settings=settings, feature=CREATE_TICKET, enabled=True)
    contact = f.make_contact()

    assert (resolve_feature(contact, CREATE_TICKET).allowed, resolve_feature(contact, CREATE_TICKET).level) == (
        True,
        "global",
    )
    assert (resolve_feature(contact, CHAT).allowed, resolve_feature(contact, CHAT).level) == (False, "default")


GLOBAL_STATES = list(itertools.product(MASTER_SWITCH, GLOBAL_FLAG))


@pytest.mark.parametrize(
    "master, global_flag",
    GLOBAL_STATES,
    ids=[f"master-{'on' if m else 'off'}/global-{g or 'norow'}" for m, g in GLOBAL_STATES],
)
def test_annotations_agree_with_resolve_feature_in_one_query(f, django_assert_num_queries, master, global_flag):
    """The admin's one-query annotation decides every contact exactly as resolve_feature does."""
    settings = GlobalPermissions.load()
    settings.master_switch = master
    settings.save()
    if global_flag is not None:
        GlobalFeature.objects.create(settings=settings, feature=CHAT, enabled=global_flag == "on")
    # One company per company override, and in each a contact per contact override: all 16 pairs.
    for company_access in OVERRIDES:
        company = f.make_company()
        if company_access is not None:
            CompanyPermission.objects.create(company=company, feature=CHAT, access=company_access)
        for contact_access in OVERRIDES:
            contact = f.make_contact(company=company)
            if contact_access is not None:
                ContactPermission.objects.create(contact=contact, feature=CHAT, access=contact_access)
    # A create_ticket override must not bleed into the chat annotation.
    CompanyPermission.objects.create(company=company, feature=CREATE_TICKET, access=Access.ALLOW)

    with django_assert_num_queries(1):
        annotated = list(annotate_feature_access(Contact.objects.all(), CHAT))

    assert len(annotated) == 16
    for contact in annotated:
        from_annotations = decision_from_annotations(contact)
        resolved = resolve_feature(contact, CHAT)
        assert from_annotations == resolved, contact
