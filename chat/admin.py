"""The administrator's console for chat queues, templates, and (read-only) chat records.

Queues and templates are configuration, so they are edited here. Requests, rooms and messages
are records of what happened: every change to them goes through chat/services.py, so the admin
only shows them.
"""

from django import forms
from django.contrib import admin

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
    list_display = ["name", "kind", "owner"]
    list_filter = ["kind", ("owner", admin.EmptyFieldListFilter)]
    search_fields = ["name", "body", "owner__display_name"]
    fields = ["kind", "name", "owner", "body"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
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
