"""The chat under a hostile network and across restarts (issue 20, final review F13-F19):
the webhook server's limits, a private chat's 429, the clock without a Date header, prompts
left open by a stop or a crash. Real PTB client, Bot API emulator."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import json
import os
import socket
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.outbox import AlertDispatcher
from bot.app.config import WebhookSettings
from bot.ops.health import check_chat
from handlers.prompts import Prompts
from handlers.restart import ChatMemory
from handlers.status_message import READING
from handlers.webhook import MAX_CONNECTIONS
from storage.audit import SqliteAuditRepository
from storage.state import SqliteStateRepository
from tests.doubles.telegram_emulator import Sent, TelegramEmulator, post_update
from tests.rigs.builders import replay_settings
from tests.rigs.chat_rig import ADMIN, STRANGER, VIEWER, chat_stack

GROUP = -500


def _hook() -> WebhookSettings:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return WebhookSettings(url=f"http://127.0.0.1:{port}/hook", port=port)


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# Another process posts big bodies: the headers first, then it waits up to 2 s for an answer
# (the seconds it waited, and the status line), then sends the body (the server may be gone).
_UPLOADER = r"""
import socket, sys, threading, time
port, count, size, secret = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def one():
    s = socket.create_connection(("127.0.0.1", port))
    head = b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if secret != "-":
        head += b"X-Telegram-Bot-Api-Secret-Token: " + secret.encode() + b"\r\n"
    s.sendall(head + b"Content-Length: %d\r\n\r\n" % size)
    s.settimeout(2.0)
    started = time.perf_counter()
    try:
        status = s.recv(100).split(b"\r\n")[0].decode()
    except OSError:
        status = "none"
    waited = time.perf_counter() - started
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(size >> 20):
            s.sendall(chunk)
        if status == "none":
            status = s.recv(100).split(b"\r\n")[0].decode() or "closed"
    except OSError:
        pass
    lines.append(f"{waited:.2f}|{status}")  # printed after the joins: threads' prints interleave
lines = []
threads = [threading.Thread(target=one) for _ in range(count)]
[t.start() for t in threads]; [t.join() for t in threads]
print("\n".join(lines), flush=True)
"""


async def _upload(port: int, count: int, size: int, secret: str) -> tuple[float, list[str]]:
    """``count`` posts of ``size`` bytes from another process: the bot's RSS growth (MiB, at
    its peak while they ran) and each post's "seconds waited|status line"."""
    before = peak = _rss_mib()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _UPLOADER,
        str(port),
        str(count),
        str(size),
        secret,
        stdout=asyncio.subprocess.PIPE,
    )
    while proc.returncode is None:
        peak = max(peak, _rss_mib())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.02)
    assert proc.stdout is not None
    return peak - before, (await proc.stdout.read()).decode().splitlines()


