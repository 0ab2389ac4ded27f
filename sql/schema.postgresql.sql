-- ledger_etl reference schema for postgresql.
-- Generated from ledger_etl/ledger/schema.py by `ledger-etl db ddl`; do not edit.
-- Apply migrations with `ledger-etl db upgrade` rather than running this by hand.

CREATE TABLE account_sources (
	account_id VARCHAR(64) NOT NULL, 
	source_url TEXT NOT NULL, 
	fingerprint VARCHAR(16) NOT NULL, 
	detail JSON NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (account_id)
);

CREATE TABLE accounts (
	account_id VARCHAR(64) NOT NULL, 
	account_name TEXT, 
	currency VARCHAR(8), 
	currency_raw VARCHAR(16), 
	account_type VARCHAR(32), 
	status VARCHAR(32), 
	preferred BOOLEAN, 
	first_seen_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_seen_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (account_id)
);

CREATE TABLE activities (
	account_id VARCHAR(64) NOT NULL, 
	activity_key VARCHAR(64) NOT NULL, 
	occurred_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	epic VARCHAR(64), 
	deal_id VARCHAR(64), 
	source VARCHAR(32), 
	activity_type VARCHAR(32), 
	status VARCHAR(32), 
	deal_reference VARCHAR(128), 
	direction VARCHAR(8), 
	size TEXT, 
	level TEXT, 
	working_order_id VARCHAR(64), 
	actions VARCHAR(255) NOT NULL, 
	flags VARCHAR(255) NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (account_id, activity_key)
);

CREATE INDEX ix_activities_account_time ON activities (account_id, occurred_at);

CREATE INDEX ix_activities_deal ON activities (account_id, deal_id);

CREATE TABLE chart_template_versions (
	name VARCHAR(128) NOT NULL, 
	version INTEGER NOT NULL, 
	content_sha256 VARCHAR(64) NOT NULL, 
	content TEXT NOT NULL, 
	source TEXT, 
	imported_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (name, version)
);

CREATE INDEX ix_chart_template_versions_hash ON chart_template_versions (name, content_sha256);

