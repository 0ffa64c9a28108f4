package web

import (
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/mdlite"
)

// CommentThread is one thread's panel: its comments and the form that adds
// one. Forms are sent by common.js ([data-api]) to the JSON API.
type CommentThread struct {
	Title      string
	AnalysisID string
	Target     string // store.Target*
	Key        string
	// View is the page the panel is on (path and query): a new comment
	// records it and links back to it.
	View     string
	PostURL  string
	Comments []CommentView
}

// CommentView is one rendered comment.
type CommentView struct {
	ID     int64
	Author string
	When   string
	Edited bool
	// HTML is the body rendered by mdlite, which escapes all input first: the
	// only markup in it is mdlite's own.
	HTML string
	Body string // raw, for the edit form
	// View is the page it was written on; "" for comments made by scripts.
	View               string
	URL                string // the comment in the API (PATCH, DELETE)
	CanEdit, CanDelete bool
}

// CommentAccess says what the reader may do with a comment.
type CommentAccess func(c *store.Comment) (edit, del bool)

// NewCommentThread builds a thread panel.
func NewCommentThread(analysisID, target, key, title, view string, cs []store.Comment, may CommentAccess) CommentThread {
	t := CommentThread{Title: title, AnalysisID: analysisID, Target: target, Key: key, View: view,
		PostURL: CommentsAPIURL(analysisID)}
	for i := range cs {
		t.Comments = append(t.Comments, NewCommentView(&cs[i], may))
	}
	return t
}

// NewCommentView renders one comment for a reader.
func NewCommentView(c *store.Comment, may CommentAccess) CommentView {
	v := CommentView{ID: c.ID, Author: AuthorName(c.Author), When: When(&c.CreatedAt), Edited: c.EditedAt != nil,
		HTML: mdlite.Render(c.Body), Body: c.Body, URL: CommentAPIURL(c.ID)}
	// The store only keeps local paths; checked again here because this
	// value becomes a link.
	if store.CheckLocalView(c.View) == nil {
		v.View = c.View
	}
	if may != nil {
		v.CanEdit, v.CanDelete = may(c)
	}
	return v
}

// AuthorName names a user in threads and feeds: without accounts (or once the
// account is deleted) there is no name to show.
func AuthorName(name string) string {
	if name == "" {
		return "someone"
	}
	return name
}

// CellTitle names a heatmap cell in a thread's title.
func CellTitle(component string, layer int, module string) string {
	return component + " · layer " + layerText(layer) + " · " + module
}
