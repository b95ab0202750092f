"""Answer "may this contact use feature F?", and say which level decided.

The contact's override beats the company's, which beats the global flag. The global flag counts
only while the master switch is on. When no level decides, the answer is no.
"""

from dataclasses import dataclass

from django.db import connection

from .models import Access, CompanyPermission, Contact, ContactPermission, GlobalFeature, GlobalPermissions
from .roles import who

CHAT = "chat"
CREATE_TICKET = "create_ticket"

# The registry of features. Add one here (no migration needed) and the admin offers it.
FEATURES = {
    CHAT: "Chat",
    CREATE_TICKET: "Create tickets",
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    level: str  # "contact", "company", "global" or "default"

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def label(self) -> str:
        verdict = "Allowed" if self.allowed else "Denied"
        return f"{verdict} (by {self.level})"


def decide(
    *, contact_access: str | None, company_access: str | None, master_switch: bool, global_enabled: bool | None
) -> Decision:
    """Combine the levels' settings into one decision; pure, so it can be tested exhaustively."""
    for level, access in (("contact", contact_access), ("company", company_access)):
        if access == Access.ALLOW:
            return Decision(True, level)
        if access == Access.DENY:
            return Decision(False, level)
    if master_switch and global_enabled is not None:
        return Decision(global_enabled, "global")
    return Decision(False, "default")


def resolve_feature(contact: Contact, feature: str) -> Decision:
    """Return whether this contact may use the feature, and the level that decided."""
    levels_sql, params = feature_levels_sql(feature, contact_alias="c")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {levels_sql} FROM accounts_contact c WHERE c.id = %s", [*params, contact.pk])
        row = cursor.fetchone()
    return decision_from_levels(row) if row else Decision(False, "default")


def feature_levels_sql(feature: str, *, contact_alias: str) -> tuple[str, list]:
    """Return four select expressions (master switch, global, contact, company) for one feature, and their parameters.

    `contact_alias` names the accounts_contact row in the caller's FROM clause (a constant, never input). This is the
    hand-written twin of annotate_feature_access for reads of one contact on the hot path (every
    Join Chat): Django compiling the four subqueries cost as much as PostgreSQL running them
    (docs/benchmarks.md). Read the row's first four columns with decision_from_levels.
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}")
    sql = (
        "(SELECT master_switch FROM accounts_globalpermissions WHERE id = 1), "
        "(SELECT enabled FROM accounts_globalfeature WHERE settings_id = 1 AND feature = %s), "
        f"(SELECT access FROM accounts_contactpermission WHERE contact_id = {contact_alias}.id AND feature = %s), "
        f"(SELECT access FROM accounts_companypermission WHERE company_id = {contact_alias}.company_id AND feature = %s)"
    )
    return sql, [feature, feature, feature]


def decision_from_levels(row) -> Decision:
    """Decide from the first four columns of a row selected with feature_levels_sql."""
    master_switch, global_enabled, contact_access, company_access = row[:4]
    # SQLite hands booleans back as 0 and 1.
    return decide(
        contact_access=contact_access,
        company_access=company_access,
        master_switch=bool(master_switch),
        global_enabled=None if global_enabled is None else bool(global_enabled),
    )


def contact_may(user, feature: str) -> Decision:
    """Return the decision for a user; anyone who is not a contact (engineers included) is refused by default."""
    contact = who(user).contact
    if contact is None:
        return Decision(False, "default")
    return resolve_feature(contact, feature)


def annotate_feature_access(queryset, feature: str):
    """Annotate contacts with every level's setting for one feature, in the list's own query."""
    from django.db.models import OuterRef, Subquery

    return queryset.annotate(
        master_switch=Subquery(GlobalPermissions.objects.filter(pk=1).values("master_switch")[:1]),
        global_enabled=Subquery(GlobalFeature.objects.filter(settings_id=1, feature=feature).values("enabled")[:1]),
        contact_access=Subquery(
            ContactPermission.objects.filter(contact=OuterRef("pk"), feature=feature).values("access")[:1]
        ),
        company_access=Subquery(
            CompanyPermission.objects.filter(company=OuterRef("company_id"), feature=feature).values("access")[:1]
        ),
    )


def decision_from_annotations(contact) -> Decision:
    """Decide from the values `annotate_feature_access` put on a contact."""
    return decide(
        contact_access=contact.contact_access,
        company_access=contact.company_access,
        master_switch=bool(contact.master_switch),
        global_enabled=contact.global_enabled,
    )
