package store

import (
	"errors"
	"fmt"
)

// Error codes, mapped to HTTP statuses by the handlers.
const (
	ENOTFOUND = "not_found" // 404
	ECONFLICT = "conflict"  // 409: the row is in a state that forbids the change
	EINVALID  = "invalid"   // 400: the caller's input is wrong
)

// Error is a domain error whose Message can be shown to a user as is.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Is makes errors.Is(err, ErrNotFound) true for every not-found Error, whatever
// its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrNotFound = &Error{Code: ENOTFOUND, Message: "not found"}
	ErrConflict = &Error{Code: ECONFLICT, Message: "conflict"}
	ErrInvalid  = &Error{Code: EINVALID, Message: "invalid"}
)

// ErrorCode returns the code of a store Error in err's chain, or "" for any
// other error (an internal failure).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
