//go:build linux

package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"

	vnetns "github.com/vishvananda/netns"

	"github.com/weft-sdn/weft/internal/kerneltest"
)

func randomPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "wt" + hex.EncodeToString(b) + "-"
}

func cleanupPrefix(t *testing.T, prefix string) {
	t.Cleanup(func() {
		_ = (&Lab{Prefix: prefix}).Close()
		if left, _ := List(prefix); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
}

// threadNS returns the namespace of the thread the runtime gives the caller.
func threadNS(t *testing.T) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := vnetns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return h.UniqueId()
}

func TestNamedLifecycleKeepsThreads(t *testing.T) {
	kerneltest.RequireRoot(t)
	prefix := randomPrefix(t)
	cleanupPrefix(t, prefix)
	home := threadNS(t)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			name := prefix + string(rune('a'+i))
			if err := NewNamed(name); err != nil {
				errs <- err
				return
			}
			var inside string
			err := Do(Path(name), func() error {
				h, err := vnetns.Get()
				if err != nil {
					return err
				}
				defer h.Close()
				inside = h.UniqueId()
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
			if inside == home {
				errs <- errors.New("Do ran in the home namespace")
			}
			if err := DeleteNamed(name); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every thread the runtime hands out is still in the home namespace.
	for range 64 {
		if got := threadNS(t); got != home {
			t.Fatalf("a thread was left in namespace %s, want %s", got, home)
		}
	}
}

func TestNewNamedExistsAndDeleteIdempotent(t *testing.T) {
	kerneltest.RequireRoot(t)
	prefix := randomPrefix(t)
	cleanupPrefix(t, prefix)
	name := prefix + "x"
	if err := NewNamed(name); err != nil {
		t.Fatal(err)
	}
	if !Exists(name) {
		t.Fatal("Exists is false after NewNamed")
	}
	if err := NewNamed(name); !errors.Is(err, os.ErrExist) {
		t.Errorf("second NewNamed: %v, want ErrExist", err)
	}
	if err := DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
	if err := DeleteNamed(name); err != nil {
		t.Errorf("second DeleteNamed: %v", err)
	}
	if Exists(name) {
		t.Error("Exists is true after DeleteNamed")
	}
	if err := NewNamed("a/b"); err == nil {
		t.Error("NewNamed accepted a path")
	}
}

func TestLab(t *testing.T) {
	kerneltest.RequireRoot(t)
	if _, err := exec.LookPath("ping"); err != nil {
		kerneltest.Missing(t, "no ping (CI installs iputils-ping)")
	}
	prefix := randomPrefix(t)
	cleanupPrefix(t, prefix)
	lab, err := NewLab(prefix, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddContainer("c1"); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"198.18.0.2", "198.18.0.3"} {
		out, err := exec.Command("ip", "netns", "exec", lab.Nodes[0].Name, "ping", "-n", "-c1", "-W1", dst).CombinedOutput()
		if err != nil {
			t.Errorf("ping %s from node1: %v: %s", dst, err, out)
		}
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := List(prefix); len(left) != 0 {
		t.Errorf("left after Close: %v", left)
	}
}

func TestNewHandle(t *testing.T) {
	if _, err := NewHandle("/nonexistent/netns"); err == nil {
		t.Error("NewHandle of a missing path: no error")
	}
	h, err := NewHandle("")
	if err != nil {
		t.Fatalf("NewHandle(\"\"): %v", err)
	}
	h.Close()

	kerneltest.RequireRoot(t)
	prefix := randomPrefix(t)
	cleanupPrefix(t, prefix)
	name := prefix + "h"
	if err := NewNamed(name); err != nil {
		t.Fatal(err)
	}
	h, err = NewHandle(Path(name))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Errorf("links of a new namespace through the handle: %v, want only lo", links)
	}
}
