"""SQLite persistence: the connection, migrations and one repository per aggregate.

All SQL lives in this package. Repositories return domain types from ``bot.core.domain``.
"""
