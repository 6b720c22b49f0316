//go:build linux

package kernelnet

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
