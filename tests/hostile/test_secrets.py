"""Secrets stay secret: in job output, logs, chat texts, error messages and at start-up.

A job that prints colabot's own environment (a spaCy project may run any code) is the
attack the redaction on the log path exists for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import notebook
from bot.config import Config, parse_config
from bot.errors import ConfigError
from bot.service import Colabot
from tests.emulator.faults import FaultyBotApi
from tests.helpers.chat import STRANGER, USER, Person, secret_of
from tests.helpers.cli import colabot_env, finish_cli, start_cli, stop_cli
from tests.loopback.http_server import serve_on_loopback
from workers.inputs.netpolicy import FetchPolicy
from workers.safety.redaction import Redactor

# A well-formed token for the tests that need no Bot API (the emulator's is ``emu.token``).
SAMPLE_TOKEN = "123456:TESTtokenTESTtokenTEST12"
SAMPLE_SECRET = SAMPLE_TOKEN.split(":")[1]

PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "kKmXb1Zq8pHfQ2x3LMnR\n-----END PRIVATE KEY-----\n"
)

LEAK_PY = """
import os, urllib.parse
pid = os.getpid()
for _ in range(6):  # walk up to colabot, reading every ancestor's environment
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    if pid <= 1:
        break
    for entry in open(f"/proc/{pid}/environ", "rb").read().split(b"\\0"):
        if entry.startswith(b"COLABOT_TELEGRAM_TOKEN="):
            line = entry.decode()
            token = line.split("=", 1)[1]
            print(line, flush=True)
            print("url: https://api.telegram.org/bot" + token + "/getMe", flush=True)
            print("encoded: " + urllib.parse.quote(token, safe=""), flush=True)
            print("bare: " + token.split(":", 1)[1], flush=True)
print("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl", flush=True)
print(open("key.txt").read(), flush=True)
print("done leaking", flush=True)
"""

PROJECT_YML = """title: leak
workflows:
  all: [leak]
commands:
  - name: leak
    script:
      - "python scripts/leak.py"
