//go:build !linux

// Package bench is Weft's benchmark harness (Linux only).
package bench

import (
	"context"
	"fmt"
	"io"
)

// Main reports that the harness needs Linux.
func Main(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "weft-bench: Linux only")
	return 1
}