async def test_big_bodies_are_refused_before_they_are_read(tmp_path: Path) -> None:
    """Review F16: tornado read the whole body (up to 100 MB) before the secret was checked:
    8 posts of 90 MB without it took the bot from 185 to 1,083 MiB (6 here: +1,080 MiB).
    Refused at the headers now: without the secret 403, with it but too big 413, at once,
    the body never kept (about 0.1 MiB grown on a quiet machine; the bound allows for a
    loaded one's other allocations)."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret") as chat:
        grown, answers = await _upload(hook.port, 6, 90 << 20, "-")
        assert grown < 32, f"the bot's RSS grew {grown:.0f} MiB; answers {answers}"
        assert len(answers) == 6
        for answer in answers:
            waited, status = answer.split("|", 1)
            assert status.startswith("HTTP/1.1 403"), answers
            assert float(waited) < 1.5, answers  # before: no answer within 2 s
        grown, answers = await _upload(hook.port, 3, 90 << 20, "s3cret")
        assert grown < 32, f"the bot's RSS grew {grown:.0f} MiB; answers {answers}"
        assert all(a.split("|", 1)[1].startswith("HTTP/1.1 413") for a in answers), answers
        assert "halted" in await chat.ask(ADMIN, "/halt")  # Telegram's own posts still work


async def test_a_chunked_body_past_the_limit_with_the_secret_gets_413(tmp_path: Path) -> None:
    """Review F7: a chunked body (no length said) past the limit got tornado's own 400; it is
    cut by our handler now (413), and the bot goes on."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret") as chat:
        reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nX-Telegram-Bot-Api-Secret-Token: s3cret"
            b"\r\n\r\n"
        )
        chunk = b"%x\r\n" % (64 << 10) + b"x" * (64 << 10) + b"\r\n"
        with contextlib.suppress(ConnectionError):
            for _ in range(40):  # 2.5 MiB
                writer.write(chunk)
                await writer.drain()
        answer = await asyncio.wait_for(reader.read(40), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert "halted" in await chat.ask(ADMIN, "/halt")


async def test_connections_that_never_finish_their_headers_are_closed(tmp_path: Path) -> None:
    """Review F16: a connection that never finished its headers was kept for an hour."""
    hook = _hook()
    async with chat_stack(
        tmp_path, webhook=hook, webhook_secret="s3cret", webhook_timeout=1.0
    ) as chat:
        held = []
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
            writer.write(b"POST /hook HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append((reader, writer))
        slow_body = await asyncio.open_connection("127.0.0.1", hook.port)
        slow_body[1].write(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Telegram-Bot-Api-Secret-Token: s3cret\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )  # a body that never ends
        held.append(slow_body)
        started = time.perf_counter()
        for reader, _ in held:
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(reader.read(), 5.0)  # the server closes it
        assert time.perf_counter() - started < 3.0
        for _, writer in held:
            writer.close()
        assert "Equity" in await chat.ask(ADMIN, "/status")


# Another process opens connections and never finishes their headers (a slow loris).
_HOLDER = r"""
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\n")
    held.append(s)
print("holding", flush=True)
time.sleep(30)
"""


async def test_a_slow_loris_holds_few_of_the_bot_s_files_and_a_halt_gets_through(
    tmp_path: Path,
) -> None:
    """Review round 2 (rerun in round 5): 1100 connections that never finish their headers,
    held for the 10 s timeout, took every file of a process at systemd's 1024 soft limit
    (EMFILE: the webhook, SQLite and the exchange all failed). The webhook keeps at most
    ``MAX_CONNECTIONS`` open (the oldest goes), so the holder costs the bot few files."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret") as chat:
        before = len(os.listdir("/proc/self/fd"))
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HOLDER, str(hook.port), "300", stdout=asyncio.subprocess.PIPE
        )
        try:
            assert holder.stdout is not None
            assert (await holder.stdout.readline()).startswith(b"holding")
            await asyncio.sleep(0.3)
            held = len(os.listdir("/proc/self/fd")) - before
            assert held <= MAX_CONNECTIONS + 10, held
            assert "halted" in await chat.ask(ADMIN, "/halt")
        finally:
            holder.kill()
            await holder.wait()


def _post_head(port: int, body: bytes) -> bytes:
    return (
        f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: s3cret\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("kept_alive", [False, True])
async def test_bare_connections_past_the_cap_never_close_telegram_s(
    tmp_path: Path, kept_alive: bool
) -> None:
    """Review round 6 F1: past ``MAX_CONNECTIONS`` the oldest connection was closed, whoever's:
    ``MAX_CONNECTIONS`` bare connections (no secret, nothing sent) closed Telegram's, with its
    /halt in flight (headers sent, body behind) or kept alive between posts. A connection
    that said the secret is never closed to make room; the strangers' go."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret") as chat:
        now = chat.emulator.now()
        reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        if kept_alive:  # one post answered on the connection first
            first = json.dumps(_command(9001, "/status", now)).encode()
            writer.write(_post_head(hook.port, first) + first)
            assert (await asyncio.wait_for(reader.readline(), 3)).startswith(b"HTTP/1.1 200")
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
        halt = json.dumps(_command(9002, "/halt", now)).encode()
        writer.write(_post_head(hook.port, halt))
        await writer.drain()
        await asyncio.sleep(0.1)
        strangers = [
            socket.create_connection(("127.0.0.1", hook.port)) for _ in range(MAX_CONNECTIONS)
        ]
        try:
            await asyncio.sleep(0.2)
            writer.write(halt)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 3)
        finally:
            for stranger in strangers:
                stranger.close()
            writer.close()
        assert status.startswith(b"HTTP/1.1 200"), status
        for _ in range(100):
            if await chat.trading.engine.guard.halted() is not None:
                break
            await asyncio.sleep(0.05)
        assert await chat.trading.engine.guard.halted() is not None


async def test_a_429_in_one_private_chat_holds_up_only_that_chat(tmp_path: Path) -> None:
    """Review F14: PTB's limiter answers any 429 by pausing every request: a viewer's chat
    under a 30 s retry_after held the admin's /flatten prompt in their own chat 30 s."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.limit_chat(VIEWER, 1, 30)
        chat.emulator.say(VIEWER, "/status")
        for _ in range(100):  # until the viewer's reply meets Telegram's 429
            if chat.emulator.throttled:
                break
            await asyncio.sleep(0.02)
        assert chat.emulator.throttled == 1
        started = time.perf_counter()
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/flatten")
        question = await chat.reply(ADMIN, after=before, within=5.0)
        assert "Confirm within" in question.text
        assert time.perf_counter() - started < 1.0
        assert chat.emulator.to(VIEWER) == []  # the viewer's chat waits its 30 s


def _crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies without a clean stop: nothing is kept, nothing is edited at the end."""

    async def nothing(*args: object) -> None:
        return None

    monkeypatch.setattr(ChatMemory, "end", nothing)
    monkeypatch.setattr(Prompts, "expire_open", nothing)


async def test_after_a_crash_a_group_s_minute_counts_as_full_for_all_but_admins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review F14: after a restart our count of a group's minute is empty while Telegram's
    is not: a viewer's reply right after the restart met 429. After a crash the last
    life's sends are unknown: others' group sends wait the minute out; admins' go."""
    emulator = TelegramEmulator()
    with monkeypatch.context() as crash:
        _crash(crash)
        async with chat_stack(tmp_path, emulator=emulator):
            pass
    emulator.group_sent_before(GROUP, 20, seconds_ago=25)  # Telegram's
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        chat.emulator.say(VIEWER, "/status", chat_id=GROUP)
        await chat.emulator.quiet(1.5)
        assert chat.emulator.throttled == 0
        assert chat.emulator.to(GROUP) == []  # held for the minute, not refused
        assert "Equity" in await chat.ask(ADMIN, "/status")


async def _fill_group_minute(chat: Any) -> None:
    """16 viewers' replies in the group: all of the minute others than admins may use."""
    for _ in range(16):
        chat.emulator.say(VIEWER, "/pairs", chat_id=GROUP)
    for _ in range(200):
        if len(chat.emulator.to(GROUP)) == 16:
            break
        await asyncio.sleep(0.05)


async def test_a_clean_stop_keeps_the_groups_minutes_for_the_next_start(tmp_path: Path) -> None:
    """Review F14: 16 viewers' replies in a group (all of the minute others may use), a
    restart: the next viewer's reply waits the minute out instead of meeting a 429."""
    emulator = TelegramEmulator()
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        await _fill_group_minute(chat)
        assert len(chat.emulator.to(GROUP)) == 16
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        for _ in range(5):
            chat.emulator.say(VIEWER, "/pairs", chat_id=GROUP)
        await chat.emulator.quiet(1.5)
        assert chat.emulator.throttled == 0
        assert len(chat.emulator.to(GROUP)) == 16


async def test_a_stop_expires_the_open_prompts(tmp_path: Path) -> None:
    """Review F19: a restart left every open Confirm prompt with live-looking buttons."""
    async with chat_stack(tmp_path) as chat:
        question = await chat.sent_back(ADMIN, "/flatten")
        assert question.reply_markup is not None
        await chat.frontend.stop()
        assert question.text == "Expired: send /flatten again."
        assert question.reply_markup is None


async def test_a_start_after_a_crash_expires_the_prompts_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review F19: after a crash the open prompts are known from SQLite, and expired."""
    emulator = TelegramEmulator()
    with monkeypatch.context() as crash:
        _crash(crash)
        async with chat_stack(tmp_path, emulator=emulator) as chat:
            question = await chat.sent_back(ADMIN, "/flatten")
            group = await chat.sent_back(ADMIN, "/halt", chat_id=GROUP)
            resume = await chat.sent_back(ADMIN, "/resume_trading", chat_id=GROUP)
    assert question.reply_markup is not None
    assert resume.reply_markup is not None
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        kept = chat.frontend_cockpit.chat_state.kept
        for _ in range(600):  # each expiry edits its message, then forgets it (a commit)
            expired = question.reply_markup is None and resume.reply_markup is None
            if expired and await kept("chat.prompts") == {}:
                break
            await asyncio.sleep(0.05)
        assert question.text == "Expired: send /flatten again."
        assert resume.text == "Expired: send /resume_trading again."
        assert "halted" in group.text  # not a prompt: untouched
        assert await kept("chat.prompts") == {}


def _self_hosted_on_a_fast_host(emulator: TelegramEmulator) -> None:
    """A self-hosted Bot API server (tdlib's telegram-bot-api writes no Date header; aiohttp
    always writes one, so it is empty here), on a host whose clock is 90 s fast."""
    emulator.date_header = lambda now: ""
    emulator.clock_ahead = -90.0


async def test_without_a_date_header_ages_are_judged_by_telegram_s_own_dates(
    tmp_path: Path,
) -> None:
    """Review F18: with no Date header the offset stayed 0: a host 90 s fast turned a fresh
    /halt into a Confirm saying "sent 1 min ago". Telegram's dates of new updates (a poll
    that waited) and of the bot's own messages read its clock instead; /health says so."""
    async with chat_stack(tmp_path, before_start=_self_hosted_on_a_fast_host) as chat:
        await asyncio.sleep(0.8)  # the bot is polling: the admin's /halt comes during a poll
        reply = await chat.ask(ADMIN, "/halt")
        assert "Trading halted" in reply, reply
        assert await chat.trading.engine.guard.halted()
        for _ in range(40):  # the halt's reply reads the clock once its answer is in
            if chat.frontend.telegram_clock.bounds()[1] is not None:
                break
            await asyncio.sleep(0.05)
        assert abs(chat.frontend.telegram_clock.offset + 90) < 2
        health = await chat.ask(ADMIN, "/health")
        assert "command ages judged by: Telegram's clock, read from Telegram's own" in health
        chat_check = await check_chat(SqliteStateRepository(chat.db))  # `pairpilot health`
        assert "ages judged by Telegram's clock, read from Telegram's own" in chat_check.detail
        (skew,) = [a for a in await chat.alerts.pending() if a.kind == "clock_skew"]
        assert "ahead of Telegram's" in skew.text


