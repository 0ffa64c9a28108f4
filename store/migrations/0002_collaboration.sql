-- Tables for accounts, recipes, reviews, evaluations and uploads (later issues).
-- Times are Unix milliseconds (UTC).

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	name          TEXT    NOT NULL UNIQUE,
	role          TEXT    NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
	password_hash TEXT    NOT NULL DEFAULT '', -- empty: cannot log in with a password
	created_at    INTEGER NOT NULL
);

-- API tokens are shown once; only their hash is kept.
CREATE TABLE api_tokens (
	id           INTEGER PRIMARY KEY,
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name         TEXT    NOT NULL DEFAULT '',
	token_hash   TEXT    NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER,
	expires_at   INTEGER,
	revoked_at   INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE sessions (
	id           INTEGER PRIMARY KEY,
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	token_hash   TEXT    NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE recipes (
	id            INTEGER PRIMARY KEY,
	analysis_id   TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	name          TEXT    NOT NULL,
	note          TEXT    NOT NULL DEFAULT '',
	recipe        TEXT    NOT NULL, -- JSON
	review_status TEXT    NOT NULL DEFAULT 'draft'
		CHECK (review_status IN ('draft', 'in_review', 'approved', 'rejected')),
	created_by    INTEGER REFERENCES users(id) ON DELETE SET NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
CREATE INDEX recipes_analysis ON recipes(analysis_id);

-- A comment targets an analysis as a whole, a cell (tensor, layer x module), a
-- unit or a recipe: target_kind names which, target_key which one.
CREATE TABLE comments (
	id          INTEGER PRIMARY KEY,
	analysis_id TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	target_kind TEXT    NOT NULL CHECK (target_kind IN ('analysis', 'tensor', 'cell', 'unit', 'recipe')),
	target_key  TEXT    NOT NULL DEFAULT '',
	user_id     INTEGER REFERENCES users(id) ON DELETE SET NULL,
	body        TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	edited_at   INTEGER,
	deleted_at  INTEGER
);
CREATE INDEX comments_target ON comments(analysis_id, target_kind, target_key);

CREATE TABLE review_events (
	id          INTEGER PRIMARY KEY,
	recipe_id   INTEGER NOT NULL REFERENCES recipes(id) ON DELETE CASCADE,
	user_id     INTEGER REFERENCES users(id) ON DELETE SET NULL,
	from_status TEXT    NOT NULL,
	to_status   TEXT    NOT NULL
		CHECK (to_status IN ('draft', 'in_review', 'approved', 'rejected')),
	note        TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
);
CREATE INDEX review_events_recipe ON review_events(recipe_id, created_at);

CREATE TABLE eval_results (
	id           INTEGER PRIMARY KEY,
	recipe_id    INTEGER NOT NULL REFERENCES recipes(id) ON DELETE CASCADE,
	benchmark    TEXT    NOT NULL, -- e.g. LIBERO-Spatial
	success_rate REAL    NOT NULL CHECK (success_rate BETWEEN 0 AND 1),
	episodes     INTEGER NOT NULL CHECK (episodes >= 0),
	notes        TEXT    NOT NULL DEFAULT '',
	created_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
	created_at   INTEGER NOT NULL
);
CREATE INDEX eval_results_recipe ON eval_results(recipe_id);

-- A browser upload in progress or complete; sha256_state keeps the running hash
-- (encoding.BinaryMarshaler state) so a resumed upload need not re-hash.
CREATE TABLE uploads (
	id           TEXT    PRIMARY KEY,
	side         TEXT    NOT NULL CHECK (side IN ('base', 'vla')),
	filename     TEXT    NOT NULL,
	size         INTEGER NOT NULL CHECK (size >= 0),
	received     INTEGER NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= size),
	sha256_state BLOB,
	sha256       TEXT    NOT NULL DEFAULT '', -- hex, once complete
	status       TEXT    NOT NULL DEFAULT 'receiving'
		CHECK (status IN ('receiving', 'complete', 'failed', 'expired')),
	user_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
