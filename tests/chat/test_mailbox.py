"""A socket's mailbox (chat/sockets/frames.py): its worker takes frames and events in the order they came."""

import asyncio

from chat.sockets.frames import Mailbox


async def test_items_come_out_in_the_order_they_went_in_and_a_get_waits_for_one():
    box = Mailbox()
    taken = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert not taken.done()  # nothing yet: it waits
    box.put_nowait("first")
    box.put_nowait("second")
    assert await taken == "first"
    assert await box.get() == "second"


async def test_a_get_given_up_leaves_the_next_put_for_the_next_get():
    box = Mailbox()
    given_up = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    given_up.cancel()
    await asyncio.gather(given_up, return_exceptions=True)
    box.put_nowait("kept")
    assert await asyncio.wait_for(box.get(), 1) == "kept"
