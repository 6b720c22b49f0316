package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/overlay"
	"github.com/weft-sdn/weft/internal/store"
)

// overlayEnv is a controller with an overlay configuration over kv.
func overlayEnv(t *testing.T, kv store.KV, cfgJSON string) *testEnv {
	t.Helper()
	cfg := testConfig()
	if cfgJSON == "" {
		cfg.DCOSOverlay = true
	} else {
		path := filepath.Join(t.TempDir(), "overlay.json")
		if err := os.WriteFile(path, []byte(cfgJSON), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.OverlayConfig = path
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	c, err := NewWithStore(context.Background(), cfg, kv, discardLog())
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	return &testEnv{c: c, ts: newHTTPTestServer(t, c), kv: kv}
}

func (e *testEnv) register(t *testing.T, name, underlay string, role *api.OverlayRole) api.Node {
	t.Helper()
	req := map[string]any{"name": name, "underlay_ip": underlay}
	if role != nil {
		req["overlay_role"] = role
	}
	body, _ := json.Marshal(req)
	code, ae, b := e.do(t, http.MethodPost, "/v1/nodes/register", string(body))
	if code >= 400 {
		t.Fatalf("register %s: %d %v", name, code, ae)
	}
	var n api.Node
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// summary renders a node's assignment on one line per overlay.
func summary(n api.Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s vtep=%s vtep6=%s mac=%s", n.Name, n.VTEPIP, n.VTEPIP6, n.VTEPMAC)
	for _, o := range n.Overlays {
		fmt.Fprintf(&b, "\n  %s %s subnet=%s subnet6=%s", o.Name, o.Status, o.Subnet, o.Subnet6)
		for _, br := range []*api.OverlayBridge{o.MesosBridge, o.DockerBridge} {
			if br != nil {
				fmt.Fprintf(&b, " %s=%s%s", br.Name, br.IP, br.IP6)
			}
		}
		if o.Error != "" {
			fmt.Fprintf(&b, " error=%q", o.Error)
		}
	}
	return b.String()
}

func TestOverlayAllocationDCOSDefaults(t *testing.T) {
	kv := store.NewMemory()
	e := overlayEnv(t, kv, "")
	got := []string{
		summary(e.register(t, "a1", "10.0.0.5", nil)),
		summary(e.register(t, "a2", "10.0.0.6", nil)),
		summary(e.register(t, "m1", "10.0.0.1", &api.OverlayRole{AllocateSubnet: true})),
	}
	want := []string{
		"a1 vtep=44.128.0.1 vtep6=fd01:a::1 mac=70:b3:d5:80:00:01" +
			"\n  dcos CONFIGURING subnet=9.0.0.0/24 subnet6= m-dcos=9.0.0.0/25 d-dcos=9.0.0.128/25" +
			"\n  dcos6 CONFIGURING subnet= subnet6=fd01:b::/80 m-dcos6=fd01:b::/81 d-dcos6=fd01:b::8000:0:0/81",
		"a2 vtep=44.128.0.2 vtep6=fd01:a::2 mac=70:b3:d5:80:00:02" +
			"\n  dcos CONFIGURING subnet=9.0.1.0/24 subnet6= m-dcos=9.0.1.0/25 d-dcos=9.0.1.128/25" +
			"\n  dcos6 CONFIGURING subnet= subnet6=fd01:b:0:0:1::/80 m-dcos6=fd01:b:0:0:1::/81 d-dcos6=fd01:b::1:8000:0:0/81",
		// A master: a VTEP and a subnet, no bridges.
		"m1 vtep=44.128.0.3 vtep6=fd01:a::3 mac=70:b3:d5:80:00:03" +
			"\n  dcos CONFIGURING subnet=9.0.2.0/24 subnet6=" +
			"\n  dcos6 CONFIGURING subnet= subnet6=fd01:b:0:0:2::/80",
	}
	// Without allocate_subnet: a VTEP, no overlay entries (nothing stays
	// CONFIGURING), and heartbeats do not try again.
	if n := e.register(t, "v1", "10.0.0.9", &api.OverlayRole{}); n.VTEPIP != "44.128.0.4" || len(n.Overlays) != 0 {
		t.Errorf("node without subnets: %s", summary(n))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("node %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	// Each overlay is a network of kind overlay.
	for _, name := range []string{"dcos", "dcos6"} {
		obj, err := e.c.Registry.GetByFQName(context.Background(), api.KindNetwork, OverlayNetworkName(name))
		if err != nil {
			t.Fatalf("network %s: %v", name, err)
		}
		if n := obj.(*api.Network); n.NetworkKind != api.NetworkOverlay || n.VNI != 1024 {
			t.Errorf("network %s: kind %s vni %d", name, n.NetworkKind, n.VNI)
		}
	}

	// Sticky across re-registration (even from another address) and a
	// controller restart; a node registering after the restart gets the
	// next free assignment.
	before := summary(e.register(t, "a2", "10.0.0.6", nil))
	if again := summary(e.register(t, "a2", "10.0.0.66", nil)); again != before {
		t.Errorf("re-registration moved the assignment:\n%s\n%s", before, again)
	}
	e2 := overlayEnv(t, kv, "")
	if again := summary(e2.register(t, "a2", "10.0.0.6", nil)); again != before {
		t.Errorf("a restart moved the assignment:\n%s\n%s", before, again)
	}
	if n := e2.register(t, "a4", "10.0.0.8", nil); n.VTEPIP != "44.128.0.5" || n.Overlays[0].Subnet != "9.0.3.0/24" {
		t.Errorf("after restart: %s", summary(n))
	}
}

func TestOverlayStateEndpointShape(t *testing.T) {
	e := overlayEnv(t, store.NewMemory(), "")
	e.register(t, "first", "10.0.0.4", nil)
	e.register(t, "a1", "10.0.0.5", nil)
	code, ae, _ := e.do(t, http.MethodPost, "/v1/nodes/a1/overlay-status", `{"overlays":[{"name":"dcos","status":"OK"},{"name":"dcos6","status":"FAILED","error":"docker network dcos6: engine down"}]}`)
	if code != http.StatusOK {
		t.Fatalf("status report: %d %v", code, ae)
	}
	code, _, b := e.do(t, http.MethodGet, "/overlay-master/state", "")
	if code != http.StatusOK {
		t.Fatalf("state: %d %s", code, b)
	}
	var st overlay.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Agents) != 2 || st.Agents[1].IP != "10.0.0.5" {
		t.Fatalf("agents: %s", b)
	}
	// The agent entry of a1's dcos overlay, byte for byte as DC/OS
	// renders it (keys sorted, "enabled" present).
	a1, _ := json.Marshal(st.Agents[1].Overlays[0])
	want := `{"backend":{"vxlan":{"vni":1024,"vtep_ip":"44.128.0.2/20","vtep_ip6":"fd01:a::2/64","vtep_mac":"70:b3:d5:80:00:02","vtep_name":"vtep1024"}},` +
		`"docker_bridge":{"ip":"9.0.1.128/25","name":"d-dcos"},` +
		`"info":{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"},` +
		`"mesos_bridge":{"ip":"9.0.1.0/25","name":"m-dcos"},` +
		`"state":{"status":"STATUS_OK"},` +
		`"subnet":"9.0.1.0/24"}`
	if string(a1) != want {
		t.Errorf("agent overlay:\n got %s\nwant %s", a1, want)
	}
	// Unlike DC/OS the error reaches the master's state.
	if s := st.Agents[1].Overlays[1].State; s == nil || s.Status != overlay.StatusFailed || !strings.Contains(s.Error, "engine down") {
		t.Errorf("dcos6 state: %+v", s)
	}
	if !strings.Contains(string(b), `"network":{"overlays":[{"enabled":true,"name":"dcos","prefix":24,"subnet":"9.0.0.0/8"}`) ||
		!strings.Contains(string(b), `"vtep_mac_oui":"70:B3:D5:00:00:00","vtep_subnet":"44.128.0.0/20","vtep_subnet6":"fd01:a::/64"`) {
		t.Errorf("network part of the state: %s", b)
	}
	// Bad status reports name the field.
	for body, field := range map[string]string{
		`{"overlays":[{"name":"dcos","status":"GREAT"}]}`: "overlays[0].status",
		`{"overlays":[{"status":"OK"}]}`:                  "overlays[0].name",
	} {
		if code, ae, _ := e.do(t, http.MethodPost, "/v1/nodes/a1/overlay-status", body); code != http.StatusBadRequest || ae.Field != field {
			t.Errorf("%s: %d %+v, want 400 on %s", body, code, ae, field)
		}
	}
}

func TestOverlayExhaustionReportedAndRecovered(t *testing.T) {
	ctx := context.Background()
	e := overlayEnv(t, store.NewMemory(), `{"network":{"vtep_subnet":"44.128.0.0/20","vtep_mac_oui":"70:B3:D5:00:00:00",
		"overlays":[{"name":"tiny","subnet":"9.0.0.0/23","prefix":24}]}}`)
	e.register(t, "n1", "10.0.0.1", nil)
	e.register(t, "n2", "10.0.0.2", nil)
	n3 := e.register(t, "n3", "10.0.0.3", nil)
	o := n3.Overlays[0]
	if o.Status != api.OverlayFailed || o.Subnet != "" || !strings.Contains(o.Error, "no free /24 subnet in 9.0.0.0/23 (2 of 2 in use)") {
		t.Fatalf("exhausted overlay: %s", summary(n3))
	}
	code, _, b := e.do(t, http.MethodGet, "/v1/overlays", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"exhausted": true`) || !strings.Contains(string(b), `"subnets_used": 2`) ||
		!strings.Contains(string(b), "n3: overlay tiny: no free /24 subnet") {
		t.Fatalf("usage: %d %s", code, b)
	}
	// The agent's own status report does not hide the controller's failure.
	e.do(t, http.MethodPost, "/v1/nodes/n3/overlay-status", `{"overlays":[{"name":"tiny","status":"OK"}]}`)
	if n, _ := e.c.Registry.GetByFQName(ctx, api.KindNode, "n3"); n.(*api.Node).Overlays[0].Status != api.OverlayFailed {
		t.Fatalf("the agent's report replaced the allocation failure")
	}
	// n1 goes; n3's next heartbeat gets n1's subnet.
	if _, err := e.c.Registry.DeleteNodesByIP(ctx, mustAddrs("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	code, _, b = e.do(t, http.MethodPost, "/v1/nodes/n3/heartbeat", "")
	var n api.Node
	_ = json.Unmarshal(b, &n)
	if code != http.StatusOK || n.Overlays[0].Subnet != "9.0.0.0/24" || n.Overlays[0].Status != api.OverlayConfiguring || n.Overlays[0].Error != "" {
		t.Fatalf("after a subnet was freed: %d %s", code, summary(n))
	}
}

func TestOverlayDeleteAgentsFreesOnce(t *testing.T) {
	ctx := context.Background()
	e := overlayEnv(t, store.NewMemory(), "")
	e.register(t, "a1", "10.0.0.5", nil)
	e.register(t, "a2", "10.0.0.6", nil)
	e.register(t, "a3", "10.0.0.7", nil)

	for _, tc := range []struct{ body, field string }{
		{`not json`, ""},
		{`{}`, "agents"},
		{`{"agents":[5]}`, "agents[0]"},
		{`{"agents":["fd01::1"]}`, "agents[0]"},
		{`{"agents":["10.0.0.5","nope"]}`, "agents[1]"},
	} {
		if code, ae, _ := e.do(t, http.MethodPost, "/overlay-master/agents/delete", tc.body); code != http.StatusBadRequest || ae.Field != tc.field {
			t.Errorf("%s: %d %+v, want 400 on %q", tc.body, code, ae, tc.field)
		}
	}
	if code, _, _ := e.do(t, http.MethodGet, "/overlay-master/agents/delete", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET agents/delete: %d, want 405", code)
	}

	// Two concurrent deletes of the same agent (with dcos and dcos6, the
	// case that made DC/OS free its VTEP twice) and an unknown address.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if code, ae, _ := e.do(t, http.MethodPost, "/overlay-master/agents/delete", `{"agents":["10.0.0.6","10.9.9.9"]}`); code != http.StatusOK {
				t.Errorf("delete: %d %v", code, ae)
			}
		})
	}
	wg.Wait()
	code, _, b := e.do(t, http.MethodGet, "/overlay-master/state", "")
	if code != http.StatusOK || strings.Contains(string(b), "10.0.0.6") || !strings.Contains(string(b), "10.0.0.7") {
		t.Fatalf("state after delete: %s", b)
	}
	// Freed exactly once: one claim less of each kind, and the next two
	// nodes get a2's VTEP and subnets, then fresh ones.
	for prefix, want := range map[string]int{vtepPrefix: 2, vtep6Prefix: 2, subnetClaimPrefix("dcos"): 2, subnetClaimPrefix("dcos6"): 2} {
		kvs, _, err := e.kv.List(ctx, prefix)
		if err != nil || len(kvs) != want {
			t.Errorf("%s: %d claims (%v), want %d", prefix, len(kvs), err, want)
		}
	}
	if n := e.register(t, "b1", "10.0.0.8", nil); n.VTEPIP != "44.128.0.2" || n.VTEPIP6 != "fd01:a::2" || n.Overlays[0].Subnet != "9.0.1.0/24" || n.Overlays[1].Subnet6 != "fd01:b:0:0:1::/80" {
		t.Errorf("reuse: %s", summary(n))
	}
	if n := e.register(t, "b2", "10.0.0.9", nil); n.VTEPIP != "44.128.0.4" || n.Overlays[0].Subnet != "9.0.3.0/24" {
		t.Errorf("next: %s", summary(n))
	}
}

func TestOverlayGoneNodesCollectedAfterGrace(t *testing.T) {
	ctx := context.Background()
	e := overlayEnv(t, store.NewMemory(), "")
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	e.c.Registry.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	e.register(t, "live", "10.0.0.1", nil)
	e.register(t, "gone", "10.0.0.2", nil)
	e.do(t, http.MethodPost, "/v1/nodes/live/heartbeat", "")
	e.do(t, http.MethodPost, "/v1/nodes/gone/heartbeat", "")
	advance(50 * time.Minute)
	e.do(t, http.MethodPost, "/v1/nodes/live/heartbeat", "")
	if got, err := e.c.Registry.CollectGoneNodes(ctx, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("before the grace period: %v %v", got, err)
	}
	advance(20 * time.Minute)
	got, err := e.c.Registry.CollectGoneNodes(ctx, time.Hour)
	if err != nil || len(got) != 1 || got[0] != "gone" {
		t.Fatalf("collected %v %v, want [gone]", got, err)
	}
	if again, err := e.c.Registry.CollectGoneNodes(ctx, time.Hour); err != nil || len(again) != 0 {
		t.Fatalf("collected twice: %v %v", again, err)
	}
	if n := e.register(t, "new", "10.0.0.3", nil); n.VTEPIP != "44.128.0.2" || n.Overlays[0].Subnet != "9.0.1.0/24" {
		t.Errorf("the gone node's VTEP and subnet were not reused: %s", summary(n))
	}
}

func TestOverlayConfigErrorsNameTheField(t *testing.T) {
	cfg := testConfig()
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"vtep_subnet":"44.128.0.0/20","vtep_mac_oui":"70:B3:D5:00:00:01","overlays":[{"name":"dcos","subnet":"9.0.0.0/8","prefix":24}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.OverlayConfig = path
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "vtep_mac_oui") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Validate = %v, want an error naming vtep_mac_oui and the file", err)
	}
}

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func FuzzParseDeleteAgents(f *testing.F) {
	for _, s := range []string{`{"agents":["10.0.0.5","10.0.0.6"]}`, `{"agents":[]}`, `{}`, `{"agents":[5]}`, `[]`, `{"agents":["::1"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ips, err := parseDeleteAgents(body)
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
				t.Fatalf("error %v is not a 400 API error", err)
			}
			return
		}
		for _, a := range ips {
			if !a.Is4() {
				t.Fatalf("accepted %s, not IPv4", a)
			}
		}
	})
}

// Each node allocates the addresses of its own subnet of an overlay: the
// IPAM refuses to reserve addresses or lease blocks in an overlay network,
// naming it, while the default virtual network still allocates.
func TestOverlayNetworkNotAllocatable(t *testing.T) {
	e := overlayEnv(t, store.NewMemory(), "")
	e.register(t, "a1", "10.0.0.5", nil)
	for _, tc := range []struct{ path, body string }{
		{"/v1/ipam/allocate", `{"network":"dcos","owner":"x"}`},
		{"/v1/ipam/allocate", `{"network":"dcos6","owner":"x","family":"ipv6","count":4}`},
		{"/v1/ipam/blocks", `{"network":"dcos","node":"a1"}`},
	} {
		code, ae, _ := e.do(t, http.MethodPost, tc.path, tc.body)
		if code != http.StatusBadRequest || ae.Field != "network" || !strings.Contains(ae.Message, "is an overlay") {
			t.Errorf("%s %s: %d %+v, want 400 naming network", tc.path, tc.body, code, ae)
		}
	}
	if code, ae, _ := e.do(t, http.MethodPost, "/v1/ipam/allocate", `{"network":"mesos-default-pod-task","owner":"x"}`); code != http.StatusCreated {
		t.Fatalf("allocate in the default task network: %d %+v", code, ae)
	}
	// Nothing was reserved in the overlays.
	if code, _, body := e.do(t, http.MethodGet, "/v1/ip-reservations?network=dcos", ""); code != http.StatusOK || strings.Contains(string(body), `"address"`) {
		t.Fatalf("reservations in dcos: %d %s", code, body)
	}
}
