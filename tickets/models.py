"""Service tickets, their notes and the time engineers spend on them."""

from django.conf import settings
from django.db import models

from accounts.models import Company, Contact, Engineer


class Board(models.Model):
    """A service board, such as "Service Desk" or "Network"; chat queues can route by it."""

    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Ticket(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In progress"
        WAITING_CLIENT = "waiting_client", "Waiting for client"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="tickets")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="tickets")
    summary = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    board = models.ForeignKey(Board, on_delete=models.PROTECT, null=True, blank=True, related_name="tickets")
    assigned_engineer = models.ForeignKey(
        Engineer, on_delete=models.SET_NULL, null=True, blank=True, related_name="assigned_tickets"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["company", "-created"])]

    def __str__(self):
        return f"#{self.number} {self.summary}"

    @property
    def number(self) -> int:
        return self.pk

    @property
    def is_open(self) -> bool:
        return self.status not in (self.Status.RESOLVED, self.Status.CLOSED)


class TicketNote(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ticket_notes")
    text = models.TextField()
    internal = models.BooleanField(default=False, help_text="Staff only; never shown to the client.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "pk"]

    def __str__(self):
        return f"Note on #{self.ticket_id} by {self.author}"


class TimeEntry(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="time_entries")
    engineer = models.ForeignKey(Engineer, on_delete=models.PROTECT, related_name="time_entries")
    started = models.DateTimeField()
    ended = models.DateTimeField()
    hours = models.DecimalField(max_digits=6, decimal_places=2)
    notes = models.TextField(blank=True)
    billable = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started"]
        verbose_name_plural = "time entries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ended__gte=models.F("started")), name="time_entry_ends_after_start"
            ),
            models.CheckConstraint(condition=models.Q(hours__gte=0), name="time_entry_hours_not_negative"),
        ]

    def __str__(self):
        return f"{self.hours} h on #{self.ticket_id} by {self.engineer}"
