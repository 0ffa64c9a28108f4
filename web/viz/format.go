package viz

import (
	"math"
	"strconv"
	"strings"
)

// trimFloat prints x with sig significant digits and no trailing zeros.
func trimFloat(x float64, sig int) string {
	digits := sig - 1 - int(math.Floor(math.Log10(math.Abs(x))))
	s := strconv.FormatFloat(x, 'f', max(digits, 0), 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func formatE(x float64) string { return strconv.FormatFloat(x, 'e', 3, 64) }

// FormatCount prints a parameter count the way papers do: 7.54 B, 470 M, 12.3 k.
func FormatCount(n int64) string {
	f := float64(n)
	switch {
	case n >= 1e9:
		return trimFloat(f/1e9, 3) + " B"
	case n >= 1e6:
		return trimFloat(f/1e6, 3) + " M"
	case n >= 1e4:
		return trimFloat(f/1e3, 3) + " k"
	}
	return strconv.FormatInt(n, 10)
}

// FormatBytes prints a size in binary units.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return trimFloat(f, 3) + " " + []string{"B", "KiB", "MiB", "GiB", "TiB"}[i]
}
