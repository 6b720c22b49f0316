package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/controller"
	"github.com/weft-sdn/weft/internal/dataplane"
	"github.com/weft-sdn/weft/internal/docker"
	"github.com/weft-sdn/weft/internal/overlay"
)

// overlayStatus is node's overlay statuses at the controller, one per
// overlay: "dcos=OK dcos6=FAILED(...)".
func (h *harness) overlayStatus(node string) string {
	h.t.Helper()
	var n api.Node
	if err := h.client.GetByFQName(context.Background(), "nodes", node, &n); err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, o := range n.Overlays {
		s := o.Name + "=" + o.Status
		if o.Error != "" {
			s += "(" + o.Error + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func (h *harness) waitOverlayStatus(node string, ok func(string) bool) string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := h.overlayStatus(node)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("overlay status of %s: %s", node, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOverlayAgentConfiguresAndReports(t *testing.T) {
	h := newHarness(t, func(c *controller.Config) { c.DCOSOverlay = true })
	cniDir := t.TempDir()
	engine := docker.NewFake()
	// A short resync: a data plane that starts failing without any change
	// of the desired state is found by the periodic forced sync.
	r1 := h.startAgent(agentOpts{name: "node1", underlay: "198.18.0.11", dp: dataplane.NewFake(), docker: engine, cniDir: cniDir, resync: 200 * time.Millisecond})
	r2 := h.startAgent(agentOpts{name: "node2", underlay: "198.18.0.12", dp: dataplane.NewFake()})
	allOK := func(s string) bool { return s == "dcos=OK dcos6=OK" }
	h.waitOverlayStatus("node1", allOK)
	h.waitOverlayStatus("node2", allOK)

	// The overlay data plane: node1's VTEP and node2 as its peer.
	deadline := time.Now().Add(5 * time.Second)
	for len(r1.odp.State().Peers) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := r1.odp.State()
	if st.VTEP.Name != "vtep1024" || st.VTEP.VNI != 1024 || st.VTEP.Port != 64000 || st.VTEP.IP.String() != "44.128.0.1/20" ||
		st.VTEP.IP6.String() != "fd01:a::1/64" || st.VTEP.MAC.String() != "70:b3:d5:80:00:01" || st.VTEP.Underlay.String() != "198.18.0.11" {
		t.Errorf("vtep: %+v", st.VTEP)
	}
	if len(st.Overlays) != 2 || st.Overlays[0].MesosBridge != "m-dcos" || st.Overlays[0].MesosHalf.String() != "9.0.0.0/25" ||
		st.Overlays[0].Subnet.String() != "9.0.0.0/8" || !st.Overlays[0].NAT || st.Overlays[1].MesosHalf6.String() != "fd01:b::/81" {
		t.Errorf("overlays: %+v", st.Overlays)
	}
	if len(st.Peers) != 1 || st.Peers[0].Node != "node2" || st.Peers[0].VTEPIP.String() != "44.128.0.2" ||
		fmt.Sprint(st.Peers[0].Subnets) != "[9.0.1.0/24 fd01:b:0:0:1::/80]" || st.Peers[0].Underlay.String() != "198.18.0.12" {
		t.Errorf("peers: %+v", st.Peers)
	}

	// Heartbeats (every 100 ms here) wake the loop, but an unchanged
	// desired state is not synced again (node2 keeps the 30 s resync).
	before := r2.odp.Syncs()
	if before == 0 {
		t.Fatal("node2 never synced its overlay data plane")
	}
	time.Sleep(time.Second)
	if after := r2.odp.Syncs(); after != before {
		t.Errorf("node2 synced its overlay data plane %d times in a second with nothing changed", after-before)
	}

	// The CNI configurations in DC/OS's layout, run by bridge + host-local.
	b, err := os.ReadFile(filepath.Join(cniDir, "dcos.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"dcos","type":"bridge","bridge":"m-dcos","isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":1420,"ipam":{"type":"host-local","subnet":"9.0.0.0/25","routes":[{"dst":"0.0.0.0/0"}]}}` + "\n"
	if string(b) != want {
		t.Errorf("dcos.conf:\n got %s\nwant %s", b, want)
	}
	if b, err := os.ReadFile(filepath.Join(cniDir, "dcos6.conf")); err != nil || !strings.Contains(string(b), "fd01:b::/81") {
		t.Errorf("dcos6.conf: %s %v", b, err)
	}
	// The Docker networks of the Docker halves.
	dump := engine.Dump()
	for _, w := range []string{"dcos", "d-dcos", "9.0.0.128/25", "dcos6", "d-dcos6", "fd01:b::8000:0:0/81", "1420"} {
		if !strings.Contains(dump, w) {
			t.Errorf("docker networks lack %q:\n%s", w, dump)
		}
	}

	// DC/OS's agent endpoint, on the port API listener.
	resp, err := http.Get("http://" + r1.a.PortAPIAddr() + "/overlay-agent/overlay")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	info, err := overlay.DecodeAgentInfo(body)
	if err != nil || resp.StatusCode != http.StatusOK || info.IP != "198.18.0.11" || len(info.Overlays) != 2 ||
		info.Overlays[0].State == nil || info.Overlays[0].State.Status != overlay.StatusOK || info.ConfigurationAttempts == 0 {
		t.Errorf("/overlay-agent/overlay: %d %s %v", resp.StatusCode, body, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+r1.a.PortAPIAddr()+"/overlay-agent/overlay", nil)
	req.Header.Set("Accept", "text/html")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("Accept text/html: %v %v, want 415", resp, err)
	} else {
		resp.Body.Close()
	}

	// The Docker engine stops: FAILED with the reason; back: OK.
	engine.SetDown(true)
	s := h.waitOverlayStatus("node1", func(s string) bool { return strings.Contains(s, "dcos=FAILED") })
	if !strings.Contains(s, "docker engine") || !strings.Contains(s, "not running") {
		t.Errorf("status with the engine down: %s", s)
	}
	engine.SetDown(false)
	h.waitOverlayStatus("node1", allOK)
	// A node that never ran an engine stays OK without one.
	if s := h.overlayStatus("node2"); !allOK(s) {
		t.Errorf("node2 without docker: %s", s)
	}

	// The data plane fails: FAILED with its error; repaired: OK.
	r1.odp.SetError(errors.New("vtep1024: operation not permitted"))
	s = h.waitOverlayStatus("node1", func(s string) bool { return strings.Contains(s, "FAILED") })
	if !strings.Contains(s, "data plane") || !strings.Contains(s, "operation not permitted") {
		t.Errorf("status with a failing data plane: %s", s)
	}
	r1.odp.SetError(nil)
	h.waitOverlayStatus("node1", allOK)

	// node2 goes and is deleted through DC/OS's endpoint: node1 drops it.
	r2.stop()
	if _, err := h.client.DeleteOverlayAgents(context.Background(), []string{"198.18.0.12"}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(r1.odp.State().Peers) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := r1.odp.State().Peers; len(p) != 0 {
		t.Errorf("peers after the delete: %+v", p)
	}
}

func TestDesiredOverlayStateSkipsUnusablePeers(t *testing.T) {
	backend := &api.OverlayBackend{VTEPName: "vtep1024", VNI: 1024, Port: 64000, VTEPPrefix: 20, VTEPPrefix6: 64}
	self := &api.Node{Meta: api.Meta{FQName: "a"}, UnderlayIP: "198.18.0.1", VTEPIP: "44.128.0.1", VTEPMAC: "70:b3:d5:80:00:01", VTEPIP6: "fd01:a::1",
		OverlayBackend: backend, Overlays: []api.NodeOverlay{{Name: "dcos", OverlaySubnet: "9.0.0.0/8", Subnet: "9.0.0.0/24",
			MesosBridge: &api.OverlayBridge{Name: "m-dcos", IP: "9.0.0.0/25"}}}}
	nodes := map[string]*api.Node{
		"a": self,
		// No overlay backend (registered before the overlays existed).
		"b": {Meta: api.Meta{FQName: "b"}, UnderlayIP: "198.18.0.2", VTEPIP: "44.128.0.2", VTEPMAC: "70:b3:d5:80:00:02"},
		// No subnet (allocation failed): nothing to route to.
		"c": {Meta: api.Meta{FQName: "c"}, UnderlayIP: "198.18.0.3", VTEPIP: "44.128.0.3", VTEPMAC: "70:b3:d5:80:00:03", OverlayBackend: backend,
			Overlays: []api.NodeOverlay{{Name: "dcos", Status: api.OverlayFailed}}},
		// IPv6 subnet but IPv6 disabled on this node.
		"d": {Meta: api.Meta{FQName: "d"}, UnderlayIP: "198.18.0.4", VTEPIP: "44.128.0.4", VTEPMAC: "70:b3:d5:80:00:04", VTEPIP6: "fd01:a::4", OverlayBackend: backend,
			Overlays: []api.NodeOverlay{{Name: "dcos", Subnet: "9.0.4.0/24"}, {Name: "dcos6", Subnet6: "fd01:b:0:0:4::/80"}}},
	}
	st, err := DesiredOverlayState(self, nodes, netip.MustParseAddr("198.18.0.1"), overlayOptions{MTU: 1420})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || st.Peers[0].Node != "d" || fmt.Sprint(st.Peers[0].Subnets) != "[9.0.4.0/24]" || st.Peers[0].VTEPIP6.IsValid() {
		t.Errorf("peers: %+v", st.Peers)
	}
	if st.VTEP.IP6.IsValid() || st.Overlays[0].MTU != 1420 {
		t.Errorf("vtep %+v overlays %+v", st.VTEP, st.Overlays)
	}
}

func TestOverlayAttachWeftMode(t *testing.T) {
	h := newHarness(t, func(c *controller.Config) { c.DCOSOverlay = true })
	r := h.startAgent(agentOpts{name: "node1", underlay: "198.18.0.11", dp: dataplane.NewFake()})
	h.waitOverlayStatus("node1", func(s string) bool { return s == "dcos=OK dcos6=OK" })
	req := func(id, network string, ips ...string) api.AttachRequest {
		return api.AttachRequest{ContainerID: id, IfName: "eth0", Netns: "/run/netns/" + id, Network: network, IPs: ips, CNINetwork: "dcos"}
	}
	res := r.attach(req("c1", "dcos"))
	if len(res.IPs) != 1 || res.IPs[0].Address != "9.0.0.2/25" || res.IPs[0].Gateway != "9.0.0.1" ||
		len(res.Routes) != 1 || res.Routes[0].Dst != "0.0.0.0/0" || res.Routes[0].GW != "9.0.0.1" {
		t.Fatalf("first attach: %+v", res)
	}
	if got := r.attach(req("c2", "dcos")).IPs[0].Address; got != "9.0.0.3/25" {
		t.Errorf("second attach: %s", got)
	}
	// A released address is not handed out again at once.
	r.detach("c1", "eth0")
	if got := r.attach(req("c3", "dcos")).IPs[0].Address; got != "9.0.0.4/25" {
		t.Errorf("after a release: %s, want 9.0.0.4/25", got)
	}
	// Explicit addresses: honoured inside the Mesos half, refused outside.
	if got := r.attach(req("c4", "dcos", "9.0.0.100")).IPs[0].Address; got != "9.0.0.100/25" {
		t.Errorf("explicit: %s", got)
	}
	for ip, field := range map[string]string{"9.0.0.200": "ips", "9.0.0.1": "ips", "9.0.0.3": "ips"} {
		var out api.AttachResult
		if code, ae := r.call("POST", "/v1/attach", req("x-"+ip, "dcos", ip), &out); code < 400 || ae.Field != field {
			t.Errorf("explicit %s: %d %+v", ip, code, ae)
		}
	}
	// IPv6 overlays carry Mesos containers too.
	res6 := r.attach(req("c6", "default-domain:default-project:dcos6"))
	if len(res6.IPs) != 1 || res6.IPs[0].Address != "fd01:b::2/81" || res6.Routes[0].Dst != "::/0" || res6.Routes[0].GW != "fd01:b::1" {
		t.Errorf("dcos6: %+v", res6)
	}
	// The endpoints are on the overlay data plane, on the Mesos bridges,
	// and none on the virtual one.
	r.settle()
	var eps []string
	for _, ep := range r.odp.Endpoints() {
		eps = append(eps, fmt.Sprintf("%s %s %v %v", ep.ContainerID, ep.Bridge, ep.IPs, ep.Gateways))
	}
	wantEps := []string{"c2 m-dcos [9.0.0.3/25] [9.0.0.1]", "c3 m-dcos [9.0.0.4/25] [9.0.0.1]", "c4 m-dcos [9.0.0.100/25] [9.0.0.1]", "c6 m-dcos6 [fd01:b::2/81] [fd01:b::1]"}
	slices.Sort(eps)
	if fmt.Sprint(eps) != fmt.Sprint(wantEps) {
		t.Errorf("overlay endpoints:\n got %v\nwant %v", eps, wantEps)
	}
	if d := r.dump(); strings.Contains(d, "9.0.0") {
		t.Errorf("overlay addresses in the virtual data plane:\n%s", d)
	}
	// The ports reach the controller, on the overlay network.
	ports, err := h.client.List(context.Background(), "ports", nil)
	var nets []string
	for _, raw := range ports.Items {
		var p api.Port
		_ = json.Unmarshal(raw, &p)
		nets = append(nets, p.ContainerID+" "+p.Network)
	}
	slices.Sort(nets)
	if err != nil || fmt.Sprint(nets) != "[c2 default-domain:default-project:dcos c3 default-domain:default-project:dcos c4 default-domain:default-project:dcos c6 default-domain:default-project:dcos6]" {
		t.Errorf("ports: %v %v", err, nets)
	}
	// CHECK, DEL twice.
	if code, ae := r.call("POST", "/v1/check", api.DetachRequest{ContainerID: "c2", IfName: "eth0", Netns: "/run/netns/c2"}, nil); code != http.StatusNoContent {
		t.Errorf("check: %d %v", code, ae)
	}
	r.detach("c2", "eth0")
	r.detach("c2", "eth0")
	r.settle()
	if n := len(r.odp.Endpoints()); n != 3 {
		t.Errorf("%d overlay endpoints after detaching c2, want 3", n)
	}
}

func TestNextFreeWrapsAndSkipsTaken(t *testing.T) {
	half := netip.MustParsePrefix("9.0.0.0/29") // .0 network, .1 gateway, .7 broadcast
	reserved := map[string]bool{"9.0.0.0": true, "9.0.0.1": true, "9.0.0.7": true}
	for _, tc := range []struct {
		start string
		used  []string
		want  string // "" when full
	}{
		{"9.0.0.1", nil, "9.0.0.2"},
		{"9.0.0.3", []string{"9.0.0.2", "9.0.0.3"}, "9.0.0.4"},
		{"9.0.0.6", []string{"9.0.0.3"}, "9.0.0.2"},                                      // wraps
		{"9.0.0.4", []string{"9.0.0.2", "9.0.0.3", "9.0.0.5", "9.0.0.6"}, "9.0.0.4"},     // only the cursor is free
		{"9.0.0.4", []string{"9.0.0.2", "9.0.0.3", "9.0.0.4", "9.0.0.5", "9.0.0.6"}, ""}, // full
	} {
		used := map[string]bool{}
		for _, u := range tc.used {
			used[u] = true
		}
		got, ok := nextFree(half, netip.MustParseAddr(tc.start), func(x netip.Addr) bool { return used[x.String()] || reserved[x.String()] })
		if tc.want == "" {
			if ok {
				t.Errorf("start %s, used %v: got %s, want none", tc.start, tc.used, got)
			}
			continue
		}
		if !ok || got.String() != tc.want {
			t.Errorf("start %s, used %v: got %s %v, want %s", tc.start, tc.used, got, ok, tc.want)
		}
	}
}

// Overlay addresses are the node's own: the audit that takes back a
// virtual network's lost addresses leaves them alone, no spares are kept
// for an overlay network (also after a restart with an overlay attachment
// in the journal), and nothing of the overlay is left reserved at the
// controller after the detach.
func TestOverlayAddressesStayOffTheController(t *testing.T) {
	h := newHarness(t, func(c *controller.Config) { c.DCOSOverlay = true })
	state := t.TempDir()
	opts := agentOpts{name: "node1", underlay: "198.18.0.11", dp: dataplane.NewFake(), stateDir: state, spares: 2, resync: 50 * time.Millisecond}
	r := h.startAgent(opts)
	h.waitOverlayStatus("node1", func(s string) bool { return s == "dcos=OK dcos6=OK" })
	overlayHeld := func() []string {
		var out []string
		for _, s := range h.reservations() {
			if strings.HasPrefix(s, "default-domain:default-project:dcos") {
				out = append(out, s)
			}
		}
		return out
	}
	res := r.attach(api.AttachRequest{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/c1", Network: "dcos", CNINetwork: "dcos"})
	virtual := r.attach(attachReq("v1"))
	r.settle()
	if ps := h.ports(); len(ps) != 2 {
		t.Fatalf("ports: %+v", ps)
	}
	// The audit runs over both attachments once they have settled: it
	// takes back the virtual one's lost address, and only that.
	time.Sleep(150 * time.Millisecond)
	vaddr := netip.MustParsePrefix(virtual.IPs[0].Address).Addr().String()
	if _, err := h.client.Release(context.Background(), api.ReleaseRequest{Owner: "v1/eth0"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		rv, ok := h.reservation(vaddr)
		return ok && rv.Owner == "v1/eth0", "virtual address not taken back"
	})
	r.settle()
	if held := overlayHeld(); len(held) != 0 {
		t.Fatalf("overlay addresses reserved at the controller: %v", held)
	}
	if e, _ := r.a.journal.Get(attachKey("c1", "eth0")); e == nil || needsWork(e) || e.IPs[0].Owner != e.Owner {
		t.Fatalf("overlay attachment after the audit: %+v", e)
	}
	// A restart rebuilds the spare pools from the journal: the default
	// network gets its spares, the overlay network none.
	r.stop()
	r = h.startAgent(opts)
	eventually(t, 5*time.Second, func() (bool, string) {
		n := r.a.cache.Network(api.DefaultTaskNetwork)
		return n != nil && r.a.spares.size(n.UUID, "ipv4") == 2, "spare pool of the default network not filled"
	})
	if err := r.a.fillSpares(context.Background()); err != nil { // one whole pass, whatever the loop did
		t.Fatal(err)
	}
	r.settle()
	if held := overlayHeld(); len(held) != 0 {
		t.Fatalf("spares reserved in an overlay network: %v", held)
	}
	r.detach("c1", "eth0")
	r.settle()
	if held := overlayHeld(); len(held) != 0 {
		t.Fatalf("overlay reservations left after the detach of %s: %v", res.IPs[0].Address, held)
	}
}

// Node objects change with every heartbeat of every node, and each change
// wakes the overlay loop: one that leaves the overlays as they are costs
// no Docker call (the check interval looks at the engine), but a change of
// the overlays (a peer leaving) is acted on at once.
func TestOverlayLoopIgnoresHeartbeats(t *testing.T) {
	h := newHarness(t, func(c *controller.Config) { c.DCOSOverlay = true })
	engine := docker.NewFake()
	r1 := h.startAgent(agentOpts{name: "node1", underlay: "198.18.0.11", dp: dataplane.NewFake(), docker: engine, overlayCheck: time.Hour})
	r2 := h.startAgent(agentOpts{name: "node2", underlay: "198.18.0.12", dp: dataplane.NewFake()})
	allOK := func(s string) bool { return s == "dcos=OK dcos6=OK" }
	h.waitOverlayStatus("node1", allOK)
	h.waitOverlayStatus("node2", allOK)
	eventually(t, 5*time.Second, func() (bool, string) { return len(r1.odp.State().Peers) == 1, "node2 not a peer of node1" })
	time.Sleep(200 * time.Millisecond) // the passes after the status reports
	pings := func() int {
		n := 0
		for _, c := range engine.Calls() {
			if c == "Ping" {
				n++
			}
		}
		return n
	}
	before := pings()
	if before == 0 {
		t.Fatal("the Docker engine was never checked")
	}
	// Two nodes heartbeating every 100 ms: about 20 node changes.
	time.Sleep(time.Second)
	if n := pings() - before; n > 2 {
		t.Errorf("%d Docker checks in a second of heartbeats alone", n)
	}
	r2.stop()
	if _, err := h.client.DeleteOverlayAgents(context.Background(), []string{"198.18.0.12"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() (bool, string) { return len(r1.odp.State().Peers) == 0, "node2 still a peer of node1" })
}
