package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// TestErrorStatus pins the one error → status mapping that the API's JSON
// (apiError) and the forms' pages share, wrapped errors included.
func TestErrorStatus(t *testing.T) {
	queueFull := fmt.Errorf("create: %w", &jobs.QueueFullError{})
	for _, c := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"a handler's refusal", &statusError{http.StatusForbidden, "no roots"}, 403, "no roots"},
		{"a full disk", fmt.Errorf("write x: %w", syscall.ENOSPC), 507, "disk is full"},
		{"a full quota", fmt.Errorf("write x: %w", syscall.EDQUOT), 507, "disk is full"},
		{"busy header slots", fmt.Errorf("open: %w", checkpoint.ErrBusy), 429, "try again"},
		{"a full queue", queueFull, 429, queueFull.Error()},
		{"outside the roots", &tensor.Error{Path: "/etc", Msg: "outside", Forbidden: true}, 403, "/etc: outside"},
		{"a malformed file", fmt.Errorf("open: %w", &tensor.Error{Path: "a.bin", Msg: "bad header"}), 400, "a.bin: bad header"},
		{"not found", &store.Error{Code: store.ENOTFOUND, Message: "analysis x"}, 404, "not found"},
		{"a conflict", &store.Error{Code: store.ECONFLICT, Message: "already done"}, 409, "already done"},
		{"invalid", &store.Error{Code: store.EINVALID, Message: "step 5 appears twice"}, 400, "step 5 appears twice"},
		{"anything else", errors.New("database is locked: secret detail"), 500, "internal error; see the server log"},
	} {
		code, msg := errorStatus(c.err)
		if code != c.code || !strings.Contains(msg, c.msg) || (code == 500 && strings.Contains(msg, "secret")) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, msg, c.code, c.msg)
		}
	}
}
