"""Following a job: its new events, oldest first, read from pages that come newest first.

The events route lists newest first with an ``after`` cursor that goes back in time (as
OpenAI's does). Each poll reads pages until it reaches an event it has yielded already.
"""

from __future__ import annotations

from tuneserve_client.models import EventList, EventPublic

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
PAGE_SIZE = 100  # the most the route gives per page


def sequence(event: EventPublic) -> int:
    return int(event.id.rsplit("-", 1)[-1])  # ids are ``ftevent-<seq>``


class EventCursor:
    def __init__(self) -> None:
        self.last_seen = 0
        self._new: list[EventPublic] = []

    def take(self, page: EventList) -> str | None:
        """Keep the page's unseen events; the ``after`` of the next older page to read,
        or None when this poll has reached what was seen before."""
        fresh = [event for event in page.data if sequence(event) > self.last_seen]
        self._new.extend(fresh)
        if page.has_more and fresh and len(fresh) == len(page.data):
            return page.data[-1].id
        return None

    def drain(self) -> list[EventPublic]:
        """This poll's new events, oldest first."""
        events, self._new = sorted(self._new, key=sequence), []
        if events:
            self.last_seen = sequence(events[-1])
        return events
