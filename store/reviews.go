package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Review statuses of a recipe.
const (
	ReviewInReview = "in_review"
	ReviewApproved = "approved"
	ReviewRejected = "rejected"
)

// MaxReviewNote bounds the note of a status change.
const MaxReviewNote = 10_000

// reviewNext is the review workflow: a draft is sent for review; a review
// ends approved or rejected, or goes back to draft; a decided recipe can only
// be reopened as a draft (changed, then reviewed again). Skipping the review
// (draft → approved) is refused on purpose: an approval means someone looked.
var reviewNext = map[string][]string{
	ReviewDraft:    {ReviewInReview},
	ReviewInReview: {ReviewApproved, ReviewRejected, ReviewDraft},
	ReviewApproved: {ReviewDraft},
	ReviewRejected: {ReviewDraft},
}

// ReviewNext lists the statuses a recipe in status from may move to.
func ReviewNext(from string) []string { return reviewNext[from] }

// ReviewEvent is one status change of a recipe.
type ReviewEvent struct {
	ID        int64     `json:"id"`
	RecipeID  int64     `json:"recipe_id"`
	UserID    *int64    `json:"user_id,omitempty"`
	Author    string    `json:"author"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

// SetReviewStatus moves a recipe to status to and records who did it and why,
// in one transaction. A move the workflow does not allow is a conflict that
// names the allowed ones.
func (db *DB) SetReviewStatus(ctx context.Context, recipeID int64, to, note string, userID *int64) (*ReviewEvent, error) {
	if _, ok := reviewNext[to]; !ok {
		return nil, errorf(EINVALID, "review status %q: must be draft, in_review, approved or rejected", to)
	}
	note = strings.TrimSpace(note)
	if !utf8.ValidString(note) || len(note) > MaxReviewNote {
		return nil, errorf(EINVALID, "review note: at most %d bytes of UTF-8", MaxReviewNote)
	}
	var id int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var from string
		err := tx.QueryRowContext(ctx, `SELECT review_status FROM recipes WHERE id = ?`, recipeID).Scan(&from)
		if errors.Is(err, sql.ErrNoRows) {
			return errorf(ENOTFOUND, "recipe %d not found", recipeID)
		}
		if err != nil {
			return err
		}
		allowed := reviewNext[from]
		ok := false
		for _, s := range allowed {
			ok = ok || s == to
		}
		if !ok {
			return errorf(ECONFLICT, "recipe %d is %s: it can move to %s, not %s", recipeID, from, strings.Join(allowed, " or "), to)
		}
		now := db.now()
		if _, err := tx.ExecContext(ctx, `UPDATE recipes SET review_status = ? WHERE id = ?`, to, recipeID); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO review_events (recipe_id, user_id, from_status, to_status, note, created_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, recipeID, userID, from, to, note, now).Scan(&id)
	})
	if err != nil {
		return nil, wrapRecipe(fmt.Sprintf("review recipe %d", recipeID), err)
	}
	rows, err := db.writer.QueryContext(ctx, selectReview+` WHERE e.id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("store: review event %d: %w", id, err)
	}
	list, err := scanReviews(rows)
	if err != nil || len(list) != 1 {
		return nil, fmt.Errorf("store: review event %d: %v", id, err)
	}
	return &list[0], nil
}

// ReviewHistory lists a recipe's status changes, oldest first.
func (db *DB) ReviewHistory(ctx context.Context, recipeID int64) ([]ReviewEvent, error) {
	if _, err := db.GetRecipe(ctx, recipeID); err != nil {
		return nil, err
	}
	rows, err := db.reader.QueryContext(ctx, selectReview+` WHERE e.recipe_id = ? ORDER BY e.created_at, e.id`, recipeID)
	if err != nil {
		return nil, fmt.Errorf("store: review history of recipe %d: %w", recipeID, err)
	}
	out, err := scanReviews(rows)
	if err != nil {
		return nil, fmt.Errorf("store: review history of recipe %d: %w", recipeID, err)
	}
	if out == nil {
		out = []ReviewEvent{}
	}
	return out, nil
}

const selectReview = `SELECT e.id, e.recipe_id, e.user_id, COALESCE(u.name, ''), e.from_status, e.to_status, e.note, e.created_at
	FROM review_events e LEFT JOIN users u ON u.id = e.user_id`

func scanReviews(rows *sql.Rows) ([]ReviewEvent, error) {
	defer rows.Close()
	var out []ReviewEvent
	for rows.Next() {
		var e ReviewEvent
		var user sql.NullInt64
		var created int64
		if err := rows.Scan(&e.ID, &e.RecipeID, &user, &e.Author, &e.From, &e.To, &e.Note, &created); err != nil {
			return nil, err
		}
		if user.Valid {
			e.UserID = &user.Int64
		}
		e.CreatedAt = time.UnixMilli(created)
		out = append(out, e)
	}
	return out, rows.Err()
}
