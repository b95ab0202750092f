"""The administrator's console for chat queues, templates, and (read-only) chat records.

Queues and templates are configuration, so they are edited here. Requests, rooms and messages
are records of what happened: every change to them goes through chat/services.py, so the admin
only shows them.
"""

from django import forms
from django.contrib import admin
from django.db.models import Q

from accounts.roles import who
from tickets.models import Ticket

from .models import ChatMessage, ChatParticipant, ChatQueue, ChatRequest, ChatRoom, MessageTemplate


class ChatQueueForm(forms.ModelForm):
    """Edit a queue's priorities as checkboxes rather than as raw JSON."""

    priorities = forms.MultipleChoiceField(
        choices=Ticket.Priority.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Route tickets with these priorities here. Leave all unticked to match any priority.",
    )

    class Meta:
        model = ChatQueue
        fields = ["name", "order", "is_default", "members", "companies", "boards", "priorities"]


@admin.register(ChatQueue)
class ChatQueueAdmin(admin.ModelAdmin):
    form = ChatQueueForm
    list_display = ["name", "order", "is_default", "member_count"]
    list_editable = ["order"]
    search_fields = ["name", "members__display_name"]
    list_filter = ["is_default"]
    filter_horizontal = ["members", "companies", "boards"]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "order", "is_default", "members"],
                "description": "Only members see and answer this queue's requests. Queues are tried in "
                "order; the default queue takes whatever no other queue matches.",
            },
        ),
        (
            "Routing rules",
            {
                "fields": ["companies", "boards", "priorities"],
                "description": "A ticket enters this queue when every rule set here matches. "
                "A queue with no rules only takes requests as the default.",
            },
        ),
    ]

    @admin.display(description="Members")
    def member_count(self, queue):
        return queue.members.count()


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    """Administrators manage every template; an engineer their own, and reads the shared ones.

    Engineers hold the model permissions through the Engineers group (chat/staff_access.py); this
    narrows them to rows they own, and makes what they add theirs.
    """

    list_display = ["name", "kind", "owner"]
    list_filter = ["kind", ("owner", admin.EmptyFieldListFilter)]
    search_fields = ["name", "body", "owner__display_name"]
    fields = ["kind", "name", "owner", "body"]

    @staticmethod
    def _engineer(request):
        """Return the engineer asking, unless they are an administrator (who may edit every template)."""
        found = who(request.user)
        return None if found.is_admin else found.engineer

    def get_queryset(self, request):
        templates = super().get_queryset(request).select_related("owner")
        engineer = self._engineer(request)
        if engineer is not None:
            templates = templates.filter(Q(owner=engineer) | Q(owner__isnull=True))
        return templates

    def get_fields(self, request, obj=None):
        if self._engineer(request) is not None:
            return ["kind", "name", "body"]
        return super().get_fields(request, obj)

    def _may_edit(self, request, obj) -> bool:
        engineer = self._engineer(request)
        return obj is None or engineer is None or obj.owner_id == engineer.pk

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_edit(request, obj)

    def save_model(self, request, obj, form, change):
        engineer = self._engineer(request)
        if engineer is not None:
            obj.owner = engineer  # an engineer's template is always their own
        super().save_model(request, obj, form, change)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "owner" in form.base_fields:
            form.base_fields["owner"].help_text = "Leave empty for a template every engineer can use."
        form.base_fields["body"].help_text = "Placeholders: {client_first_name}, {engineer_name}, {ticket_number}."
        return form


class ReadOnlyAdmin(admin.ModelAdmin):
    """Show records without letting the admin bypass the chat services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ChatRequest)
class ChatRequestAdmin(ReadOnlyAdmin):
    list_display = ["pk", "kind", "state", "ticket", "contact", "queue", "requested_at", "answered_by", "answered_at"]
    list_filter = ["state", "kind", "queue"]
    search_fields = [
        "contact__user__first_name",
        "contact__user__last_name",
        "contact__company__name",
        "ticket__summary",
    ]
    list_select_related = ["ticket", "contact", "queue", "answered_by"]
    date_hierarchy = "requested_at"


class ReadOnlyInline(admin.TabularInline):
    """List a room's records inside its page, without adding, editing or deleting any."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class ParticipantInline(ReadOnlyInline):
    model = ChatParticipant
    fields = ["display_name", "role", "joined_at", "left_at", "last_read_seq"]


class MessageInline(ReadOnlyInline):
    model = ChatMessage
    fields = ["seq", "created", "author_name", "kind", "body"]


@admin.register(ChatRoom)
class ChatRoomAdmin(ReadOnlyAdmin):
    list_display = ["pk", "ticket", "state", "started_at", "ended_at", "last_seq"]
    list_filter = ["state"]
    search_fields = ["ticket__summary", "ticket__company__name", "participants__display_name"]
    list_select_related = ["ticket"]
    inlines = [ParticipantInline, MessageInline]
    date_hierarchy = "started_at"