async def test_without_a_date_header_a_command_queued_while_down_is_still_old(
    tmp_path: Path,
) -> None:
    """Review F18: the updates waiting at start-up are no reading of Telegram's clock (a poll
    answered at once): an hour-old /stoppair still changes nothing by itself."""

    def queued(emulator: TelegramEmulator) -> None:
        _self_hosted_on_a_fast_host(emulator)
        emulator.say(ADMIN, "/stoppair BTCUSDT", ago=3600)

    async with chat_stack(tmp_path, before_start=queued) as chat:
        reply = await chat.reply(ADMIN)
        assert "it was not run then" in reply.text, reply.text
        assert "BTC/USDT" in [run.pair for run in chat.trading.service.runs()]


def _command(update_id: int, text: str, date: float) -> dict[str, object]:
    """A raw update as Telegram posts it: the admin's command in their private chat."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(date),
            "text": text,
            "chat": {"id": ADMIN, "type": "private"},
            "from": {"id": ADMIN, "is_bot": False, "first_name": "a"},
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }


async def test_the_first_webhook_updates_after_a_start_keep_their_order(tmp_path: Path) -> None:
    """Review F13: the intake learnt the next update_id from the first post, so when the
    first two after a start came out of order (parallel connections, a retry) the later
    one ran first: /stoppair, then /startpair, ETH left running."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret") as chat:
        now = chat.emulator.now()
        start = _command(9001, "/startpair ETHUSDT share=0.2", now)
        stop = _command(9002, "/stoppair ETHUSDT", now)
        assert await post_update(hook.url, "s3cret", stop) == 200  # 9002 lands first
        assert await post_update(hook.url, "s3cret", start) == 200
        texts = await chat.answers(ADMIN, 2)
        assert texts[0].startswith("Started ETH/USDT"), texts
        assert texts[1].startswith("Stopped"), texts
        assert "ETH/USDT" not in [run.pair for run in chat.trading.service.runs()]
        started = time.perf_counter()  # from then on, in order: handled at once
        assert "Equity" in (await chat.sent_back(ADMIN, "/status")).text
        assert time.perf_counter() - started < 0.5


