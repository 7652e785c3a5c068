-- The OpenAI Assistants protocol (/v1, loom.protocols.openai): what it keeps beside Loom's own
-- rows. An assistant, a thread and a run are Loom's; these tables hold only what OpenAI's
-- shapes carry and Loom's do not, keyed by Loom's ids.

-- OpenAI-only fields of an assistant (its model, instructions, tools, temperature, top_p and
-- response_format are its Loom config).
CREATE TABLE openai_assistant (
    assistant_id    uuid PRIMARY KEY REFERENCES assistant (assistant_id) ON DELETE CASCADE,
    unnamed         boolean NOT NULL DEFAULT false,
    description     text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    tool_resources  jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- A thread's tool resources (its metadata is the thread row's own).
CREATE TABLE openai_thread (
    thread_id      uuid PRIMARY KEY REFERENCES thread (thread_id) ON DELETE CASCADE,
    tool_resources jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- What OpenAI says about a message of a thread (the message itself is in the thread's
-- LangGraph state, under its LangChain id): when it was first seen, the run and assistant
-- that wrote it, its metadata and attachments.
CREATE TABLE openai_message (
    thread_id    uuid NOT NULL REFERENCES thread (thread_id) ON DELETE CASCADE,
    message_id   text NOT NULL,
    run_id       uuid,
    assistant_id uuid,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    attachments  jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, message_id)
);

-- An Assistants run is a chain of Loom runs: the first one (whose id is the run's id), then one
-- per submit_tool_outputs. Its status is the status of the last one.
CREATE TABLE openai_run (
    run_id          uuid PRIMARY KEY,
    thread_id       uuid NOT NULL REFERENCES thread (thread_id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    assistant_id    uuid NOT NULL,
    parts           uuid[] NOT NULL,
    model           text NOT NULL,
    instructions    text NOT NULL,
    tools           jsonb NOT NULL DEFAULT '[]'::jsonb,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    temperature     double precision,
    top_p           double precision,
    response_format jsonb,
    usage           jsonb,
    settled_part    uuid,          -- the last part whose messages were recorded
    cancelled_at    timestamptz,   -- cancelled while it waited for tool outputs
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX openai_run_thread_idx ON openai_run (thread_id, created_at);

CREATE TABLE openai_file (
    file_id    uuid PRIMARY KEY,
    user_id    text NOT NULL,
    filename   text NOT NULL,
    purpose    text NOT NULL,
    bytes      integer NOT NULL,
    content    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX openai_file_user_idx ON openai_file (user_id, created_at);

-- Every document namespace a file was ingested into (a vector store's collection, a thread).
CREATE TABLE openai_file_use (
    file_id   uuid NOT NULL REFERENCES openai_file (file_id) ON DELETE CASCADE,
    namespace text NOT NULL,
    PRIMARY KEY (file_id, namespace)
);

-- A vector store is a collection: its documents are in namespace collection:<vector_store_id>.
CREATE TABLE openai_vector_store (
    vector_store_id uuid PRIMARY KEY,
    user_id         text NOT NULL,
    name            text NOT NULL DEFAULT '',
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    expires_after   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_active_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX openai_vector_store_user_idx ON openai_vector_store (user_id, created_at);

CREATE TABLE openai_vector_store_file (
    vector_store_id uuid NOT NULL
        REFERENCES openai_vector_store (vector_store_id) ON DELETE CASCADE,
    file_id         uuid NOT NULL REFERENCES openai_file (file_id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('in_progress', 'completed', 'failed', 'cancelled')),
    last_error      jsonb,
    usage_bytes     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vector_store_id, file_id)
);

-- A batch of files added to a vector store at once (its files are ingested when it is made).
CREATE TABLE openai_file_batch (
    batch_id        uuid PRIMARY KEY,
    vector_store_id uuid NOT NULL
        REFERENCES openai_vector_store (vector_store_id) ON DELETE CASCADE,
    file_ids        uuid[] NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
