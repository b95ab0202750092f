"""Answer "may this contact use feature F?", and say which level decided.

The contact's override beats the company's, which beats the global flag. The global flag counts
only while the master switch is on. When no level decides, the answer is no.
"""

from dataclasses import dataclass

from . import sql
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
    check_feature(feature)
    levels = sql.feature_levels(contact_id=contact.pk, feature=feature)
    return decision_from_levels(levels) if levels else Decision(False, "default")


def check_feature(feature: str) -> None:
    """Refuse a feature that is not registered: a programming error, not a quiet no."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}")


def decision_from_levels(levels: sql.FeatureLevels) -> Decision:
    """Decide from every level's setting, as read by accounts.sql (a missing settings row means off)."""
    return decide(
        contact_access=levels.contact_access,
        company_access=levels.company_access,
        master_switch=bool(levels.master_switch),
        global_enabled=levels.global_enabled,
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