CREATE TABLE chart_templates (
	name VARCHAR(128) NOT NULL, 
	current_version INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE entry_history (
	id SERIAL NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	reference VARCHAR(64) NOT NULL, 
	previous JSON NOT NULL, 
	replaced_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_entry_history_entry ON entry_history (account_id, reference);

CREATE TABLE ledger_entries (
	account_id VARCHAR(64) NOT NULL, 
	reference VARCHAR(64) NOT NULL, 
	posted_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	transaction_type VARCHAR(64) NOT NULL, 
	instrument VARCHAR(128), 
	amount NUMERIC(38, 8) NOT NULL, 
	currency VARCHAR(8) NOT NULL, 
	currency_raw VARCHAR(16) NOT NULL, 
	status VARCHAR(32), 
	deal_id VARCHAR(64), 
	note TEXT, 
	ledger_account VARCHAR(16) NOT NULL, 
	flags VARCHAR(255) NOT NULL, 
	row_sha256 VARCHAR(64) NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	last_run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (account_id, reference)
);

CREATE INDEX ix_ledger_entries_account_time ON ledger_entries (account_id, posted_at);

CREATE TABLE quarantine (
	id SERIAL NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	endpoint VARCHAR(32) NOT NULL, 
	raw_sha256 VARCHAR(64) NOT NULL, 
	raw TEXT NOT NULL, 
	reason TEXT NOT NULL, 
	window_start TIMESTAMP WITH TIME ZONE, 
	window_end TIMESTAMP WITH TIME ZONE, 
	first_run_id VARCHAR(64) NOT NULL, 
	last_run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_quarantine_row UNIQUE (account_id, endpoint, raw_sha256)
);

CREATE TABLE raw_activities (
	account_id VARCHAR(64) NOT NULL, 
	activity_key VARCHAR(64) NOT NULL, 
	occurrence INTEGER NOT NULL, 
	raw TEXT NOT NULL, 
	date_utc TIMESTAMP WITH TIME ZONE NOT NULL, 
	window_start TIMESTAMP WITH TIME ZONE NOT NULL, 
	window_end TIMESTAMP WITH TIME ZONE NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	last_run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (account_id, activity_key)
);

CREATE TABLE raw_transactions (
	account_id VARCHAR(64) NOT NULL, 
	reference VARCHAR(64) NOT NULL, 
	raw TEXT NOT NULL, 
	row_sha256 VARCHAR(64) NOT NULL, 
	date_utc TIMESTAMP WITH TIME ZONE NOT NULL, 
	window_start TIMESTAMP WITH TIME ZONE NOT NULL, 
	window_end TIMESTAMP WITH TIME ZONE NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	last_run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (account_id, reference)
);

CREATE TABLE runs (
	run_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	started_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	status VARCHAR(16) NOT NULL, 
	params JSON NOT NULL, 
	summary JSON, 
	code_version VARCHAR(32) NOT NULL, 
	PRIMARY KEY (run_id)
);

CREATE TABLE sentiment_observations (
	epic VARCHAR(64) NOT NULL, 
	observed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	long_pct NUMERIC(38, 8) NOT NULL, 
	short_pct NUMERIC(38, 8) NOT NULL, 
	flags VARCHAR(255) NOT NULL, 
	raw TEXT NOT NULL, 
	revision INTEGER NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (epic, observed_at)
);

CREATE INDEX ix_sentiment_observations_time ON sentiment_observations (observed_at);

CREATE TABLE sentiment_polls (
	id SERIAL NOT NULL, 
	observed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	asked INTEGER NOT NULL, 
	observed INTEGER NOT NULL, 
	new_rows INTEGER NOT NULL, 
	unknown JSON NOT NULL, 
	problems JSON NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE watchlist_members (
	id SERIAL NOT NULL, 
	watchlist_id VARCHAR(64) NOT NULL, 
	epic VARCHAR(64) NOT NULL, 
	valid_from TIMESTAMP WITH TIME ZONE NOT NULL, 
	valid_to TIMESTAMP WITH TIME ZONE, 
	added_run_id VARCHAR(64) NOT NULL, 
	removed_run_id VARCHAR(64), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_watchlist_members_list ON watchlist_members (watchlist_id, epic, valid_from);

CREATE TABLE watchlist_polls (
	id SERIAL NOT NULL, 
	observed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	watchlists INTEGER NOT NULL, 
	added INTEGER NOT NULL, 
	removed INTEGER NOT NULL, 
	unreadable JSON NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE watchlists (
	watchlist_id VARCHAR(64) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	editable BOOLEAN, 
	deleteable BOOLEAN, 
	default_system BOOLEAN, 
	raw TEXT NOT NULL, 
	first_seen_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_seen_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (watchlist_id)
);

CREATE TABLE balance_observations (
	id SERIAL NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	observed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	balance NUMERIC(38, 8) NOT NULL, 
	deposit NUMERIC(38, 8), 
	profit_loss NUMERIC(38, 8), 
	available NUMERIC(38, 8), 
	currency VARCHAR(8), 
	run_id VARCHAR(64), 
	PRIMARY KEY (id), 
	FOREIGN KEY(account_id) REFERENCES accounts (account_id), 
	FOREIGN KEY(run_id) REFERENCES runs (run_id)
);

CREATE INDEX ix_balance_observations_account_time ON balance_observations (account_id, observed_at);

CREATE TABLE fetch_log (
	id SERIAL NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	endpoint VARCHAR(32) NOT NULL, 
	window_start TIMESTAMP WITH TIME ZONE NOT NULL, 
	window_end TIMESTAMP WITH TIME ZONE NOT NULL, 
	params JSON NOT NULL, 
	http_status INTEGER, 
	attempts INTEGER NOT NULL, 
	relogins INTEGER NOT NULL, 
	row_count INTEGER NOT NULL, 
	body_sha256 VARCHAR(64), 
	min_ts TIMESTAMP WITH TIME ZONE, 
	max_ts TIMESTAMP WITH TIME ZONE, 
	duration_s FLOAT NOT NULL, 
	ids JSON NOT NULL, 
	outcome VARCHAR(16) NOT NULL, 
	error TEXT, 
	parent_start TIMESTAMP WITH TIME ZONE, 
	parent_end TIMESTAMP WITH TIME ZONE, 
	fetched_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (run_id)
);

CREATE INDEX ix_fetch_log_coverage ON fetch_log (account_id, endpoint, window_start, window_end);
