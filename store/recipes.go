package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what a saved recipe may hold; a composer never comes near them, a
// script posting garbage does.
const (
	MaxRecipeName  = 200
	MaxRecipeNote  = 10_000
	MaxRecipeBytes = 1 << 20
)

// ReviewDraft is the review status of every new recipe; the review workflow
// (a later issue) moves it on.
const ReviewDraft = "draft"

// Recipe is a pruning recipe saved against an analysis. The store keeps the
// recipe itself as opaque JSON: what a valid recipe is, is the prune package's
// business, checked by the handlers before they save.
type Recipe struct {
	ID           int64           `json:"id"`
	AnalysisID   string          `json:"analysis_id"`
	Name         string          `json:"name"`
	Note         string          `json:"note"`
	Recipe       json.RawMessage `json:"recipe"`
	ReviewStatus string          `json:"review_status"`
	CreatedBy    *int64          `json:"created_by,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// NewRecipe is what CreateRecipe saves.
type NewRecipe struct {
	Name   string
	Note   string
	Recipe json.RawMessage
	// CreatedBy is the user who saved it; nil when accounts are off.
	CreatedBy *int64
}

// RecipeChange is an edit of a saved recipe; nil fields stay as they are.
type RecipeChange struct {
	Name   *string
	Note   *string
	Recipe json.RawMessage
	By     *int64 // who edits: recorded when new rules reset a review
}

func checkRecipeFields(name, note *string, recipe json.RawMessage) error {
	if name != nil {
		*name = strings.TrimSpace(*name)
		switch {
		case *name == "":
			return errorf(EINVALID, "a recipe needs a name")
		case !utf8.ValidString(*name) || len(*name) > MaxRecipeName:
			return errorf(EINVALID, "recipe name: at most %d bytes of UTF-8", MaxRecipeName)
		}
	}
	if note != nil && (!utf8.ValidString(*note) || len(*note) > MaxRecipeNote) {
		return errorf(EINVALID, "recipe note: at most %d bytes of UTF-8", MaxRecipeNote)
	}
	if recipe != nil {
		switch {
		case len(recipe) > MaxRecipeBytes:
			return errorf(EINVALID, "recipe: larger than %d bytes", MaxRecipeBytes)
		case !json.Valid(recipe):
			return errorf(EINVALID, "recipe: not valid JSON")
		}
	}
	return nil
}

// CreateRecipe saves a recipe against an existing analysis (in any state: a
// recipe may be drafted while the analysis runs).
func (db *DB) CreateRecipe(ctx context.Context, analysisID string, in NewRecipe) (*Recipe, error) {
	if in.Recipe == nil {
		return nil, errorf(EINVALID, "a recipe needs its rules (recipe JSON)")
	}
	if err := checkRecipeFields(&in.Name, &in.Note, in.Recipe); err != nil {
		return nil, err
	}
	var id int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.status(ctx, tx, analysisID); err != nil {
			return err
		}
		now := db.now()
		return tx.QueryRowContext(ctx, `INSERT INTO recipes (analysis_id, name, note, recipe, review_status, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			analysisID, in.Name, in.Note, string(in.Recipe), ReviewDraft, in.CreatedBy, now, now).Scan(&id)
	})
	if err != nil {
		return nil, wrapRecipe("create recipe", err)
	}
	return db.getRecipe(ctx, db.writer, id)
}

// GetRecipe returns one saved recipe.
func (db *DB) GetRecipe(ctx context.Context, id int64) (*Recipe, error) {
	return db.getRecipe(ctx, db.reader, id)
}

