"""The administrator's console for companies, contacts, engineers and client permissions."""

from axes.models import AccessFailureLog, AccessLog
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse

from .forms import CompanyPermissionForm, ContactPermissionForm, GlobalFeatureForm
from .models import (
    Company,
    CompanyPermission,
    Contact,
    ContactPermission,
    Engineer,
    GlobalFeature,
    GlobalPermissions,
)
from .permissions import CHAT, annotate_feature_access, decision_from_annotations, resolve_feature


class GlobalFeatureInline(admin.TabularInline):
    model = GlobalFeature
    form = GlobalFeatureForm
    extra = 0
    verbose_name = "feature for all contacts"
    verbose_name_plural = "Step 2: features for all contacts (apply only while step 1 is on)"


@admin.register(GlobalPermissions)
class GlobalPermissionsAdmin(admin.ModelAdmin):
    """One page for the single row: the master switch first, then the features it applies."""

    inlines = [GlobalFeatureInline]
    fieldsets = [
        (
            "Step 1: master switch",
            {
                "fields": ["master_switch"],
                "description": "Contact overrides beat company overrides, which beat these global settings. "
                "With the master switch off, the global settings grant nothing.",
            },
        )
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        obj = GlobalPermissions.load()
        return HttpResponseRedirect(reverse("admin:accounts_globalpermissions_change", args=[obj.pk]))


class CompanyPermissionInline(admin.TabularInline):
    model = CompanyPermission
    form = CompanyPermissionForm
    extra = 0
    verbose_name_plural = "Permissions (override the global settings for this company)"


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ["user", "phone"]
    readonly_fields = ["user"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "phone", "created"]
    search_fields = ["name", "phone"]
    inlines = [CompanyPermissionInline, ContactInline]


class ContactPermissionInline(admin.TabularInline):
    model = ContactPermission
    form = ContactPermissionForm
    extra = 0
    verbose_name_plural = "Permissions (override the company and global settings for this contact)"


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["contact_name", "email", "company", "effective_chat"]
    list_filter = ["company"]
    list_select_related = ["user", "company"]
    search_fields = ["user__first_name", "user__last_name", "user__email", "user__username", "company__name", "phone"]
    autocomplete_fields = ["user", "company"]
    readonly_fields = ["effective_chat_detail"]
    inlines = [ContactPermissionInline]

    def get_queryset(self, request):
        # Every level's setting comes with the list query, so the "Chat" column costs no query per row.
        return annotate_feature_access(super().get_queryset(request), CHAT)

    @admin.display(description="Name", ordering="user__first_name")
    def contact_name(self, obj):
        return obj.name

    @admin.display(description="Email", ordering="user__email")
    def email(self, obj):
        return obj.user.email

    @admin.display(description="Chat (effective)")
    def effective_chat(self, obj):
        return decision_from_annotations(obj).label

    @admin.display(description="Effective chat permission")
    def effective_chat_detail(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return resolve_feature(obj, CHAT).label


@admin.register(Engineer)
class EngineerAdmin(admin.ModelAdmin):
    list_display = ["display_name", "user", "availability", "max_concurrent_chats", "is_supervisor", "last_seen_at"]
    list_filter = ["availability", "is_supervisor"]
    search_fields = ["display_name", "user__username", "user__email"]
    autocomplete_fields = ["user"]


# Axes lists its access attempts (the lockouts: delete one to lift it). Its logs of every sign-in
# and failure are off (settings: AXES_DISABLE_ACCESS_LOG), so their empty lists would only confuse.
for model in (AccessLog, AccessFailureLog):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
