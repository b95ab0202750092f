from django.contrib import admin

from .models import Board, Ticket, TicketNote, TimeEntry


class TicketNoteInline(admin.TabularInline):
    model = TicketNote
    fields = ["author", "text", "internal", "created"]
    readonly_fields = ["created"]
    autocomplete_fields = ["author"]
    extra = 0


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["__str__", "company", "contact", "status", "priority", "board", "assigned_engineer", "updated"]
    list_filter = ["status", "priority", "board", "company"]
    list_select_related = ["company", "contact__user", "board", "assigned_engineer"]
    search_fields = ["=id", "summary", "company__name", "contact__user__first_name", "contact__user__last_name"]
    autocomplete_fields = ["company", "contact", "assigned_engineer"]
    date_hierarchy = "created"
    inlines = [TicketNoteInline]


@admin.register(Board)
class BoardAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(TimeEntry)
class TimeEntryAdmin(admin.ModelAdmin):
    list_display = ["ticket", "engineer", "started", "ended", "hours", "billable"]
    list_filter = ["billable", "engineer"]
    list_select_related = ["ticket", "engineer"]
    autocomplete_fields = ["ticket", "engineer"]
