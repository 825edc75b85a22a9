-- Spiral's BI views over the Parquet export (docs/bi.md). Run from the export directory:
--   duckdb -c ".read /path/to/deploy/bi/views.sql" -c "FROM stage_table"
-- The *_all views are every row ever written (every revision); the plain names are the
-- current truth under the rule of docs/bi.md:
--   * a touch row never changes; a touch read again after a crash carries the same facts, so
--     one row per (event_id, occurred_at) is kept, the newest;
--   * for each (funnel, account_id), the row with the highest revision says how many journeys
--     the account has (account_journeys); each journey below that count is its
--     highest-revision row;
--   * a journey's stage entries are the rows of its own revision.
SET TimeZone = 'UTC';

CREATE OR REPLACE VIEW touches_all AS
    FROM read_parquet('touches/*/*.parquet', hive_partitioning = true, union_by_name = true);

CREATE OR REPLACE VIEW journeys_all AS
    FROM read_parquet('journeys/*/*.parquet', hive_partitioning = true, union_by_name = true);

CREATE OR REPLACE VIEW stage_entries_all AS
    FROM read_parquet('stage_entries/*/*.parquet', hive_partitioning = true, union_by_name = true);

CREATE OR REPLACE VIEW touches AS
    FROM touches_all
    QUALIFY row_number() OVER (PARTITION BY event_id, occurred_at ORDER BY revision DESC) = 1;

CREATE OR REPLACE VIEW journeys AS
    WITH accounts AS (
        SELECT funnel, account_id, max_by(account_journeys, revision) AS account_journeys_now
        FROM journeys_all
        GROUP BY ALL
    )
    SELECT j.* EXCLUDE (account_journeys), a.account_journeys_now AS account_journeys
    FROM journeys_all j JOIN accounts a USING (funnel, account_id)
    WHERE j.journey < a.account_journeys_now
    QUALIFY row_number() OVER (
        PARTITION BY j.funnel, j.account_id, j.journey ORDER BY j.revision DESC) = 1;

CREATE OR REPLACE VIEW stage_entries AS
    SELECT s.*
    FROM stage_entries_all s SEMI JOIN journeys j USING (funnel, account_id, journey, revision);

-- Each touch with the account it resolved to and its journey in every funnel it joined
-- (touches that never resolved to an account have no row here).
CREATE OR REPLACE VIEW touch_journeys AS
    SELECT j.funnel, j.account_id AS resolved_account_id, j.journey, t.*
    FROM journeys j, unnest(j.event_ids) AS u(event_id)
    JOIN touches t ON t.event_id = u.event_id
        AND t.occurred_at BETWEEN j.started_at AND j.last_touch_at;

-- Each current stage entry with what its entering touch carried: touchpoint, campaign,
-- source, cost and attributes. Breakdowns such as the metrics' `metrics.dimensions` come from
-- here without their top-N, e.g. by segment:
--   SELECT funnel, stage, coalesce(attributes['segment'], 'none') AS segment, count(*)
--   FROM stage_entries_touch GROUP BY ALL
-- (a touch read before the export was turned on has no row: its columns are NULL).
CREATE OR REPLACE VIEW stage_entries_touch AS
    SELECT s.*, t.touchpoint, t.campaign, t.source, t.cost, t.attributes
    FROM stage_entries s LEFT JOIN touches t
        ON t.event_id = s.entering_event_id AND t.occurred_at = s.entered_at;

-- The summary's stage table (SPEC §5.1): one row per funnel and entered stage.
CREATE OR REPLACE VIEW stage_table AS
    SELECT
        funnel,
        stage_index,
        stage,
        count(*) AS entered,
        count(*) FILTER (outcome = 'converted') AS converted,
        count(*) FILTER (outcome = 'dropped') AS dropped,
        count(*) FILTER (outcome = 'open') AS open,
        coalesce(sum(time_to_convert_ms), 0) AS conversion_ms_sum,
        count(*) FILTER (channel = 'online') AS entered_online,
        count(*) FILTER (channel = 'offline') AS entered_offline,
        count(*) FILTER (turns_before_entry = 0) AS turns_0,
        count(*) FILTER (turns_before_entry = 1) AS turns_1,
        count(*) FILTER (turns_before_entry = 2) AS turns_2,
        count(*) FILTER (turns_before_entry = 3) AS turns_3,
        count(*) FILTER (turns_before_entry >= 4) AS turns_4_plus
    FROM stage_entries
    GROUP BY ALL
    ORDER BY funnel, stage_index;

-- The summary's journey counts per funnel.
CREATE OR REPLACE VIEW funnel_table AS
    SELECT
        funnel,
        count(*) AS journeys,
        count(*) FILTER (status = 'won') AS journeys_won,
        count(*) FILTER (status = 'lost') AS journeys_lost
    FROM journeys
    GROUP BY ALL
    ORDER BY funnel;

-- Conversion by the week a stage was entered (ISO weeks, Monday, UTC): how many entered,
-- how many of them converted so far, the rate and the median time to convert in days.
CREATE OR REPLACE VIEW conversion_by_week AS
    SELECT
        funnel,
        stage_index,
        stage,
        date_trunc('week', entered_at) AS week,
        count(*) AS entered,
        count(*) FILTER (outcome = 'converted') AS converted,
        count(*) FILTER (outcome = 'dropped') AS dropped,
        count(*) FILTER (outcome = 'open') AS open,
        round(100.0 * count(*) FILTER (outcome = 'converted') / count(*), 1) AS conversion_pct,
        round(median(time_to_convert_ms) / 86400000.0, 2) AS median_days_to_convert
    FROM stage_entries
    WHERE outcome IS NOT NULL
    GROUP BY ALL
    ORDER BY funnel, stage_index, week;
