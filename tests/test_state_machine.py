"""A hypothesis state machine drives acquire / release / close / expire / external close against a model."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from asynctools import SessionRegistry

URLS = {"a": "http://a.example", "b": "https://b.example", "c": "http://c.example:8080"}


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.registry = SessionRegistry(idle_timeout=3600, max_idle=10)
        self.current: dict[str, aiohttp.ClientSession] = {}  # the session the model expects per key
        self.held: list[aiohttp.ClientSession] = []  # one item per acquisition not yet released
        self.created = 0

    def run(self, coro: Any) -> Any:
        async def settled() -> Any:
            result = await coro
            pool = self.registry._pools.get(self.loop)
            for _ in range(3):  # idle at the end of the tick; closing tasks run to the end
                await asyncio.sleep(0)
            if pool is not None:
                await pool._closer.wait()
            return result

        return self.loop.run_until_complete(settled())

    @rule(key=st.sampled_from(sorted(URLS)))
    def acquire(self, key: str) -> None:
        session = self.run(self.registry.acquire(URLS[key]))
        expected = self.current.get(key)
        if expected is None or expected.closed:
            assert session is not expected and not session.closed
            self.current[key] = session
            self.created += 1
        else:
            assert session is expected
        self.held.append(session)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        session = data.draw(st.sampled_from(self.held))
        self.held.remove(session)
        self.run(self.registry.release(session))

    @rule(key=st.sampled_from(sorted(URLS)))
    def release_too_often(self, key: str) -> None:
        session = self.current.get(key)
        if session is None or session in self.held:
            return
        before = self.run(self._stats())
        try:
            self.run(self.registry.release(session))
        except ValueError as exc:
            assert "more times than it was acquired" in str(exc)
        else:
            raise AssertionError("a session with no user was released without error")
        assert self.run(self._stats()) == before

    @precondition(lambda self: self.current)
    @rule(data=st.data())
    def close_behind_its_back(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.current)))
        self.run(self.current[key].close())

    @rule()
    def expire(self) -> None:
        pool = self.registry._pools.get(self.loop)
        if pool is not None and pool._idle is not None:
            pool._idle.expire(self.loop.time() + 10**6)
            self.run(asyncio.sleep(0))
        for key, session in list(self.current.items()):
            if session not in self.held:
                assert session.closed  # idle: expired and closed
                del self.current[key]

    @rule()
    def close(self) -> None:
        self.run(self.registry.close())
        assert all(session.closed for session in [*self.current.values(), *self.held])
        self.current.clear()
        self.created = 0

    async def _stats(self) -> Any:
        return self.registry.stats()

    @invariant()
    def counts_match_the_model(self) -> None:
        stats = self.run(self._stats())
        holders = Counter(self.held)
        open_ = {s for s in self.current.values() if not s.closed}
        assert stats.open == len(open_)
        assert stats.in_use == sum(1 for s in open_ if holders[s])
        assert stats.idle == sum(1 for s in open_ if not holders[s])
        assert stats.created == self.created
        users = sorted(s.users for s in stats.sessions if s.users)
        live = (
            {s for s in holders if s in self.registry._pools.get(self.loop, {})._entries}  # type: ignore[union-attr]
            if stats.sessions
            else set()
        )
        assert users == sorted(holders[s] for s in live)

    def teardown(self) -> None:
        for session in self.held:
            self.run(self.registry.release(session))
        self.run(self.registry.close())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


RegistryMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_registry_state_machine = RegistryMachine.TestCase
