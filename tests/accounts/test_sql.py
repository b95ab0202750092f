"""Twins of accounts/sql.py: each statement gives what a plain ORM reference gives (tests/twins.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts import sql as accounts_sql
from accounts.models import CompanyPermission, Contact, ContactPermission, GlobalFeature, GlobalPermissions
from accounts.permissions import FEATURES
from tests import factories
from tests.twins import assert_twins, rolled_back, twin_settings

pytestmark = pytest.mark.django_db

ACCESS = st.sampled_from([None, "allow", "deny", "inherit"])  # None: no row at that level
FLAG = st.sampled_from([None, True, False])  # None: no row


def feature_levels_by_orm(*, contact_id: int, feature: str) -> accounts_sql.FeatureLevels | None:
    """Read every level's setting of the feature for the contact with the ORM, one level at a time."""
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        return None
    return accounts_sql.FeatureLevels(
        master_switch=GlobalPermissions.objects.filter(pk=1).values_list("master_switch", flat=True).first(),
        global_enabled=GlobalFeature.objects.filter(settings_id=1, feature=feature)
        .values_list("enabled", flat=True)
        .first(),
        contact_access=ContactPermission.objects.filter(contact=contact, feature=feature)
        .values_list("access", flat=True)
        .first(),
        company_access=CompanyPermission.objects.filter(company_id=contact.company_id, feature=feature)
        .values_list("access", flat=True)
        .first(),
    )


@st.composite
def permission_worlds(draw):
    """Draw the global settings, two companies and three contacts, each with settings for every feature."""
    return {
        "master": draw(FLAG),  # None: no GlobalPermissions row at all
        "global": {feature: draw(FLAG) for feature in FEATURES},
        "companies": [{feature: draw(ACCESS) for feature in FEATURES} for _ in range(2)],
        "contacts": [(draw(st.integers(0, 1)), {feature: draw(ACCESS) for feature in FEATURES}) for _ in range(3)],
    }


def build_permissions(world) -> list[Contact]:
    """Write a drawn world of permission settings; return its contacts."""
    GlobalPermissions.objects.all().delete()
    if world["master"] is not None:
        settings = GlobalPermissions.objects.create(pk=1, master_switch=world["master"])
        for feature, enabled in world["global"].items():
            if enabled is not None:
                GlobalFeature.objects.create(settings=settings, feature=feature, enabled=enabled)
    companies = [factories.make_company() for _ in world["companies"]]
    for company, accesses in zip(companies, world["companies"], strict=True):
        for feature, access in accesses.items():
            if access is not None:
                CompanyPermission.objects.create(company=company, feature=feature, access=access)
    contacts = []
    for company_index, accesses in world["contacts"]:
        contact = factories.make_contact(company=companies[company_index])
        for feature, access in accesses.items():
            if access is not None:
                ContactPermission.objects.create(contact=contact, feature=feature, access=access)
        contacts.append(contact)
    return contacts


@twin_settings
@given(
    world=permission_worlds(),
    asked=st.integers(0, 3),  # 3: a contact that does not exist
    feature=st.sampled_from(sorted(FEATURES)),
)
def test_feature_levels_equal_the_orm_reference(world, asked, feature):
    """FEATURE_LEVELS reads every level's setting as the ORM does, for any contact and feature."""
    with rolled_back():
        contacts = build_permissions(world)
        contact_id = contacts[asked].pk if asked < len(contacts) else max(c.pk for c in contacts) + 1
        assert_twins(
            lambda: accounts_sql.feature_levels(contact_id=contact_id, feature=feature),
            lambda: feature_levels_by_orm(contact_id=contact_id, feature=feature),
        )


def test_feature_levels_are_booleans_and_names_on_every_backend(f):
    """The named result carries True/False (not SQLite's 1/0) and the access values themselves."""
    f.enable_chat_globally(enabled=False, master_switch=True)
    contact = f.make_contact(chat="deny")

    levels = accounts_sql.feature_levels(contact_id=contact.pk, feature="chat")

    assert levels == accounts_sql.FeatureLevels(
        master_switch=True, global_enabled=False, contact_access="deny", company_access=None
    )
    assert type(levels.master_switch) is bool and type(levels.global_enabled) is bool
