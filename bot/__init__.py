"""pairpilot's service core: everything but Telegram adapters, strategies and SQL."""
