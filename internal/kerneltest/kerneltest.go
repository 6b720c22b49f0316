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
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root")
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
