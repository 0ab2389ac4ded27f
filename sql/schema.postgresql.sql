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
	first_run_key INTEGER NOT NULL, 
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

CREATE TABLE deal_lifecycles (
	account_id VARCHAR(64) NOT NULL, 
	deal_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	state VARCHAR(32) NOT NULL, 
	epic VARCHAR(64), 
	intended JSON NOT NULL, 
	executed JSON NOT NULL, 
	current JSON NOT NULL, 
	flags JSON NOT NULL, 
	gone_since TIMESTAMP WITH TIME ZONE, 
	event_keys JSON NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (account_id, deal_id)
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

CREATE TABLE instrument_versions (
	instrument_id VARCHAR(80) NOT NULL, 
	valid_from TIMESTAMP WITH TIME ZONE NOT NULL, 
	valid_to TIMESTAMP WITH TIME ZONE, 
	epic VARCHAR(64) NOT NULL, 
	name TEXT, 
	symbol TEXT, 
	asset_class VARCHAR(32), 
	currency VARCHAR(8), 
	lot_size NUMERIC(38, 8), 
	margin_factor NUMERIC(38, 8), 
	margin_factor_unit VARCHAR(16), 
	guaranteed_stop_allowed BOOLEAN, 
	dealing_rules JSON NOT NULL, 
	external_ids JSON NOT NULL, 
	attributes_sha256 VARCHAR(64) NOT NULL, 
	PRIMARY KEY (instrument_id, valid_from)
);

CREATE INDEX ix_instrument_versions_epic ON instrument_versions (epic, valid_from);

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
	first_run_key INTEGER NOT NULL, 
	last_run_key INTEGER NOT NULL, 
	PRIMARY KEY (account_id, reference)
);

CREATE INDEX ix_ledger_entries_account_time ON ledger_entries (account_id, posted_at);

CREATE TABLE market_quotes (
	epic VARCHAR(64) NOT NULL, 
	observed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	bid NUMERIC(38, 8) NOT NULL, 
	offer NUMERIC(38, 8) NOT NULL, 
	market_status VARCHAR(32), 
	source VARCHAR(32) NOT NULL, 
	PRIMARY KEY (epic, observed_at)
);

CREATE TABLE normalization_marks (
	account_id VARCHAR(64) NOT NULL, 
	fingerprint VARCHAR(64), 
	PRIMARY KEY (account_id)
);

