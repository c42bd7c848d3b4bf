"""The chat services a front end is built from, one per job (bot/app builds them).

Everything in bot/chat is chat-agnostic: services return typed views and outcomes, never a
front end's words or markup (Telegram's live in handlers/). Bad input raises UserInputError /
NotFound and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.alerts.preferences import AlertPreferences
from bot.charts.worker import ChartWorker
from bot.chat.admin_desk import AdminDesk
from bot.chat.chat_state import ChatState
from bot.chat.check_desk import CheckDesk
from bot.chat.drift_desk import DriftDesk
from bot.chat.gate_desk import GateDesk
from bot.chat.limits_desk import LimitsDesk
from bot.chat.overview import Overview
from bot.chat.pair_desk import PairDesk
from bot.chat.reload_desk import ReloadDesk
from bot.chat.research_desk import ResearchDesk
from bot.chat.venue import Venue
from bot.trading.dust import DustDesk


@dataclass(frozen=True, slots=True)
class Cockpit:
    venue: Venue
    overview: Overview  # the reads
    pairs: PairDesk  # the trading actions
    limits: LimitsDesk  # /risk set
    research: ResearchDesk  # charts, backtests, sweeps, the daily report
    admin: AdminDesk  # health, alert choices, the audit log
    chat_state: ChatState  # what the front end keeps
    preferences: AlertPreferences
    charts: ChartWorker  # started and closed with the front end
    dust: DustDesk | None = None  # the dust in the books and its conversion (/dust)
    drift: DriftDesk | None = None  # live against the paper twin (/drift, /promote)
    gate: GateDesk | None = None  # /allow: a strategy not checked let trade live
    checks: CheckDesk | None = None  # strategy checks (/check)
    reload: ReloadDesk | None = None  # /reload: the strategy files loaded again
