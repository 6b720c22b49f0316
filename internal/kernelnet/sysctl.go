package kernelnet

import "strings"

// Sysctl is one setting under /proc/sys/net.
type Sysctl struct {
	Key   string // relative to /proc/sys/net, e.g. "ipv4/ip_forward"
	Value string // without surrounding white space
	// Optional makes EnsureSysctls skip the key when the kernel does not
	// have it (no IPv6) instead of failing.
	Optional bool
}

// String is the setting as the data planes' dumps print it:
// "sysctl net.ipv4.ip_forward=1".
func (s Sysctl) String() string {
	return "sysctl net." + strings.ReplaceAll(s.Key, "/", ".") + "=" + s.Value
}
