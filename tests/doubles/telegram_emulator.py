"""A local emulator of the Telegram Bot API over HTTP, for the real python-telegram-bot client.

It answers the methods pairpilot uses the way the Bot API does (form fields, JSON-encoded
values, ``{"ok": ..., "result": ...}``), keeps what the bot sent per chat, and lets a test
speak as a user (``say``, also forwarded, late or edited), press inline buttons (``press``),
go down (``is_down``) and rate-limit (``limit``). Point PTB at ``base_url`` + "/bot". A new
message notifies the user's phone (``Sent.notified``: the text the notification showed), an
edit never does; a message the bot deletes stays listed, marked ``deleted``.

What the real Bot API does and the emulator copies: every message carries the Unix ``date``
it was sent at; updates wait up to 24 hours for the bot (so a bot that was down gets them all
at start-up, however old); ``allowed_updates`` only filters updates created after the call
that set it; a group chat takes about 20 messages a minute, then 429 with ``retry_after``;
a callback query must be answered within a short time (not documented; about 15 s in
practice) and only once, else "query is too old"; setMyCommands keeps one menu per scope;
every answer carries an HTTP ``Date`` header (RFC 7231, whole seconds) from Telegram's clock,
which the message dates are in too (``clock``, ``clock_ahead``: how far it is from the
bot host's); with a webhook set, updates wait until a post of them is answered with 2xx, in
order, and getWebhookInfo reports how many wait and the last delivery error (its date and
message: "Connection refused", "Wrong response from the webhook: 500 Internal Server
Error").
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from aiohttp import ClientSession, web

from tests.doubles.loopback import serve_app

MESSAGE_LIMIT, CAPTION_LIMIT = 4096, 1024
UPDATE_KEPT_SECONDS = 24 * 3600  # Telegram drops an update nobody fetched after 24 hours
GROUP_PER_MINUTE = 20  # messages a bot may send to one group per minute
CALLBACK_ANSWER_SECONDS = 15.0  # after this, answerCallbackQuery says the query is too old
_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_TAG = re.compile(r"</?([a-z]+)[^>]*>")
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "s", "code", "pre", "a", "tg-spoiler"}


@dataclass
class Sent:
    """One message the bot sent, as it stands now (edits replace the text). ``text`` is what
    the user reads: with HTML parse mode, tags removed and entities decoded."""

    message_id: int
    chat_id: int
    text: str
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    photo: bytes | None = None
    edits: int = 0
    silent: bool = False  # sent with disable_notification
    at: float = field(default_factory=time.perf_counter)  # when it reached the emulator
    deleted: bool = False  # the bot deleted it (kept here, so message counts never shift)

    def __post_init__(self) -> None:
        # what the phone's notification showed: a new message notifies (unless silent), an
        # edit never does (Telegram sends no push for edited messages)
        self.notified = self.text

    @property
    def notifies(self) -> bool:
        """Whether this message made the user's phone show a notification."""
        return not self.silent


