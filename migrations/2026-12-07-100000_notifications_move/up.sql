-- Owned by the notifications module: its move out of the shared database onto a database of its
-- own (`agora split notifications`), as GitLab moved its `ci` tables: copy while the shop runs,
-- verify, cut over under a write lock, and keep the way back open.

-- Where the move is. One row; absent until a move starts. The command resumes from here after a
-- crash, and says so.
CREATE TABLE notifications_move (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- copying: step 1 under way (changes are being tracked); copied: copy made, not yet cut over;
    -- cut_over: the service's database holds the e-mails of record, the old tables are
    -- write-locked; rolled_back: the e-mails came back here and the write lock is gone;
    -- contracted: the old tables are dropped (`--contract`), and there is no way back.
    step text NOT NULL CHECK (step IN ('copying', 'copied', 'cut_over', 'rolled_back', 'contracted')),
    started_at timestamptz NOT NULL DEFAULT now(),
    copied_at timestamptz,
    copied_rows bigint,
    cut_over_at timestamptz,
    caught_up_rows bigint,
    -- How long no e-mail could be recorded anywhere: from the lock taken to the cutover committed.
    write_window_ms double precision,
    rolled_back_at timestamptz,
    contracted_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The delta: rows written since the copy began, by table and key, which the cutover copies again under
-- its lock. Filled by a trigger that exists only while a copy is under way.
CREATE TABLE notifications_delta (
    table_name text NOT NULL,
    key text NOT NULL,
    PRIMARY KEY (table_name, key)
);

-- SECURITY DEFINER: the notifications role that writes e-mails has no grant on the change list.
-- The key column is the trigger's argument, read through jsonb so one function serves both tables.
CREATE FUNCTION notifications_move_track() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO public.notifications_delta (table_name, key)
    VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> TG_ARGV[0])
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION notifications_move_track() FROM PUBLIC;

-- The write lock of the cutover: once the e-mails of record live in the service's database, a
-- write here (a process still running the in-process handler or consumer) fails instead of
-- recording an e-mail nobody will see. SQLSTATE 55000, object_not_in_prerequisite_state.
CREATE FUNCTION notifications_refuse_writes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'notifications has moved to a database of its own: % is write-locked (agora split notifications)', TG_TABLE_NAME
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$;
