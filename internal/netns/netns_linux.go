//go:build linux

package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are bind-mounted, as with `ip netns`.
const RunDir = "/run/netns"

// Path returns the bind-mount path of the named namespace.
func Path(name string) string { return filepath.Join(RunDir, name) }

// ValidName reports whether name can name a namespace: a plain file name.
func ValidName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) || len(name) > 255 {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}

// Exists reports whether the named namespace is mounted.
func Exists(name string) bool {
	return IsNetns(Path(name))
}

// IsNetns reports whether path is a network namespace file (a bind mount
// or a /proc/<pid>/ns/net link).
func IsNetns(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// NewNamed creates a new network namespace and bind-mounts it at
// Path(name). It fails with an error wrapping os.ErrExist when the name is
// taken. The calling goroutine's namespace is not changed: the namespace
// is created on a throwaway locked OS thread that exits afterwards.
func NewNamed(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := ensureRunDir(); err != nil {
		return err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	_ = f.Close()

	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it is in the new namespace and
		// the runtime terminates it when this goroutine returns.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount %s: %w", src, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	return nil
}

// ensureRunDir creates RunDir and makes it a shared mount point, as
// iproute2 does, so that namespace mounts propagate to mount namespaces
// created later (for example by `ip netns exec`).
func ensureRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", RunDir, err)
	}
	err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: bind it onto itself, then retry.
		if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", RunDir, err)
		}
		err = unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", RunDir, err)
	}
	return nil
}

// DeleteNamed unmounts and removes the named namespace. A missing
// namespace is not an error. The namespace itself (and its interfaces)
// goes away once no process or open file holds it.
func DeleteNamed(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	path := Path(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", name, err)
	}
	return nil
}

// List returns the sorted names of the named namespaces that start with
// prefix.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(RunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", RunDir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Open returns a handle on the namespace at path; close it when done.
func Open(path string) (vnetns.NsHandle, error) {
	h, err := vnetns.GetFromPath(path)
	if err != nil {
		return vnetns.None(), fmt.Errorf("open netns %s: %w", path, err)
	}
	return h, nil
}

// NewHandle returns a netlink (route) handle in the namespace at path, or
// in the calling thread's namespace when path is ""; close it when done.
// The namespace itself is not kept open: the handle's socket holds it.
func NewHandle(path string) (*netlink.Handle, error) {
	if path == "" {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		return h, nil
	}
	ns, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return h, nil
}

// Do runs fn on a locked OS thread switched into the namespace at path
// and returns fn's error. The caller's goroutine is untouched; goroutines
// that fn starts run in whatever namespace their thread is in, not in
// path's. If the thread cannot be switched back it is discarded.
func Do(path string, fn func() error) error {
	target, err := Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("restore netns after %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
