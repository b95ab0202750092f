"""Every hand-written statement of the accounts app (the toolkit: deskchat/sql.py).

Each has a twin test against a plain ORM reference: tests/accounts/test_sql.py.
"""

from typing import NamedTuple

from deskchat.sql import Statement

from .models import CompanyPermission, Contact, ContactPermission, GlobalFeature, GlobalPermissions


class FeatureLevels(NamedTuple):
    """Every level's setting of one feature for one contact; None where that level has no row."""

    master_switch: bool | None
    global_enabled: bool | None
    contact_access: str | None
    company_access: str | None


# The four select expressions of FeatureLevels, for statements that select from the contact's row
# under the alias `c` and pass the feature as %(feature)s. Hand-written for reads of one contact on
# the hot path (every Join Chat): Django compiling the ORM's four subqueries cost as much as
# PostgreSQL running them (docs/benchmarks.md). The settings are the one GlobalPermissions row (pk 1).
FEATURE_LEVELS_SELECT = """
    (SELECT {GlobalPermissions.master_switch} FROM {GlobalPermissions} WHERE {GlobalPermissions.id} = 1)
        AS master_switch,
    (SELECT {GlobalFeature.enabled} FROM {GlobalFeature}
      WHERE {GlobalFeature.settings} = 1 AND {GlobalFeature.feature} = %(feature)s) AS global_enabled,
    (SELECT {ContactPermission.access} FROM {ContactPermission}
      WHERE {ContactPermission.contact} = c.{Contact.id} AND {ContactPermission.feature} = %(feature)s)
        AS contact_access,
    (SELECT {CompanyPermission.access} FROM {CompanyPermission}
      WHERE {CompanyPermission.company} = c.{Contact.company} AND {CompanyPermission.feature} = %(feature)s)
        AS company_access"""
FEATURE_LEVELS_MODELS = (Contact, GlobalPermissions, GlobalFeature, ContactPermission, CompanyPermission)

FEATURE_LEVELS = Statement(
    FeatureLevels,
    FEATURE_LEVELS_MODELS,
    any="SELECT " + FEATURE_LEVELS_SELECT + " FROM {Contact} c WHERE c.{Contact.id} = %(contact)s",
)


def feature_levels(*, contact_id: int, feature: str) -> FeatureLevels | None:
    """Return every level's setting of the feature for the contact, in one query (None: no such contact)."""
    return FEATURE_LEVELS.fetch_one({"contact": contact_id, "feature": feature})
