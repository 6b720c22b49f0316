// Package e2e holds Weft's end-to-end tests, with real traffic between
// container namespaces. Two set-ups: a controller in process with weft
// agents running as processes inside emulated node namespaces, the
// weft-cni plugin driven through libcni as a container runtime would
// (cluster_linux_test.go, virtual_linux_test.go); and whole labs
// (internal/lab) with Mesos agent and Marathon emulators, the
// mesos-manager, DC/OS overlays and a real Docker engine (lab, marathon
// and overlay tests). The tests need root; under CI=true they fail instead
// of skipping without it.
package e2e
