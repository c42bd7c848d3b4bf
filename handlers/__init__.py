"""Telegram adapters only: parse a command, call a bot/ service, render the reply."""