async def test_a_halt_never_waits_for_audit_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20's flood bench (``--groups``): the admin's /halt waited for a commit of each
    admitted stranger's refusal, then for its own audit line, before its reply went out. On
    a slow disk (each audit commit 0.5 s here) that is seconds; strangers' refusals are now
    audited together a moment later, and the /halt's own line beside its reply."""
    real_add, real_many = SqliteAuditRepository.add, SqliteAuditRepository.add_many

    async def slow_add(self: SqliteAuditRepository, **entry: Any) -> int:
        async with self._db.transaction():  # the commit holds the database
            await asyncio.sleep(0.5)
            return await real_add(self, **entry)

    async def slow_many(self: SqliteAuditRepository, *args: Any) -> None:
        async with self._db.transaction():
            await asyncio.sleep(0.5)
            await real_many(self, *args)

    monkeypatch.setattr(SqliteAuditRepository, "add", slow_add)
    monkeypatch.setattr(SqliteAuditRepository, "add_many", slow_many)
    async with chat_stack(tmp_path) as chat:
        for index in range(4):  # as many strangers as are served at once
            chat.emulator.say(STRANGER + index, "/whoami", chat_id=GROUP - index)
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        assert time.perf_counter() - started < 1.0
        await chat.emulator.quiet(1.5)
        entries = {(e.actor, e.command, e.result) for e in await chat.audit.latest(20)}
        assert (str(STRANGER + 3), "whoami", "refused: not in the config") in entries
        assert any(e[:2] == (str(ADMIN), "halt") for e in entries)


