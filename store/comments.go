package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Comment targets: what a thread is about. TargetKey says which one: "" for
// the analysis, the VLA tensor name, a cell key (CellKey) or a recipe id.
const (
	TargetAnalysis = "analysis"
	TargetTensor   = "tensor"
	TargetCell     = "cell"
	TargetRecipe   = "recipe"
)

// Limits on a comment; a person never comes near them, a script posting
// garbage does.
const (
	MaxCommentBody = 10_000
	MaxCommentKey  = 1_000
	MaxCommentView = 2_000
)

// Comment is one message of a thread. Deleted comments are kept (the thread's
// numbering and the activity feed stay stable) but never listed.
type Comment struct {
	ID         int64      `json:"id"`
	AnalysisID string     `json:"analysis_id"`
	Target     string     `json:"target"`
	Key        string     `json:"key"`
	UserID     *int64     `json:"user_id,omitempty"`
	Author     string     `json:"author"` // the user's name, "" when accounts are off or the user is gone
	Body       string     `json:"body"`
	View       string     `json:"view"` // the page (path?query) it was written on
	CreatedAt  time.Time  `json:"created_at"`
	EditedAt   *time.Time `json:"edited_at,omitempty"`
	Deleted    bool       `json:"-"`
}

// NewComment is what CreateComment saves.
type NewComment struct {
	Target, Key, Body, View string
	UserID                  *int64
}

// CellKey is the key of a heatmap cell's thread: component, layer and the
// module row of the heatmap. Layer -1 is a tensor outside numbered layers.
func CellKey(component string, layer int, module string) string {
	return fmt.Sprintf("%s/%d/%s", component, layer, module)
}

// CheckLocalView accepts a page URL of this server: an absolute path with an
// optional query, no scheme, no host, no fragment, no backslash (browsers read
// "/\host" as "//host"). A comment's link back is rendered as is, so anything
// else could send a reader elsewhere.
func CheckLocalView(view string) error {
	switch {
	case view == "":
		return nil
	case len(view) > MaxCommentView:
		return errorf(EINVALID, "view: at most %d bytes", MaxCommentView)
	case !strings.HasPrefix(view, "/") || strings.HasPrefix(view, "//") || strings.ContainsAny(view, "\\#") || strings.ContainsFunc(view, isControlOrSpace):
		return errorf(EINVALID, "view %q: must be a local path such as /analyses/ID?sel=NAME", view)
	}
	u, err := url.Parse(view)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		return errorf(EINVALID, "view %q: must be a local path such as /analyses/ID?sel=NAME", view)
	}
	return nil
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

func checkCommentBody(body *string) error {
	*body = strings.TrimSpace(*body)
	switch {
	case *body == "":
		return errorf(EINVALID, "a comment needs some text")
	case !utf8.ValidString(*body) || len(*body) > MaxCommentBody:
		return errorf(EINVALID, "comment: at most %d bytes of UTF-8", MaxCommentBody)
	}
	return nil
}

// checkTarget validates a target kind and key; recipe keys must name a recipe
// of the analysis (checked in the transaction by CreateComment).
func checkTarget(kind, key string) error {
	switch kind {
	case TargetAnalysis:
		if key != "" {
			return errorf(EINVALID, "target analysis takes no key")
		}
	case TargetTensor, TargetCell, TargetRecipe:
		if key == "" {
			return errorf(EINVALID, "target %s needs a key", kind)
		}
	default:
		return errorf(EINVALID, "target %q: must be analysis, cell, tensor or recipe", kind)
	}
	if len(key) > MaxCommentKey || !utf8.ValidString(key) {
		return errorf(EINVALID, "target key: at most %d bytes of UTF-8", MaxCommentKey)
	}
	return nil
}

// CreateComment adds a comment to a thread of an existing analysis.
func (db *DB) CreateComment(ctx context.Context, analysisID string, in NewComment) (*Comment, error) {
	if err := checkTarget(in.Target, in.Key); err != nil {
		return nil, err
	}
	if err := checkCommentBody(&in.Body); err != nil {
		return nil, err
	}
	if err := CheckLocalView(in.View); err != nil {
		return nil, err
	}
	var id int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.status(ctx, tx, analysisID); err != nil {
			return err
		}
		if in.Target == TargetRecipe {
			if err := recipeOfAnalysis(ctx, tx, analysisID, in.Key); err != nil {
				return err
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO comments (analysis_id, target_kind, target_key, user_id, body, view, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			analysisID, in.Target, in.Key, in.UserID, in.Body, in.View, db.now()).Scan(&id)
	})
	if err != nil {
		return nil, wrapRecipe("create comment", err)
	}
	return db.getComment(ctx, db.writer, id)
}

