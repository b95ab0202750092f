"""What engineers manage themselves in the admin: their own message templates (greetings, farewells).

A service desk's agents keep their own canned answers, as in every helpdesk product; the rest of
the admin (companies, permissions, queues, shared templates) is the administrators'. Engineers get
the MessageTemplate model permissions through the "Engineers" group, which every new engineer
joins, and MessageTemplateAdmin narrows them to their own rows (chat/admin.py).
"""

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from .models import MessageTemplate

ENGINEERS_GROUP = "Engineers"
TEMPLATE_PERMISSIONS = ("view", "add", "change", "delete")


def engineers_group() -> Group:
    """Return the Engineers group, with the template permissions (made or mended as needed)."""
    group, _ = Group.objects.get_or_create(name=ENGINEERS_GROUP)
    content_type = ContentType.objects.get_for_model(MessageTemplate)
    wanted = [f"{action}_messagetemplate" for action in TEMPLATE_PERMISSIONS]
    group.permissions.add(*Permission.objects.filter(content_type=content_type, codename__in=wanted))
    return group


def join_engineers_group(sender, instance, created, **kwargs) -> None:
    """Put a new engineer's user in the Engineers group (a post_save receiver of Engineer)."""
    if created:
        instance.user.groups.add(engineers_group())
