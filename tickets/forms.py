"""Forms for the portal's ticket pages."""

from django import forms
from django.conf import settings

from .models import Ticket


class NoteForm(forms.Form):
    text = forms.CharField(
        label="Add a note",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=settings.NOTE_MAX_LENGTH,
        error_messages={"required": "Write something before adding the note."},
    )
    internal = forms.BooleanField(label="Internal (staff only)", required=False)


class TicketForm(forms.Form):
    summary = forms.CharField(max_length=200, error_messages={"required": "Give the ticket a short summary."})
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False, max_length=20_000)
    priority = forms.ChoiceField(choices=Ticket.Priority.choices, initial=Ticket.Priority.MEDIUM)
