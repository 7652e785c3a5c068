-- ChatKit (POST /chatkit): what the ChatKit protocol keeps beside Loom's own rows. A ChatKit
-- thread is a Loom thread (same id); these tables only add what ChatKit knows and Loom does
-- not. Everything goes with its thread.

-- ChatKit-only thread fields (the title is the thread's name, its metadata the thread's).
CREATE TABLE chatkit_thread (
    thread_id             uuid PRIMARY KEY REFERENCES thread (thread_id) ON DELETE CASCADE,
    created_at            timestamptz NOT NULL,
    status                jsonb NOT NULL DEFAULT '{"type": "active"}'::jsonb,
    allowed_image_domains jsonb
);

-- Thread items. message_id links an item to the LangGraph message it shows (user and
-- assistant messages, a tool-call workflow, an approval widget); the thread's messages decide
-- which of those are listed and in what order. seq orders the items no message backs.
CREATE TABLE chatkit_item (
    thread_id  uuid NOT NULL REFERENCES thread (thread_id) ON DELETE CASCADE,
    item_id    text NOT NULL,
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    kind       text NOT NULL,
    message_id text,
    -- its message has been seen in the thread's state (gone from it later: rewound away)
    seen       boolean NOT NULL DEFAULT false,
    -- deleted through ChatKit while its message is still in the state (not shown again)
    deleted    boolean NOT NULL DEFAULT false,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (thread_id, item_id)
);
CREATE INDEX chatkit_item_seq_idx ON chatkit_item (thread_id, seq);

-- Attachments: the file (until it is deleted) and the documents it became in each thread.
CREATE TABLE chatkit_attachment (
    attachment_id text PRIMARY KEY,
    user_id       text NOT NULL,
    thread_id     uuid REFERENCES thread (thread_id) ON DELETE CASCADE,
    data          jsonb NOT NULL,
    content       bytea,
    documents     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chatkit_attachment_user_idx ON chatkit_attachment (user_id);

-- items.feedback: one verdict per item.
CREATE TABLE chatkit_feedback (
    thread_id  uuid NOT NULL REFERENCES thread (thread_id) ON DELETE CASCADE,
    item_id    text NOT NULL,
    user_id    text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('positive', 'negative')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, item_id)
);
