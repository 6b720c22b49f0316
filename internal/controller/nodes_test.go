package controller

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

func TestParseVTEPPool(t *testing.T) {
	tests := []struct {
		subnet, oui, err string
	}{
		{"44.128.0.0/20", "70:B3:D5:00:00:00", ""},
		{"10.0.0.0/8", "70:b3:d5:00:00:00", ""},
		{"10.0.0.0/7", "70:B3:D5:00:00:00", "shorter than /8"},
		{"fd01:a::/64", "70:B3:D5:00:00:00", "not IPv4"},
		{"44.128.0.1/20", "70:B3:D5:00:00:00", "host bits"},
		{"44.128.0.0/20", "70:B3:D5:00:00:01", "low three bytes"},
		{"44.128.0.0/20", "70:B3:D5", "not a MAC"},
	}
	for _, tc := range tests {
		_, err := ParseVTEPPool(tc.subnet, tc.oui)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseVTEPPool(%s, %s) = %v, want %q", tc.subnet, tc.oui, err, tc.err)
		}
	}
}

func TestRegisterNodeAllocatesStickyVTEP(t *testing.T) {
	ctx := context.Background()
	kv := store.NewMemory()
	e := newEnv(t, kv)
	register := func(name, underlay string) (api.Node, int) {
		t.Helper()
		code, ae, b := e.do(t, http.MethodPost, "/v1/nodes/register", `{"name":"`+name+`","underlay_ip":"`+underlay+`"}`)
		if code >= 400 {
			t.Fatalf("register %s: %d %v", name, code, ae)
		}
		var n api.Node
		if err := api.DecodeStrict(b, &n); err != nil {
			t.Fatal(err)
		}
		return n, code
	}
	n1, code := register("agent-1", "198.18.0.1")
	if code != http.StatusCreated || n1.VTEPIP != "44.128.0.1" || n1.VTEPMAC != "70:b3:d5:80:00:01" {
		t.Fatalf("first node: %d %s %s", code, n1.VTEPIP, n1.VTEPMAC)
	}
	n2, _ := register("agent-2", "198.18.0.2")
	if n2.VTEPIP != "44.128.0.2" || n2.VTEPMAC != "70:b3:d5:80:00:02" {
		t.Fatalf("second node: %s %s", n2.VTEPIP, n2.VTEPMAC)
	}
	// Re-registration, also with a new underlay address, keeps the VTEP.
	again, code := register("agent-1", "198.18.0.11")
	if code != http.StatusOK || again.VTEPIP != n1.VTEPIP || again.UUID != n1.UUID || again.UnderlayIP != "198.18.0.11" {
		t.Fatalf("re-register: %d %+v", code, again)
	}
	// A controller restart over the same store keeps it too.
	e2 := newEnv(t, kv)
	var got api.Node
	if err := e2.cli.GetByFQName(ctx, "nodes", "agent-2", &got); err != nil || got.VTEPIP != n2.VTEPIP {
		t.Fatalf("after restart: %v %+v", err, got)
	}
	// Heartbeat marks it ready; an unknown node is 404 so the agent re-registers.
	if code, ae, _ := e.do(t, http.MethodPost, "/v1/nodes/agent-1/heartbeat", ""); code != http.StatusOK {
		t.Fatalf("heartbeat: %d %v", code, ae)
	}
	if err := e.cli.GetByFQName(ctx, "nodes", "agent-1", &got); err != nil || got.Status != "ready" || got.Heartbeat.IsZero() {
		t.Fatalf("after heartbeat: %v %+v", err, got)
	}
	if code, _, _ := e.do(t, http.MethodPost, "/v1/nodes/ghost/heartbeat", ""); code != http.StatusNotFound {
		t.Fatalf("heartbeat of unknown node: %d", code)
	}
	// Deleting a node frees its VTEP for the next registrant.
	if err := e.cli.Delete(ctx, "nodes", n1.UUID); err != nil {
		t.Fatal(err)
	}
	n3, _ := register("agent-3", "198.18.0.3")
	if n3.VTEPIP != "44.128.0.1" {
		t.Fatalf("freed VTEP not reused: %s", n3.VTEPIP)
	}
	// The controller allocates VTEPs; a body that brings one is refused.
	code, ae, _ := e.do(t, http.MethodPost, "/v1/nodes/register", `{"name":"x","underlay_ip":"198.18.0.9","vtep_ip":"44.128.0.9"}`)
	if code != http.StatusBadRequest || ae.Field != "vtep_ip" {
		t.Fatalf("register with vtep: %d %v", code, ae)
	}
	// Updates cannot move a VTEP.
	n3.VTEPIP = "44.128.0.99"
	if err := e.cli.Update(ctx, "nodes", n3.UUID, n3, nil); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("vtep change: %v", err)
	}
}

func TestConcurrentRegistrationsGetDistinctVTEPs(t *testing.T) {
	e := newEnv(t, etcdKV(t))
	var wg sync.WaitGroup
	vteps := make([]string, 12)
	for i := range vteps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each node registers twice; the second must keep its VTEP.
			for range 2 {
				code, ae, b := e.do(t, http.MethodPost, "/v1/nodes/register", `{"name":"n`+itoa(int64(i))+`","underlay_ip":"198.18.1.`+itoa(int64(i+1))+`"}`)
				if code >= 400 {
					t.Errorf("register n%d: %d %v", i, code, ae)
					return
				}
				var n api.Node
				_ = api.DecodeStrict(b, &n)
				if vteps[i] != "" && vteps[i] != n.VTEPIP {
					t.Errorf("n%d: VTEP changed %s -> %s", i, vteps[i], n.VTEPIP)
				}
				vteps[i] = n.VTEPIP
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, v := range vteps {
		if v == "" || seen[v] {
			t.Fatalf("node n%d: VTEP %q missing or shared (%v)", i, v, vteps)
		}
		seen[v] = true
	}
}
