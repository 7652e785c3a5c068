-- Thread search (GET /threads?q=): the words of each thread's human and AI messages, one row
-- per message, written lazily by a search for the threads that changed since they were last
-- indexed (thread.updated_at moves when a run ends, the state is updated or the thread is
-- renamed). Message text is read through LangGraph (the thread's state), never from
-- checkpoint rows.
CREATE TABLE thread_search_message (
    thread_id  uuid NOT NULL REFERENCES thread (thread_id) ON DELETE CASCADE,
    message_id text NOT NULL,
    words      tsvector NOT NULL,
    PRIMARY KEY (thread_id, message_id)
);
CREATE INDEX thread_search_message_words_idx ON thread_search_message USING gin (words);

CREATE TABLE thread_search_state (
    thread_id  uuid PRIMARY KEY REFERENCES thread (thread_id) ON DELETE CASCADE,
    indexed_at timestamptz NOT NULL
);
