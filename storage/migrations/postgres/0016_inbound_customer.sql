-- One customer's messages, newest first: the language to answer a command in is the one they last wrote in, and in
-- a busy group conversation their few messages must not be searched for among everyone's.
CREATE INDEX inbound_messages_customer ON inbound_messages (customer_id, id);
