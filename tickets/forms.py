"""Forms for the ticket pages, and the time-entry form the HUD and the ticket page share."""

from decimal import Decimal

from django import forms
from django.conf import settings

from deskchat.timefmt import PARSE_FORMAT, format_when

from .models import Ticket
from .services import rounded_hours


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


class WhenInput(forms.TextInput):
    """A moment typed as the product writes it everywhere ("Dec 2, 2026 05:12"), in the viewer's zone.

    Not <input type="datetime-local">: the browser writes that in its locale's own format, the
    one place a moment would read differently from every other.
    """

    def format_value(self, value):
        return format_when(value) if hasattr(value, "year") else super().format_value(value)


def _when_field(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        input_formats=[PARSE_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=WhenInput(attrs={"placeholder": "Dec 2, 2026 09:30", "autocomplete": "off", "spellcheck": "false"}),
        error_messages={"invalid": "Write it like Dec 2, 2026 09:30."},
    )


class TimeEntryForm(forms.Form):
    """A time entry: from a chat (the HUD pre-fills it) or corrected by its author on the ticket page."""

    started = _when_field("Start")
    ended = _when_field("End")
    hours = forms.DecimalField(
        label="Hours",
        min_value=Decimal("0"),
        max_value=Decimal("24"),
        max_digits=4,
        decimal_places=2,
        required=False,
        widget=forms.NumberInput(attrs={"step": "0.01"}),
        help_text="Leave empty to use the rounded time between start and end.",
    )
    notes = forms.CharField(label="Notes", widget=forms.Textarea(attrs={"rows": 8}), required=False, max_length=100_000)
    billable = forms.BooleanField(label="Billable", required=False, initial=True)

    def clean(self):
        data = super().clean()
        started, ended = data.get("started"), data.get("ended")
        if started and ended:
            if ended < started:
                self.add_error("ended", "The end can't be before the start.")
            elif data.get("hours") is None:
                data["hours"] = rounded_hours(started, ended)
        return data