"""


def leaking_project(folder: Path) -> Path:
    """A spaCy project whose one command prints every secret it can find."""
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "leak.py").write_text(LEAK_PY)
    (folder / "key.txt").write_text(PRIVATE_KEY)
    (folder / "project.yml").write_text(PROJECT_YML)
    return folder


def cli_settings(emu: FaultyBotApi, tmp_path: Path, **extra: str) -> dict[str, str]:
    return colabot_env(
        telegram_token=emu.token,
        telegram_api_url=emu.url,
        telegram_allowed_users=str(USER),
        worker_data_dir=str(tmp_path / "data"),
        worker_input_roots=str(tmp_path / "inputs"),
        results_dir=str(tmp_path / "results"),
        heartbeat_interval_minutes="0",
        **extra,
    )


async def test_a_job_printing_colabots_environment_leaks_nothing(
    emu: FaultyBotApi, tmp_path: Path
) -> None:
    project = leaking_project(tmp_path / "inputs" / "leak")
    process = await start_cli("run", env=cli_settings(emu, tmp_path))
    try:
        await emu.wait_until_polling(timeout=60)
        await emu.send_text(f"/train spacy {project}", user_id=USER)
        await emu.wait_for(lambda e: "finished" in (e.text or ""), chat_id=USER, timeout=120)
        await emu.send_text("/logs 1 200", user_id=USER)
        await emu.send_text("/status 1", user_id=USER)
        await emu.wait_for(lambda e: "Last " in (e.text or ""), chat_id=USER, timeout=20)
        await emu.wait_for(lambda e: "#1 spacy train: " in (e.text or ""), chat_id=USER)
    finally:
        code, stderr = await stop_cli(process)
    log = (tmp_path / "data" / "jobs" / "1" / "job.log").read_text()
    assert "COLABOT_TELEGRAM_TOKEN=123456:****" in log and "done leaking" in log
    assert "Authorization: Bearer ****" in log and "-----BEGIN PRIVATE KEY-----****" in log
    published = "".join(p.read_text() for p in (tmp_path / "results").rglob("*.log"))
    chat = " ".join((e.text or "") for e in emu.events)
    for place in (log, published, chat, stderr):
        assert secret_of(emu) not in place
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" not in place
        assert "c2VjcmV0" not in place
    assert code == 0
    print(log)


async def test_a_token_telegram_rejects_gives_one_masked_line(
    emu: FaultyBotApi, tmp_path: Path
) -> None:
    emu.inject_failure("getMe", 401, "Unauthorized", times=5)
    process = await start_cli("run", env=cli_settings(emu, tmp_path))
    code, stderr = await finish_cli(process)
    assert code == 1
    assert stderr.strip().splitlines() == [
        "config error: telegram.token: Telegram rejected the bot token: check it with @BotFather"
    ]
    assert "Traceback" not in stderr and secret_of(emu) not in stderr


async def test_the_notebook_raises_a_masked_error_for_a_rejected_token(
    emu: FaultyBotApi, chat_config: Config
) -> None:
    emu.inject_failure("getMe", 401, "Unauthorized", times=5)
    with pytest.raises(ConfigError) as raised:
        await notebook.start(chat_config)
    assert "Telegram rejected the bot token" in str(raised.value)
    secret = secret_of(emu)
    assert secret not in str(raised.value) and secret not in repr(raised.value.args)
    assert notebook.current() is None


def test_a_token_with_a_line_break_is_refused() -> None:
    with pytest.raises(ConfigError, match="has spaces or a line break around it"):
        parse_config(
            {},
            {"COLABOT_TELEGRAM_TOKEN": SAMPLE_TOKEN + "\n", "COLABOT_TELEGRAM_ALLOWED_USERS": "1"},
        )


async def test_nothing_a_stranger_sends_is_logged_even_when_verbose(
    emu: FaultyBotApi, tmp_path: Path
) -> None:
    process = await start_cli("run", "-v", env=cli_settings(emu, tmp_path))
    try:
        await emu.wait_until_polling(timeout=60)
        emu.add_chat(STRANGER, first_name="Mallory-Name")
        await emu.send_text("/train selftest STRANGER-WORDS", user_id=STRANGER)
        await emu.send_document(
            b"payload", "stranger-file.zip", caption="/train STRANGER-CAPTION", user_id=STRANGER
        )
        await emu.wait_for(kind="message", chat_id=STRANGER, timeout=30)
        await emu.send_text("/help", user_id=USER)
        await emu.wait_for(lambda e: "Commands" in (e.text or ""), chat_id=USER, timeout=30)
    finally:
        code, stderr = await stop_cli(process)
    assert code == 0 and f"refused an update from user {STRANGER}" in stderr
    for said in (
        "STRANGER-WORDS",
        "STRANGER-CAPTION",
        "stranger-file",
        "Mallory-Name",
        secret_of(emu),
    ):
        assert said not in stderr
    assert "DEBUG" in stderr, "verbose logging was on"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token 12:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw ok", "token 12:**** ok"),
        ("bot 7:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe", "bot 7:****/getMe"),
        ("q=123456%3AAAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw&x=1", "q=123456%3A****&x=1"),
        ("Authorization: Bearer ya29.abc-DEF_ghi", "Authorization: Bearer ****"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc", "-----BEGIN RSA PRIVATE KEY-----****"),
        (PRIVATE_KEY, "-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----\n"),
        ('{"refresh_token": "1//0gabcdef"}', '{"refresh_token": "****"}'),
        ("WANDB_API_KEY=0123456789abcdef", "WANDB_API_KEY=****"),
        (
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b",
        ),
        ("at 10:30:00 loss=0.25", "at 10:30:00 loss=0.25"),
    ],
)
def test_secret_shapes_are_masked_and_ordinary_text_is_not(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_known_secrets_are_masked_in_job_output_split_anywhere() -> None:
    redactor = Redactor()
    redactor.add("a-known-api-key-value-42")
    output = (
        b"first line\nkey a-known-api-key-value-42 and token "
        + b"55:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\n"
        + PRIVATE_KEY.encode()
        + b"tail"
    )
    for cut in range(1, len(output)):
        stream = redactor.stream()
        clean = stream.feed(output[:cut]) + stream.feed(output[cut:]) + stream.flush()
        assert b"a-known-api-key" not in clean and b"AAHdqTcv" not in clean
        assert b"MIIEvQIB" not in clean and b"kKmXb1Zq" not in clean
        assert clean.startswith(b"first line\nkey **** and token 55:****\n") and clean.endswith(
            b"tail"
        )


def test_the_log_filter_masks_records_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    from bot.logs import RedactingFilter

    logger = logging.getLogger("colabot.test.secrets")
    caplog.handler.addFilter(RedactingFilter())
    try:
        raise RuntimeError(f"failed calling https://api.telegram.org/bot{SAMPLE_TOKEN}/getMe")
    except RuntimeError:
        logger.exception("request to %s failed", f"/bot{SAMPLE_TOKEN}/x")
    assert SAMPLE_SECRET not in caplog.text and "123456:****" in caplog.text


# ------------------------------------------------- exception text in the database and the CLI


async def test_a_failure_whose_text_holds_a_secret_is_stored_and_shown_masked(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, emu: FaultyBotApi
) -> None:
    # A server whose answer quotes a secret of colabot's (a proxy echoing what it was sent):
    # the job's error carries it from the exception into the database and the chat.
    secret = secret_of(emu)

    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, reason=f"I hold {secret} for you", text="no")

    app = web.Application()
    app.router.add_get("/data.bin", teapot)
    runner, base = await serve_on_loopback(app)
    try:
        config = dataclasses.replace(
            chat_config, inputs=FetchPolicy(allow_private_addresses=True, timeout_seconds=5)
        )
        colabot: Colabot = await start_colabot(config)
        await person.say(f"/train selftest {base}/data.bin steps=1 delay=0")
        failed = await person.next_message("#1 selftest train failed", timeout=60)
    finally:
        await runner.cleanup()
    assert "the server answered HTTP 418 I hold **** for you" in (failed.text or "")
    assert colabot.engine is not None
    job = colabot.engine.job(1)
    assert job.error is not None and "I hold **** for you" in job.error
    stored = b"".join(path.read_bytes() for path in config.data_dir.glob("colabot.sqlite3*"))
    assert b"I hold **** for you" in stored
    assert secret.encode() not in stored
    assert secret not in " ".join((e.text or "") for e in emu.events)


async def test_colabot_check_prints_a_secret_in_an_error_masked(
    emu: FaultyBotApi, tmp_path: Path
) -> None:
    # A proxy in front of the Bot API that quotes the request in its error page.
    emu.inject_failure("getMe", 502, f"Bad Gateway: upstream refused key {secret_of(emu)}", times=9)
    process = await start_cli("check", env=cli_settings(emu, tmp_path))
    out, err = await asyncio.wait_for(process.communicate(), 120)
    text = out.decode() + err.decode()
    assert process.returncode == 1, text
    assert (
        f"problem: telegram.api_url: cannot reach the Bot API at {emu.url} "
        "(Bad Gateway: upstream refused key ****)"
    ) in text
    assert secret_of(emu) not in text
