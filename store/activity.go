package store

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"time"
)

// Activity kinds.
const (
	ActivityComment = "comment"
	ActivityReview  = "review"
	ActivityEval    = "eval"
)

// MaxActivity bounds one feed request.
const MaxActivity = 500

// Activity is one entry of an analysis's feed: exactly one of Comment, Review
// and Eval is set, as Kind says.
type Activity struct {
	Kind    string       `json:"kind"`
	At      time.Time    `json:"at"`
	Author  string       `json:"author"`
	Comment *Comment     `json:"comment,omitempty"`
	Review  *RecipeEvent `json:"review,omitempty"`
	Eval    *EvalResult  `json:"eval,omitempty"`
	Action  *ActionEvent `json:"action,omitempty"` // actions.go
}

// RecipeEvent is a review event with the name of its recipe, for the feed.
type RecipeEvent struct {
	ReviewEvent
	RecipeName string `json:"recipe_name"`
}

// ActivityFeed returns the newest limit entries of an analysis: comments
// (live ones), review status changes of its recipes, and evaluation results,
// newest first. Each source is read newest first up to limit, so the merge
// is exact.
func (db *DB) ActivityFeed(ctx context.Context, analysisID string, limit int) ([]Activity, error) {
	limit = min(max(limit, 1), MaxActivity)
	var out []Activity
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.status(ctx, tx, analysisID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, selectComment+` WHERE c.analysis_id = ? AND c.deleted_at IS NULL ORDER BY c.created_at DESC, c.id DESC LIMIT ?`, analysisID, limit)
		if err != nil {
			return err
		}
		comments, err := scanComments(rows)
		if err != nil {
			return err
		}
		for i := range comments {
			c := &comments[i]
			out = append(out, Activity{Kind: ActivityComment, At: c.CreatedAt, Author: c.Author, Comment: c})
		}

		rows, err = tx.QueryContext(ctx, `SELECT e.id, e.recipe_id, e.user_id, COALESCE(u.name, ''), e.from_status, e.to_status, e.note, e.created_at, r.name
			FROM review_events e JOIN recipes r ON r.id = e.recipe_id LEFT JOIN users u ON u.id = e.user_id
			WHERE r.analysis_id = ? ORDER BY e.created_at DESC, e.id DESC LIMIT ?`, analysisID, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e RecipeEvent
			var user sql.NullInt64
			var created int64
			if err := rows.Scan(&e.ID, &e.RecipeID, &user, &e.Author, &e.From, &e.To, &e.Note, &created, &e.RecipeName); err != nil {
				return err
			}
			if user.Valid {
				e.UserID = &user.Int64
			}
			e.CreatedAt = time.UnixMilli(created)
			out = append(out, Activity{Kind: ActivityReview, At: e.CreatedAt, Author: e.Author, Review: &e})
		}
		if err := rows.Err(); err != nil {
			return err
		}

		rows, err = tx.QueryContext(ctx, selectEval+` WHERE e.analysis_id = ? ORDER BY e.created_at DESC, e.id DESC LIMIT ?`, analysisID, limit)
		if err != nil {
			return err
		}
		evals, err := scanEvals(rows)
		if err != nil {
			return err
		}
		for i := range evals {
			e := &evals[i]
			out = append(out, Activity{Kind: ActivityEval, At: e.CreatedAt, Author: e.Author, Eval: e})
		}
		actions, err := actionFeed(ctx, tx, analysisID, limit)
		out = append(out, actions...)
		return err
	})
	if err != nil {
		return nil, wrapRecipe("activity feed", err)
	}
	// Newest first; at equal times the kinds keep a fixed order so the feed
	// does not shuffle between reloads.
	slices.SortStableFunc(out, func(a, b Activity) int { return cmp.Compare(b.At.UnixMilli(), a.At.UnixMilli()) })
	if len(out) > limit {
		out = out[:limit]
	}
	if out == nil {
		out = []Activity{}
	}
	return out, nil
}