class _Lookups(importlib.abc.MetaPathFinder):
    """Counts module look-ups (each a scan of sys.path on the disk when it fails)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        self.names.append(fullname)


async def test_a_round_trip_looks_up_no_module(tmp_path: Path) -> None:
    """Issue 20's flood bench: httpcore tries ``import sniffio`` for every lock it makes (a
    few per request); sniffio is not installed, and a failed import is not cached, so each
    try scanned sys.path on the disk: tens of ms a round under load."""
    async with chat_stack(tmp_path) as chat:
        assert "Equity" in await chat.ask(ADMIN, "/status")  # everything imported once
        lookups = _Lookups()
        sys.meta_path.insert(0, lookups)
        try:
            assert "Equity" in await chat.ask(ADMIN, "/status")
            assert "halted" in await chat.ask(ADMIN, "/halt")
        finally:
            sys.meta_path.remove(lookups)
        assert lookups.names == []


# Review round 3 (F1, F3): what the last life kept, unreadable or from another clock.


def _poke_kept(tmp_path: Path, key: str, raw: str) -> None:
    """Writes ``raw`` as the kept value, as a half-written row or a manual edit would."""
    with sqlite3.connect(replay_settings(tmp_path).database_path) as db:
        db.execute("UPDATE bot_state SET value = ? WHERE key = ?", (raw, key))
        assert db.total_changes == 1


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("chat.prompts", "{"),
        ("chat.prompts", '{"t": [1, 2]}'),
        ("chat.groups", '{"running": false, "sends": {"-500": ["x"]}}'),
        ("chat.groups", '{"running": false, "sends": {"-500": [NaN]}}'),
        ("chat.groups", "[1]"),
    ],
)
async def test_unreadable_kept_chat_state_is_taken_as_a_crash_and_the_chat_starts(
    tmp_path: Path, key: str, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Review F1: a kept value of the wrong shape killed the start: the bot was deaf and
    looked healthy. Now it is unknown, as after a crash, and said so."""
    emulator = TelegramEmulator()
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        await chat.sent_back(ADMIN, "/flatten")  # a prompt is kept while open
    _poke_kept(tmp_path, key, raw)
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        assert "halted" in await chat.ask(ADMIN, "/halt")
        assert await chat.trading.engine.guard.halted()
        assert chat.frontend.problem is None
        assert any("kept" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_a_start_that_ends_on_an_error_is_told_not_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review F1: any error that ends the start task surfaces as the chat's problem (the
    alert, /health, `pairpilot health`), never as a bot that is deaf and says it is fine."""

    async def broken(self: ChatMemory) -> None:
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr(ChatMemory, "begin", broken)
    async with chat_stack(tmp_path, connected=False) as chat:
        for _ in range(100):
            if chat.frontend.problem is not None:
                break
            await asyncio.sleep(0.02)
        assert "RuntimeError: a bug nobody foresaw" in (chat.frontend.problem or "")
        await asyncio.sleep(0.1)  # the report's writes
        check = await check_chat(SqliteStateRepository(chat.db))
        assert not check.ok
        assert "a bug nobody foresaw" in check.detail
        (down,) = [a for a in await chat.alerts.pending() if a.kind == "chat_down"]
        assert "restart the bot" in down.text
        assert "retrying" not in down.text


async def test_a_host_clock_set_back_between_lives_never_blocks_a_group_for_the_step(
    tmp_path: Path,
) -> None:
    """Review F3: group sends kept by a host whose clock was an hour fast lay an hour in the
    future after NTP set it back: the group waited an hour, admins too. Now the group's
    minute is unknown, as after a crash: an admin's reply there comes at once."""
    emulator = TelegramEmulator()
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        for _ in range(20):
            await chat.ask(ADMIN, "/status", chat_id=GROUP)
        chat.wall.advance(timedelta(hours=1))  # the host was an hour fast at the stop
        emulator.clock_ahead = -3600
    emulator.group_minutes_over()  # over a minute later for Telegram
    emulator.clock_ahead = 0.0
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        started = time.perf_counter()
        assert "halted" in await chat.ask(ADMIN, "/halt", chat_id=GROUP)
        assert time.perf_counter() - started < 3


