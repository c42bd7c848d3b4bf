-- Which chats an alert has reached: a retry after a partial failure skips them.
CREATE TABLE alert_deliveries (
    alert_id     INTEGER NOT NULL REFERENCES alerts (id),
    chat_id      INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (alert_id, chat_id)
);
