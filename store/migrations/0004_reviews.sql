-- Reviews: the view a comment was made on, and evaluation results that belong
-- to an analysis, with or without a recipe (the unpruned model is the
-- reference point of the parameters-vs-success chart).

-- view is the page URL with its query (a local path) the comment was written
-- on, so the thread links back to exactly what its author saw.
ALTER TABLE comments ADD COLUMN view TEXT NOT NULL DEFAULT '';

-- eval_results is rebuilt: SQLite cannot drop a NOT NULL, and results need
-- their analysis for the unpruned baseline (recipe_id NULL). Nothing refers to
-- eval_results, so dropping the old table breaks no foreign key.
CREATE TABLE eval_results_v2 (
	id           INTEGER PRIMARY KEY,
	analysis_id  TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	recipe_id    INTEGER REFERENCES recipes(id) ON DELETE CASCADE, -- NULL: the unpruned model
	benchmark    TEXT    NOT NULL, -- e.g. LIBERO-Spatial
	success_rate REAL    NOT NULL CHECK (success_rate BETWEEN 0 AND 1),
	episodes     INTEGER NOT NULL CHECK (episodes >= 0),
	notes        TEXT    NOT NULL DEFAULT '',
	created_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
	created_at   INTEGER NOT NULL
);
INSERT INTO eval_results_v2 (id, analysis_id, recipe_id, benchmark, success_rate, episodes, notes, created_by, created_at)
	SELECT e.id, r.analysis_id, e.recipe_id, e.benchmark, e.success_rate, e.episodes, e.notes, e.created_by, e.created_at
	FROM eval_results e JOIN recipes r ON r.id = e.recipe_id;
DROP TABLE eval_results;
ALTER TABLE eval_results_v2 RENAME TO eval_results;
CREATE INDEX eval_results_analysis ON eval_results(analysis_id, recipe_id);
CREATE INDEX eval_results_recipe ON eval_results(recipe_id);
CREATE INDEX comments_feed ON comments(analysis_id, created_at);
