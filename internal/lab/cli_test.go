package lab

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every command answers --help with its usage and exit status 0.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"up", "--help"}, {"status", "--help"}, {"down", "--help"},
		{"task", "--help"}, {"task", "run", "--help"}, {"exec", "--help"}, {"matrix", "--help"},
	} {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, &out, &errOut)
		text := out.String() + errOut.String()
		if code != 0 || !strings.Contains(strings.ToLower(text), "usage") || strings.Contains(text, "help requested") {
			t.Errorf("weft lab %s: exit %d\n%s", strings.Join(args, " "), code, text)
		}
	}
}
