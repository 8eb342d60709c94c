"""The store's schema: forward-only migrations (fleet.store applies them) and the SQLite
application id that marks a file as a fleet store."""

from __future__ import annotations

APPLICATION_ID = 0x464C4554  # "FLET": PRAGMA application_id of every fleet store

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        port INTEGER NOT NULL,
        user_name TEXT,
        connection TEXT NOT NULL,
        first_seen_unix_seconds REAL NOT NULL,
        last_seen_unix_seconds REAL NOT NULL
    );
    CREATE TABLE facts_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL REFERENCES hosts(name),
        collected_at_unix_seconds REAL NOT NULL,
        fingerprint TEXT NOT NULL,
        format_version INTEGER NOT NULL,
        facts_json TEXT NOT NULL
    );
    CREATE INDEX facts_snapshots_host_time ON facts_snapshots(host, collected_at_unix_seconds);
    """,
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        suite TEXT NOT NULL,
        suite_path TEXT NOT NULL,
        suite_sha256 TEXT NOT NULL,
        suite_text TEXT NOT NULL,
        seed INTEGER NOT NULL,
        inventory_json TEXT NOT NULL,
        limit_pattern TEXT,
        fleet_version TEXT NOT NULL,
        created_at_unix_seconds REAL NOT NULL,
        finished_at_unix_seconds REAL,
        status TEXT NOT NULL,
        plan_json TEXT NOT NULL
    );
    CREATE TABLE run_cases (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        case_id TEXT NOT NULL,
        workload TEXT NOT NULL,
        params_json TEXT NOT NULL,
        PRIMARY KEY (run_id, case_id)
    );
    CREATE TABLE run_jobs (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        job_key TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (run_id, job_key)
    );
    CREATE TABLE run_skips (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        case_id TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE attempts (
        attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        job_key TEXT NOT NULL,
        host TEXT NOT NULL,
        attempt_no INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at_unix_seconds REAL NOT NULL,
        ended_at_unix_seconds REAL NOT NULL,
        exit_code INTEGER,
        signal INTEGER,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        stdout_truncated INTEGER NOT NULL,
        stderr_truncated INTEGER NOT NULL,
        fingerprint TEXT,
        knobs_json TEXT NOT NULL,
        error TEXT
    );
    CREATE INDEX attempts_run ON attempts(run_id, job_key);
    CREATE TABLE results (
        attempt_id INTEGER NOT NULL REFERENCES attempts(attempt_id),
        metric TEXT NOT NULL,
        value REAL,
        unit TEXT NOT NULL,
        labels_json TEXT NOT NULL
    );
    CREATE INDEX results_attempt ON results(attempt_id);
    """,
    # 3: the sampler's series per attempt (fleet.sampling.collect: at most 600 points per series and
    # attempt) and a free-text note per attempt (kernel log problems, unreadable inputs)
    """
    CREATE TABLE samples (
        attempt_id INTEGER NOT NULL REFERENCES attempts(attempt_id),
        series TEXT NOT NULL,
        labels_json TEXT NOT NULL,
        monotonic_seconds REAL NOT NULL,
        wall_unix_seconds REAL NOT NULL,
        value REAL
    );
    CREATE INDEX samples_attempt ON samples(attempt_id, series);
    ALTER TABLE attempts ADD COLUMN notes TEXT;
    """,
    # 4: run tags (fleet run --tag KEY=VALUE, plus date / git_sha / fleet_version), one value
    # per key and run; baselines and history select runs by them
    """
    CREATE TABLE run_tags (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    );
    CREATE INDEX run_tags_key_value ON run_tags(key, value);
    """,
    # 5: run ownership (one live controller per run: fleet.store.owner), jobs claimed while
    # they run (a crash leaves them visible), and hosts a run could not use, with the reason
    """
    CREATE TABLE run_owners (
        run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
        pid INTEGER NOT NULL,
        host_name TEXT NOT NULL,
        process_start TEXT NOT NULL,
        since_unix_seconds REAL NOT NULL,
        heartbeat_unix_seconds REAL NOT NULL
    );
    CREATE TABLE job_claims (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        job_key TEXT NOT NULL,
        host TEXT NOT NULL,
        attempt_no INTEGER NOT NULL,
        started_at_unix_seconds REAL NOT NULL,
        PRIMARY KEY (run_id, job_key, attempt_no)
    );
    CREATE TABLE run_unreachable (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        host TEXT NOT NULL,
        reason TEXT NOT NULL,
        recorded_at_unix_seconds REAL NOT NULL,
        PRIMARY KEY (run_id, host)
    );
    """,
    # 6: provisioning records (fleet provision): per host its status, Ansible's counts (NULL
    # when the probe found it in state and Ansible did not run), the failing task and message
    """
    CREATE TABLE provisionings (
        provisioning_id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at_unix_seconds REAL NOT NULL,
        finished_at_unix_seconds REAL NOT NULL,
        inventory_json TEXT NOT NULL,
        limit_pattern TEXT,
        check_mode INTEGER NOT NULL
    );
    CREATE TABLE provisioning_hosts (
        provisioning_id INTEGER NOT NULL REFERENCES provisionings(provisioning_id),
        host TEXT NOT NULL,
        status TEXT NOT NULL,
        ok INTEGER,
        changed INTEGER,
        failed INTEGER,
        unreachable INTEGER,
        skipped INTEGER,
        failed_task TEXT,
        message TEXT,
        PRIMARY KEY (provisioning_id, host)
    );
    """,
    # 7: the verified kernel variant identity (fleet.variant.VariantIdentity as JSON) of the
    # host an attempt ran on, when the host was provisioned with a variant; else NULL
    """
    ALTER TABLE attempts ADD COLUMN variant_json TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
