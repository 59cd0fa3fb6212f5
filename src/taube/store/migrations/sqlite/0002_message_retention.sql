-- Lets the hourly retention job find old messages without scanning the table.
CREATE INDEX messages_by_time ON messages (sent_at_ms);
