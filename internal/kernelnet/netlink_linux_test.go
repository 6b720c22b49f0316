//go:build linux

package kernelnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weft-sdn/weft/internal/kerneltest"
	"github.com/weft-sdn/weft/internal/netns"
)

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		err                    error
		linkNotFound, notExist bool
	}{
		{nil, false, false},
		{netlink.LinkNotFoundError{}, true, false},
		{fmt.Errorf("delete: %w", unix.ENODEV), true, true},
		{unix.ENOENT, false, true},
		{unix.ESRCH, false, true},
		{unix.EADDRNOTAVAIL, false, true},
		{unix.EEXIST, false, false},
	} {
		if got := IsLinkNotFound(tc.err); got != tc.linkNotFound {
			t.Errorf("IsLinkNotFound(%v) = %v", tc.err, got)
		}
		if got := IsNotExist(tc.err); got != tc.notExist {
			t.Errorf("IsNotExist(%v) = %v", tc.err, got)
		}
	}
}

func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name        string
		interrupted int // calls that fail with ErrDumpInterrupted first
		wantCalls   int
		wantErr     error
	}{
		{"first call", 0, 1, nil},
		{"interrupted twice", 2, 3, nil},
		{"always interrupted", 100, 10, netlink.ErrDumpInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := Retry(func() (int, error) {
				calls++
				if calls <= tc.interrupted {
					return calls, netlink.ErrDumpInterrupted
				}
				return calls, nil
			})
			if calls != tc.wantCalls || v != tc.wantCalls || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Retry: %d calls, %v, %v; want %d calls, %v", calls, v, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

func TestReadSysctls(t *testing.T) {
	want, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Skip(err)
	}
	got, err := ReadSysctls([]string{"ipv4/ip_forward", "no/such/key"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != "ipv4/ip_forward" || got[0].Value+"\n" != string(want) {
		t.Errorf("ReadSysctls = %q, want one ipv4/ip_forward=%q", got, want)
	}
}

func TestEnsureSysctls(t *testing.T) {
	cur, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Skip(err)
	}
	// Values as they are, and a missing optional key: nothing to write.
	same := []Sysctl{{Key: "ipv4/ip_forward", Value: strings.TrimSpace(string(cur))}, {Key: "no/such/key", Value: "1", Optional: true}}
	if written, err := EnsureSysctls(same); err != nil || len(written) != 0 {
		t.Errorf("EnsureSysctls(current values) = %v, %v; want nothing written", written, err)
	}
	// A missing key that is not optional fails, naming it.
	if _, err := EnsureSysctls([]Sysctl{{Key: "no/such/key", Value: "1"}}); err == nil || !strings.Contains(err.Error(), "no/such/key") {
		t.Errorf("EnsureSysctls(missing key) = %v, want an error naming it", err)
	}

	// Writing, in a fresh namespace (forwarding off there).
	kerneltest.RequireRoot(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "wkn-" + hex.EncodeToString(b)
	if err := netns.NewNamed(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete %s: %v", name, err)
		}
	})
	want := []Sysctl{{Key: "ipv4/ip_forward", Value: "1"}, {Key: "no/such/key", Value: "1", Optional: true}}
	var first, second, read []Sysctl
	err = netns.Do(netns.Path(name), func() (err error) {
		if first, err = EnsureSysctls(want); err != nil {
			return err
		}
		if second, err = EnsureSysctls(want); err != nil {
			return err
		}
		read, err = ReadSysctls([]string{"ipv4/ip_forward"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first, want[:1]) || len(second) != 0 {
		t.Errorf("wrote %v, then %v; want %v, then nothing", first, second, want[:1])
	}
	if len(read) != 1 || read[0].Value != "1" {
		t.Errorf("ip_forward after EnsureSysctls: %v", read)
	}
}
