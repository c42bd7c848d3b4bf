-- An alert may carry a chart (the daily report): PNG bytes, sent with the text as its caption.
ALTER TABLE alerts ADD COLUMN photo BLOB;