@dataclass
class TelegramEmulator:
    token: str = "123456:TEST-TOKEN"
    bot_id: int = 123456
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # every method called, in order
    commands: list[dict[str, str]] = field(default_factory=list)  # the default menu
    menus: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # scope: menu
    answered_callbacks: list[str] = field(default_factory=list)
    refused_answers: int = 0  # answerCallbackQuery calls refused as too old or repeated
    callback_seconds: float = CALLBACK_ANSWER_SECONDS
    group_per_minute: int = GROUP_PER_MINUTE
    throttled: int = 0  # sends refused with 429 by a group's or a chat's limit
    allowed_updates: list[str] | None = None  # as last set by getUpdates / setWebhook
    is_down: bool = False  # every call fails with 502, as when the API is unreachable
    retry_after: dict[str, tuple[int, int]] = field(default_factory=dict)  # method: (times, s)
    chat_retry_after: dict[int, tuple[int, int]] = field(default_factory=dict)  # chat: (times, s)
    failing: dict[str, int] = field(default_factory=dict)  # method: calls that fail with a 502
    flaky: dict[int, int] = field(default_factory=dict)  # chat: sends that fail with a 502
    blocked: set[int] = field(default_factory=set)  # users who blocked the bot (403)
    strangers: set[int] = field(default_factory=set)  # users who never opened the bot (400)
    hang_ups: int = 0  # the next sends whose connection is dropped unanswered (network error)
    lost_answers: int = 0  # the next sends handled (the message shows), their answer dropped
    webhook: tuple[str, str | None] | None = None  # (url, secret token) while one is set
    webhook_settings: dict[str, Any] = field(default_factory=dict)  # the last setWebhook's
    send_delay: float = 0.0  # seconds each send takes (widens the window a crash can land in)
    # Slow or failing calls a test picks: each call of a method waits its seconds before it is
    # handled; a sendMessage whose text starts with a key of ``slow_texts`` waits its seconds,
    # one whose text starts with an entry of ``failing_texts`` fails with a 502.
    call_delay: dict[str, float] = field(default_factory=dict)
    slow_texts: dict[str, float] = field(default_factory=dict)
    failing_texts: set[str] = field(default_factory=set)
    answer_delay: float = 0.0  # seconds a send's answer takes after its message is in the chat
    sending: int = 0  # sends in progress
    clock: Callable[[], float] = time.time  # Telegram's clock (Unix seconds)
    clock_ahead: float = 0.0  # seconds Telegram's clock is ahead of ``clock`` (host skew)
    # the HTTP Date header of an answer made at ``now`` (a proxy or self-hosted server may lie)
    date_header: Callable[[float], str] = lambda now: formatdate(now, usegmt=True)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _update_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)
    webhook_pending: list[dict[str, Any]] = field(default_factory=list)  # not delivered yet
    webhook_unreachable: bool = False  # the webhook's address answers nothing (proxy down)
    webhook_error: tuple[int, str] | None = None  # (when, what) the last delivery failed
    _posts: list[asyncio.Task[int]] = field(default_factory=list)
    _pushing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pressed: dict[str, float] = field(default_factory=dict)  # callback id: when pressed
    _group_sends: dict[int, list[float]] = field(default_factory=dict)  # chat: send times

    # --- what a test does -----------------------------------------------------------------

    def now(self) -> float:
        """Telegram's time, in Unix seconds."""
        return self.clock() + self.clock_ahead

    def say(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str | None = None,
        ago: float = 0.0,
        forwarded_from: int | None = None,
    ) -> int:
        """``user_id`` writes ``text`` in a chat (their private chat unless ``chat_id``),
        ``ago`` seconds ago; with ``forwarded_from`` it is that user's message, forwarded.
        Returns the message id."""
        chat = chat_id if chat_id is not None else user_id
        kind = chat_type or ("private" if chat > 0 else "group")
        sent_at = int(self.now() - ago)
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": sent_at,
            "text": text,
            "chat": {"id": chat, "type": kind, **({"title": "group"} if chat < 0 else {})},
            "from": _user(user_id),
        }
        if forwarded_from is not None:
            message["forward_origin"] = {
                "type": "user",
                "date": sent_at - 60,
                "sender_user": _user(forwarded_from),
            }
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        self._queue({"message": message}, sent_at)
        return int(message["message_id"])

    def edit(self, user_id: int, message_id: int, text: str) -> None:
        """``user_id`` edits their message ``message_id`` (in their private chat) to ``text``."""
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(self.now()) - 5,
            "edit_date": int(self.now()),
            "text": text,
            "chat": {"id": user_id, "type": "private"},
            "from": _user(user_id),
        }
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        self._queue({"edited_message": message}, int(self.now()))

    def press(self, user_id: int, sent: Sent, data: str) -> None:
        """``user_id`` taps the inline button with callback ``data`` under ``sent``."""
        query_id = str(next(self._ids))
        self._pressed[query_id] = time.monotonic()
        self._queue(
            {
                "callback_query": {
                    "id": query_id,
                    "chat_instance": "1",
                    "data": data,
                    "from": _user(user_id),
                    "message": {
                        "message_id": sent.message_id,
                        "date": int(self.now()),
                        "chat": {
                            "id": sent.chat_id,
                            "type": "private" if sent.chat_id > 0 else "group",
                        },
                        "text": sent.text,
                    },
                }
            },
            int(self.now()),
        )

    def delete(self, sent: Sent) -> None:
        """The user deletes the bot's message ``sent`` from the chat."""
        self.sent.remove(sent)

    def limit(self, method: str, times: int, seconds: int) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and retry_after=``seconds``."""
        self.retry_after[method] = (times, seconds)

    def limit_chat(self, chat_id: int, times: int, seconds: int) -> None:
        """Answer the next ``times`` sends to ``chat_id`` with 429 and retry_after=``seconds``
        (Telegram's FAQ: about one message a second in one chat, short bursts allowed)."""
        self.chat_retry_after[chat_id] = (times, seconds)

    def group_sent_before(self, chat_id: int, times: int, seconds_ago: float) -> None:
        """Telegram's count of the group's minute: ``times`` sends ``seconds_ago`` (by an
        earlier process of the bot: its own count starts empty)."""
        self._group_sends[chat_id] = [time.monotonic() - seconds_ago] * times

    def group_minutes_over(self) -> None:
        """Over a minute passes for Telegram: every group's count of sends starts afresh."""
        self._group_sends.clear()

    def release_polls(self) -> None:
        """Answer a waiting long poll (getUpdates) now, as when the server stops."""
        self._new_update.set()

    def to(self, chat_id: int) -> list[Sent]:
        """Every message the bot sent to ``chat_id``, the ones it deleted too (so counts of
        them never shift while a deletion is on its way)."""
        return [message for message in self.sent if message.chat_id == chat_id]

    def shown(self, chat_id: int) -> list[Sent]:
        """What ``chat_id`` shows of the bot's messages: those it deleted are gone."""
        return [message for message in self.to(chat_id) if not message.deleted]

    async def reply(self, chat_id: int, after: int = 0, within: float = 30.0) -> Sent:
        """The first message to ``chat_id`` beyond the first ``after`` ones, waiting for it.
        The default wait is generous (a loaded CI machine draws a chart slowly): it is no
        latency check; tests that assert a latency pass a tight ``within``."""
        deadline = asyncio.get_running_loop().time() + within
        while len(self.to(chat_id)) <= after:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no reply to chat {chat_id} within {within} s")
            await asyncio.sleep(0.01)
        return self.to(chat_id)[after]

    async def quiet(self, seconds: float = 0.3) -> None:
        """Let pending updates be fetched and answered."""
        await asyncio.sleep(seconds)

    # --- the Bot API ------------------------------------------------------------------------

    def app(self) -> web.Application:
        @web.middleware
        async def dated(request: web.Request, handler: Any) -> web.StreamResponse:
            response = await handler(request)
            response.headers["Date"] = self.date_header(self.now())
            return response

        app = web.Application(middlewares=[dated])
        app.router.add_post("/bot{token}/{method}", self._call)
        app.router.add_get("/bot{token}/{method}", self._call)
        return app

    async def _call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        if self.is_down or self.failing.get(method, 0) > 0:
            if not self.is_down:
                self.failing[method] -= 1
            return web.Response(status=502, text="Bad Gateway")
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        times, seconds = self.retry_after.get(method, (0, 0))
        if times > 0:
            self.retry_after[method] = (times - 1, seconds)
            return _error(
                429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds}
            )
        fields = await _fields(request)
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        if method in self.call_delay:
            await asyncio.sleep(self.call_delay[method])
        if method.startswith("send") and (self.hang_ups or self.lost_answers):
            if self.hang_ups:  # gone before Telegram handled it: nothing was sent
                self.hang_ups -= 1
            else:  # the message is in the chat; the bot never hears so
                self.lost_answers -= 1
                await handler(fields)
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never written: the connection is closed
        if not method.startswith("send"):
            return await handler(fields)
        self.sending += 1
        try:
            await asyncio.sleep(self.send_delay)
            answer = await handler(fields)
            await asyncio.sleep(self.answer_delay)
            return answer
        finally:
            self.sending -= 1

    async def _getMe(self, fields: dict[str, Any]) -> web.Response:
        return _ok(
            {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "pairpilot",
                "username": "pairpilot_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )

    async def _deleteWebhook(self, fields: dict[str, Any]) -> web.Response:
        self.webhook = None
        self.webhook_error = None
        return _ok(True)

    async def _setWebhook(self, fields: dict[str, Any]) -> web.Response:
        secret = fields.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        self.allowed_updates = fields.get("allowed_updates") or None
        self.webhook = (str(fields["url"]), secret)
        self.webhook_settings = fields
        return _ok(True)

    async def _setMyCommands(self, fields: dict[str, Any]) -> web.Response:
        scope = fields.get("scope") or {"type": "default"}
        key = scope["type"] + (f":{scope['chat_id']}" if "chat_id" in scope else "")
        if scope.get("chat_id") in self.strangers:  # a chat the bot was never opened in
            return _error(400, "Bad Request: chat not found")
        self.menus[key] = fields["commands"]
        if key == "default":
            self.commands = fields["commands"]
        return _ok(True)

    async def _sendChatAction(self, fields: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _answerCallbackQuery(self, fields: dict[str, Any]) -> web.Response:
        pressed = self._pressed.pop(str(fields.get("callback_query_id")), None)
        if pressed is None or time.monotonic() - pressed > self.callback_seconds:
            self.refused_answers += 1
            return _error(400, _TOO_OLD)
        self.answered_callbacks.append(str(fields.get("text", "")))
        return _ok(True)

    async def _getUpdates(self, fields: dict[str, Any]) -> web.Response:
        offset = int(fields.get("offset", 0) or 0)
        if "allowed_updates" in fields:
            self.allowed_updates = fields["allowed_updates"] or None
        oldest = self.now() - UPDATE_KEPT_SECONDS
        self.updates = [
            u for u in self.updates if u["update_id"] >= offset and u["queued_at"] >= oldest
        ]
        if not self.updates:
            self._new_update.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), float(fields.get("timeout", 0)))
        shown = self.updates[: int(fields.get("limit", 100))]
        return _ok([{k: v for k, v in u.items() if k != "queued_at"} for u in shown])

    def _refusal(self, chat: int) -> web.Response | None:
        """What Telegram answers a send to ``chat`` that cannot go through, if anything."""
        times, seconds = self.chat_retry_after.get(chat, (0, 0))
        if times > 0:
            self.chat_retry_after[chat] = (times - 1, seconds)
            self.throttled += 1
            return _error(
                429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds}
            )
        if chat < 0:  # a group: about 20 messages a minute, then 429 until the minute is over
            now = time.monotonic()
            recent = [t for t in self._group_sends.get(chat, []) if now - t < 60]
            if len(recent) >= self.group_per_minute:
                self.throttled += 1
                wait = max(1, int(60 - (now - recent[0])) + 1)
                return _error(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
            self._group_sends[chat] = [*recent, now]
        if self.flaky.get(chat, 0) > 0:
            self.flaky[chat] -= 1
            return web.Response(status=502, text="Bad Gateway")
        if chat in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat in self.strangers:
            return _error(400, "Bad Request: chat not found")
        return None

    async def _sendMessage(self, fields: dict[str, Any]) -> web.Response:
        text = str(fields.get("text", ""))
        slow = [seconds for start, seconds in self.slow_texts.items() if text.startswith(start)]
        if slow:
            await asyncio.sleep(max(slow))
        if any(text.startswith(start) for start in self.failing_texts):
            return web.Response(status=502, text="Bad Gateway")
        refusal = self._refusal(int(fields["chat_id"]))
        if refusal is not None:
            return refusal
        text = str(fields["text"])
        problem = _text_problem(text, fields.get("parse_mode"), MESSAGE_LIMIT)
        if problem:
            return _error(400, problem)
        sent = Sent(
            next(self._ids),
            int(fields["chat_id"]),
            _shown(text, fields),
            fields.get("parse_mode"),
            fields.get("reply_markup"),
        )
        sent.silent = bool(fields.get("disable_notification"))
        self.sent.append(sent)
        return _ok(self._message(sent))

    async def _sendPhoto(self, fields: dict[str, Any]) -> web.Response:
        refusal = self._refusal(int(fields["chat_id"]))
        if refusal is not None:
            return refusal
        caption = str(fields.get("caption", ""))
        problem = _text_problem(caption, fields.get("parse_mode"), CAPTION_LIMIT)
        if problem:
            return _error(400, problem)
        photo = fields.get("photo")
        sent = Sent(
            next(self._ids),
            int(fields["chat_id"]),
            _shown(caption, fields),
            fields.get("parse_mode"),
            fields.get("reply_markup"),
            photo if isinstance(photo, bytes) else None,
        )
        sent.silent = bool(fields.get("disable_notification"))
        self.sent.append(sent)
        return _ok(
            {
                **self._message(sent),
                "photo": [{"file_id": "p1", "file_unique_id": "p1", "width": 1, "height": 1}],
            }
        )

    async def _editMessageText(self, fields: dict[str, Any]) -> web.Response:
        sent = self._find(fields)
        if sent is None:
            return _error(400, "Bad Request: message to edit not found")
        text = str(fields["text"])
        problem = _text_problem(text, fields.get("parse_mode"), MESSAGE_LIMIT)
        if problem:
            return _error(400, problem)
        if _shown(text, fields) == sent.text and fields.get("reply_markup") == sent.reply_markup:
            return _error(400, "Bad Request: message is not modified")
        sent.text, sent.parse_mode = _shown(text, fields), fields.get("parse_mode")
        sent.reply_markup = fields.get("reply_markup")
        sent.edits += 1
        return _ok(self._message(sent))

    async def _deleteMessage(self, fields: dict[str, Any]) -> web.Response:
        sent = self._find(fields)
        if sent is None:
            return _error(400, "Bad Request: message to delete not found")
        sent.deleted = True
        return _ok(True)

    async def _editMessageReplyMarkup(self, fields: dict[str, Any]) -> web.Response:
        sent = self._find(fields)
        if sent is None:
            return _error(400, "Bad Request: message to edit not found")
        sent.reply_markup = fields.get("reply_markup")
        sent.edits += 1
        return _ok(self._message(sent))

    def _find(self, fields: dict[str, Any]) -> Sent | None:
        return next(
            (
                m
                for m in self.sent
                if m.message_id == int(fields.get("message_id", 0))
                and m.chat_id == int(fields.get("chat_id", 0))
                and not m.deleted
            ),
            None,
        )

    def _message(self, sent: Sent) -> dict[str, Any]:
        chat_type = "private" if sent.chat_id > 0 else "group"
        return {
            "message_id": sent.message_id,
            "date": int(self.now()),
            "text": sent.text,
            "chat": {"id": sent.chat_id, "type": chat_type},
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "pairpilot"},
        }

    def _queue(self, update: dict[str, Any], queued_at: float) -> None:
        """Held for getUpdates, or posted to the webhook when one is set (as Telegram does).
        A kind the bot did not allow is never created (allowed_updates filters new updates)."""
        (kind,) = update
        if self.allowed_updates is not None and kind not in self.allowed_updates:
            return
        numbered = {"update_id": next(self._update_ids), **update}
        if self.webhook is None:
            self.updates.append({**numbered, "queued_at": queued_at})
            self._new_update.set()
        else:
            self.webhook_pending.append(numbered)
            self._posts.append(asyncio.create_task(self._push()))

    async def _push(self) -> int:
        """Post the waiting updates to the webhook in order, as Telegram does, until one
        fails: that one and the rest wait for the next attempt (the next new update), and the
        failure is kept for getWebhookInfo. The HTTP status of the last post (0: no answer)."""
        async with self._pushing:
            status = 200
            while self.webhook_pending and self.webhook is not None:
                url, secret = self.webhook
                try:
                    if self.webhook_unreachable:
                        raise OSError("Connection refused")
                    status = await post_update(url, secret, self.webhook_pending[0])
                    phrase = f"{status} {HTTPStatus(status).phrase}"
                    problem = None if status < 300 else f"Wrong response from the webhook: {phrase}"
                except OSError:
                    status, problem = 0, "Connection refused"
                if problem is not None:
                    self.webhook_error = (int(self.now()), problem)
                    return status
                self.webhook_pending.pop(0)
            return status

    async def _getWebhookInfo(self, fields: dict[str, Any]) -> web.Response:
        info: dict[str, Any] = {
            "url": self.webhook[0] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.webhook_pending if self.webhook else self.updates),
        }
        if self.webhook is not None:
            info |= {"max_connections": 40, "ip_address": "127.0.0.1"}
            if self.allowed_updates is not None:
                info["allowed_updates"] = self.allowed_updates
            if self.webhook_error is not None:
                info["last_error_date"], info["last_error_message"] = self.webhook_error
        return _ok(info)

    async def delivered(self) -> list[int]:
        """The HTTP statuses the webhook answered (0: unreachable), once every post ended."""
        return list(await asyncio.gather(*self._posts))


