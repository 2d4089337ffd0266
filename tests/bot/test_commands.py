"""Pure parsing of chat commands and button data."""

from __future__ import annotations

import pytest

from bot.commands import (
    CancelDeclined,
    CancelRequest,
    CompareRequest,
    HelpRequest,
    JobsRequest,
    LogsRequest,
    PlotRequest,
    ReleaseRequest,
    ResultsRequest,
    ResumeRequest,
    RuntimeRequest,
    StatusRequest,
    StopEarlyDeclined,
    StopEarlyRequest,
    SubmitRequest,
    UsageRequest,
    Verb,
    button_data,
    command_name,
    named_jobs,
    parse_button,
    parse_command,
    release_data,
)
from bot.errors import UsageError
from workers.jobs import Action
from workers.kinds.registry import default_registry

REG = default_registry()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", HelpRequest(welcome=True)),
        ("/help", HelpRequest()),
        ("/help train", HelpRequest(topic="train")),
        ("/help /logs", HelpRequest(topic="logs")),
        ("/jobs", JobsRequest()),
        ("/jobs 5", JobsRequest(5)),
        ("/jobs all", JobsRequest(everyone=True)),
        ("/jobs ALL 7", JobsRequest(7, everyone=True)),
        ("/usage", UsageRequest()),
        ("/status 12", StatusRequest(12)),
        ("/status #12", StatusRequest(12)),
        ("/Status@colabot_bot job:12", StatusRequest(12)),
        ("/logs 3", LogsRequest(3)),
        ("/logs 3 200", LogsRequest(3, 200)),
        ("/cancel 4", CancelRequest(4)),
        ("/stop 4", StopEarlyRequest(4)),
        ("/stop #4", StopEarlyRequest(4)),
        ("/plot 4", PlotRequest(4)),
        ("/results 4", ResultsRequest(4)),
        ("/compare 3 #12", CompareRequest(3, 12)),
        ("/compare job:12 3", CompareRequest(12, 3)),
        ("/resume 4", ResumeRequest(4)),
        ("/runtime", RuntimeRequest()),
        ("/train selftest", SubmitRequest(Action.TRAIN, "selftest")),
        (
            "/train SELFTEST data.txt steps=3 fail=yes",
            SubmitRequest(
                Action.TRAIN, "selftest", {"input": "data.txt"}, {"steps": "3", "fail": "yes"}
            ),
        ),
        (
            '/train selftest "my data/file one.txt"',
            SubmitRequest(Action.TRAIN, "selftest", {"input": "my data/file one.txt"}),
        ),
        (
            "/train selftest input=https://x.org/a?b=c",
            SubmitRequest(Action.TRAIN, "selftest", {"input": "https://x.org/a?b=c"}),
        ),
        (
            "/train selftest https://x.org/a?b=c",
            SubmitRequest(Action.TRAIN, "selftest", {"input": "https://x.org/a?b=c"}),
        ),
        (
            "/infer selftest 3 data.txt",
            SubmitRequest(Action.INFER, "selftest", {"model": "3", "input": "data.txt"}),
        ),
    ],
)
def test_commands_parse(text: str, expected: object) -> None:
    assert parse_command(text, REG) == expected


def test_an_attached_document_fills_the_first_free_input() -> None:
    request = parse_command("/infer selftest 3", REG, has_document=True)
    assert request == SubmitRequest(
        Action.INFER, "selftest", {"model": "3"}, {}, document_slot="input"
    )