// recipeOfAnalysis checks that key is the id of a recipe of the analysis.
func recipeOfAnalysis(ctx context.Context, q queryer, analysisID, key string) error {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM recipes WHERE analysis_id = ? AND CAST(id AS TEXT) = ?`, analysisID, key).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(ENOTFOUND, "analysis %s has no recipe %s", analysisID, key)
	}
	return nil
}

// GetComment returns one comment, deleted or not (Deleted says).
func (db *DB) GetComment(ctx context.Context, id int64) (*Comment, error) {
	return db.getComment(ctx, db.reader, id)
}

func (db *DB) getComment(ctx context.Context, q queryer, id int64) (*Comment, error) {
	rows, err := q.QueryContext(ctx, selectComment+` WHERE c.id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("store: comment %d: %w", id, err)
	}
	list, err := scanComments(rows)
	if err != nil {
		return nil, fmt.Errorf("store: comment %d: %w", id, err)
	}
	if len(list) == 0 {
		return nil, errorf(ENOTFOUND, "comment %d not found", id)
	}
	return &list[0], nil
}

// CommentFilter picks threads: no Target lists every live comment of the
// analysis; a Target (and Key) one thread.
type CommentFilter struct {
	Target, Key string
}

// ListComments returns live comments of an analysis, oldest first (threads
// read top to bottom). An unknown analysis is ErrNotFound.
func (db *DB) ListComments(ctx context.Context, analysisID string, f CommentFilter) ([]Comment, error) {
	if f.Target != "" {
		if err := checkTarget(f.Target, f.Key); err != nil {
			return nil, err
		}
	}
	var out []Comment
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.status(ctx, tx, analysisID); err != nil {
			return err
		}
		q, args := selectComment+` WHERE c.analysis_id = ? AND c.deleted_at IS NULL`, []any{analysisID}
		if f.Target != "" {
			q, args = q+` AND c.target_kind = ? AND c.target_key = ?`, append(args, f.Target, f.Key)
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY c.created_at, c.id`, args...)
		if err != nil {
			return err
		}
		out, err = scanComments(rows)
		return err
	})
	if err != nil {
		return nil, wrapRecipe("list comments", err)
	}
	if out == nil {
		out = []Comment{}
	}
	return out, nil
}

// UpdateComment replaces a live comment's text. Who may is the handlers'
// business (the author); the store only refuses editing a deleted comment.
func (db *DB) UpdateComment(ctx context.Context, id int64, body string) (*Comment, error) {
	if err := checkCommentBody(&body); err != nil {
		return nil, err
	}
	res, err := db.writer.ExecContext(ctx, `UPDATE comments SET body = ?, edited_at = ? WHERE id = ? AND deleted_at IS NULL`, body, db.now(), id)
	if err != nil {
		return nil, fmt.Errorf("store: update comment %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, errorf(ENOTFOUND, "comment %d not found", id)
	}
	return db.getComment(ctx, db.writer, id)
}

// DeleteComment marks a comment deleted and drops its text (a deleted
// comment's words should not linger in the database).
func (db *DB) DeleteComment(ctx context.Context, id int64) error {
	res, err := db.writer.ExecContext(ctx, `UPDATE comments SET body = '', deleted_at = ? WHERE id = ? AND deleted_at IS NULL`, db.now(), id)
	if err != nil {
		return fmt.Errorf("store: delete comment %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errorf(ENOTFOUND, "comment %d not found", id)
	}
	return nil
}

const selectComment = `SELECT c.id, c.analysis_id, c.target_kind, c.target_key, c.user_id, COALESCE(u.name, ''), c.body, c.view,
	c.created_at, c.edited_at, c.deleted_at FROM comments c LEFT JOIN users u ON u.id = c.user_id`

func scanComments(rows *sql.Rows) ([]Comment, error) {
	defer rows.Close()
	var out []Comment
	for rows.Next() {
		var c Comment
		var user, edited, deleted sql.NullInt64
		var created int64
		if err := rows.Scan(&c.ID, &c.AnalysisID, &c.Target, &c.Key, &user, &c.Author, &c.Body, &c.View, &created, &edited, &deleted); err != nil {
			return nil, err
		}
		if user.Valid {
			c.UserID = &user.Int64
		}
		c.CreatedAt = time.UnixMilli(created)
		if edited.Valid {
			t := time.UnixMilli(edited.Int64)
			c.EditedAt = &t
		}
		c.Deleted = deleted.Valid
		out = append(out, c)
	}
	return out, rows.Err()
}
