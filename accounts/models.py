"""Companies, their contacts, the desk's engineers, and who may use which portal feature."""

from django.conf import settings
from django.db import models


class Company(models.Model):
    name = models.CharField(max_length=200, unique=True)
    phone = models.CharField(max_length=40, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "companies"

    def __str__(self):
        return self.name


class Contact(models.Model):
    """A client: a user who belongs to exactly one customer company."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="contacts")
    phone = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["user__first_name", "user__last_name"]

    def __str__(self):
        return f"{self.name} ({self.company})"

    @property
    def name(self) -> str:
        return self.user.get_full_name() or self.user.get_username()

    @property
    def first_name(self) -> str:
        return self.user.first_name or self.name

    @property
    def email(self) -> str:
        return self.user.email


class Engineer(models.Model):
    """A staff user's desk profile."""

    class Availability(models.TextChoices):
        AVAILABLE = "available", "Available"
        BUSY = "busy", "Busy"
        AWAY = "away", "Away"
        OFFLINE = "offline", "Offline"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="engineer")
    display_name = models.CharField(max_length=100)
    availability = models.CharField(max_length=10, choices=Availability.choices, default=Availability.AVAILABLE)
    max_concurrent_chats = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Empty means the site default (CHAT_DEFAULT_MAX_CONCURRENT)."
    )
    is_supervisor = models.BooleanField(default=False)
    # Refreshed while a HUD socket is open; an engineer not seen for a while counts as offline.
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self):
        return self.display_name

    @property
    def chat_limit(self) -> int:
        if self.max_concurrent_chats is None:
            return settings.CHAT_DEFAULT_MAX_CONCURRENT
        return self.max_concurrent_chats


class Access(models.TextChoices):
    """An override at the company or contact level."""

    INHERIT = "inherit", "Inherit"
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class GlobalPermissions(models.Model):
    """The one row of global client-security settings.

    The master switch decides whether the global feature flags apply at all; with it off, only
    company and contact overrides can grant a feature.
    """

    master_switch = models.BooleanField(
        "apply global configuration",
        default=False,
        help_text="Step 1: turn this on so the feature switches below apply to every contact.",
    )

    class Meta:
        verbose_name = "global client permissions"
        verbose_name_plural = "global client permissions"
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="global_permissions_singleton")]

    def __str__(self):
        return "Global client permissions"

    @classmethod
    def load(cls) -> "GlobalPermissions":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


# Features are plain strings validated against accounts.permissions.FEATURES in forms, not
# model choices, so adding a feature needs no migration.
class GlobalFeature(models.Model):
    settings = models.ForeignKey(GlobalPermissions, on_delete=models.CASCADE, related_name="features")
    feature = models.CharField(max_length=50)
    enabled = models.BooleanField(default=False, help_text="Step 2: allow this feature for all contacts.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["settings", "feature"], name="unique_global_feature")]

    def __str__(self):
        return f"{self.feature}: {'on' if self.enabled else 'off'}"


class CompanyPermission(models.Model):
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="permissions")
    feature = models.CharField(max_length=50)
    access = models.CharField(max_length=10, choices=Access.choices, default=Access.INHERIT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company", "feature"], name="unique_company_feature")]

    def __str__(self):
        return f"{self.company}: {self.feature} {self.access}"


class ContactPermission(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="permissions")
    feature = models.CharField(max_length=50)
    access = models.CharField(max_length=10, choices=Access.choices, default=Access.INHERIT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "feature"], name="unique_contact_feature")]

    def __str__(self):
        return f"{self.contact}: {self.feature} {self.access}"
