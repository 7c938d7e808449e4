from __future__ import annotations

import asyncio

import pytest

from inference.admission import Admission
from p2.core.openai import QueueFull


async def test_waiters_are_served_in_arrival_order() -> None:
    gate = Admission(slots=1, max_queue=5)
    order: list[int] = []
    await gate.acquire()

    async def worker(n: int) -> None:
        await gate.acquire()
        order.append(n)
        gate.release()

    tasks = [asyncio.create_task(worker(n)) for n in range(4)]
    await asyncio.sleep(0)
    assert gate.waiting == 4
    gate.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


async def test_full_queue_refuses_immediately() -> None:
    gate = Admission(slots=1, max_queue=1)
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await gate.acquire()
    gate.release()
    await waiter
    assert gate.in_use == 1


async def test_cancelled_waiter_leaves_the_queue_and_loses_no_slot() -> None:
    gate = Admission(slots=1, max_queue=2)
    await gate.acquire()
    leaver = asyncio.create_task(gate.acquire())
    stayer = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    leaver.cancel()
    await asyncio.sleep(0)
    assert gate.waiting == 1
    gate.release()
    await stayer
    gate.release()
    assert gate.in_use == 0
    await asyncio.wait_for(gate.acquire(), 1)  # the slot came back


async def test_a_request_for_n_choices_waits_for_n_slots_in_turn() -> None:
    gate = Admission(slots=4, max_queue=4)
    await gate.acquire(3)
    wide = asyncio.create_task(gate.acquire(2))  # needs 2, only 1 free: waits
    narrow = asyncio.create_task(gate.acquire(1))  # behind it, although 1 is free
    await asyncio.sleep(0)
    assert not wide.done() and not narrow.done()
    gate.release(3)
    await asyncio.gather(wide, narrow)
    assert gate.in_use == 2
