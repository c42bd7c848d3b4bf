"""What the chat refuses: a command it does not have, and anything from a stranger.

Strangers' refusals: each logged at once, audited with the others in one commit a moment
later (a commit per stranger made a known user's /halt wait behind them for the database), the
admins told at most once an hour."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping
from html import escape

from telegram import Update
from telegram.ext import ContextTypes

from bot.alerts.outbox import AlertOutbox
from bot.chat.admin_desk import AdminDesk
from bot.core.domain import AlertPriority
from bot.core.ports import Clock
from handlers.delivery import send_text
from handlers.ordering import Strangers

log = logging.getLogger(__name__)

REFUSALS_EVERY = 0.2  # seconds strangers' refusals gather before one commit audits them
REFUSALS_RETRY = 5.0  # a failed commit of them is tried again this much later (or at the stop)
REFUSALS_KEPT = 1000  # refusals kept for a commit that failed (each is logged anyway)


class Refusals:
    def __init__(
        self,
        *,
        users: Mapping[int, str],
        admin: AdminDesk,
        strangers: Strangers,
        outbox: AlertOutbox,
        wall: Clock,
    ) -> None:
        """``users``: who is in the config (anyone else is a stranger)."""
        self._users = users
        self._admin = admin
        self._strangers = strangers
        self._outbox = outbox
        self._wall = wall
        self._refusals: list[tuple[str, str]] = []  # strangers' (actor, command), to audit
        self._auditing: asyncio.Task[None] | None = None  # the next batch, gathering
        self._committing = asyncio.Lock()  # one refusals commit at a time
        self._stopping = False

    async def unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command we do not have: the users get pointed at /help, strangers get nothing;
        a command addressed to another bot in a group is not ours to answer."""
        user, chat, message = update.effective_user, update.effective_chat, update.message
        if user is None or chat is None or message is None or message.text is None:
            return
        word = message.text.split()[0]
        _, at, addressee = word.partition("@")
        if at and addressee.lower() != (update.get_bot().username or "").lower():
            return
        if user.id not in self._users:
            await self.stranger(user.id, user.username, "(unknown command)")
            return
        await self._admin.record(str(user.id), word[1:41], [], "refused: unknown command")
        await send_text(
            update.get_bot(),
            chat.id,
            f"⚠️ {escape(word[:40])} is not a command here; /help lists them.",
        )

    async def stranger(self, user_id: int, username: str | None, name: str) -> None:
        """Logged, and audited with the other strangers' refusals in one commit a moment
        later (a commit per stranger made a known user's /halt wait behind them for the
        database); the admins get a summary at most once an hour."""
        log.warning("unauthorised user %s (@%s) tried /%s", user_id, username, name)
        self._refusals.append((str(user_id), name))
        if self._auditing is None:
            self._auditing = asyncio.create_task(self._audit_after(REFUSALS_EVERY))
        notice = self._strangers.notice(self._wall.now(), f"{user_id} (@{username or '-'}) /{name}")
        if notice is not None:
            await self._outbox.push("unauthorised", AlertPriority.INFO, notice)

    async def _audit_after(self, wait: float) -> None:
        """The refusals gathered over ``wait`` seconds, audited in one commit."""
        await asyncio.sleep(wait)
        self._auditing = None  # refusals from now on gather for the next batch
        await self._commit()

    async def _commit(self) -> None:
        """One commit of the refusals gathered; a failed one keeps them, and is tried again
        later (not once the stop began: nothing may outlive it; they are in the log). One
        commit at a time, so the stop's waits for one in flight (and retries what failed)."""
        async with self._committing:
            refusals, self._refusals = self._refusals, []
            if not refusals:
                return
            try:
                await self._admin.record_many(
                    [(actor, name, [], "refused: not in the config") for actor, name in refusals]
                )
            except (sqlite3.Error, OSError) as error:  # a backup holds the database: kept
                kept = [*refusals, *self._refusals]
                self._refusals = kept[-REFUSALS_KEPT:]  # the oldest beyond it: in the log only
                retry = not self._stopping
                log.error(
                    "%d strangers' refusals not audited (%s): %s%s",
                    len(refusals),
                    error,
                    f"tried again in {REFUSALS_RETRY:.0f} s"
                    if retry
                    else "tried once more at the stop",
                    f"; {len(kept) - REFUSALS_KEPT} oldest dropped"
                    if len(kept) > REFUSALS_KEPT
                    else "",
                )
                if retry and self._auditing is None:
                    self._auditing = asyncio.create_task(self._audit_after(REFUSALS_RETRY))

    async def at_stop(self) -> None:
        """At a stop: a batch waiting is audited now, after any commit in flight (whose
        failure is then tried once more here, never later)."""
        self._stopping = True
        if self._auditing is not None:  # still gathering: its refusals are all still here
            self._auditing.cancel()
            self._auditing = None
        await self._commit()
        if self._refusals:
            log.error(
                "%d strangers' refusals not audited at the stop: in the log only",
                len(self._refusals),
            )
