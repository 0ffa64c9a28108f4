-- Core schema: checkpoints, analyses (jobs and their summaries) and result rows.
-- Times are Unix milliseconds (UTC). JSON columns hold JSON text. Floats that are
-- NaN or ±Inf are stored as NULL.

-- A checkpoint is content: two reads of the same bytes share one row.
CREATE TABLE checkpoints (
	id          INTEGER PRIMARY KEY,
	fingerprint TEXT    NOT NULL UNIQUE,
	params      INTEGER NOT NULL,
	bytes       INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
);

-- A location is one place a checkpoint was found: a list of sources and their
-- files. files_key hashes every file's quick identity (path, size, mtime, inode,
-- device, header hash), so unchanged files are recognised without reading them.
CREATE TABLE checkpoint_locations (
	id            INTEGER PRIMARY KEY,
	checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
	files_key     TEXT    NOT NULL UNIQUE,
	created_at    INTEGER NOT NULL
);
CREATE INDEX checkpoint_locations_checkpoint ON checkpoint_locations(checkpoint_id);

CREATE TABLE checkpoint_sources (
	id          INTEGER PRIMARY KEY,
	location_id INTEGER NOT NULL REFERENCES checkpoint_locations(id) ON DELETE CASCADE,
	position    INTEGER NOT NULL,
	spec        TEXT    NOT NULL, -- as the user wrote it: [PREFIX=]PATH
	path        TEXT    NOT NULL,
	format      TEXT    NOT NULL,
	metadata    TEXT    NOT NULL DEFAULT '{}', -- JSON object of strings
	config      TEXT,                          -- config.json contents, if any
	UNIQUE (location_id, position)
);

CREATE TABLE checkpoint_files (
	id         INTEGER PRIMARY KEY,
	source_id  INTEGER NOT NULL REFERENCES checkpoint_sources(id) ON DELETE CASCADE,
	path       TEXT    NOT NULL,
	size       INTEGER NOT NULL,
	mtime_ns   INTEGER NOT NULL,
	inode      INTEGER NOT NULL, -- uint64 stored as its int64 bit pattern
	device     INTEGER NOT NULL, -- likewise
	header_sha TEXT    NOT NULL
);
CREATE INDEX checkpoint_files_source ON checkpoint_files(source_id);

-- An analysis is a job until it is done, then a result. Result rows belong to
-- the analysis that computed them; a later analysis of the same inputs (same
-- cache_key) stores no rows of its own and names the first in result_of.
CREATE TABLE analyses (
	id                 TEXT    PRIMARY KEY,
	request            TEXT    NOT NULL, -- JSON {"base": [...], "vla": [...], "map": [...]}
	engine_version     TEXT    NOT NULL,
	cache_key          TEXT,             -- set when done
	result_of          TEXT    REFERENCES analyses(id),
	base_checkpoint_id INTEGER REFERENCES checkpoints(id),
	vla_checkpoint_id  INTEGER REFERENCES checkpoints(id),
	status             TEXT    NOT NULL DEFAULT 'queued'
		CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
	bytes_done         INTEGER NOT NULL DEFAULT 0,
	bytes_total        INTEGER NOT NULL DEFAULT 0,
	current_tensor     TEXT    NOT NULL DEFAULT '',
	error              TEXT    NOT NULL DEFAULT '',
	attempts           INTEGER NOT NULL DEFAULT 0,
	created_at         INTEGER NOT NULL,
	started_at         INTEGER,
	finished_at        INTEGER,
	-- Summary, set when done.
	params_compared    INTEGER,
	base_params        INTEGER,
	vla_params         INTEGER,
	global_rel_delta   REAL,
	geometry           TEXT, -- JSON object component -> {Heads, KVHeads, HeadDim}
	warnings           TEXT, -- JSON array of strings
	CHECK (result_of IS NULL OR result_of <> id)
);
CREATE INDEX analyses_queue ON analyses(status, created_at);
CREATE INDEX analyses_created ON analyses(created_at);
CREATE INDEX analyses_cache_key ON analyses(cache_key);
-- At most one analysis owns the rows of a given result.
CREATE UNIQUE INDEX analyses_cache_owner ON analyses(cache_key)
	WHERE cache_key IS NOT NULL AND result_of IS NULL;
