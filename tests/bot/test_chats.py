"""ChatBook on a real store: an ordinary message from a chat already met costs no write,
however many chats take turns; a chat pushed out of the list kept, or forgotten, is met
again."""

from __future__ import annotations

from pathlib import Path

from bot.access import AccessPolicy
from bot.chats import MAX_KNOWN_CHATS, ChatBook
from workers.store.database import Store

PEOPLE = tuple(range(1, 11))


class CountingStore(Store):
    """The real store, counting how often a chat is written as met."""

    meetings = 0

    def meet_chat(self, chat_id: int, *, keep: int, now: float | None = None) -> None:
        self.meetings += 1
        super().meet_chat(chat_id, keep=keep, now=now)


def book(tmp_path: Path) -> tuple[ChatBook, CountingStore]:
    store = CountingStore(tmp_path / "data")
    return ChatBook(store, AccessPolicy(users=frozenset(PEOPLE))), store


def test_chats_taking_turns_are_written_once_each(tmp_path: Path) -> None:
    chats, store = book(tmp_path)
    for _ in range(5):
        for person in PEOPLE:
            chats.met(person)
    assert store.meetings == len(PEOPLE)
    assert sorted(chats.known()) == list(PEOPLE)
    store.close()


def test_a_chat_pushed_out_or_forgotten_is_met_again(tmp_path: Path) -> None:
    chats, store = book(tmp_path)
    for chat in range(1, MAX_KNOWN_CHATS + 2):
        chats.met(chat)
    assert 1 not in chats.known(), "the oldest chat is pushed out of the list kept"
    chats.met(1)
    chats.forget(2, "bot was blocked by the user")
    chats.met(2)
    assert store.meetings == MAX_KNOWN_CHATS + 3
    assert {1, 2} <= set(chats.known())
    store.close()


def test_chats_met_before_a_restart_need_no_write(tmp_path: Path) -> None:
    chats, store = book(tmp_path)
    for person in PEOPLE[:2]:
        chats.met(person)
    store.close()
    again, reopened = book(tmp_path)
    for person in PEOPLE[:3]:
        again.met(person)
    assert reopened.meetings == 1, "only the chat never met before is written"
    reopened.close()
