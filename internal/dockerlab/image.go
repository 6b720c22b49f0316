//go:build linux

package dockerlab

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"
)

// DefaultImage is the busybox image EnsureImage builds when asked for "".
const DefaultImage = "weft-busybox:latest"

// Busybox is the static busybox the image is built from (Debian's
// busybox-static).
var Busybox = "/bin/busybox"

// EnsureImage gives the daemon the image name ("" means DefaultImage): a
// root file system holding only the static busybox and a symlink for each
// of its applets where `busybox --install -s` would put it (sh, ping, nc,
// wget, sleep, ip, ...), imported with `docker import`. An image of that
// name already there is kept.
func EnsureImage(ctx context.Context, d *Daemon, name string) error {
	if name == "" {
		name = DefaultImage
	}
	if _, err := d.docker(ctx, nil, "image", "inspect", "--format", "{{.Id}}", name); err == nil {
		return nil
	}
	rootfs, err := BusyboxRootfs(ctx, Busybox)
	if err != nil {
		return err
	}
	out, err := d.docker(ctx, bytes.NewReader(rootfs), "import",
		"--change", `CMD ["sh"]`,
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"-", name)
	if err != nil {
		return fmt.Errorf("dockerlab: import image %s: %w", name, err)
	}
	d.log().Info("image imported", "image", name, "id", strings.TrimSpace(out), "bytes", len(rootfs))
	return nil
}

// BusyboxRootfs returns a tar archive of a minimal root file system around
// the static busybox binary at bin. The archive is the same for the same
// binary.
func BusyboxRootfs(ctx context.Context, bin string) ([]byte, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("dockerlab: %s (install busybox-static): %w", bin, err)
	}
	static := true
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			static = false
		}
	}
	f.Close()
	if !static {
		return nil, fmt.Errorf("dockerlab: %s is dynamically linked; the image needs a static busybox (busybox-static)", bin)
	}
	out, err := exec.CommandContext(ctx, bin, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("dockerlab: %s --list-full: %w", bin, err)
	}
	links := strings.Fields(string(out))
	if !slices.Contains(links, "bin/sh") {
		return nil, fmt.Errorf("dockerlab: %s has no sh applet", bin)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("dockerlab: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dirs := map[string]bool{}
	var errs []error
	addDir := func(name string, mode int64) {
		for _, p := range parents(name) {
			if dirs[p] {
				continue
			}
			dirs[p] = true
			m := int64(0o755)
			if p == name {
				m = mode
			}
			errs = append(errs, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: m, ModTime: mtime}))
		}
	}
	for _, dir := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "var", "run"} {
		addDir(dir, 0o755)
	}
	addDir("tmp", 0o1777)
	addFile := func(name string, mode int64, body []byte) {
		errs = append(errs, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: mtime}))
		_, err := tw.Write(body)
		errs = append(errs, err)
	}
	addFile("bin/busybox", 0o755, data)
	addFile("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	addFile("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	slices.Sort(links)
	for _, l := range slices.Compact(links) {
		l = strings.TrimPrefix(path.Clean("/"+l), "/")
		if l == "bin/busybox" || l == "" {
			continue
		}
		addDir(path.Dir(l), 0o755)
		errs = append(errs, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: l, Linkname: "/bin/busybox", Mode: 0o777, ModTime: mtime}))
	}
	errs = append(errs, tw.Close())
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dockerlab: build rootfs: %w", err)
	}
	return buf.Bytes(), nil
}

// parents returns "a", "a/b", "a/b/c" for "a/b/c".
func parents(name string) []string {
	var out []string
	for i, r := range name {
		if r == '/' {
			out = append(out, name[:i])
		}
	}
	return append(out, name)
}
