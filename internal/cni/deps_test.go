package cni

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/kerneltest"
)

// TestBinaryDependencies keeps the plugin binary free of etcd, nftables,
// netlink and Prometheus code, and of net/http (with crypto/tls and the
// controller's client): it runs on every Mesos agent, for every container,
// and must start fast, stay small and independent of the agent's data
// plane.
func TestBinaryDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		kerneltest.Missing(t, "no go command on PATH")
	}
	cmd := exec.Command(goBin, "list", "-deps", "./cmd/weft-cni")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps ./cmd/weft-cni: %v\n%s", err, stderr)
	}
	forbidden := []string{"go.etcd.io", "knftables", "nftables", "vishvananda", "netlink", "prometheus",
		"net/http", "crypto/tls", "github.com/weft-sdn/weft/internal/api/client"}
	allowedPrefixes := []string{"github.com/weft-sdn/weft/internal/api", "github.com/weft-sdn/weft/internal/cni",
		"github.com/weft-sdn/weft/cmd/weft-cni", "github.com/containernetworking/cni/"}
	pkgs := strings.Fields(string(out))
	if len(pkgs) == 0 {
		t.Fatal("go list printed nothing")
	}
	for _, pkg := range pkgs {
		for _, bad := range forbidden {
			if strings.Contains(pkg, bad) {
				t.Errorf("weft-cni links %s", pkg)
			}
		}
		// Anything outside the standard library must be on the allow list.
		first, _, _ := strings.Cut(pkg, "/")
		if !strings.Contains(first, ".") || strings.HasPrefix(pkg, "vendor/") {
			continue
		}
		ok := false
		for _, p := range allowedPrefixes {
			if pkg == strings.TrimSuffix(p, "/") || strings.HasPrefix(pkg, p) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("weft-cni links %s, outside the standard library, the CNI library and internal/api", pkg)
		}
	}
	for _, need := range []string{"github.com/weft-sdn/weft/internal/api", "github.com/containernetworking/cni/pkg/types/100"} {
		found := false
		for _, pkg := range pkgs {
			found = found || pkg == need
		}
		if !found {
			t.Errorf("%s missing from the dependencies: is the list right?", need)
		}
	}
}
