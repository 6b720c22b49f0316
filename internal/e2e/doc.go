// Package e2e holds Weft's end-to-end tests: a controller, weft agents
// running as processes inside emulated node namespaces, and the weft-cni
// plugin driven through libcni as a container runtime would, with real
// traffic between container namespaces. The tests need root; under CI=true
// they fail instead of skipping without it.
package e2e
