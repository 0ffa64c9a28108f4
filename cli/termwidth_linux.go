package cli

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// terminalColumns is the width of the terminal w writes to, or 0 when w is not
// a terminal (a file, a pipe, a test's buffer).
func terminalColumns(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	var ws struct{ row, col, xpixel, ypixel uint16 }
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws))); errno != 0 {
		return 0
	}
	return int(ws.col)
}
