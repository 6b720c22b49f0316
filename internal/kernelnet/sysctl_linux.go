//go:build linux

package kernelnet

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

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

// EnsureSysctls sets /proc/sys/net/<Key> to Value for each setting, in
// order, in the network namespace of the calling thread (run it inside
// netns.Do), writing only the values that differ. It returns the settings
// it wrote, also when it fails part-way. A key the kernel does not have
// fails unless the setting is Optional.
func EnsureSysctls(settings []Sysctl) ([]Sysctl, error) {
	var written []Sysctl
	for _, s := range settings {
		p := "/proc/sys/net/" + s.Key
		cur, err := os.ReadFile(p)
		if err != nil {
			if s.Optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return written, fmt.Errorf("read sysctl %s: %w", s.Key, err)
		}
		if strings.TrimSpace(string(cur)) == s.Value {
			continue
		}
		if err := os.WriteFile(p, []byte(s.Value), 0o644); err != nil {
			return written, fmt.Errorf("set sysctl %s=%s: %w", s.Key, s.Value, err)
		}
		written = append(written, s)
	}
	return written, nil
}
