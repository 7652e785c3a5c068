-- Progress records of asynchronous ingests (POST /ingest?async=true), readable by any Loom
-- process. The documents of a job are written in one transaction at its end; a job whose
-- process died (no heartbeat in updated_at) is reported as failed and stored nothing.
CREATE TABLE ingest_job (
    job_id       uuid PRIMARY KEY,
    user_id      text NOT NULL,
    namespace    text NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'error')),
    files_total  integer NOT NULL,
    files_done   integer NOT NULL DEFAULT 0,
    chunks_total integer NOT NULL DEFAULT 0,
    chunks_done  integer NOT NULL DEFAULT 0,
    error        text,
    files        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_job_user_idx ON ingest_job (user_id, created_at DESC);
CREATE INDEX ingest_job_created_idx ON ingest_job (created_at);
