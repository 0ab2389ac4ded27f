-- ledger_etl reference schema for sqlite.
-- Generated from ledger_etl/ledger/schema.py by `ledger-etl db ddl`; do not edit.
-- Apply migrations with `ledger-etl db upgrade` rather than running this by hand.

CREATE TABLE account_sources (
	account_id VARCHAR(64) NOT NULL, 
	source_url TEXT NOT NULL, 
	fingerprint VARCHAR(16) NOT NULL, 
	detail JSON NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	recorded_at DATETIME NOT NULL, 
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
	first_seen_at DATETIME NOT NULL, 
	last_seen_at DATETIME NOT NULL, 
	PRIMARY KEY (account_id)
);

CREATE TABLE activities (
	account_id VARCHAR(64) NOT NULL, 
	activity_key VARCHAR(64) NOT NULL, 
	occurred_at DATETIME NOT NULL, 
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

CREATE TABLE entry_history (
	id INTEGER NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	reference VARCHAR(64) NOT NULL, 
	previous JSON NOT NULL, 
	replaced_at DATETIME NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_entry_history_entry ON entry_history (account_id, reference);

CREATE TABLE ledger_entries (
	account_id VARCHAR(64) NOT NULL, 
	reference VARCHAR(64) NOT NULL, 
	posted_at DATETIME NOT NULL, 
	transaction_type VARCHAR(64) NOT NULL, 
	instrument VARCHAR(128), 
	amount TEXT NOT NULL, 
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

CREATE TABLE price_bars (
	epic VARCHAR(64) NOT NULL, 
	resolution VARCHAR(16) NOT NULL, 
	bar_type VARCHAR(16) NOT NULL, 
	t DATETIME NOT NULL, 
	bid_o TEXT, 
	bid_h TEXT, 
	bid_l TEXT, 
	bid_c TEXT, 
	ask_o TEXT, 
	ask_h TEXT, 
	ask_l TEXT, 
	ask_c TEXT, 
	volume INTEGER, 
	source VARCHAR(8) NOT NULL, 
	final BOOLEAN NOT NULL, 
	revision INTEGER NOT NULL, 
	first_seen DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	PRIMARY KEY (epic, resolution, bar_type, t)
);

CREATE TABLE price_coverage (
	id INTEGER NOT NULL, 
	epic VARCHAR(64) NOT NULL, 
	resolution VARCHAR(16) NOT NULL, 
	bar_type VARCHAR(16) NOT NULL, 
	start DATETIME NOT NULL, 
	"end" DATETIME NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_price_coverage_key ON price_coverage (epic, resolution, bar_type, start);

CREATE TABLE quarantine (
	id INTEGER NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	endpoint VARCHAR(32) NOT NULL, 
	raw_sha256 VARCHAR(64) NOT NULL, 
	raw TEXT NOT NULL, 
	reason TEXT NOT NULL, 
	window_start DATETIME, 
	window_end DATETIME, 
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
	date_utc DATETIME NOT NULL, 
	window_start DATETIME NOT NULL, 
	window_end DATETIME NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	last_run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (account_id, activity_key)
);

CREATE TABLE raw_transactions (
	account_id VARCHAR(64) NOT NULL, 
	reference VARCHAR(64) NOT NULL, 
	raw TEXT NOT NULL, 
	row_sha256 VARCHAR(64) NOT NULL, 
	date_utc DATETIME NOT NULL, 
	window_start DATETIME NOT NULL, 
	window_end DATETIME NOT NULL, 
	first_run_id VARCHAR(64) NOT NULL, 
	last_run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (account_id, reference)
);

CREATE TABLE runs (
	run_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	status VARCHAR(16) NOT NULL, 
	params JSON NOT NULL, 
	summary JSON, 
	code_version VARCHAR(32) NOT NULL, 
	PRIMARY KEY (run_id)
);

CREATE TABLE balance_observations (
	id INTEGER NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	observed_at DATETIME NOT NULL, 
	balance TEXT NOT NULL, 
	deposit TEXT, 
	profit_loss TEXT, 
	available TEXT, 
	currency VARCHAR(8), 
	run_id VARCHAR(64), 
	PRIMARY KEY (id), 
	FOREIGN KEY(account_id) REFERENCES accounts (account_id), 
	FOREIGN KEY(run_id) REFERENCES runs (run_id)
);

CREATE INDEX ix_balance_observations_account_time ON balance_observations (account_id, observed_at);

CREATE TABLE fetch_log (
	id INTEGER NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	endpoint VARCHAR(32) NOT NULL, 
	window_start DATETIME NOT NULL, 
	window_end DATETIME NOT NULL, 
	params JSON NOT NULL, 
	http_status INTEGER, 
	attempts INTEGER NOT NULL, 
	relogins INTEGER NOT NULL, 
	row_count INTEGER NOT NULL, 
	body_sha256 VARCHAR(64), 
	min_ts DATETIME, 
	max_ts DATETIME, 
	duration_s FLOAT NOT NULL, 
	ids JSON NOT NULL, 
	outcome VARCHAR(16) NOT NULL, 
	error TEXT, 
	parent_start DATETIME, 
	parent_end DATETIME, 
	fetched_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (run_id)
);

CREATE INDEX ix_fetch_log_coverage ON fetch_log (account_id, endpoint, window_start, window_end);