async def test_a_confirm_press_never_waits_for_the_prompt_s_bookkeeping_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review F9: the press awaited the kept prompts' commit (each 0.5 s on a slow disk, up
    to the 5 s busy timeout under a backup) before the button was answered."""
    real_set = SqliteStateRepository.set
    slow = {"on": False}

    async def slow_set(self: SqliteStateRepository, *args: Any) -> None:
        if slow["on"]:
            async with self._db.transaction():  # a slow disk's commit
                await asyncio.sleep(0.5)
        await real_set(self, *args)

    monkeypatch.setattr(SqliteStateRepository, "set", slow_set)
    async with chat_stack(tmp_path) as chat:
        question = await chat.sent_back(ADMIN, "/flatten")
        slow["on"] = True
        answered = len(chat.emulator.answered_callbacks)
        started = time.perf_counter()
        chat.emulator.press(
            ADMIN, question, question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        )
        while len(chat.emulator.answered_callbacks) == answered:
            assert time.perf_counter() - started < 0.3, "the button waited for a commit"
            await asyncio.sleep(0.01)
        for _ in range(100):  # the kept row is closed all the same, beside
            if await chat.frontend_cockpit.chat_state.kept("chat.prompts") == {}:
                break
            await asyncio.sleep(0.05)
        assert await chat.frontend_cockpit.chat_state.kept("chat.prompts") == {}


async def test_a_failed_commit_of_strangers_refusals_keeps_them_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Review F6: the batch was swapped out before its commit; a failed commit lost it, with
    only "Task exception was never retrieved"."""
    real_many = SqliteAuditRepository.add_many
    failures = {"left": 1}

    async def locked_once(self: SqliteAuditRepository, *args: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database is locked")  # a backup held it
        await real_many(self, *args)

    monkeypatch.setattr(SqliteAuditRepository, "add_many", locked_once)
    async with chat_stack(tmp_path) as chat:
        for index in range(4):
            chat.emulator.say(STRANGER + index, "/status", chat_id=STRANGER + index)
        await chat.emulator.quiet(1.0)
        assert failures["left"] == 0
        await chat.frontend.stop()  # the kept ones are audited at the stop at the latest
        entries = await chat.audit.latest(500)
        assert len([e for e in entries if e.result == "refused: not in the config"]) == 4
    (said,) = [r for r in caplog.records if "not audited" in r.getMessage()]
    assert said.levelname == "ERROR"
    assert "database is locked" in said.getMessage()


async def _halted_within(chat: Any, seconds: float) -> float:
    """How long the /halt took to halt trading (fails past ``seconds``)."""
    started = time.perf_counter()
    while await chat.trading.engine.guard.halted() is None:
        assert time.perf_counter() - started < seconds, "the halt waited"
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def test_a_fresh_halt_in_a_group_never_waits_for_a_clock_reading_s_429(
    tmp_path: Path,
) -> None:
    """Review round 4 F1: with no bound on Telegram's clock, the halt awaited its "⏳" send,
    held 20 s by the group's 429."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.limit_chat(GROUP, 1, 20)
        chat.emulator.say(ADMIN, "/halt", chat_id=GROUP)
        await _halted_within(chat, 3)


async def test_a_halt_in_a_busy_group_after_a_clean_restart_runs_at_once(tmp_path: Path) -> None:
    """Review round 4 F1: the kept group minute was full after a deploy; the halt waited
    60 s for its "⏳" send's place in it."""
    emulator = TelegramEmulator()
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        await _fill_group_minute(chat)
        for _ in range(4):
            await chat.ask(ADMIN, "/status", chat_id=GROUP)
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        assert chat.frontend.telegram_clock.bounds() == (None, None)
        emulator.say(ADMIN, "/halt", chat_id=GROUP)
        await _halted_within(chat, 3)


def _lost_answer(emulator: TelegramEmulator) -> None:
    emulator.lost_answers = 1


def _hang_up(emulator: TelegramEmulator) -> None:
    emulator.hang_ups = 1


def _four_429s(emulator: TelegramEmulator) -> None:
    emulator.limit_chat(ADMIN, 4, 1)  # past the client's 3 retries


@pytest.mark.parametrize("failure", [_lost_answer, _hang_up, _four_429s])
async def test_a_fresh_halt_runs_when_the_clock_reading_send_fails(
    tmp_path: Path, failure: Any
) -> None:
    """Review round 4 F2: a failed "⏳" send made the age unknown, taken as stale: a fresh
    /halt became a Confirm ("sent at a time not known") and trading went on."""
    async with chat_stack(tmp_path) as chat:
        failure(chat.emulator)
        chat.emulator.say(ADMIN, "/halt")
        await _halted_within(chat, 8)
        await chat.emulator.quiet(1)
        texts = [sent.text for sent in chat.emulator.to(ADMIN)]
        assert not any("not known" in text or "Confirm" in text for text in texts), texts


async def test_a_state_change_whose_clock_reading_is_lost_says_so_and_asks(
    tmp_path: Path,
) -> None:
    """Review round 4 F2: the "⏳ /stoppair…" message stayed, reading like "in progress",
    and the prompt said it was sent "at a time not known" (it was sent just now)."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.lost_answers = 1
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT")
        await chat.emulator.quiet(3)
        texts = [sent.text for sent in chat.emulator.to(ADMIN)]
        assert len(texts) == 2, texts
        assert "not known" not in texts[1]
        assert "could not check" in texts[1], texts
        assert "Confirm" in texts[1]
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]


async def test_a_stop_leaves_no_retry_of_strangers_refusals_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review round 4 F6: a failed audit at the stop scheduled a retry that outlived it."""

    async def locked(self: SqliteAuditRepository, *args: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SqliteAuditRepository, "add_many", locked)
    async with chat_stack(tmp_path) as chat:
        chat.emulator.say(STRANGER, "/status", chat_id=STRANGER)
        await chat.emulator.quiet(0.5)
        await chat.frontend.stop()
        left = [task for task in asyncio.all_tasks() if "_audit_refusals" in repr(task.get_coro())]
        assert left == []


async def test_an_old_halt_with_no_upper_bound_runs_and_says_how_old_it_is(
    tmp_path: Path,
) -> None:
    """Round 4 F1/F2: with no upper bound a /halt runs at once; an update's date (a lower
    bound) that shows it old is said in its reply, never turned into a Confirm."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.say(STRANGER, "/status", chat_id=STRANGER)  # a lower bound only
        await chat.emulator.quiet(0.5)
        low, high = chat.frontend.telegram_clock.bounds()
        assert low is not None
        assert high is None
        chat.emulator.say(ADMIN, "/halt", ago=200)
        await _halted_within(chat, 3)
        reply = await chat.reply(ADMIN)
        assert reply.text.startswith("(asked 3 min ago)"), reply.text
        assert "halted" in reply.text


@pytest.mark.parametrize(("ago", "outcome"), [(0, "Stopped BTC/USDT"), (120, "You sent")])
async def test_a_state_change_s_outcome_after_its_clock_reading_notifies_the_phone(
    tmp_path: Path, ago: float, outcome: str
) -> None:
    """Review round 4 F5: with no recent reading, the outcome replaced the "⏳ /stoppair…"
    message by an edit, which Telegram does not notify: the phone showed only the ⏳. The
    outcome (or the Confirm prompt of a stale one) comes in a new message; the ⏳ goes."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=ago)
        reply = await chat.reply(ADMIN)
        assert reply.text.startswith(outcome), reply.text
        assert reply.notifies
        assert reply.notified == reply.text  # the notification carried the outcome
        for _ in range(200):
            if all(m.deleted for m in chat.emulator.to(ADMIN) if m.text.startswith(READING)):
                break
            await asyncio.sleep(0.01)
        shown = [m.text for m in chat.emulator.to(ADMIN) if not m.deleted]
        assert shown == [reply.text]  # no "⏳ /stoppair…" left to read as "in progress"


async def test_a_refusals_commit_failing_during_the_stop_is_retried_within_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review round 4 F6: a batch of strangers' refusals whose commit was in flight at the
    stop (a slow disk) was not waited for: when it failed, its retry outlived the stop and
    the rows were never audited."""
    real_many = SqliteAuditRepository.add_many
    calls = {"count": 0}
    in_flight = asyncio.Event()

    async def slow_then_fine(self: SqliteAuditRepository, *args: Any) -> None:
        calls["count"] += 1
        if calls["count"] == 1:  # a slow disk, then a backup's lock
            in_flight.set()
            await asyncio.sleep(0.5)
            raise sqlite3.OperationalError("database is locked")
        await real_many(self, *args)

    monkeypatch.setattr(SqliteAuditRepository, "add_many", slow_then_fine)
    async with chat_stack(tmp_path) as chat:
        for index in range(3):
            chat.emulator.say(STRANGER + index, "/status", chat_id=STRANGER + index)
        await asyncio.wait_for(in_flight.wait(), 5)  # the batch's commit is in flight
        await chat.frontend.stop()
        left = [task for task in asyncio.all_tasks() if "_audit_refusals" in repr(task.get_coro())]
        assert left == []
        entries = await chat.audit.latest(500)
        assert len([e for e in entries if e.result == "refused: not in the config"]) == 3


async def _press_confirm(emulator: TelegramEmulator, question: Sent) -> None:
    """The admin presses ``question``'s Confirm; back once the press is answered."""
    answered = len(emulator.answered_callbacks)
    emulator.press(ADMIN, question, question.reply_markup["inline_keyboard"][0][0]["callback_data"])
    for _ in range(300):
        if len(emulator.answered_callbacks) > answered:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("commit_seconds", [1.0, 3.0])  # within the stop's bound, past it
async def test_a_confirmed_prompt_s_row_closed_at_a_slow_stop_never_expires_it_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit_seconds: float
) -> None:
    """Review round 4 F6, round 5 F7: a Confirm pressed just before a stop, its kept row's
    commit slow (a slow disk; a backup holding the database: busy_timeout is 5 s): the next
    start must not edit the confirmed kill switch to "Expired"."""
    real_set = SqliteStateRepository.set
    slow = {"on": False}

    async def slow_set(self: SqliteStateRepository, key: str, *args: Any) -> None:
        if slow["on"] and key == "chat.prompts":
            await asyncio.sleep(commit_seconds)  # a slow disk's commit of the kept prompts
        await real_set(self, key, *args)

    monkeypatch.setattr(SqliteStateRepository, "set", slow_set)
    emulator = TelegramEmulator()
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        question = await chat.sent_back(ADMIN, "/flatten")
        slow["on"] = True
        await _press_confirm(emulator, question)
    slow["on"] = False
    async with chat_stack(tmp_path, emulator=emulator):
        await emulator.quiet(1.0)
        assert "Expired" not in question.text, question.text


