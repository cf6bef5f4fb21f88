"""The Zenoh configuration of a process: what a bad one says, and where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

zenoh = pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from bbflow.runtime.fleet import BusOpenError, BusSettings
from bbflow.runtime.fleet.zenoh_link import zenoh_config, zenoh_message


def refusal(settings: BusSettings) -> str:
    with pytest.raises(BusOpenError) as refused:
        zenoh_config(settings)
    return str(refused.value)


def test_a_bad_endpoint_or_mode_is_named_where_it_was_given(tmp_path: Path) -> None:
    # `--bus-listen nope` beside a config file was "zenoh.json5: bad Zenoh configuration: Json5Err(Message { msg: ...
    # at /root/.cargo/git/checkouts/.../config.rs:86.": the file was blamed for the option
    config = tmp_path / "zenoh.json5"
    config.write_text('{ mode: "peer", scouting: { multicast: { enabled: false } } }')
    endpoint = "Endpoints must be of the form <protocol>/<address>[?<metadata>][#<config>]"
    assert refusal(BusSettings(kind="zenoh", config=config, listen=("nope",))) == (
        f'--bus-listen (or [bus] listen) ["nope"]: {endpoint}: nope')
    assert refusal(BusSettings(kind="zenoh", connect=("tcp/127.0.0.1:7447", "x"))) == (
        f'--bus-connect (or [bus] connect) ["tcp/127.0.0.1:7447", "x"]: {endpoint}: x')
    assert refusal(BusSettings(kind="zenoh", mode="pear")) == (
        '[bus] mode "pear": unknown variant `pear`, expected one of `router`, `peer`, `client`')


def test_a_bad_config_file_is_named_with_the_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "zenoh.json5"
    config.write_text('{ mode: "peer",\n  listen: { endpoints: ["bad"] } }')
    assert refusal(BusSettings(kind="zenoh", config=config)) == (
        f"{config}: bad Zenoh configuration: line 2, column 24: Endpoints must be of the form "
        "<protocol>/<address>[?<metadata>][#<config>]: bad")
    message = refusal(BusSettings(kind="zenoh", config=tmp_path / "missing.json5"))
    assert message == f"{tmp_path / 'missing.json5'}: bad Zenoh configuration: No such file or directory (os error 2)"


def test_zenoh_messages_lose_where_in_zenohs_sources_they_were_raised() -> None:
    raised = zenoh.ZError(
        "Can not create a new TCP listener bound to tcp/127.0.0.1:7447: [127.0.0.1:7447: Address already in use "
        "(os error 98) at /root/.cargo/git/checkouts/zenoh-9c599d5ef3e0480e/cc83980/io/zenoh-link-commons/src/tcp.rs:61.]"
        " at /root/.cargo/git/checkouts/zenoh-9c599d5ef3e0480e/cc83980/io/zenoh-links/zenoh-link-tcp/src/unicast.rs:338.")
    assert zenoh_message(raised) == ("Can not create a new TCP listener bound to tcp/127.0.0.1:7447: "
                                     "[127.0.0.1:7447: Address already in use (os error 98)]")
    assert zenoh_message(zenoh.ZError("plain")) == "plain"


def test_a_session_that_cannot_open_names_the_endpoints_it_was_given(tmp_path: Path) -> None:
    # "error: bus: cannot open the Zenoh session: invalid port value" said nothing of which endpoint
    import asyncio

    from bbflow.runtime.fleet import make_link

    (tmp_path / "zenoh.json5").write_text('{ mode: "peer", scouting: { multicast: { enabled: false } } }')
    link = make_link(BusSettings(kind="zenoh", prefix="t", config=tmp_path / "zenoh.json5",
                                 listen=("tcp/127.0.0.1:99999",)), process="p", robots=[], agents=[])
    with pytest.raises(BusOpenError) as refused:
        asyncio.run(link.join())
    assert str(refused.value) == "cannot open the Zenoh session (listen tcp/127.0.0.1:99999): invalid port value"
