"""The webhook endpoint: Telegram's posts, strangers over their budget dropped before parsing.

PTB's own webhook server parses every update it gets (``Update.de_json``) before anything can
look at who sent it, so in webhook mode a stranger's flood cost the loop what triage spares it
in polling. This endpoint does what PTB's does (JSON only, the secret token checked, 200 for
an update taken) but asks ``Strangers`` first, on the raw JSON, as getUpdates answers are.

Anyone who can reach the port can post to it. tornado reads a whole body (100 MB by default)
before a handler sees it, so a post without the secret cost its size in memory before its 403:
here the headers are judged first (``prepare`` of a streaming handler) and a refused post is
answered and its connection closed before any of its body is read; a body is kept up to
``MAX_BODY_BYTES`` (Telegram's updates are a few KB), and a connection that sends nothing for
``WEBHOOK_TIMEOUT_SECONDS`` (headers or body unfinished, or idle) is closed.

Unlike getUpdates (ordered, and an offset acknowledges), Telegram's webhook re-posts an update
whose 200 it did not get and may post over parallel connections: the Bot API says update_id
is there "to ignore repeated updates or to restore the correct update sequence". So a repeated
update_id is dropped, and an update after a gap waits briefly for the missing ones. The first
update after a start has no predecessor to judge by: it waits ``FIRST_WAIT_SECONDS`` for a
lower one (setWebhook's max_connections=1 makes Telegram post one at a time, in order, so this
is for its retries and a proxy's).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import weakref
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import tornado.web
from telegram import Update
from telegram.ext import ExtBot
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  # a name, not a secret
MAX_BODY_BYTES = 1 << 20  # an update is a few KB; anything bigger is not Telegram's
WEBHOOK_TIMEOUT_SECONDS = 10.0  # headers, body or an idle keep-alive taking longer: closed
MAX_CONNECTIONS = 64  # open at once (Telegram uses 1: setWebhook's max_connections=1)
GAP_WAIT_SECONDS = 1.0  # an update after a missing update_id waits this long for it
FIRST_WAIT_SECONDS = 0.25  # the first update after a start waits this long for a lower one
_REMEMBERED = 10_000  # update_ids remembered to drop repeats


class InOrder:
    """Raw webhook updates into update_id order, each once: ``take`` answers the updates to
    handle now; ones after a gap are held until it fills or ``release`` (after the wait)."""

    def __init__(self) -> None:
        self._next: int | None = None  # the update_id expected next
        self._held: dict[int, dict[str, Any]] = {}
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    def take(self, update: dict[str, Any]) -> list[dict[str, Any]]:
        update_id: int = update["update_id"]
        if update_id in self._seen:  # Telegram's retry of one we took: dropped
            return []
        self._seen.add(update_id)
        self._order.append(update_id)
        if len(self._order) > _REMEMBERED:
            self._seen.discard(self._order.popleft())
        if self._next is None or update_id > self._next:  # the first, or one after a gap
            self._held[update_id] = update
            return []
        ready = [update]  # the next one, or a late one whose wait was given up
        if update_id == self._next:
            self._next = update_id + 1
            while self._next in self._held:
                ready.append(self._held.pop(self._next))
                self._next += 1
        return ready

    def release(self) -> list[dict[str, Any]]:
        """The held updates in order, their missing predecessors given up on."""
        ready = [self._held.pop(update_id) for update_id in sorted(self._held)]
        if ready:
            self._next = ready[-1]["update_id"] + 1
        return ready

    @property
    def holding(self) -> bool:
        return bool(self._held)

    @property
    def started(self) -> bool:
        """Whether an update was handled yet (the order is known from then on)."""
        return self._next is not None


class WebhookIntake:
    """Takes one posted update: the HTTP status to answer; a kept update is parsed and put
    on ``queue`` (the application's update queue)."""

    def __init__(
        self,
        bot: ExtBot[Any],
        queue: asyncio.Queue[object],
        secret: str | None,
        keep: Callable[[dict[str, Any]], bool],
        gap_wait: float = GAP_WAIT_SECONDS,
        first_wait: float = FIRST_WAIT_SECONDS,
    ) -> None:
        self._bot = bot
        self._queue = queue
        self._secret = secret
        self._keep = keep
        self._gap_wait = gap_wait
        self._first_wait = first_wait
        self._order = InOrder()
        self._waiting: asyncio.TimerHandle | None = None

    def admit(self, content_type: str | None, token: str | None, length: str | None) -> int:
        """The status a post's headers earn before its body is read: OK to read on."""
        if content_type != "application/json":
            return HTTPStatus.FORBIDDEN
        if self._secret is not None and not hmac.compare_digest(
            (token or "").encode(), self._secret.encode()
        ):
            return HTTPStatus.FORBIDDEN
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        return HTTPStatus.OK

    async def take(self, body: bytes) -> int:
        """One admitted post's body: the status to answer."""
        try:
            data = json.loads(body)
        except ValueError:
            return HTTPStatus.BAD_REQUEST
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return HTTPStatus.BAD_REQUEST
        for ready in self._order.take(data):
            self._pass(ready)
        if self._order.holding and self._waiting is None:
            wait = self._gap_wait if self._order.started else self._first_wait
            self._waiting = asyncio.get_running_loop().call_later(wait, self._release)
        return HTTPStatus.OK

    def _release(self) -> None:
        self._waiting = None
        for ready in self._order.release():
            self._pass(ready)

    def _pass(self, data: dict[str, Any]) -> None:
        if not self._keep(data):  # a stranger over their budget: taken, and dropped
            return
        try:
            update = Update.de_json(data, self._bot)
        except Exception:  # a shape PTB cannot read: said once, never retried by Telegram
            log.exception("an update from the webhook could not be read")
            return
        self._bot.insert_callback_data(update)
        self._queue.put_nowait(update)  # the application's queue is unbounded


@tornado.web.stream_request_body
class _Post(tornado.web.RequestHandler):
    """Headers judged before the body is read; the body kept up to ``MAX_BODY_BYTES``."""

    def initialize(self, intake: WebhookIntake, trusted: weakref.WeakSet[IOStream]) -> None:
        self._intake = intake
        self._trusted = trusted
        self._body = bytearray()

    def prepare(self) -> None:
        if self.request.method != "POST":
            return  # tornado answers 405 (no handler), before any body
        headers = self.request.headers
        status = self._intake.admit(
            headers.get("Content-Type"), headers.get(SECRET_HEADER), headers.get("Content-Length")
        )
        if status != HTTPStatus.OK:
            self._refuse(status)
            return
        # it said the secret: Telegram's, never closed to make room (see _CappedServer)
        stream = getattr(self.request.connection, "stream", None)  # HTTP/1's connection
        if isinstance(stream, IOStream):
            self._trusted.add(stream)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:  # refused: the rest is not kept
            return
        if len(self._body) + len(chunk) > MAX_BODY_BYTES:  # a chunked body, no length said
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        self._body += chunk

    async def post(self) -> None:
        if not self._finished:
            self.set_status(await self._intake.take(bytes(self._body)))

    def _refuse(self, status: int) -> None:
        """Answered now; tornado closes the connection rather than read the rest."""
        self.set_status(status)
        self.finish()


class _CappedServer(HTTPServer):
    """At most ``MAX_CONNECTIONS`` open: a new one past it closes the oldest that has not said
    the secret. Connections that never finish (a slow loris) are closed only after the
    timeout, and each holds a file: past the process's limit (systemd's soft limit is 1024)
    the webhook, SQLite and the exchange all failed. A connection that said the secret
    (Telegram's, kept alive between posts, or a post in flight) is never closed to make room:
    a flood of bare connections then cannot cut Telegram's /halt off."""

    # tornado's Configurable hands the constructor's arguments to initialize, which is its
    # __init__ (a subclass adds its own there); mypy checks it as a plain method.
    def initialize(  # type: ignore[override]
        self, *args: Any, trusted: weakref.WeakSet[IOStream], **kwargs: Any
    ) -> None:
        super().initialize(*args, **kwargs)
        self._streams: dict[IOStream, None] = {}  # open ones, oldest first
        self._trusted = trusted

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        for old in [old for old in self._streams if old.closed()]:
            del self._streams[old]
        strangers = [old for old in self._streams if old not in self._trusted]
        while len(self._streams) >= MAX_CONNECTIONS and strangers:
            oldest = strangers.pop(0)
            del self._streams[oldest]
            oldest.close()
        self._streams[stream] = None
        super().handle_stream(stream, address)


class WebhookServer:
    """The HTTP server Telegram posts to (behind a reverse proxy that terminates TLS)."""

    def __init__(
        self,
        intake: WebhookIntake,
        listen: str,
        port: int,
        path: str,
        timeout: float = WEBHOOK_TIMEOUT_SECONDS,
    ) -> None:
        trusted: weakref.WeakSet[IOStream] = weakref.WeakSet()
        app = tornado.web.Application(
            [(rf"/{path}/?", _Post, {"intake": intake, "trusted": trusted})]
        )
        # tornado's own cap is above ours, so a chunked body past ours is cut (413) by
        # _Post.data_received, which keeps at most MAX_BODY_BYTES; tornado's still stops a
        # single chunk that says it is larger (400, before it is read)
        self._server = _CappedServer(
            app,
            trusted=trusted,
            idle_connection_timeout=timeout,
            body_timeout=timeout,
            max_body_size=2 * MAX_BODY_BYTES,
            max_buffer_size=4 * MAX_BODY_BYTES,
        )
        self._listen = listen
        self._port = port

    def start(self) -> None:
        self._server.listen(self._port, address=self._listen)

    async def stop(self) -> None:
        self._server.stop()
        await self._server.close_all_connections()
