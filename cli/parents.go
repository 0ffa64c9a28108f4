package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// makeParents makes dir and any missing parents, as os.MkdirAll does, and
// returns the folders it made, deepest first, for removeMade: a command that
// then fails or is interrupted leaves none of them behind.
func makeParents(dir string) ([]string, error) {
	var made []string
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
		removeMade(made)
		return nil, err
	}
	return made, nil
}

// removeMade removes the folders makeParents made, deepest first, each only
// if it is empty: whatever else put there stays, and so do its parents. One
// already gone is passed over.
func removeMade(made []string) {
	for _, d := range made {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
}
