"""Reads that decide who is told of a request: presence, the chat limit, and queue visibility."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Engineer
from chat import selectors, services
from chat.errors import ChatError
from chat.models import ChatRequest

pytestmark = pytest.mark.django_db


def seen(engineer: Engineer, seconds_ago: float) -> Engineer:
    Engineer.objects.filter(pk=engineer.pk).update(last_seen_at=timezone.now() - timedelta(seconds=seconds_ago))
    engineer.refresh_from_db()
    return engineer


def open_chat(desk, n: int):
    """Open a chat of Carol's (0) or her colleague Nina's (1) with Dana."""
    contact, ticket = [(desk.contact, desk.ticket), (desk.colleague, desk.colleague_ticket)][n]
    request = services.request_chat(contact=contact, ticket=ticket)
    return services.answer_request(engineer=desk.dana, request_id=request.pk)


class TestPresence:
    def test_an_engineer_never_seen_is_offline(self, desk):
        """No HUD socket has ever refreshed Dana: she is offline whatever her availability says."""
        assert desk.dana.availability == "available"
        assert not selectors.is_online(desk.dana)
        assert not selectors.is_alertable(desk.dana)

    def test_an_engineer_counts_as_online_until_the_presence_timeout(self, desk, settings):
        """Seen within CHAT_PRESENCE_TIMEOUT_SECONDS is online; longer ago is offline."""
        settings.CHAT_PRESENCE_TIMEOUT_SECONDS = 90
        assert selectors.is_online(seen(desk.dana, 89))
        assert not selectors.is_online(seen(desk.dana, 91))
        settings.CHAT_PRESENCE_TIMEOUT_SECONDS = 120
        assert selectors.is_online(seen(desk.dana, 91))

    @pytest.mark.parametrize("availability", ["busy", "away"])
    def test_an_online_engineer_who_is_busy_or_away_is_not_alerted(self, desk, availability):
        Engineer.objects.filter(pk=desk.dana.pk).update(availability=availability)
        assert not selectors.is_alertable(seen(desk.dana, 0))


class TestChatLimit:
    def test_an_engineer_is_alerted_only_below_their_limit(self, desk):
        """With a limit of 2, Dana is alerted with 0 and 1 open chats and not with 2."""
        Engineer.objects.filter(pk=desk.dana.pk).update(max_concurrent_chats=2)
        dana = seen(desk.dana, 0)
        assert selectors.is_alertable(dana)
        open_chat(desk, 0)
        assert selectors.open_session_count(dana) == 1 and selectors.is_alertable(dana)
        open_chat(desk, 1)
        assert selectors.open_session_count(dana) == 2 and not selectors.is_alertable(dana)

    def test_the_site_default_limit_applies_when_the_engineer_has_none(self, desk, settings):
        settings.CHAT_DEFAULT_MAX_CONCURRENT = 1
        dana = seen(desk.dana, 0)
        assert dana.max_concurrent_chats is None and selectors.is_alertable(dana)
        open_chat(desk, 0)
        assert not selectors.is_alertable(dana)

    def test_chats_left_or_ended_do_not_count_toward_the_limit(self, desk):
        """Only active rooms Dana is still in count: leaving one or its end frees her up."""
        Engineer.objects.filter(pk=desk.dana.pk).update(max_concurrent_chats=1)
        dana = seen(desk.dana, 0)
        left = open_chat(desk, 0)
        services.leave_room(room_id=left.pk, user=dana.user)  # the client stays; Dana is out
        assert selectors.open_session_count(dana) == 0 and selectors.is_alertable(dana)
        ended = open_chat(desk, 1)
        assert not selectors.is_alertable(dana)
        services.end_room(room_id=ended.pk, engineer=dana)
        assert selectors.is_alertable(dana)


class TestQueueVisibility:
    def test_a_request_past_its_deadline_is_no_longer_listed(self, desk):
        """A due request that no sweeper has expired yet is already gone from the HUD's queue."""
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert list(selectors.queue_summary(engineer=desk.dana)["requests"]) == [request]
        ChatRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert list(selectors.queue_summary(engineer=desk.dana)["requests"]) == []

    def test_only_members_of_the_routed_queue_see_a_request(self, f, desk):
        outsider = f.make_engineer(display_name="Nick", queues=[f.make_queue(name="Network")])
        request = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        assert list(selectors.queue_summary(engineer=outsider)["requests"]) == []
        with pytest.raises(ChatError) as refused:
            selectors.get_request_for_engineer(engineer=outsider, request_id=request.pk)
        assert refused.value.code == "not_found"

    def test_the_queue_summary_counts_and_flags_overdue_requests(self, desk, settings):
        """A request waiting CHAT_QUEUE_ALERT_SECONDS or longer is overdue; the summary says so."""
        settings.CHAT_QUEUE_ALERT_SECONDS = 30
        old = services.request_chat(contact=desk.contact, ticket=desk.ticket)
        services.request_chat(contact=desk.colleague, ticket=desk.colleague_ticket)
        ChatRequest.objects.filter(pk=old.pk).update(requested_at=timezone.now() - timedelta(seconds=31))
        summary = selectors.queue_summary(engineer=desk.dana)
        assert summary["count"] == 2 and summary["overdue"] and summary["longest_wait"] >= 31
        assert [r.overdue for r in summary["requests"]] == [True, False]