CREATE INDEX analyses_result_of ON analyses(result_of);

CREATE TABLE tensor_stats (
	id               INTEGER PRIMARY KEY,
	analysis_id      TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	position         INTEGER NOT NULL, -- order in the engine's result
	base             TEXT    NOT NULL,
	vla              TEXT    NOT NULL,
	component        TEXT    NOT NULL,
	layer            INTEGER NOT NULL, -- -1: no numbered layer
	kind             TEXT    NOT NULL,
	of               TEXT    NOT NULL DEFAULT '',
	rule             TEXT    NOT NULL DEFAULT '',
	dtype_base       TEXT    NOT NULL,
	dtype_vla        TEXT    NOT NULL,
	shape_base       TEXT    NOT NULL, -- JSON array
	shape_vla        TEXT    NOT NULL, -- JSON array
	fro_base         REAL,
	fro_vla          REAL,
	fro_delta        REAL,
	rel_delta        REAL,
	cosine           REAL,
	max_abs_delta    REAL,
	mean_abs_delta   REAL,
	changed_fraction REAL,
	numel_compared   INTEGER NOT NULL,
	overlap          INTEGER NOT NULL DEFAULT 0 CHECK (overlap IN (0, 1)),
	nonfinite_base   INTEGER NOT NULL DEFAULT 0,
	nonfinite_vla    INTEGER NOT NULL DEFAULT 0,
	numeric          INTEGER NOT NULL CHECK (numeric IN (0, 1)),
	UNIQUE (analysis_id, position)
);
-- "All ffn_gate tensors of the llm, by layer."
CREATE INDEX tensor_stats_lookup ON tensor_stats(analysis_id, component, kind, layer);

-- Per-row / per-column L2 norms as little-endian float32 blobs; NULL when absent.
CREATE TABLE tensor_arrays (
	tensor_id INTEGER PRIMARY KEY REFERENCES tensor_stats(id) ON DELETE CASCADE,
	row_delta BLOB,
	col_delta BLOB,
	row_base  BLOB,
	col_base  BLOB
);

CREATE TABLE unit_scores (
	id          INTEGER PRIMARY KEY,
	analysis_id TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	position    INTEGER NOT NULL,
	component   TEXT    NOT NULL,
	kind        TEXT    NOT NULL, -- ffn_channel | attn_head
	layer       INTEGER NOT NULL,
	metric      TEXT    NOT NULL,
	variant     TEXT    NOT NULL,
	scores      BLOB    NOT NULL, -- little-endian float32
	UNIQUE (analysis_id, position)
);
CREATE INDEX unit_scores_lookup ON unit_scores(analysis_id, component, kind, layer);

-- The alignment report: names with no counterpart, pairs whose shapes differ,
-- names several tensors of the other side could match.
CREATE TABLE alignment_issues (
	id          INTEGER PRIMARY KEY,
	analysis_id TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	category    TEXT    NOT NULL CHECK (category IN ('base_only', 'vla_only', 'mismatched', 'ambiguous')),
	position    INTEGER NOT NULL, -- order within the category
	name        TEXT    NOT NULL, -- base_only/vla_only: the name; mismatched: base name; ambiguous: the name
	other       TEXT    NOT NULL DEFAULT '', -- mismatched: the VLA name
	side        TEXT    NOT NULL DEFAULT '', -- ambiguous: base | vla
	shape_base  TEXT,                        -- mismatched: JSON array
	shape_vla   TEXT,
	compared    INTEGER NOT NULL DEFAULT 0 CHECK (compared IN (0, 1)),
	reason      TEXT    NOT NULL DEFAULT '',
	candidates  TEXT,                        -- ambiguous: JSON array of names
	UNIQUE (analysis_id, category, position)
);
