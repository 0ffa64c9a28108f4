-- Issue 11: what a reader can act on after an analysis, as one JSON object
-- {"suggestions": [{rule, from, to, pairs, example_base, example_vla}...],
--  "geometry_guessed": [component...]}: --map rules that would pair the tensors
-- left unmatched, and the components whose attention geometry is a guess. Set
-- when an analysis ends done, or failed because nothing aligned; NULL before.
-- The options that shape a result (exact subtraction, attention geometry) live
-- in the request JSON and enter the cache key from there.
ALTER TABLE analyses ADD COLUMN advice TEXT;
