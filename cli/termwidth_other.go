//go:build !linux

package cli

import "io"

// terminalColumns: without a portable way to ask, tables are not fitted
// unless $COLUMNS says how wide the terminal is.
func terminalColumns(io.Writer) int { return 0 }
