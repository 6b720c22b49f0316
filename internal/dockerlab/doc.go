// Package dockerlab runs a real Docker engine (Debian's docker.io 20.10
// dockerd, with the containerd it manages) inside a given network
// namespace, for Weft's kernel tests and the lab: Start, Stop, Restart and
// Cleanup a Daemon whose state (data root, exec root, socket, pid file,
// log) all lives under one directory, so that several daemons in several
// namespaces coexist. EnsureImage gives it a tiny busybox image built
// locally (no registry), and Run, Exec, ContainerIP and Remove are thin
// docker CLI helpers so a test can run a container on a network and ping
// from it.
//
// It needs Linux and root. See README.md for the daemon flags and why.
package dockerlab
