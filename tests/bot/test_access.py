"""AccessPolicy on its own: the guard's verdict for allowed users and strangers, in private
chats and in groups, and which chats colabot serves at all."""

from __future__ import annotations

import pytest

from bot.access import AccessPolicy, Verdict

ADA, BEN, STRANGER = 11, 12, 99
LAB = -1001  # a group opted in with telegram.allowed_chats
OTHER = -1002  # a group that was not

POLICY = AccessPolicy(users=frozenset({ADA, BEN}), groups=frozenset({LAB}))


@pytest.mark.parametrize(
    ("user", "chat", "chat_type", "verdict"),
    [
        (ADA, ADA, "private", Verdict.ALLOW),
        (BEN, BEN, "private", Verdict.ALLOW),
        (ADA, LAB, "group", Verdict.ALLOW),
        (ADA, LAB, "supergroup", Verdict.ALLOW),
        # An allowed user in a chat that is not theirs, or in a group not opted in.
        (ADA, BEN, "private", Verdict.CHAT_NOT_ALLOWED),
        (ADA, LAB, "private", Verdict.CHAT_NOT_ALLOWED),
        (ADA, OTHER, "group", Verdict.CHAT_NOT_ALLOWED),
        (ADA, OTHER, "supergroup", Verdict.CHAT_NOT_ALLOWED),
        (ADA, ADA, "group", Verdict.CHAT_NOT_ALLOWED),
        (ADA, None, "private", Verdict.CHAT_NOT_ALLOWED),
        # Strangers, wherever they write, even in an opted-in group.
        (STRANGER, STRANGER, "private", Verdict.STRANGER),
        (STRANGER, LAB, "supergroup", Verdict.STRANGER),
        (STRANGER, None, None, Verdict.STRANGER),
        (None, LAB, "group", Verdict.STRANGER),
        (None, ADA, "private", Verdict.STRANGER),
    ],
)
def test_the_verdict_for_each_user_and_chat(
    user: int | None, chat: int | None, chat_type: str | None, verdict: Verdict
) -> None:
    assert POLICY.verdict(user, chat, chat_type) is verdict


def test_without_groups_an_allowed_user_is_answered_in_their_private_chat_only() -> None:
    private_only = AccessPolicy(users=frozenset({ADA}))
    assert private_only.verdict(ADA, ADA, "private") is Verdict.ALLOW
    assert private_only.verdict(ADA, LAB, "group") is Verdict.CHAT_NOT_ALLOWED
    assert private_only.verdict(ADA, LAB, "supergroup") is Verdict.CHAT_NOT_ALLOWED
    assert not private_only.serves(LAB, "supergroup")


def test_nobody_is_allowed_by_a_policy_without_users() -> None:
    nobody = AccessPolicy(users=frozenset(), groups=frozenset({LAB}))
    assert nobody.verdict(ADA, ADA, "private") is Verdict.STRANGER
    assert nobody.verdict(ADA, LAB, "group") is Verdict.STRANGER


@pytest.mark.parametrize(
    ("chat", "chat_type", "served"),
    [
        (ADA, "private", True),
        (BEN, "private", True),
        (LAB, "group", True),
        (LAB, "supergroup", True),
        (STRANGER, "private", False),
        (OTHER, "group", False),
        (OTHER, "supergroup", False),
        (LAB, "private", False),  # a private chat counts only as an allowed user's own
        (ADA, "group", False),  # a group counts only when it is opted in
        (None, "private", False),
        (None, None, False),
    ],
)
def test_which_chats_colabot_serves(chat: int | None, chat_type: str | None, served: bool) -> None:
    assert POLICY.serves(chat, chat_type) is served


def test_the_verdicts_read_as_the_logs_show_them() -> None:
    assert [str(v) for v in Verdict] == ["allow", "stranger", "chat not allowed"]
