-- Four eyes for every public text: under `notices.four_eyes` a change that puts new words in front of customers (a
-- new text) waits here until another admin approves it; the published version stays what customers see meanwhile.
-- One proposal per notice: a newer one replaces it. `change` is the change as JSON, written and read by webcare.
CREATE TABLE notice_proposals (
    notice_id  BIGINT NOT NULL PRIMARY KEY REFERENCES notices (id),
    author_id  BIGINT NOT NULL REFERENCES agents (id),
    change     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