async def post_update(url: str, secret: str | None, update: dict[str, Any]) -> int:
    """POST one update to a webhook the way Telegram does; the HTTP status it answered."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
    async with ClientSession() as session, session.post(url, json=update, headers=headers) as r:
        return r.status


async def _fields(request: web.Request) -> dict[str, Any]:
    """Form fields with their JSON values decoded (PTB JSON-encodes every non-string)."""
    if request.content_type == "application/json":
        return await request.json()
    form = await request.post()
    fields: dict[str, Any] = {}
    for name, value in form.items():
        if isinstance(value, web.FileField):
            fields[name] = value.file.read()
            continue
        try:
            fields[name] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            fields[name] = value
    if isinstance(fields.get("text"), int | float):  # a text that looked like a number
        fields["text"] = form["text"]
    if "caption" in fields and not isinstance(fields["caption"], str):
        fields["caption"] = form["caption"]
    return fields


def _shown(text: str, fields: dict[str, Any]) -> str:
    if fields.get("parse_mode") != "HTML":
        return text
    return html.unescape(_TAG.sub("", text))


def _text_problem(text: str, parse_mode: str | None, limit: int) -> str | None:
    if len(text) > limit:
        return (
            "Bad Request: message is too long"
            if limit == MESSAGE_LIMIT
            else ("Bad Request: message caption is too long")
        )
    if parse_mode == "HTML":
        stack: list[str] = []
        for match in _TAG.finditer(text):
            tag = match.group(1)
            if tag not in _ALLOWED_TAGS:
                return f'Bad Request: can\'t parse entities: unsupported start tag "{tag}"'
            if match.group(0).startswith("</"):
                if not stack or stack.pop() != tag:
                    return f'Bad Request: can\'t parse entities: unexpected end tag "{tag}"'
            else:
                stack.append(tag)
        if stack or re.search(r"<(?![a-z/])", text):
            return "Bad Request: can't parse entities: unclosed tag or stray '<'"
    return None


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


@asynccontextmanager
async def running(emulator: TelegramEmulator) -> AsyncIterator[str]:
    """Serve the emulator on a free loopback port; yields its base URL."""
    async with serve_app(emulator.app()) as base:
        try:
            yield base
        finally:
            emulator.release_polls()