func (db *DB) getRecipe(ctx context.Context, q queryer, id int64) (*Recipe, error) {
	rows, err := q.QueryContext(ctx, selectRecipe+` WHERE id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("store: recipe %d: %w", id, err)
	}
	list, err := scanRecipes(rows)
	if err != nil {
		return nil, fmt.Errorf("store: recipe %d: %w", id, err)
	}
	if len(list) == 0 {
		return nil, errorf(ENOTFOUND, "recipe %d not found", id)
	}
	return &list[0], nil
}

// ListRecipes returns the recipes of an analysis, most recently changed first.
// An unknown analysis gives ErrNotFound (not an empty list), so that a typo in a
// URL is not mistaken for "no recipes yet".
func (db *DB) ListRecipes(ctx context.Context, analysisID string) ([]Recipe, error) {
	var out []Recipe
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.status(ctx, tx, analysisID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, selectRecipe+` WHERE analysis_id = ? ORDER BY updated_at DESC, id DESC`, analysisID)
		if err != nil {
			return err
		}
		out, err = scanRecipes(rows)
		return err
	})
	if err != nil {
		return nil, wrapRecipe("list recipes", err)
	}
	if out == nil {
		out = []Recipe{}
	}
	return out, nil
}

// UpdateRecipe changes a recipe's name, note or rules. The review status is
// left alone: the review workflow decides what an edit does to it.
func (db *DB) UpdateRecipe(ctx context.Context, id int64, ch RecipeChange) (*Recipe, error) {
	if err := checkRecipeFields(ch.Name, ch.Note, ch.Recipe); err != nil {
		return nil, err
	}
	sets, args := []string{"updated_at = ?"}, []any{db.now()}
	if ch.Name != nil {
		sets, args = append(sets, "name = ?"), append(args, *ch.Name)
	}
	if ch.Note != nil {
		sets, args = append(sets, "note = ?"), append(args, *ch.Note)
	}
	if ch.Recipe != nil {
		sets, args = append(sets, "recipe = ?"), append(args, string(ch.Recipe))
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var status, rules string
		err := tx.QueryRowContext(ctx, `SELECT review_status, recipe FROM recipes WHERE id = ?`, id).Scan(&status, &rules)
		if errors.Is(err, sql.ErrNoRows) {
			return errorf(ENOTFOUND, "recipe %d not found", id)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE recipes SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(args, id)...); err != nil {
			return err
		}
		// A review approves particular rules: changing them sends the recipe
		// back to draft, with the reason in its history.
		if ch.Recipe != nil && !sameRules(ch.Recipe, []byte(rules)) && status != ReviewDraft {
			if _, err := tx.ExecContext(ctx, `UPDATE recipes SET review_status = 'draft' WHERE id = ?`, id); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO review_events (recipe_id, user_id, from_status, to_status, note, created_at)
				VALUES (?, ?, ?, 'draft', ?, ?)`, id, ch.By, status, "the rules changed after review", db.now())
			return err
		}
		return nil
	})
	if err != nil {
		return nil, wrapRecipe(fmt.Sprintf("update recipe %d", id), err)
	}
	return db.getRecipe(ctx, db.writer, id)
}

// DuplicateRecipe copies a recipe (same analysis, note and rules) under a new
// name, "<name> (copy)" when name is empty, as a fresh draft by createdBy.
func (db *DB) DuplicateRecipe(ctx context.Context, id int64, name string, createdBy *int64) (*Recipe, error) {
	var newID int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		src, err := db.getRecipe(ctx, tx, id)
		if err != nil {
			return err
		}
		if strings.TrimSpace(name) == "" {
			name = src.Name + " (copy)"
			if len(name) > MaxRecipeName {
				name = src.Name
			}
		}
		if err := checkRecipeFields(&name, nil, nil); err != nil {
			return err
		}
		now := db.now()
		return tx.QueryRowContext(ctx, `INSERT INTO recipes (analysis_id, name, note, recipe, review_status, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			src.AnalysisID, name, src.Note, string(src.Recipe), ReviewDraft, createdBy, now, now).Scan(&newID)
	})
	if err != nil {
		return nil, wrapRecipe(fmt.Sprintf("duplicate recipe %d", id), err)
	}
	return db.getRecipe(ctx, db.writer, newID)
}

// DeleteRecipe removes a recipe, with its review history and evaluation
// results (ON DELETE CASCADE).
func (db *DB) DeleteRecipe(ctx context.Context, id int64) error {
	res, err := db.writer.ExecContext(ctx, `DELETE FROM recipes WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("store: delete recipe %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errorf(ENOTFOUND, "recipe %d not found", id)
	}
	return nil
}

const selectRecipe = `SELECT id, analysis_id, name, note, recipe, review_status, created_by, created_at, updated_at FROM recipes`

func scanRecipes(rows *sql.Rows) ([]Recipe, error) {
	defer rows.Close()
	var out []Recipe
	for rows.Next() {
		var r Recipe
		var recipe string
		var createdBy sql.NullInt64
		var created, updated int64
		if err := rows.Scan(&r.ID, &r.AnalysisID, &r.Name, &r.Note, &recipe, &r.ReviewStatus, &createdBy, &created, &updated); err != nil {
			return nil, err
		}
		r.Recipe = json.RawMessage(recipe)
		if createdBy.Valid {
			r.CreatedBy = &createdBy.Int64
		}
		r.CreatedAt, r.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
		out = append(out, r)
	}
	return out, rows.Err()
}

// wrapRecipe keeps domain errors as they are and says what failed otherwise.
func wrapRecipe(what string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// sameRules compares the "rules" of two recipe documents (written by the same
// encoder, so equal rules are equal bytes); a new name or note is no new rule.
func sameRules(a, b []byte) bool {
	var ra, rb struct {
		Rules json.RawMessage `json:"rules"`
	}
	if json.Unmarshal(a, &ra) != nil || json.Unmarshal(b, &rb) != nil {
		return false
	}
	return string(ra.Rules) == string(rb.Rules)
}
