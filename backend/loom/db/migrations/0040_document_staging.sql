-- Chunks of an ingest still in progress: each window of embeddings is copied here as it
-- arrives (no connection is held while the embeddings provider works), then the whole batch
-- moves into document in one short transaction at the end. Unlogged: a crash may lose them,
-- as it loses the unfinished ingest they belong to; leftovers are purged at start.
CREATE UNLOGGED TABLE document_staging (
    batch_id   uuid NOT NULL,
    id         uuid NOT NULL,
    content    text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding  vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX document_staging_batch_idx ON document_staging (batch_id);
