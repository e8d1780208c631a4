-- Staff chats: the Telegram and Discord accounts of agents, so that a command written in a staff chat acts as the
-- agent who wrote it. An agent links an account with a short-lived code from the console, sent as `/link CODE` in
-- the staff chat; only the code's SHA-256 is stored, and redeeming it deletes it.
CREATE TABLE chat_link_codes (
    code_hash  TEXT   NOT NULL PRIMARY KEY,
    agent_id   BIGINT NOT NULL REFERENCES agents (id),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX chat_link_codes_agent ON chat_link_codes (agent_id);

CREATE TABLE agent_chat_accounts (
    platform  TEXT   NOT NULL,
    user_id   TEXT   NOT NULL,
    agent_id  BIGINT NOT NULL REFERENCES agents (id),
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (platform, user_id)
);
CREATE INDEX agent_chat_accounts_agent ON agent_chat_accounts (agent_id);
