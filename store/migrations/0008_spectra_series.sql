-- Issue 16: spectra of ΔW (a job of their own on a finished analysis) and
-- training runs as series of analyses.

-- One spectral job per (result, rank). result_id is the analysis that owns the
-- result rows (analyses.result_of when set, else the analysis itself), so every
-- analysis answered from the cache shares the spectra of the first one.
CREATE TABLE spectra (
	id             INTEGER PRIMARY KEY,
	result_id      TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	rank           INTEGER NOT NULL CHECK (rank BETWEEN 1 AND 256),
	status         TEXT    NOT NULL DEFAULT 'queued'
		CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
	bytes_done     INTEGER NOT NULL DEFAULT 0,
	bytes_total    INTEGER NOT NULL DEFAULT 0,
	current_tensor TEXT    NOT NULL DEFAULT '',
	error          TEXT    NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	started_at     INTEGER,
	finished_at    INTEGER,
	seconds        REAL,             -- compute time, for the cost note on the page
	result         TEXT,             -- JSON of spectral.Result, when done
	UNIQUE (result_id, rank)
);
CREATE INDEX spectra_queue ON spectra(status, created_at);

-- A series is one base and the checkpoints of one fine-tuning run.
CREATE TABLE series (
	id         TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL,
	base       TEXT    NOT NULL, -- JSON array of [PREFIX=]PATH specs
	map        TEXT    NOT NULL DEFAULT '[]',
	created_at INTEGER NOT NULL
);
CREATE INDEX series_created ON series(created_at);

-- Each step is an analysis of the base against that checkpoint, and (from the
-- second step on) a drift analysis of the previous checkpoint against it.
CREATE TABLE series_steps (
	series_id   TEXT    NOT NULL REFERENCES series(id) ON DELETE CASCADE,
	position    INTEGER NOT NULL,
	step        INTEGER NOT NULL,
	vla         TEXT    NOT NULL, -- JSON array of specs
	analysis_id TEXT    NOT NULL REFERENCES analyses(id),
	drift_id    TEXT    REFERENCES analyses(id),
	PRIMARY KEY (series_id, position),
	UNIQUE (series_id, step)
);