CREATE TABLE order_snapshots (
	id SERIAL NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	deal_id VARCHAR(64) NOT NULL, 
	observed_from TIMESTAMP WITH TIME ZONE NOT NULL, 
	observed_to TIMESTAMP WITH TIME ZONE, 
	content_sha256 VARCHAR(64) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE, 
	epic VARCHAR(64) NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	size NUMERIC(38, 8) NOT NULL, 
	level NUMERIC(38, 8) NOT NULL, 
	stop_level NUMERIC(38, 8), 
	stop_distance NUMERIC(38, 8), 
	profit_level NUMERIC(38, 8), 
	profit_distance NUMERIC(38, 8), 
	guaranteed_stop BOOLEAN NOT NULL, 
	trailing_stop BOOLEAN NOT NULL, 
	deal_reference VARCHAR(128), 
	working_order_id VARCHAR(64), 
	raw TEXT NOT NULL, 
	order_type VARCHAR(16) NOT NULL, 
	time_in_force VARCHAR(32), 
	good_till TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_order_snapshots_deal ON order_snapshots (account_id, deal_id);

CREATE INDEX ix_order_snapshots_time ON order_snapshots (account_id, observed_from);

CREATE TABLE position_snapshots (
	id SERIAL NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	deal_id VARCHAR(64) NOT NULL, 
	observed_from TIMESTAMP WITH TIME ZONE NOT NULL, 
	observed_to TIMESTAMP WITH TIME ZONE, 
	content_sha256 VARCHAR(64) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE, 
	epic VARCHAR(64) NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	size NUMERIC(38, 8) NOT NULL, 
	level NUMERIC(38, 8) NOT NULL, 
	stop_level NUMERIC(38, 8), 
	stop_distance NUMERIC(38, 8), 
	profit_level NUMERIC(38, 8), 
	profit_distance NUMERIC(38, 8), 
	guaranteed_stop BOOLEAN NOT NULL, 
	trailing_stop BOOLEAN NOT NULL, 
	deal_reference VARCHAR(128), 
	working_order_id VARCHAR(64), 
	raw TEXT NOT NULL, 
	broker_upl NUMERIC(38, 8), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_position_snapshots_deal ON position_snapshots (account_id, deal_id);

CREATE INDEX ix_position_snapshots_time ON position_snapshots (account_id, observed_from);

CREATE TABLE price_bars (
	epic VARCHAR(64) NOT NULL, 
	resolution VARCHAR(16) NOT NULL, 
	bar_type VARCHAR(16) NOT NULL, 
	t TIMESTAMP WITH TIME ZONE NOT NULL, 
	bid_o NUMERIC(38, 8), 
	bid_h NUMERIC(38, 8), 
	bid_l NUMERIC(38, 8), 
	bid_c NUMERIC(38, 8), 
	ask_o NUMERIC(38, 8), 
	ask_h NUMERIC(38, 8), 
	ask_l NUMERIC(38, 8), 
	ask_c NUMERIC(38, 8), 
	volume INTEGER, 
	source VARCHAR(8) NOT NULL, 
	final BOOLEAN NOT NULL, 
	revision INTEGER NOT NULL, 
	first_seen TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_seen TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (epic, resolution, bar_type, t)
);

CREATE TABLE price_coverage (
	id SERIAL NOT NULL, 
	epic VARCHAR(64) NOT NULL, 
	resolution VARCHAR(16) NOT NULL, 
	bar_type VARCHAR(16) NOT NULL, 
	start TIMESTAMP WITH TIME ZONE NOT NULL, 
	"end" TIMESTAMP WITH TIME ZONE NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_price_coverage_key ON price_coverage (epic, resolution, bar_type, start);

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
	first_run_key INTEGER NOT NULL, 
	PRIMARY KEY (account_id, activity_key)
);

CREATE TABLE raw_seen_legacy (
	endpoint VARCHAR(32) NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	row_key VARCHAR(64) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (endpoint, account_id, row_key)
);

CREATE TABLE raw_transactions (
	account_id VARCHAR(64) NOT NULL, 
	reference VARCHAR(64) NOT NULL, 
	raw TEXT NOT NULL, 
	row_sha256 BYTEA NOT NULL, 
	date_utc TIMESTAMP WITH TIME ZONE NOT NULL, 
	window_start TIMESTAMP WITH TIME ZONE NOT NULL, 
	window_end TIMESTAMP WITH TIME ZONE NOT NULL, 
	first_run_key INTEGER NOT NULL, 
	PRIMARY KEY (account_id, reference)
);

CREATE TABLE read_audit (
	id SERIAL NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	user_name VARCHAR(64), 
	client VARCHAR(64) NOT NULL, 
	method VARCHAR(8) NOT NULL, 
	path TEXT NOT NULL, 
	account_id VARCHAR(64), 
	status INTEGER NOT NULL, 
	outcome VARCHAR(32) NOT NULL, 
	sha256 VARCHAR(64), 
	detail TEXT, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_read_audit_at ON read_audit (at);

CREATE INDEX ix_read_audit_user ON read_audit (user_name, at);

CREATE TABLE runs (
	run_id VARCHAR(64) NOT NULL, 
	run_key INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	started_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	status VARCHAR(16) NOT NULL, 
	params JSON NOT NULL, 
	summary JSON, 
	code_version VARCHAR(32) NOT NULL, 
	PRIMARY KEY (run_id)
);

CREATE UNIQUE INDEX ix_runs_run_key ON runs (run_key);

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

CREATE TABLE service_users (
	name VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	accounts JSON NOT NULL, 
	token_sha256 VARCHAR(64) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	revoked_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (name), 
	UNIQUE (token_sha256)
);

CREATE TABLE trade_intents (
	id VARCHAR(36) NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	idem_key VARCHAR(200) NOT NULL, 
	payload_sha256 VARCHAR(64) NOT NULL, 
	payload JSON NOT NULL, 
	epic VARCHAR(64), 
	action VARCHAR(8) NOT NULL, 
	mode VARCHAR(8) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	reason TEXT, 
	violations JSON NOT NULL, 
	order_request JSON, 
	pre_deals JSON, 
	deal_reference VARCHAR(128), 
	deal_ids JSON NOT NULL, 
	confirm JSON, 
	attempts INTEGER NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE, 
	intended_level NUMERIC(38, 8), 
	filled_level NUMERIC(38, 8), 
	slippage NUMERIC(38, 8), 
	steps JSON NOT NULL, 
	received_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	acknowledged_at TIMESTAMP WITH TIME ZONE, 
	submitted_at TIMESTAMP WITH TIME ZONE, 
	confirmed_at TIMESTAMP WITH TIME ZONE, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_trade_intents_key UNIQUE (account_id, idem_key)
);

CREATE INDEX ix_trade_intents_queue ON trade_intents (state, next_attempt_at);

CREATE TABLE trading_alerts (
	account_id VARCHAR(64) NOT NULL, 
	alert_key VARCHAR(64) NOT NULL, 
	rule VARCHAR(64) NOT NULL, 
	deal_id VARCHAR(64), 
	detail JSON NOT NULL, 
	first_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	resolved_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (account_id, alert_key)
);

CREATE TABLE trading_changelog (
	account_id VARCHAR(64) NOT NULL, 
	seq INTEGER NOT NULL, 
	deal_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	event VARCHAR(32) NOT NULL, 
	from_state VARCHAR(32), 
	to_state VARCHAR(32), 
	occurred_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	detail JSON NOT NULL, 
	flag VARCHAR(32), 
	prev_hash VARCHAR(64) NOT NULL, 
	entry_hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (account_id, seq)
);

CREATE INDEX ix_trading_changelog_deal ON trading_changelog (account_id, deal_id);

CREATE TABLE trading_polls (
	id SERIAL NOT NULL, 
	account_id VARCHAR(64) NOT NULL, 
	observed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	currency VARCHAR(8), 
	positions_seen INTEGER NOT NULL, 
	orders_seen INTEGER NOT NULL, 
	rows_written INTEGER NOT NULL, 
	figures JSON NOT NULL, 
	problems JSON NOT NULL, 
	error TEXT, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_trading_polls_account_time ON trading_polls (account_id, observed_at);

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
	run_key INTEGER NOT NULL, 
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
	FOREIGN KEY(run_key) REFERENCES runs (run_key)
);

CREATE INDEX ix_fetch_log_coverage ON fetch_log (account_id, endpoint, window_start, window_end);

CREATE VIEW raw_last_seen AS
SELECT x.endpoint, x.account_id, x.row_key, x.date_utc, fr.run_id AS first_run_id,
  CASE WHEN COALESCE(l.run_id, fr.run_id) > COALESCE(lr.run_id, fr.run_id) THEN COALESCE(l.run_id, fr.run_id) ELSE COALESCE(lr.run_id, fr.run_id) END AS last_run_id
FROM (
  SELECT 'transactions' AS endpoint, r.account_id AS account_id, r.reference AS row_key, r.date_utc AS date_utc, r.first_run_key AS first_run, (SELECT f.run_key FROM fetch_log AS f WHERE f.account_id = r.account_id AND f.endpoint = 'transactions' AND f.outcome = 'complete' AND f.window_start >= r.date_utc - interval '1 day' AND f.window_start <= r.date_utc AND f.window_end >= r.date_utc AND f.ids::jsonb @> jsonb_build_array(r.reference) ORDER BY f.id DESC LIMIT 1) AS fetched_run FROM raw_transactions AS r
  UNION ALL
  SELECT 'activity' AS endpoint, r.account_id AS account_id, r.activity_key AS row_key, r.date_utc AS date_utc, r.first_run_key AS first_run, (SELECT f.run_key FROM fetch_log AS f WHERE f.account_id = r.account_id AND f.endpoint = 'activity' AND f.outcome = 'complete' AND f.window_start >= r.date_utc - interval '1 day' AND f.window_start <= r.date_utc AND f.window_end >= r.date_utc ORDER BY f.id DESC LIMIT 1) AS fetched_run FROM raw_activities AS r
) AS x
JOIN runs AS fr ON fr.run_key = x.first_run
LEFT JOIN runs AS lr ON lr.run_key = x.fetched_run
LEFT JOIN raw_seen_legacy AS l ON l.endpoint = x.endpoint AND l.account_id = x.account_id AND l.row_key = x.row_key;
