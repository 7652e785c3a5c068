-- The run table becomes the run queue: a run row is the whole job, plus the columns of its
-- lease. See DESIGN.md ("Runs: one lifecycle for every protocol").
ALTER TABLE run
    ADD COLUMN multitask_strategy text NOT NULL DEFAULT 'reject'
        CHECK (multitask_strategy IN ('reject', 'enqueue', 'interrupt', 'rollback')),
    ADD COLUMN on_disconnect text NOT NULL DEFAULT 'continue'
        CHECK (on_disconnect IN ('continue', 'cancel')),
    ADD COLUMN recursion_limit integer NOT NULL DEFAULT 25,
    -- fork from this checkpoint (config.configurable.checkpoint_id)
    ADD COLUMN checkpoint_id text,
    -- a run started with multitask_strategy=rollback: the run whose work it undoes
    ADD COLUMN rollback_of uuid,
    -- the queue's columns
    ADD COLUMN attempt integer NOT NULL DEFAULT 0,
    ADD COLUMN lease_owner text,
    ADD COLUMN claim_token uuid,
    ADD COLUMN lease_until timestamptz,
    -- a stop asked for by a client while the run executes: cancel, interrupt or rollback
    ADD COLUMN stop_action text CHECK (stop_action IN ('cancel', 'interrupt', 'rollback')),
    ADD COLUMN started_at timestamptz,
    ADD COLUMN ended_at timestamptz;

-- Several pending runs may wait on one thread (enqueue); at most one runs at a time.
DROP INDEX run_one_active_per_thread;
CREATE UNIQUE INDEX run_one_running_per_thread ON run (thread_id) WHERE status = 'running';
CREATE INDEX run_active_thread_idx ON run (thread_id, created_at)
    WHERE status IN ('pending', 'running');
CREATE INDEX run_pending_idx ON run (created_at) WHERE status = 'pending';
CREATE INDEX run_lease_idx ON run (lease_until) WHERE status = 'running';

-- Create a run in one round trip, serialised per thread by a lock on the thread's row.
-- Returns the new row as JSON plus the runs it displaced:
--   {"run": {...}, "cancelled": [pending runs now cancelled], "stopping": [running runs asked
--    to stop]} or NULL when the thread is busy and the strategy is reject.
-- p_claim_owner: the creating process has a worker with a free slot; when the thread is idle
-- the run is created already claimed by it (status running, a fresh claim token and lease),
-- saving the queue round trip. Otherwise it is queued and, with p_notify, workers listening
-- on the loom_runs channel are woken.
CREATE FUNCTION loom_create_run(
    p_run_id uuid, p_thread_id uuid, p_assistant_id uuid, p_user_id text,
    p_input jsonb, p_config jsonb, p_strategy text, p_on_disconnect text,
    p_recursion_limit integer, p_checkpoint_id text,
    p_claim_owner text, p_lease_seconds double precision, p_notify boolean
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_active integer;
    v_running uuid;
    v_cancelled uuid[];
    v_stopping uuid[] := '{}';
    v_claim boolean;
    v_row run;
BEGIN
    PERFORM 1 FROM thread WHERE thread_id = p_thread_id FOR UPDATE;
    SELECT count(*), (array_agg(run_id) FILTER (WHERE status = 'running'))[1]
      INTO v_active, v_running
      FROM run WHERE thread_id = p_thread_id AND status IN ('pending', 'running');
    IF v_active > 0 AND p_strategy = 'reject' THEN
        RETURN NULL;
    END IF;
    IF v_active > 0 AND p_strategy IN ('interrupt', 'rollback') THEN
        WITH c AS (
            UPDATE run SET status = 'cancelled', ended_at = now(), updated_at = now(),
                   error = 'Replaced by a newer run on the thread'
             WHERE thread_id = p_thread_id AND status = 'pending'
            RETURNING run_id)
        SELECT coalesce(array_agg(run_id), '{}') INTO v_cancelled FROM c;
        IF v_running IS NOT NULL THEN
            UPDATE run SET stop_action = CASE WHEN p_strategy = 'interrupt'
                                              THEN 'interrupt' ELSE 'rollback' END,
                           updated_at = now()
             WHERE run_id = v_running;
            v_stopping := ARRAY[v_running];
            IF p_notify THEN
                PERFORM pg_notify('loom_cancel', v_running::text || ' ' ||
                                  CASE WHEN p_strategy = 'interrupt' THEN 'interrupt'
                                       ELSE 'rollback' END);
            END IF;
        END IF;
    END IF;
    v_claim := p_claim_owner IS NOT NULL AND v_active = 0;
    INSERT INTO run (run_id, thread_id, assistant_id, user_id, status, input, config,
                     multitask_strategy, on_disconnect, recursion_limit, checkpoint_id,
                     rollback_of, attempt, lease_owner, claim_token, lease_until, started_at)
    VALUES (p_run_id, p_thread_id, p_assistant_id, p_user_id,
            CASE WHEN v_claim THEN 'running' ELSE 'pending' END,
            p_input, p_config, p_strategy, p_on_disconnect, p_recursion_limit, p_checkpoint_id,
            CASE WHEN p_strategy = 'rollback' THEN v_running END,
            CASE WHEN v_claim THEN 1 ELSE 0 END,
            CASE WHEN v_claim THEN p_claim_owner END,
            CASE WHEN v_claim THEN gen_random_uuid() END,
            CASE WHEN v_claim THEN now() + make_interval(secs => p_lease_seconds) END,
            CASE WHEN v_claim THEN now() END)
    RETURNING * INTO v_row;
    IF NOT v_claim AND p_notify THEN
        PERFORM pg_notify('loom_runs', '');
    END IF;
    RETURN jsonb_build_object('run', to_jsonb(v_row), 'cancelled', coalesce(v_cancelled, '{}'),
                              'stopping', v_stopping);
END;
$$;
