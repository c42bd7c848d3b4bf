"""What a chat front end (Telegram lives in handlers/, above bot/chat) is built from."""

from __future__ import annotations

from collections.abc import Callable

from bot.alerts.outbox import AlertOutbox
from bot.chat.cockpit import Cockpit
from bot.core.ports import AlertDeliveries, ChatFrontend, Clock

# (cockpit, outbox, alerts, clock, mark_late): mark_late is off in a replay, whose clock is
# simulated, so an alert's age says nothing about how late it reaches the chat.
ChatFactory = Callable[[Cockpit, AlertOutbox, AlertDeliveries, Clock, bool], ChatFrontend]
