-- Loom's own tables. LangGraph's checkpoint tables are created by AsyncPostgresSaver.setup().
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE assistant (
    assistant_id uuid PRIMARY KEY,
    user_id      text NOT NULL,
    name         text NOT NULL,
    config       jsonb NOT NULL,
    public       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assistant_user_idx ON assistant (user_id, updated_at DESC);
CREATE INDEX assistant_public_idx ON assistant (updated_at DESC) WHERE public;

CREATE TABLE thread (
    thread_id    uuid PRIMARY KEY,
    user_id      text NOT NULL,
    assistant_id uuid REFERENCES assistant (assistant_id) ON DELETE SET NULL,
    name         text NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX thread_user_idx ON thread (user_id, updated_at DESC);

CREATE TABLE run (
    run_id       uuid PRIMARY KEY,
    thread_id    uuid NOT NULL REFERENCES thread (thread_id) ON DELETE CASCADE,
    assistant_id uuid,
    user_id      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'running', 'success', 'error', 'interrupted', 'cancelled')),
    input        jsonb,
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_thread_idx ON run (thread_id, created_at DESC);
-- At most one active run per thread, enforced by the database.
CREATE UNIQUE INDEX run_one_active_per_thread ON run (thread_id) WHERE status IN ('pending', 'running');

CREATE TABLE document (
    id          uuid PRIMARY KEY,
    namespace   text NOT NULL,
    content     text NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding   vector NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX document_namespace_idx ON document (namespace);
