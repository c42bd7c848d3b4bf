-- Sends to a chat that went out without an answer (the process died mid-send, or the
-- connection broke after the request left): Telegram may have shown the message, so the
-- next send to that chat says it may be a repeat. Cleared when Telegram refuses a send.
CREATE TABLE alert_attempts (
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    chat_id  INTEGER NOT NULL,
    PRIMARY KEY (alert_id, chat_id)
);
