// Package mkdirs makes folders as os.MkdirAll does while remembering which
// ones it made, so that a command that then fails or is interrupted can take
// exactly those away again and leave nothing behind.
package mkdirs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Made lists the folders one All call created, deepest first.
type Made []string

// All makes dir and any missing parents (mode 0755) and returns the folders
// it made. If it fails, what it made is removed again and none is returned.
func All(dir string) (Made, error) {
	var made Made
	for d := filepath.Clean(dir); ; {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		made = append(made, d)
		up := filepath.Dir(d)
		if up == d {
			break
		}
		d = up
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		made.Remove()
		return nil, err
	}
	return made, nil
}

// Remove removes the folders, deepest first, each only if it is empty:
// whatever else was put there stays, and so do its parents. One already gone
// is passed over.
func (m Made) Remove() {
	for _, d := range m {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
}