async def test_a_stop_while_a_confirmed_flatten_waits_for_a_stuck_tick_halts_and_tells(
    tmp_path: Path,
) -> None:
    """Review round 5 F4: the kill switch confirmed while a tick is stuck (a slow exchange
    call), then a deploy stops the bot before the tick ends. The halt was lost and the button
    said "is running; the result follows" forever. It halts at once (no tick lock needed),
    and the button, the audit and the next start (the outbox) say the sell did not run."""
    emulator = TelegramEmulator()
    async with chat_stack(tmp_path, emulator=emulator) as chat:
        question = await chat.sent_back(ADMIN, "/flatten")
        lock = chat.trading.service.tick_lock
        await lock.acquire()  # a tick stuck in a slow exchange call
        await _press_confirm(emulator, question)
        await asyncio.sleep(0.3)
        assert await chat.trading.engine.guard.halted() is not None  # before the tick ends
        await chat.frontend.stop()
        lock.release()
        assert "the sell did not run" in question.text, question.text
        (entry,) = [e for e in await chat.audit.latest(50) if e.arguments[:1] == ["confirmed"]]
        assert entry.result == "halted; the sell did not run: the service stopped"
    async with chat_stack(tmp_path, emulator=emulator) as chat2:
        assert await chat2.trading.engine.guard.halted() is not None
        await AlertDispatcher(chat2.alerts, chat2.frontend.sink, chat2.trading.clock).drain()
        told = [m.text for m in emulator.to(ADMIN) if m.text.startswith("/flatten by")]
        assert len(told) == 1, told
        assert "send /flatten again after the restart" in told[0], told


