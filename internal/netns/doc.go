// Package netns manages named Linux network namespaces the way
// `ip netns add` does (a bind mount under /run/netns), runs code inside a
// namespace without leaking the namespace switch to other goroutines,
// opens netlink handles in a namespace, and builds lab topologies (a
// fabric bridge joining emulated nodes) for tests and `weft lab`.
//
// Everything here is Linux-only; on other systems the package is empty.
package netns