@pytest.mark.parametrize(
    ("text", "problem", "usage"),
    [
        ("hello", "not a command", "/help"),
        ("/frobnicate", "unknown command /frobnicate", "/help lists the commands"),
        ("/status", "/status needs a job id", "/status <job id>"),
        ("/status abc", "'abc' is not a job id", "/status <job id>"),
        ("/status 1 2", "takes one job id", "/status <job id>"),
        ("/status -3", "'-3' is not a job id", "/status <job id>"),
        ("/logs", "needs a job id", "/logs <job id> [lines]"),
        ("/logs 1 lots", "not a line count", "/logs <job id> [lines]"),
        ("/logs 1 0", "not a line count", "/logs <job id> [lines]"),
        ("/jobs many", "not a count", "/jobs [all] [how many]"),
        ("/jobs all 3 4", "at most one number", "/jobs [all] [how many]"),
        ("/usage me", "takes nothing", "/usage"),
        ("/runtime now", "takes no arguments", "/runtime"),
        ("/train", "needs a job kind (", "/train <kind> <input> [key=value ...]"),
        ("/train nope x", "unknown kind 'nope'", "/train <kind> <input> [key=value ...]"),
        ("/train selftest a b", "too many arguments: b", "/train selftest [input]"),
        ("/train selftest steps=", "steps= needs a value", "/train selftest [input]"),
        ("/train selftest steps=1 steps=2", "steps is given twice", "/train selftest"),
        ('/train selftest "unclosed', "could not read the command", "/train"),
        ("/help a b", "at most one topic", "/help [command or kind]"),
        ("/compare", "/compare takes two job ids, got 0", "/compare <job id> <job id>"),
        ("/compare 3", "/compare takes two job ids, got 1", "/compare <job id> <job id>"),
        ("/compare 3 4 5", "/compare takes two job ids, got 3", "/compare <job id> <job id>"),
        ("/compare 3 x", "'x' is not a job id", "/compare <job id> <job id>"),
        ("/compare 3 #3", "name two different jobs", "/compare <job id> <job id>"),
    ],
)
def test_malformed_commands_explain_and_show_usage(text: str, problem: str, usage: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_command(text, REG)
    assert problem in caught.value.problem
    assert caught.value.usage.startswith(usage)


def test_a_document_is_refused_when_every_input_is_named() -> None:
    with pytest.raises(UsageError, match="attached file would be unused"):
        parse_command("/train selftest data.txt", REG, has_document=True)


def test_command_name() -> None:
    assert command_name("/Logs@bot 1") == "logs"
    assert command_name("logs") == ""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (button_data(Verb.STATUS, 3), StatusRequest(3)),
        (button_data(Verb.LOGS, 3), LogsRequest(3)),
        (button_data(Verb.CANCEL, 3), CancelRequest(3)),
        (button_data(Verb.CANCEL_CONFIRMED, 3), CancelRequest(3, confirmed=True)),
        (release_data(True), ReleaseRequest(True)),
        ("cy:3", CancelRequest(3, confirmed=True)),
        ("cn:3", CancelDeclined(3)),
        ("rs:3", ResumeRequest(3)),
        (button_data(Verb.STOP_EARLY, 3), StopEarlyRequest(3)),
        ("sy:3", StopEarlyRequest(3, confirmed=True)),
        ("sn:3", StopEarlyDeclined(3)),
        ("rr:3", ResultsRequest(3)),
        ("rl:yes", ReleaseRequest(True)),
        ("rl:no", ReleaseRequest(False)),
    ],
)
def test_buttons_parse(data: str, expected: object) -> None:
    assert parse_button(data) == expected


@pytest.mark.parametrize(
    "data", ["", "zz:1", "st:", "st:abc", "st:1:2", "x" * 64, "st:-1", "rl:maybe", "rl:1"]
)
def test_bad_button_data_is_refused(data: str) -> None:
    with pytest.raises(UsageError, match="not valid any more"):
        parse_button(data)


def test_button_data_fits_telegrams_limit() -> None:
    longest = max(len(verb.value) for verb in Verb)
    assert all(len(button_data(verb, 10**12 - 1).encode()) <= 64 for verb in Verb)
    assert longest <= 2


def test_the_jobs_a_request_names_are_the_ones_their_owners_guard() -> None:
    assert named_jobs(parse_command("/status 7", REG)) == (7,)
    assert named_jobs(parse_command("/compare 3 4", REG)) == (3, 4)
    assert named_jobs(parse_button(button_data(Verb.CANCEL, 9))) == (9,)
    assert named_jobs(parse_command("/jobs all", REG)) == ()
    assert named_jobs(parse_command("/train selftest", REG)) == ()
