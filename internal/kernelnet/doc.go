// Package kernelnet holds the helpers the data planes (internal/dataplane
// and internal/overlaydp) share for talking to the kernel's networking:
// retrying interrupted netlink dumps, classifying netlink errors,
// converting between the net types netlink uses and net/netip, reading
// and setting /proc/sys/net settings (and printing them as both dumps
// do), opening a container's network namespace and checking an endpoint's
// veth (peers, state, addresses).
//
// The netlink and /proc helpers are Linux-only; the address conversions
// and the Sysctl type build everywhere.
package kernelnet
