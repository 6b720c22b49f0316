// Package kerneltest supports Weft's tests that need root and the kernel
// (network namespaces, veths, mounts) or the built binaries: they must run
// in CI, which runs as root, and may skip only on a developer's machine.
package kerneltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireRoot skips the test when not root, except under CI=true, where it
// fails: CI runs as root, so a skip there would hide the test.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "this test needs root (CI runs as root)")
	}
}

// Missing ends a test that lacks something it needs (root, a tool, a
// package's file), with the message format and args say: under CI=true,
// where everything is installed and a skip would hide the test, it fails;
// elsewhere it skips.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// BuildCommands builds the named commands of cmd/ (relative to the test's
// package directory, two levels below the module root) into dir.
func BuildCommands(dir string, names ...string) error {
	for _, name := range names {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../../cmd/"+name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("build %s: %w\n%s", name, err, out)
		}
	}
	return nil
}

// RunWithCommands is the body of a TestMain whose tests run the built
// binaries: it builds the named commands of cmd/ (see BuildCommands) into
// a new temporary directory named after pattern (as os.MkdirTemp), sets
// *dir to that directory, runs the tests and removes the directory. It
// returns the exit code for os.Exit: m.Run's, or 1 with the error on
// stderr when the directory or a build fails.
func RunWithCommands(m *testing.M, pattern string, dir *string, names ...string) int {
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(d)
	if err := BuildCommands(d, names...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*dir = d
	return m.Run()
}
