"""URLs that try to reach this machine or the cloud's metadata service in disguise.

The host is checked as the HTTP client will connect to it. Each disguise gets the same clear
refusal as the plain address, before anything runs: the loopback server sees no request.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from tests.helpers.chat import Person
from tests.loopback.http_server import HttpServer
from workers.errors import InputError
from workers.inputs.netpolicy import FetchPolicy, check_address, check_url

LOOPBACK_REFUSAL = "it points at 127.0.0.1, an address on this machine or a private network"

DISGUISES = [
    "127.0.0.1",
    "127。0。0。1",  # ideographic full stops
    "１２７．０．０．１",  # fullwidth digits and dots
    "①②⑦.0.0.1",  # circled digits
    "2130706433",  # decimal
    "0177.0.0.1",  # octal
    "0x7f000001",  # hex
    "127.1",  # short form
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
]


@pytest.mark.parametrize("host", DISGUISES)
async def test_loopback_in_disguise_is_refused_before_anything_runs(
    colabot: Colabot, person: Person, http_server: HttpServer, host: str
) -> None:
    port = http_server.base.rsplit(":", 1)[1]
    reply = await person.say(f"/train selftest http://{host}:{port}/files/x steps=1")
    assert LOOPBACK_REFUSAL in (reply.text or "")
    assert http_server.served.requests == []
    assert colabot.engine is not None and colabot.engine.jobs() == []


@pytest.mark.parametrize("host", DISGUISES[1:])
def test_a_disguised_address_is_refused_even_where_private_ones_are_allowed(host: str) -> None:
    with pytest.raises(
        InputError, match=re.escape("written in another form; write it as 127.0.0.1")
    ):
        check_url(f"http://{host}:8080/x", FetchPolicy(allow_private_addresses=True))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://[fd00:ec2::254]/latest",
        "http://2852039166/latest",  # 169.254.169.254 in decimal
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./x",
    ],
)
def test_metadata_services_stay_closed_when_private_addresses_are_opened(url: str) -> None:
    opened = FetchPolicy(
        allow_private_addresses=True, allowed_networks=("169.254.0.0/16", "fd00::/8")
    )
    with pytest.raises(InputError, match="cloud metadata service"):
        check_url(url, opened)


def test_a_metadata_address_opens_only_when_named_on_its_own() -> None:
    named = FetchPolicy(allowed_networks=("169.254.169.254/32",))
    assert check_url("http://169.254.169.254/latest", named) == "169.254.169.254"
    assert check_url("http://metadata.google.internal/x", named) == "metadata.google.internal"


def test_allowed_networks_open_only_their_ranges() -> None:
    lab = FetchPolicy(allowed_networks=("10.20.0.0/16",))
    assert check_url("http://10.20.3.4/data.zip", lab) == "10.20.3.4"
    check_address("10.20.99.1", "http://lab-server/x", lab)  # what the resolver would check
    for url in ("http://10.21.0.1/x", "http://192.168.1.1/x", "http://127.0.0.1/x"):
        with pytest.raises(InputError, match=re.escape("see inputs.allowed_networks")):
            check_url(url, lab)


async def test_the_lab_network_is_fetched_through_allowed_networks(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, http_server: HttpServer
) -> None:
    url = http_server.add("data.bin", b"lab data\n")
    config = dataclasses.replace(
        chat_config, inputs=FetchPolicy(allowed_networks=("127.0.0.0/8",), timeout_seconds=5)
    )
    await start_colabot(config)
    await person.say(f"/train selftest {url} steps=1 delay=0")
    done = await person.next_message("finished", timeout=60)
    assert "selftest train: 1 steps" in (done.text or "")
    assert [path for path, _ in http_server.served.requests] == ["/files/data.bin"]


async def test_allowed_networks_is_checked_at_start(tmp_path: Any) -> None:
    from bot.config import parse_config
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"inputs.allowed_networks\[1\]: must be an address"):
        parse_config({"inputs": {"allowed_networks": ["10.0.0.0/8", "lab"]}}, {})
