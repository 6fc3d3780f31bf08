"""The replica's building blocks on their own: the batcher, length packing and the
resident-version LRU."""

from __future__ import annotations

import asyncio

import pytest
from tuneserve.errors import InvalidRequest
from tuneserve.serving.batcher import Batcher
from tuneserve.serving.packing import by_length
from tuneserve.serving.resident import Resident, ResidentModels


def test_a_lone_request_never_waits_for_a_batch():
    calls = []

    async def run_batch(items):
        calls.append(list(items))
        return [item * 2 for item in items]

    async def main():
        batcher = Batcher(run_batch, max_batch_size=8, wait_s=30.0)  # a wait it must not pay
        return await asyncio.wait_for(batcher.submit([1, 2]), timeout=5)

    assert asyncio.run(main()) == [2, 4]
    assert calls == [[1, 2]]


def test_queued_requests_share_a_batch_and_a_bad_one_fails_alone():
    batches = []

    async def run_batch(items):
        batches.append(list(items))
        await asyncio.sleep(0.01)  # the model is busy: others queue meanwhile
        if "bad" in items:
            raise InvalidRequest("bad item", param="inputs")
        return [f"ok:{item}" for item in items]

    async def check(requests):  # what a failed batch asks: which requests fail alone
        return [InvalidRequest("bad item") if "bad" in items else None for items in requests]

    async def main():
        batcher = Batcher(run_batch, max_batch_size=4, check=check)
        return await asyncio.gather(
            *(batcher.submit([name]) for name in ("a", "b", "bad", "c", "d")),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert results[:2] == [["ok:a"], ["ok:b"]] and results[3:] == [["ok:c"], ["ok:d"]]
    assert isinstance(results[2], InvalidRequest)
    assert max(len(batch) for batch in batches) > 1
    assert all(len(batch) <= 4 for batch in batches)
    failed = next(batch for batch in batches if "bad" in batch)
    rerun = [item for item in failed if item != "bad"]
    assert batches.count(rerun) == 1 and len(batches) == 3  # the rest ran once, together


def test_resident_versions_are_an_lru_that_keeps_pinned_ones():
    loads = []

    async def load(key):
        loads.append(key)
        await asyncio.sleep(0.01)
        return Resident(key=key, handler=object())

    evicted = []

    async def main():
        models = ResidentModels(capacity=2, load=load, on_evict=lambda r: evicted.append(r.key))
        models.pinned.add(("m", 1))
        first = await asyncio.gather(models.get(("m", 1)), models.get(("m", 1)))
        assert first[0] is first[1]  # one load shared by concurrent callers
        for version in (2, 3, 4):
            await models.get(("m", version))
        return [resident.key for resident in models.loaded()]

    assert asyncio.run(main()) == [("m", 1), ("m", 4)]
    assert loads.count(("m", 1)) == 1
    assert evicted == [("m", 2), ("m", 3)]  # told, so the replica's gauge drops them


@pytest.mark.parametrize("capacity", [1, 3])
def test_capacity_bounds_unpinned_versions(capacity):
    async def load(key):
        return Resident(key=key, handler=None)

    async def main():
        models = ResidentModels(capacity=capacity, load=load)
        for version in range(1, 6):
            await models.get(("m", version))
        return len(models.loaded())

    assert asyncio.run(main()) == capacity


def test_packing_sorts_by_length_and_keeps_each_group_within_the_budget():
    lengths = [30, 3, 12, 4, 200, 5, 11]
    groups = by_length(lengths, token_budget=40)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    assert groups == [[1, 3, 5], [6, 2], [0], [4]]  # 3,4,5 | 11,12 | 30 | 200 alone
    for group in groups[:-1]:
        assert max(lengths[i] for i in group) * len(group) <= 40
