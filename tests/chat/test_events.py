"""Publishing after commit, and `call_service`: sockets' services publish from the event loop.

A daphne process runs every ORM call in one database thread, so that thread must never wait on
the channel layer. These tests hold the rule to account: under `call_service` the sync publish
path is never taken, events still go out in commit order, and the events of transactions that
committed go out even when the service raises afterwards.
"""

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from deskchat import events

pytestmark = pytest.mark.django_db(transaction=True)


async def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


def commit_two_then_fail():
    with transaction.atomic():
        events.publish_on_commit("test.events", {"type": "first"})
    with transaction.atomic():
        events.publish_on_commit("test.events", {"type": "second"})
    with transaction.atomic():
        events.publish_on_commit("test.events", {"type": "rolled.back"})
        raise ValueError("late failure")


async def test_call_service_publishes_from_the_loop_in_commit_order_even_when_the_service_raises(monkeypatch):
    channel = await listen("test.events")
    sync_sends = []
    monkeypatch.setattr(events, "publish", lambda group, event: sync_sends.append(event))

    with pytest.raises(ValueError, match="late failure"):
        await events.call_service(commit_two_then_fail)

    layer = get_channel_layer()
    assert (await layer.receive(channel))["type"] == "first"
    assert (await layer.receive(channel))["type"] == "second"
    assert sync_sends == []  # the database thread sent nothing itself

    # The thread holds nothing back afterwards: a plain call there publishes at commit again.
    await database_sync_to_async(events.publish_on_commit)("test.events", {"type": "plain"})
    assert [event["type"] for event in sync_sends] == ["plain"]


def test_outside_call_service_events_go_out_at_commit(monkeypatch):
    sent = []
    monkeypatch.setattr(events, "publish", lambda group, event: sent.append(event["type"]))
    with transaction.atomic():
        events.publish_on_commit("test.events", {"type": "now"})
        assert sent == []
    assert sent == ["now"]


async def test_a_failed_send_from_the_loop_is_kept_for_the_sweeper_to_resend(monkeypatch):
    layer = get_channel_layer()

    async def broken_send(group, event):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(layer, "group_send", broken_send)
    events._failed.clear()
    await events.call_service(lambda: events.publish_on_commit("test.events", {"type": "chat.message"}))
    assert [item[:2] for item in events._failed] == [["test.events", {"type": "chat.message"}]]
    events._failed.clear()
