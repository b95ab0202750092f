"""Chat queues, requests, rooms, participants, messages and templates.

Every change of state goes through chat/services.py; these classes only hold the data and the
database constraints that keep it consistent however many processes write at once.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import Company, Contact, Engineer
from tickets.models import Board, Ticket


class ChatQueue(models.Model):
    """A named queue with engineer members and the rules that route requests into it.

    A queue matches a ticket when every rule it sets matches (an empty rule matches anything).
    Queues are tried in `order`; the default queue catches what no other queue takes.
    """

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(Engineer, related_name="chat_queues", blank=True)
    is_default = models.BooleanField(default=False)
    order = models.PositiveSmallIntegerField(default=100, help_text="Lower numbers are tried first.")
    companies = models.ManyToManyField(Company, blank=True, help_text="Route these companies' tickets here.")
    boards = models.ManyToManyField(Board, blank=True, help_text="Route tickets on these boards here.")
    priorities = models.JSONField(
        default=list, blank=True, help_text='Route tickets with these priorities here, e.g. ["high", "critical"].'
    )

    class Meta:
        ordering = ["order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_queue")
        ]

    def __str__(self):
        return self.name


DRAFT_MAX_LENGTH = 500  # the question typed while waiting, as the HUD's queue shows it


class ChatRequest(models.Model):
    """A wish to chat about one ticket: a client's request, or an engineer's invitation."""

    class Kind(models.TextChoices):
        CLIENT = "client", "Client request"
        INVITATION = "invitation", "Engineer invitation"

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        ANSWERED = "answered", "Answered"  # an engineer answered, or the client accepted an invitation
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"
        CALLBACK = "callback", "Callback requested"
        REJECTED = "rejected", "Rejected"

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.CLIENT)
    state = models.CharField(max_length=12, choices=State.choices, default=State.WAITING)
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="chat_requests")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="chat_requests")
    queue = models.ForeignKey(ChatQueue, on_delete=models.PROTECT, null=True, blank=True, related_name="requests")
    invited_by = models.ForeignKey(
        Engineer, on_delete=models.SET_NULL, null=True, blank=True, related_name="sent_invitations"
    )
    offered_to = models.ForeignKey(
        Engineer,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="offered_requests",
        help_text="The ticket's engineer, who sees the request alone until offer_until.",
    )
    offer_until = models.DateTimeField(null=True, blank=True)
    offer_released = models.BooleanField(default=False)
    answered_by = models.ForeignKey(
        Engineer, on_delete=models.SET_NULL, null=True, blank=True, related_name="answered_requests"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Back in the queue because the last engineer left its room: the room stays open with its
    # history, and whoever answers joins it (services.return_to_queue).
    returned_at = models.DateTimeField(null=True, blank=True)
    left_by = models.ForeignKey(
        Engineer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="Who left it."
    )
    nobody_available = models.BooleanField(
        default=False, help_text="No engineer who could take it is online, available and under their limit."
    )
    draft = models.CharField(
        max_length=DRAFT_MAX_LENGTH, blank=True, help_text="What the client is typing while waiting."
    )

    class Meta:
        ordering = ["requested_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "kind"], condition=Q(state="waiting"), name="one_waiting_request_per_contact"
            ),
        ]
        indexes = [models.Index(fields=["state", "expires_at"]), models.Index(fields=["state", "queue"])]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} on ticket #{self.ticket_id} ({self.state})"

    @property
    def is_waiting(self) -> bool:
        return self.state == self.State.WAITING

    @property
    def is_returning(self) -> bool:
        """Return whether it waits again, in the room its last engineer left."""
        return self.state == self.State.WAITING and self.returned_at is not None

    @property
    def offers_alternatives(self) -> bool:
        """Return whether the waiting client is offered a note or a callback now (returning, or nobody free)."""
        return self.state == self.State.WAITING and (self.returned_at is not None or self.nobody_available)


class ChatRoom(models.Model):
    """One chat session, bound to a ticket. A ticket's ended rooms are its chat history."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="chat_rooms")
    request = models.OneToOneField(ChatRequest, on_delete=models.PROTECT, related_name="room")
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    # The last sequence number handed out; bumped under a row lock, so seqs are gapless.
    last_seq = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["ticket", "state"])]

    def __str__(self):
        return f"Chat #{self.pk} on ticket #{self.ticket_id}"

    @property
    def is_active(self) -> bool:
        return self.state == self.State.ACTIVE

    @property
    def client(self):
        """Return the contact this chat is with: who asked for it, or who was invited to it.

        Not the ticket's contact: a colleague of the same company may chat about the ticket.
        Read it with select_related("request__contact__user").
        """
        return self.request.contact


class ChatParticipant(models.Model):
    """Someone's place in a room. `left_at` is empty while they are in it."""

    class Role(models.TextChoices):
        CLIENT = "client", "Client"
        ENGINEER = "engineer", "Engineer"

    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_participations")
    role = models.CharField(max_length=10, choices=Role.choices)
    display_name = models.CharField(max_length=150)
    joined_at = models.DateTimeField(auto_now_add=True)
    left_at = models.DateTimeField(null=True, blank=True)
    last_read_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["joined_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="one_participation_per_user")]
        indexes = [models.Index(fields=["user", "left_at"])]

    def __str__(self):
        return f"{self.display_name} in {self.room}"

    @property
    def is_present(self) -> bool:
        return self.left_at is None


class ChatMessage(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        SYSTEM = "system", "System"
        GREETING = "greeting", "Greeting"
        FAREWELL = "farewell", "Farewell"

    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="chat_messages"
    )
    author_name = models.CharField(max_length=150, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TEXT)
    body = models.TextField()
    client_msg_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="unique_room_seq"),
            models.UniqueConstraint(
                fields=["room", "author", "client_msg_id"], condition=~Q(client_msg_id=""), name="unique_client_msg_id"
            ),
        ]

    def __str__(self):
        return f"{self.room} #{self.seq}"


class RoomInvitation(models.Model):
    """An engineer asked into a room by another (an invite, or a hand-over)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"

    room = models.ForeignKey(ChatRoom, on_delete=models.CASCADE, related_name="invitations")
    engineer = models.ForeignKey(Engineer, on_delete=models.CASCADE, related_name="room_invitations")
    invited_by = models.ForeignKey(Engineer, on_delete=models.CASCADE, related_name="+")
    transfer = models.BooleanField(default=False, help_text="The inviter leaves once this is accepted.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "engineer"], condition=Q(state="pending"), name="one_pending_invitation"
            )
        ]

    def __str__(self):
        return f"{self.engineer} invited to {self.room}"


class MessageTemplate(models.Model):
    """A greeting or farewell. Global when it has no owner; otherwise one engineer's own.

    Placeholders: {client_first_name}, {engineer_name}, {ticket_number}.
    """

    class Kind(models.TextChoices):
        GREETING = "greeting", "Greeting"
        FAREWELL = "farewell", "Farewell"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=100)
    body = models.TextField()
    owner = models.ForeignKey(Engineer, on_delete=models.CASCADE, null=True, blank=True, related_name="templates")

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.name}"
