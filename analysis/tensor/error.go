// Package tensor holds the vocabulary shared by every checkpoint reader and the
// divergence engine: element types, their exact decoding, and the error that
// names a file, a tensor and the rule it broke.
package tensor

import "fmt"

// Error is a problem with a checkpoint file. Its message names the file, the tensor
// when there is one, and the rule that was broken, so that the CLI can print it as
// one line ("deltascope: " + Error()) and the server can show it as is.
type Error struct {
	Path   string // the file (or folder) at fault
	Tensor string // optional
	Msg    string // the rule broken, in plain words
	// Forbidden marks a path refused by confinement rules (outside every allowed
	// root, escaping its folder) rather than a malformed file.
	Forbidden bool
}

func (e *Error) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("%s: tensor %q: %s", e.Path, e.Tensor, e.Msg)
	}
	return e.Path + ": " + e.Msg
}

// Errorf returns an *Error about a whole file.
func Errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// TensorErrorf returns an *Error about one tensor of a file.
func TensorErrorf(path, name, format string, args ...any) error {
	return &Error{Path: path, Tensor: name, Msg: fmt.Sprintf(format, args...)}
}