async def test_a_failed_outcome_send_after_a_clock_reading_shows_the_outcome_in_its_place(
    tmp_path: Path,
) -> None:
    """Review round 5 F5: no reading yet, so /stoppair sends "⏳"; the stop waits for a tick;
    then the outcome's new message fails (a 502). The stop ran, and the chat showed only
    "⏳ /stoppair…" forever. The ⏳ is edited to the outcome instead: it is never lost."""
    async with chat_stack(tmp_path) as chat:
        lock = chat.trading.service.tick_lock
        await lock.acquire()
        try:
            chat.emulator.say(ADMIN, "/stoppair BTCUSDT")
            for _ in range(300):
                if any(m.text.startswith(READING) for m in chat.emulator.to(ADMIN)):
                    break
                await asyncio.sleep(0.01)
            chat.emulator.flaky[ADMIN] = 1  # the outcome's send fails
        finally:
            lock.release()
        await chat.emulator.quiet(1.5)
        shown = [m.text for m in chat.emulator.shown(ADMIN)]
        assert len(shown) == 1, shown
        assert shown[0].startswith("Stopped BTC/USDT"), shown


async def test_a_clock_reading_that_cannot_be_deleted_is_marked_done(tmp_path: Path) -> None:
    """Review round 5 F6: the ⏳'s delete fails (a 502): it stayed above the outcome, read as
    "still in progress". It is edited to say the answer is below."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.failing["deleteMessage"] = 1
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT")
        await chat.emulator.quiet(1.5)
        shown = [m.text for m in chat.emulator.shown(ADMIN)]
        assert shown[0] == "Done, see below.", shown
        assert shown[1].startswith("Stopped BTC/USDT"), shown


async def test_a_failed_confirm_prompt_send_after_a_clock_reading_says_so_in_the_reading(
    tmp_path: Path,
) -> None:
    """Review round 5 F5: a stale /stoppair (no reading yet: a "⏳" first) is asked to
    confirm, and the prompt's send fails (a 502): the chat showed "⏳ /stoppair…" forever.
    Nothing ran; the ⏳ says so, and to send it again."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.failing_texts.add("You sent")  # the prompt's send fails
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=120)
        await chat.emulator.quiet(1.5)
        shown = [m.text for m in chat.emulator.shown(ADMIN)]
        assert len(shown) == 1, shown
        assert "was not run" in shown[0], shown
        assert "send it again" in shown[0], shown
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]
