-- Per-user limits (see loom/limits.py).
--
-- loom_create_run gains p_max_active: with a positive value, a user may have at most that many
-- runs pending or running at once. The count is taken under a per-user advisory lock held to
-- the end of the transaction, so two runs created at the same moment cannot both take the
-- last place. Over the limit it returns {"limited": <active runs>} and creates nothing.
CREATE INDEX run_user_active_idx ON run (user_id) WHERE status IN ('pending', 'running');

-- Bytes a user uploaded per UTC day (POST /ingest, /v1/files, ChatKit attachments).
CREATE TABLE user_upload_usage (
    user_id text NOT NULL,
    day     date NOT NULL,
    bytes   bigint NOT NULL,
    PRIMARY KEY (user_id, day)
);

DROP FUNCTION loom_create_run(uuid, uuid, uuid, text, jsonb, jsonb, text, text, integer, text,
                              text, double precision, boolean, jsonb, text[]);

-- As in 0010, plus p_max_active.
CREATE FUNCTION loom_create_run(
    p_run_id uuid, p_thread_id uuid, p_assistant_id uuid, p_user_id text,
    p_input jsonb, p_config jsonb, p_strategy text, p_on_disconnect text,
    p_recursion_limit integer, p_checkpoint_id text,
    p_claim_owner text, p_lease_seconds double precision, p_notify boolean,
    p_overrides jsonb, p_namespaces text[], p_max_active integer
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_active integer;
    v_running uuid;
    v_cancelled uuid[];
    v_stopping uuid[] := '{}';
    v_claim boolean;
    v_user_active integer;
    v_row run;
BEGIN
    IF p_max_active > 0 THEN
        -- One run creation at a time per user (until commit), so the count below holds.
        PERFORM pg_advisory_xact_lock(hashtextextended('loom_user_runs:' || p_user_id, 0));
    END IF;
    PERFORM 1 FROM thread WHERE thread_id = p_thread_id FOR UPDATE;
    SELECT count(*), (array_agg(run_id) FILTER (WHERE status = 'running'))[1]
      INTO v_active, v_running
      FROM run WHERE thread_id = p_thread_id AND status IN ('pending', 'running');
    IF v_active > 0 AND p_strategy = 'reject' THEN
        RETURN NULL;
    END IF;
    IF p_max_active > 0 THEN
        -- The user's active runs, minus the pending ones of this thread that this run's
        -- strategy is about to cancel.
        SELECT count(*) INTO v_user_active FROM run
         WHERE user_id = p_user_id AND status IN ('pending', 'running')
           AND NOT (p_strategy IN ('interrupt', 'rollback') AND thread_id = p_thread_id
                    AND status = 'pending');
        IF v_user_active >= p_max_active THEN
            RETURN jsonb_build_object('limited', v_user_active);
        END IF;
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
                     rollback_of, attempt, lease_owner, claim_token, lease_until, started_at,
                     overrides, namespaces)
    VALUES (p_run_id, p_thread_id, p_assistant_id, p_user_id,
            CASE WHEN v_claim THEN 'running' ELSE 'pending' END,
            p_input, p_config, p_strategy, p_on_disconnect, p_recursion_limit, p_checkpoint_id,
            CASE WHEN p_strategy = 'rollback' THEN v_running END,
            CASE WHEN v_claim THEN 1 ELSE 0 END,
            CASE WHEN v_claim THEN p_claim_owner END,
            CASE WHEN v_claim THEN gen_random_uuid() END,
            CASE WHEN v_claim THEN now() + make_interval(secs => p_lease_seconds) END,
            CASE WHEN v_claim THEN now() END,
            p_overrides, coalesce(p_namespaces, '{}'))
    RETURNING * INTO v_row;
    IF NOT v_claim AND p_notify THEN
        PERFORM pg_notify('loom_runs', '');
    END IF;
    RETURN jsonb_build_object('run', to_jsonb(v_row), 'cancelled', coalesce(v_cancelled, '{}'),
                              'stopping', v_stopping);
END;
$$;
