//go:build linux

package kernelnet

import (
	"errors"
	"os"
	"strings"
)

// Sysctl is one setting under /proc/sys/net.
type Sysctl struct {
	Key   string // relative to /proc/sys/net, e.g. "ipv4/ip_forward"
	Value string // without surrounding white space
}

// ReadSysctls reads /proc/sys/net/<key> for each key, in order, in the
// network namespace of the calling thread. Keys the kernel does not have
// are left out.
func ReadSysctls(keys []string) ([]Sysctl, error) {
	var out []Sysctl
	for _, k := range keys {
		v, err := os.ReadFile("/proc/sys/net/" + k)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Sysctl{Key: k, Value: strings.TrimSpace(string(v))})
	}
	return out, nil
}
