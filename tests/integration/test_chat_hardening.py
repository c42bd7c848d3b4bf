"""The chat under a hostile network and across restarts (issue 20, final review F13-F19):
the webhook server's limits, a private chat's 429, the clock without a Date header, prompts
left open by a stop or a crash. Real PTB client, Bot API emulator."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from pathlib import Path

from bot.config import WebhookSettings
from tests.chat_rig import ADMIN, chat_stack


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
    print(f"{waited:.2f}|{status}", flush=True)
threads = [threading.Thread(target=one) for _ in range(count)]
[t.start() for t in threads]; [t.join() for t in threads]
"""


async def _upload(port: int, count: int, size: int, secret: str) -> tuple[float, list[str]]:
    """``count`` posts of ``size`` bytes from another process: the bot's RSS growth (MiB, at
    its peak while they ran) and each post's "seconds waited|status line"."""
    before = peak = _rss_mib()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _UPLOADER, str(port), str(count), str(size), secret,
        stdout=asyncio.subprocess.PIPE)  # fmt: skip
    while proc.returncode is None:
        peak = max(peak, _rss_mib())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.02)
    assert proc.stdout is not None
    return peak - before, (await proc.stdout.read()).decode().splitlines()


async def test_big_bodies_are_refused_before_they_are_read(tmp_path: Path) -> None:
    """Review F16: tornado read the whole body (up to 100 MB) before the secret was checked:
    8 posts of 90 MB without it took the bot from 185 to 1,083 MiB. Refused at the headers
    now: without the secret 403, with it but too big 413, at once, the body never kept."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret") as chat:
        grown, answers = await _upload(hook.port, 6, 90 << 20, "-")
        assert grown < 16, f"the bot's RSS grew {grown:.0f} MiB; answers {answers}"
        assert len(answers) == 6
        for answer in answers:
            waited, status = answer.split("|", 1)
            assert status.startswith("HTTP/1.1 403"), answers
            assert float(waited) < 1.0, answers
        grown, answers = await _upload(hook.port, 3, 90 << 20, "s3cret")
        assert grown < 16, f"the bot's RSS grew {grown:.0f} MiB; answers {answers}"
        assert all(a.split("|", 1)[1].startswith("HTTP/1.1 413") for a in answers), answers
        assert "halted" in await chat.ask(ADMIN, "/halt")  # Telegram's own posts still work


async def test_connections_that_never_finish_their_headers_are_closed(tmp_path: Path) -> None:
    """Review F16: a connection that never finished its headers was kept for an hour."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret",
                          webhook_timeout=1.0) as chat:  # fmt: skip
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
