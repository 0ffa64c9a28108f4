package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ActivityAction is the feed kind of a recorded action.
const ActivityAction = "action"

// Actions recorded in the feed.
const (
	ActionCancelAnalysis = "cancelled the analysis"
	ActionEditAnalysis   = "renamed or retagged the analysis"
	ActionEditRecipe     = "edited the recipe"
	ActionDeleteRecipe   = "deleted the recipe"
)

// ActionEvent is one thing someone did to an analysis or its recipes.
type ActionEvent struct {
	ID        int64     `json:"id"`
	UserID    *int64    `json:"user_id,omitempty"`
	Author    string    `json:"author"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"` // e.g. the recipe's name
	CreatedAt time.Time `json:"created_at"`
}

// RecordAction writes who (nil: the local user without accounts) did what to
// the analysis, for its activity feed.
func (db *DB) RecordAction(ctx context.Context, analysisID string, userID *int64, action, target string) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO actions (analysis_id, user_id, action, target, created_at) VALUES (?, ?, ?, ?, ?)`,
			analysisID, userID, action, target, db.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record action: %w", err)
	}
	return nil
}

// actionFeed reads an analysis's newest actions for ActivityFeed.
func actionFeed(ctx context.Context, tx *sql.Tx, analysisID string, limit int) ([]Activity, error) {
	rows, err := tx.QueryContext(ctx, `SELECT a.id, a.user_id, COALESCE(u.name, ''), a.action, a.target, a.created_at
		FROM actions a LEFT JOIN users u ON u.id = a.user_id
		WHERE a.analysis_id = ? ORDER BY a.created_at DESC, a.id DESC LIMIT ?`, analysisID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Activity
	for rows.Next() {
		var e ActionEvent
		var user sql.NullInt64
		var created int64
		if err := rows.Scan(&e.ID, &user, &e.Author, &e.Action, &e.Target, &created); err != nil {
			return nil, err
		}
		if user.Valid {
			e.UserID = &user.Int64
		}
		e.CreatedAt = time.UnixMilli(created)
		out = append(out, Activity{Kind: ActivityAction, At: e.CreatedAt, Author: e.Author, Action: &e})
	}
	return out, rows.Err()
}
