-- Per-run overrides and extra retrieval namespaces, for every protocol.
-- overrides: plain assistant-config keys (configurable level) merged over the assistant's
--   config when the run's graph is built (e.g. system_message, model, tools).
-- namespaces: document namespaces the run may search besides its assistant's and thread's
--   (set by a protocol after checking the caller owns them; never taken from a client as is).
ALTER TABLE run
    ADD COLUMN overrides jsonb,
    ADD COLUMN namespaces text[] NOT NULL DEFAULT '{}';

DROP FUNCTION loom_create_run(uuid, uuid, uuid, text, jsonb, jsonb, text, text, integer, text,
                              text, double precision, boolean);

-- As in 0003, plus p_overrides and p_namespaces.
CREATE FUNCTION loom_create_run(
    p_run_id uuid, p_thread_id uuid, p_assistant_id uuid, p_user_id text,
    p_input jsonb, p_config jsonb, p_strategy text, p_on_disconnect text,
    p_recursion_limit integer, p_checkpoint_id text,
    p_claim_owner text, p_lease_seconds double precision, p_notify boolean,
    p_overrides jsonb, p_namespaces text[]
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
