package agent

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/dataplane"
)

func TestRegistrationVTEPIsSticky(t *testing.T) {
	h := newHarness(t)
	state := t.TempDir()
	a1 := h.startAgent(agentOpts{name: "node1", stateDir: state})
	n1 := a1.a.Node()
	if n1 == nil || n1.VTEPIP == "" || n1.VTEPMAC == "" {
		t.Fatalf("registered node has no VTEP: %+v", n1)
	}
	if a1.dp.Config.VTEPIP.String() != n1.VTEPIP || a1.dp.Config.VTEPMAC.String() != n1.VTEPMAC || a1.dp.Config.Underlay.String() != "198.18.0.1" {
		t.Fatalf("data plane config %+v does not match node %+v", a1.dp.Config, n1)
	}
	other := h.startAgent(agentOpts{name: "node2", underlay: "198.18.0.2"})
	if n2 := other.a.Node(); n2.VTEPIP == n1.VTEPIP || n2.VTEPMAC == n1.VTEPMAC {
		t.Fatalf("two nodes share a VTEP: %+v %+v", n1, n2)
	}
	a1.stop()

	tests := []struct {
		name  string
		state string
	}{
		{"same state dir", state},
		{"fresh state dir", t.TempDir()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			again := h.startAgent(agentOpts{name: "node1", stateDir: tc.state})
			defer again.stop()
			n := again.a.Node()
			if n.VTEPIP != n1.VTEPIP || n.VTEPMAC != n1.VTEPMAC {
				t.Fatalf("VTEP changed across restart: %s/%s, was %s/%s", n.VTEPIP, n.VTEPMAC, n1.VTEPIP, n1.VTEPMAC)
			}
		})
	}
	// The heartbeat reaches the controller.
	eventually(t, 5*time.Second, func() (bool, string) {
		obj, err := h.ctrl.Registry.GetByFQName(context.Background(), api.KindNode, "node2")
		if err != nil {
			return false, err.Error()
		}
		n := obj.(*api.Node)
		return n.Status == "ready" && !n.Heartbeat.IsZero(), "no heartbeat yet"
	})
}

func TestAttach(t *testing.T) {
	h := newHarness(t)
	blue := h.network("blue", "10.77.0.0/24", "fd77::/64")
	r := h.startAgent(agentOpts{spares: 2})

	tests := []struct {
		name    string
		req     api.AttachRequest
		network string
		prefix  string // every address in it
		want    []string
	}{
		{name: "default network", req: attachReq("c-default"), network: api.DefaultTaskNetwork, prefix: "10.32.0.0/16", want: []string{"ipv4"}},
		{name: "short name", req: func() api.AttachRequest { q := attachReq("c-short"); q.Network = "blue"; return q }(), network: blue.FQName, prefix: "10.77.0.0/24", want: []string{"ipv4"}},
		{name: "fq_name and project", req: func() api.AttachRequest {
			q := attachReq("c-fq")
			q.Network, q.Project = "blue", "default-domain:default-project"
			return q
		}(), network: blue.FQName, want: []string{"ipv4"}},
		{name: "uuid, dual stack", req: func() api.AttachRequest {
			q := attachReq("c-dual")
			q.Network, q.Families = blue.UUID, []string{"ipv4", "ipv6"}
			return q
		}(), network: blue.FQName, want: []string{"ipv4", "ipv6"}},
		{name: "subnet limit", req: func() api.AttachRequest {
			q := attachReq("c-subnet")
			q.Network, q.Families, q.Subnets = blue.FQName, []string{"ipv6"}, []string{"fd77::/64"}
			return q
		}(), network: blue.FQName, prefix: "fd77::/64", want: []string{"ipv6"}},
		{name: "explicit ip", req: func() api.AttachRequest {
			q := attachReq("c-explicit")
			q.Network, q.IPs = "blue", []string{"10.77.0.200"}
			return q
		}(), network: blue.FQName, prefix: "10.77.0.200/32", want: []string{"ipv4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := r.attach(tc.req)
			if res.Network != tc.network || res.Interface != "eth0" || res.Port == "" || res.MAC == "" || res.HostIf == "" {
				t.Fatalf("result %+v", res)
			}
			var fams []string
			for _, ip := range res.IPs {
				p, err := netip.ParsePrefix(ip.Address)
				if err != nil || ip.Gateway == "" {
					t.Fatalf("address %+v is not CIDR with a gateway", ip)
				}
				if tc.prefix != "" && !netip.MustParsePrefix(tc.prefix).Contains(p.Addr()) {
					t.Errorf("address %s outside %s", p, tc.prefix)
				}
				if p.Addr().Is4() && p.Bits() != 16 && p.Bits() != 24 {
					t.Errorf("address %s does not carry the subnet's prefix length", p)
				}
				fams = append(fams, api.Family(p.Addr()))
			}
			if !slices.Equal(fams, tc.want) {
				t.Fatalf("families %v, want %v", fams, tc.want)
			}
			if len(res.Routes) != len(tc.want) {
				t.Fatalf("routes %+v, want a default route per family", res.Routes)
			}
			// The same request again: the journalled result.
			again := r.attach(tc.req)
			if again.Port != res.Port || !slices.Equal(again.IPs, res.IPs) || again.MAC != res.MAC {
				t.Fatalf("second attach %+v differs from %+v", again, res)
			}
			// The controller learns about the port, and the addresses
			// belong to the container.
			eventually(t, 5*time.Second, func() (bool, string) {
				for _, p := range h.ports() {
					if p.UUID == res.Port {
						if p.State != "attached" || p.Node != "node1" || p.ContainerID != tc.req.ContainerID || len(p.IPs) != len(res.IPs) {
							return false, "port incomplete"
						}
						for _, ip := range res.IPs {
							rv, ok := h.reservation(netip.MustParsePrefix(ip.Address).Addr().String())
							if !ok || rv.Owner != tc.req.ContainerID+"/eth0" || rv.Node != "node1" {
								return false, "reservation " + ip.Address + " not handed over yet: " + rv.Owner
							}
						}
						return true, ""
					}
				}
				return false, "no port " + res.Port
			})
		})
	}

	// A second interface of a container gets no default route.
	second := attachReq("c-default")
	second.IfName = "eth1"
	if res := r.attach(second); len(res.Routes) != 0 {
		t.Fatalf("second interface got routes %+v", res.Routes)
	}
	if code, _ := r.call("POST", "/v1/check", api.DetachRequest{ContainerID: "c-default", IfName: "eth0", Netns: "/run/netns/c-default"}, nil); code != http.StatusNoContent {
		t.Fatalf("check: %d", code)
	}
	if code, ae := r.call("POST", "/v1/check", api.DetachRequest{ContainerID: "nope", IfName: "eth0"}, nil); code != http.StatusNotFound {
		t.Fatalf("check of unknown: %d %v", code, ae)
	}
	var st api.AgentStatus
	if code, _ := r.call("GET", "/v1/status", nil, &st); code != http.StatusOK || !st.Ready || st.Node != "node1" {
		t.Fatalf("status %d %+v", code, st)
	}
}

func TestAttachErrors(t *testing.T) {
	h := newHarness(t)
	h.network("tiny", "10.99.0.0/30") // one usable address: .2
	r := h.startAgent(agentOpts{})
	taken := attachReq("c-holder")
	taken.IPs = []string{"10.32.5.5"}
	r.attach(taken)

	tests := []struct {
		name     string
		req      api.AttachRequest
		code     int
		field    string
		contains string
	}{
		{"explicit ip taken", func() api.AttachRequest { q := attachReq("c2"); q.IPs = []string{"10.32.5.5"}; return q }(), http.StatusConflict, "ips[0]", "10.32.5.5"},
		{"explicit ip outside", func() api.AttachRequest { q := attachReq("c3"); q.IPs = []string{"192.0.2.1"}; return q }(), http.StatusBadRequest, "ips[0]", "192.0.2.1"},
		{"unknown network", func() api.AttachRequest { q := attachReq("c4"); q.Network = "nosuch"; return q }(), http.StatusBadRequest, "network", "default-domain:default-project:nosuch"},
		{"unknown fq network", func() api.AttachRequest { q := attachReq("c5"); q.Network = "d:p:gone"; return q }(), http.StatusBadRequest, "network", "d:p:gone"},
		{"foreign subnet", func() api.AttachRequest { q := attachReq("c6"); q.Subnets = []string{"10.99.0.0/30"}; return q }(), http.StatusBadRequest, "subnets[0]", "10.99.0.0/30"},
		{"no ipv6 subnet", func() api.AttachRequest { q := attachReq("c7"); q.Families = []string{"ipv6"}; return q }(), http.StatusBadRequest, "families[0]", "ipv6"},
		{"bad family", func() api.AttachRequest { q := attachReq("c8"); q.Families = []string{"ipx"}; return q }(), http.StatusBadRequest, "families[0]", "ipx"},
		{"no ifname", api.AttachRequest{ContainerID: "c9", Netns: "/x"}, http.StatusBadRequest, "ifname", "required"},
		{"no netns", api.AttachRequest{ContainerID: "c9", IfName: "eth0"}, http.StatusBadRequest, "netns", "required"},
		{"bad ifname", api.AttachRequest{ContainerID: "c9", IfName: "eth/0", Netns: "/x"}, http.StatusBadRequest, "ifname", "eth/0"},
		{"bad ip", func() api.AttachRequest { q := attachReq("c10"); q.IPs = []string{"10.1"}; return q }(), http.StatusBadRequest, "ips[0]", "10.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, dumpBefore := h.reservations(), r.dump()
			code, ae := r.call("POST", "/v1/attach", tc.req, nil)
			if code != tc.code || ae.Field != tc.field || !strings.Contains(ae.Message, tc.contains) {
				t.Fatalf("got %d field=%q %q; want %d field=%q containing %q", code, ae.Field, ae.Message, tc.code, tc.field, tc.contains)
			}
			if _, ok := r.a.journal.Get(attachKey(tc.req.ContainerID, tc.req.IfName)); ok {
				t.Fatalf("failed attach left a journal entry")
			}
			if after := h.reservations(); !slices.Equal(before, after) {
				t.Fatalf("reservations changed:\n%v\n%v", before, after)
			}
			if d := r.dump(); d != dumpBefore {
				t.Fatalf("data plane changed:\n%s\n---\n%s", dumpBefore, d)
			}
		})
	}
}

// TestAttachLeavesNothingBehind checks the undo of attaches that fail half
// way: exhausted second address, and a data-plane failure.
func TestAttachLeavesNothingBehind(t *testing.T) {
	h := newHarness(t)
	h.network("tiny", "10.99.0.0/30") // one usable address: .2
	fake := dataplane.NewFake()
	r := h.startAgent(agentOpts{dp: fake})
	first := attachReq("c1")
	first.Network = "tiny"
	if res := r.attach(first); res.IPs[0].Address != "10.99.0.2/30" {
		t.Fatalf("first attach got %+v", res.IPs)
	}
	r.settle()
	r.detach("c1", "eth0")
	r.settle()

	tests := []struct {
		name  string
		req   api.AttachRequest
		hook  error
		code  int
		field string
	}{
		{"exhausted", func() api.AttachRequest {
			q := attachReq("c2")
			q.Network, q.Families = "tiny", []string{"ipv4", "ipv4"}
			return q
		}(), nil, http.StatusConflict, "network"},
		{"data plane fails", func() api.AttachRequest {
			q := attachReq("c3")
			q.IPs = []string{"10.32.9.9"}
			q.Families = []string{"ipv4"}
			return q
		}(), errTestHook, http.StatusInternalServerError, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, dumpBefore := h.reservations(), r.dump()
			fake.AttachHook = func(dataplane.Network, dataplane.Endpoint) error { return tc.hook }
			defer func() { fake.AttachHook = nil }()
			code, ae := r.call("POST", "/v1/attach", tc.req, nil)
			if code != tc.code || ae.Field != tc.field {
				t.Fatalf("got %d field=%q %q; want %d field=%q", code, ae.Field, ae.Message, tc.code, tc.field)
			}
			r.settle()
			if after := h.reservations(); !slices.Equal(before, after) {
				t.Fatalf("reservations leaked:\nbefore %v\nafter  %v", before, after)
			}
			if d := r.dump(); d != dumpBefore {
				t.Fatalf("data plane changed:\n%s\n---\n%s", dumpBefore, d)
			}
			if n := r.a.journal.Len(); n != 0 {
				t.Fatalf("journal holds %d entries", n)
			}
		})
	}
}

func TestDetach(t *testing.T) {
	linger := routerLinger
	t.Cleanup(func() { routerLinger = linger }) // after the agent stopped
	routerLinger = 2 * time.Second
	h := newHarness(t)
	r := h.startAgent(agentOpts{})
	dumpEmpty := r.dump()
	res := r.attach(attachReq("c1"))
	r.settle()
	addr := netip.MustParsePrefix(res.IPs[0].Address).Addr().String()
	if _, ok := h.reservation(addr); !ok {
		t.Fatalf("no reservation of %s", addr)
	}
	if d := r.dump(); !strings.Contains(d, "route "+addr+"/32") || !strings.Contains(d, "neigh "+addr+" ") {
		t.Fatalf("%s not routed before the detach:\n%s", addr, d)
	}
	for i, id := range []string{"c1", "c1", "unknown"} {
		r.detach(id, "eth0")
		// The answer comes once the interface is out of service; the
		// worker destroys it afterwards.
		if i > 0 {
			continue
		}
		d := r.dump()
		if strings.Contains(d, "route "+addr+"/32") || strings.Contains(d, "neigh "+addr+" ") {
			t.Fatalf("%s still routed after detach:\n%s", addr, d)
		}
		for _, l := range strings.Split(d, "\n") {
			if strings.Contains(l, "link "+res.HostIf+" ") && !strings.HasSuffix(l, " down") {
				t.Fatalf("host interface %s still up after detach:\n%s", res.HostIf, d)
			}
		}
	}
	r.settle()
	if d := r.dump(); strings.Contains(d, res.HostIf) {
		t.Fatalf("host interface %s still in the data plane after the release:\n%s", res.HostIf, d)
	}
	if _, ok := h.reservation(addr); ok {
		t.Fatalf("reservation of %s not released", addr)
	}
	if ps := h.ports(); len(ps) != 0 {
		t.Fatalf("ports left: %+v", ps)
	}
	if r.a.journal.Len() != 0 {
		t.Fatalf("journal not empty: %+v", r.a.journal.Entries())
	}
	// The network's router namespace stays a while for its next
	// container, then goes.
	if d := r.dump(); d == dumpEmpty {
		t.Fatalf("router namespace removed with the network's last endpoint:\n%s", d)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		d := r.dump()
		return d == dumpEmpty, "data plane not empty again:\n" + d
	})
}

func TestDetachWhileControllerDown(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{})
	res := r.attach(attachReq("c1"))
	r.settle()
	addr := netip.MustParsePrefix(res.IPs[0].Address).Addr().String()

	h.proxy.down.Store(true)
	r.detach("c1", "eth0")
	e, ok := r.a.journal.Get(attachKey("c1", "eth0"))
	if !ok || e.State != StateReleasing {
		t.Fatalf("journal after detach: %+v %v", e, ok)
	}
	// The interface is destroyed without the controller.
	eventually(t, 5*time.Second, func() (bool, string) {
		e, ok := r.a.journal.Get(attachKey("c1", "eth0"))
		return ok && e.DataplaneDetached && !strings.Contains(r.dump(), res.HostIf), fmt.Sprintf("interface not destroyed: %+v %v", e, ok)
	})
	time.Sleep(300 * time.Millisecond) // a few failed retries
	if _, ok := h.reservation(addr); !ok {
		t.Fatalf("released while the controller was down?")
	}
	// A restart while the controller is down loses nothing either.
	r.stop()
	r2 := h.startAgent(agentOpts{stateDir: r.cfg.StateDir, dp: r.dp, noWait: true})
	select {
	case <-r2.a.dpReady:
	case <-time.After(5 * time.Second):
		t.Fatalf("data plane not built from the saved registration")
	}
	if e, ok := r2.a.journal.Get(attachKey("c1", "eth0")); !ok || e.State != StateReleasing {
		t.Fatalf("journal after restart: %+v %v", e, ok)
	}
	h.proxy.down.Store(false)
	eventually(t, 10*time.Second, func() (bool, string) {
		if _, ok := h.reservation(addr); ok {
			return false, "reservation still held"
		}
		if len(h.ports()) != 0 {
			return false, "port still there"
		}
		return r2.a.journal.Len() == 0, "journal entry still there"
	})
}

// A DEL answers once the interface is withdrawn; its destruction is
// journalled work: an agent stopped before it could destroy the interface
// destroys it after the restart, before releasing the address.
func TestDetachFinishedAfterRestart(t *testing.T) {
	h := newHarness(t)
	fake := dataplane.NewFake()
	var hook atomic.Bool
	hook.Store(true)
	fake.DetachHook = func(dataplane.Network, dataplane.Endpoint) error {
		if hook.Load() {
			return errTestHook
		}
		return nil
	}
	r := h.startAgent(agentOpts{dp: fake})
	res := r.attach(attachReq("c1"))
	r.settle()
	addr := netip.MustParsePrefix(res.IPs[0].Address).Addr().String()
	r.detach("c1", "eth0")
	time.Sleep(100 * time.Millisecond) // the worker tries and fails
	r.stop()
	e, ok := r.a.journal.Get(attachKey("c1", "eth0"))
	if !ok || e.State != StateReleasing || e.DataplaneDetached {
		t.Fatalf("journal after detach: %+v %v", e, ok)
	}
	if _, ok := h.reservation(addr); !ok {
		t.Fatalf("%s released before its interface was destroyed", addr)
	}
	if !strings.Contains(r.dump(), res.HostIf) {
		t.Fatalf("interface %s gone although every Detach failed", res.HostIf)
	}
	hook.Store(false)
	r2 := h.startAgent(agentOpts{stateDir: r.cfg.StateDir, dp: fake})
	eventually(t, 10*time.Second, func() (bool, string) {
		if strings.Contains(r2.dump(), res.HostIf) {
			return false, "interface still there"
		}
		if _, ok := h.reservation(addr); ok {
			return false, "reservation still held"
		}
		return r2.a.journal.Len() == 0, "journal entry still there"
	})
}

// An ADD of a container interface whose DEL is still being finished
// waits until the old interface is destroyed (by the ADD itself when the
// worker has not done it yet) and the release is done; while the release
// cannot finish (controller down) it is refused as a conflict.
func TestReattachWaitsForRelease(t *testing.T) {
	h := newHarness(t)
	fake := dataplane.NewFake()
	var hook atomic.Bool
	fake.DetachHook = func(dataplane.Network, dataplane.Endpoint) error {
		if hook.Load() {
			return errTestHook
		}
		return nil
	}
	r := h.startAgent(agentOpts{dp: fake})
	first := r.attach(attachReq("c1"))
	r.settle()
	h.proxy.down.Store(true)
	hook.Store(true) // the worker cannot destroy the interface
	r.detach("c1", "eth0")
	hook.Store(false)
	start := time.Now()
	code, ae := r.call("POST", "/v1/attach", attachReq("c1"), nil)
	if code != http.StatusConflict || !strings.Contains(ae.Message, "still being released") {
		t.Fatalf("ADD during the release: %d %q, want 409 still being released", code, ae.Message)
	}
	if d := time.Since(start); d < releaseWait {
		t.Errorf("ADD refused after %v, want a wait of %v", d, releaseWait)
	}
	if e, ok := r.a.journal.Get(attachKey("c1", "eth0")); !ok || !e.DataplaneDetached {
		t.Fatalf("the ADD did not destroy the old interface: %+v %v", e, ok)
	}
	if strings.Contains(r.dump(), first.HostIf) {
		t.Fatalf("old interface %s still there", first.HostIf)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		h.proxy.down.Store(false)
	}()
	second := r.attach(attachReq("c1"))
	if second.Port == first.Port {
		t.Fatalf("second ADD answered the released attachment: %+v", second)
	}
	r.settle()
	if e, ok := r.a.journal.Get(attachKey("c1", "eth0")); !ok || e.State != StateAttached || e.PortUUID != second.Port {
		t.Fatalf("journal after the second ADD: %+v %v", e, ok)
	}
	if d := r.dump(); !strings.Contains(d, "link "+second.HostIf+" type=veth") || strings.Contains(d, " down\n") {
		t.Fatalf("second interface not in service:\n%s", d)
	}
}

// Attaches and detaches in a network that stays on the node program their
// own interfaces: they make no data-plane sync, and the data plane is what
// a full sync would make of it.
func TestEndpointChangesNeedNoSync(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{})
	r.attach(attachReq("c1"))
	r.settle()
	syncs := func() float64 {
		var m dto.Metric
		if err := r.a.metrics.syncs.WithLabelValues("ok").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	before := syncs()
	if before == 0 {
		t.Fatal("no data-plane sync counted before the endpoint changes")
	}
	r.attach(attachReq("c2"))
	r.attach(attachReq("c3"))
	r.detach("c2", "eth0")
	r.settle()
	if n := syncs() - before; n != 0 {
		t.Errorf("%v data-plane syncs for endpoint changes alone", n)
	}
	d := r.dump()
	ch := r.dp.Changes()
	if err := r.dp.Sync(context.Background(), DesiredState(r.cfg.NodeName, r.a.cache.Snapshot(), r.a.journal.Entries())); err != nil {
		t.Fatal(err)
	}
	if r.dp.Changes() != ch || r.dump() != d {
		t.Errorf("a full sync changed the data plane:\n%s\n---\n%s", d, r.dump())
	}
}

// An attachment detached before the controller heard of it costs the
// controller one request, a port sync releasing its spare: no port is
// written or deleted.
func TestShortLivedAttachmentSkipsThePort(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{spares: 2})
	eventually(t, 5*time.Second, func() (bool, string) {
		n := r.a.cache.Network(api.DefaultTaskNetwork)
		return n != nil && r.a.spares.size(n.UUID, "ipv4") == 2, "spare pool not warm"
	})
	count := func() map[string]int {
		h.proxy.mu.Lock()
		defer h.proxy.mu.Unlock()
		return maps.Clone(h.proxy.counts)
	}
	h.proxy.down.Store(true)
	res := r.attach(attachReq("c1"))
	r.detach("c1", "eth0")
	// A try at the attachment's background work that began before the
	// detach must be over before the controller is back.
	eventually(t, 5*time.Second, func() (bool, string) {
		r.a.queue.mu.Lock()
		defer r.a.queue.mu.Unlock()
		return !r.a.queue.processing[attachKey("c1", "eth0")], "background work of c1 in progress"
	})
	before := count()
	h.proxy.down.Store(false)
	r.settle()
	addr := netip.MustParsePrefix(res.IPs[0].Address).Addr().String()
	if got, ok := h.reservation(addr); ok && got.Owner != r.a.spareOwner {
		t.Fatalf("%s still held after the release: %+v", addr, got)
	}
	after := count()
	calls := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 && !strings.HasPrefix(k, "GET ") && !strings.Contains(k, "heartbeat") && !strings.Contains(k, "allocate") {
			calls[k] = d
		}
	}
	if want := map[string]int{"POST /v1/nodes/node1/port-sync": 1}; !maps.Equal(calls, want) {
		t.Errorf("controller calls for the release: %v, want %v (and spare refills)", calls, want)
	}
	if ps := h.ports(); len(ps) != 0 {
		t.Errorf("ports: %+v", ps)
	}
}

func TestRestartKeepsState(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// A remote node with a block and a static address outside it.
	if _, _, err := h.client.RegisterNode(ctx, api.Node{Meta: api.Meta{Name: "remote"}, UnderlayIP: "198.18.0.9"}); err != nil {
		t.Fatal(err)
	}
	for _, req := range []api.AllocateRequest{
		{Network: api.DefaultTaskNetwork, Owner: "r1", Node: "remote"},
		{Network: api.DefaultTaskNetwork, Owner: "r2", Node: "remote", IP: "10.32.200.7"},
	} {
		if _, err := h.client.Allocate(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	fake := dataplane.NewFake()
	r := h.startAgent(agentOpts{stateDir: state, dp: fake, spares: 2})
	r.attach(attachReq("c1"))
	q := attachReq("c2")
	q.IPs = []string{"10.32.100.100"}
	r.attach(q)
	r.settle()
	dump := r.dump()
	if !strings.Contains(dump, "10.32.200.7/32") {
		t.Fatalf("dump has no route to the remote's static address:\n%s", dump)
	}
	desired := DesiredState("node1", r.a.cache.Snapshot(), r.a.journal.Entries())
	r.stop()

	r2 := h.startAgent(agentOpts{stateDir: state, dp: fake, spares: 2})
	r2.settle()
	if got := r2.a.journal.Len(); got != 2 {
		t.Fatalf("journal reloaded %d entries, want 2", got)
	}
	if d := r2.dump(); d != dump {
		t.Fatalf("data plane differs after restart:\n%s\n---\n%s", dump, d)
	}
	if got := DesiredState("node1", r2.a.cache.Snapshot(), r2.a.journal.Entries()); !statesEqual(got, desired) {
		t.Fatalf("desired state differs after restart:\n%+v\n%+v", desired, got)
	}
	res := r2.attach(attachReq("c3"))
	if len(res.IPs) != 1 {
		t.Fatalf("attach after restart: %+v", res)
	}
	// The journalled attachment answers the same after the restart.
	var again api.AttachResult
	if code, _ := r2.call("POST", "/v1/attach", attachReq("c1"), &again); code != http.StatusOK || again.Port == "" {
		t.Fatalf("re-attach after restart: %d %+v", code, again)
	}
}

func TestSparesMakeAttachLocal(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{spares: 3})
	var defaultNet string
	eventually(t, 5*time.Second, func() (bool, string) {
		n := r.a.cache.Network(api.DefaultTaskNetwork)
		if n == nil {
			return false, "no default network"
		}
		defaultNet = n.UUID
		return r.a.spares.size(defaultNet, "ipv4") == 3, "spare pool not warm"
	})
	before := h.proxy.allocsNotSpare()
	for _, id := range []string{"c1", "c2", "c3", "c4"} {
		r.attach(attachReq(id))
		if id != "c4" {
			if n := h.proxy.allocsNotSpare(); n != before {
				t.Fatalf("attach of %s asked the controller for an address (%d allocations)", id, n-before)
			}
		}
	}
	r.settle()
	for _, e := range r.a.journal.Entries() {
		rv, ok := h.reservation(netip.MustParsePrefix(e.IPs[0].Address).Addr().String())
		if !ok || rv.Owner != e.Owner {
			t.Fatalf("reservation of %s: %+v", e.ContainerID, rv)
		}
	}
	// The pool is topped up whenever it falls to half (1 of 3).
	eventually(t, 5*time.Second, func() (bool, string) {
		return r.a.spares.size(defaultNet, "ipv4") > 1, "spare pool not refilled"
	})
	// A detached container's addresses are released, not made spares:
	// the controller's spare reservations are the pool.
	r.detach("c1", "eth0")
	r.settle()
	spares := 0
	for _, s := range h.reservations() {
		if strings.Contains(s, "owner=spare:node1") {
			spares++
		}
	}
	if pool := r.a.spares.size(defaultNet, "ipv4"); spares != pool || pool < 2 {
		t.Fatalf("%d spare reservations, pool of %d (want the same, at least 2): %v", spares, pool, h.reservations())
	}
}

func TestGC(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{})
	for _, id := range []string{"keep", "drop"} {
		r.attach(attachReq(id))
	}
	other := attachReq("other-net")
	other.CNINetwork = "another"
	r.attach(other)
	req := api.GCRequest{CNINetwork: "weft", Valid: []api.DetachRequest{{ContainerID: "keep", IfName: "eth0"}}}
	if code, ae := r.call("POST", "/v1/gc", req, nil); code != http.StatusNoContent {
		t.Fatalf("gc: %d %v", code, ae)
	}
	r.settle()
	var left []string
	for _, e := range r.a.journal.Entries() {
		left = append(left, e.ContainerID)
	}
	if want := []string{"keep", "other-net"}; !slices.Equal(left, want) {
		t.Fatalf("after gc: %v, want %v", left, want)
	}
}

// TestAuditTakesBackLostAddresses: when the controller loses a running
// container's reservation (the node was declared lost, an operator
// released it), the agent reserves the address again for the container.
func TestAuditTakesBackLostAddresses(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{resync: 50 * time.Millisecond})
	res := r.attach(attachReq("c1"))
	r.settle()
	addr := netip.MustParsePrefix(res.IPs[0].Address).Addr().String()
	if _, err := h.client.Release(context.Background(), api.ReleaseRequest{Owner: "c1/eth0"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.reservation(addr); ok {
		t.Fatal("release did not happen")
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		rv, ok := h.reservation(addr)
		return ok && rv.Owner == "c1/eth0" && rv.Node == "node1", "address not taken back"
	})
	r.settle()
	if e, _ := r.a.journal.Get(attachKey("c1", "eth0")); needsWork(e) {
		t.Fatalf("entry still has work: %+v", e)
	}
}

func TestAttachSubnetOfSeveral(t *testing.T) {
	h := newHarness(t)
	h.network("two", "10.81.0.0/24", "10.82.0.0/24")
	r := h.startAgent(agentOpts{})
	q := attachReq("c1")
	q.Network, q.Subnets = "two", []string{"10.82.0.0/24"}
	res := r.attach(q)
	if !strings.HasPrefix(res.IPs[0].Address, "10.82.0.") || res.IPs[0].Gateway != "10.82.0.1" {
		t.Fatalf("address %+v is not in the subnet asked for", res.IPs)
	}
	r.settle()
	for _, s := range h.reservations() {
		if strings.Contains(s, "10.81.") {
			t.Fatalf("address of the other subnet left reserved: %v", h.reservations())
		}
	}
}

func TestReattachRecreatesMissingInterface(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{})
	res := r.attach(attachReq("c1"))
	r.settle()
	e, _ := r.a.journal.Get(attachKey("c1", "eth0"))
	// The interface vanishes behind the agent's back.
	if err := r.dp.Detach(context.Background(), dataplaneNetwork(r.a.cache.Network(e.NetworkUUID), e), endpointOf(e)); err != nil {
		t.Fatal(err)
	}
	if code, _ := r.call("POST", "/v1/check", api.DetachRequest{ContainerID: "c1", IfName: "eth0"}, nil); code != http.StatusConflict {
		t.Fatalf("check of a vanished interface: %d", code)
	}
	again := r.attach(attachReq("c1"))
	if again.Port != res.Port || !slices.Equal(again.IPs, res.IPs) {
		t.Fatalf("re-attach %+v, want %+v", again, res)
	}
	if !strings.Contains(r.dump(), res.HostIf) {
		t.Fatalf("interface not made again:\n%s", r.dump())
	}
	// Attaching the same interface elsewhere is refused.
	other := attachReq("c1")
	other.Netns = "/run/netns/elsewhere"
	if code, ae := r.call("POST", "/v1/attach", other, nil); code != http.StatusConflict || ae.Field != "netns" {
		t.Fatalf("attach in another netns: %d %+v", code, ae)
	}
}

func TestPortName(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		id, ifname, want string
	}{
		{"c1", "eth0", "c1-eth0"},
		{"mesos:c/1 x", "eth0", "mesos_c_1_x-eth0"},
	}
	for _, tc := range tests {
		if got := portName(tc.id, tc.ifname); got != tc.want {
			t.Errorf("portName(%q, %q) = %q, want %q", tc.id, tc.ifname, got, tc.want)
		}
	}
	got := portName(long, "eth0")
	if len(got) > 253 || api.ValidName(got) != nil || got == portName(long+"y", "eth0") {
		t.Fatalf("long name %q (%d)", got, len(got))
	}
}

func TestMergeManagerFieldsKeepsMetadata(t *testing.T) {
	agentView := &api.Port{Meta: api.Meta{Labels: map[string]string{"networks": "blue"}}, Network: "n", Node: "node1",
		IPs: []api.PortIP{{Address: "10.0.0.5"}}, SecurityGroups: []string{"d:p:missing"}}
	cur := &api.Port{Meta: api.Meta{ResourceVersion: 42, Labels: map[string]string{"networks": "old", "weft/managed-by": "mesos-manager"}},
		AppID: "/web", TaskID: "web.1", InstanceID: "web.instance-1", FloatingIPs: []string{"d:p:n:pool(1.2.3.4)"},
		SecurityGroups: []string{"d:p:sg"}, IPs: []api.PortIP{{Address: "10.0.0.9"}}}
	got := mergeManagerFields(agentView, cur)
	switch {
	case got.ResourceVersion != 42:
		t.Errorf("no compare-and-swap: resource_version %d", got.ResourceVersion)
	case got.AppID != "/web" || got.TaskID != "web.1" || got.InstanceID != "web.instance-1":
		t.Errorf("manager ids lost: %+v", got)
	case len(got.FloatingIPs) != 1 || got.SecurityGroups[0] != "d:p:sg":
		t.Errorf("floating IPs or security groups lost: %+v", got)
	case got.Labels["weft/managed-by"] != "mesos-manager" || got.Labels["networks"] != "blue":
		t.Errorf("labels: %v", got.Labels)
	case got.IPs[0].Address != "10.0.0.5" || got.Node != "node1":
		t.Errorf("agent-owned fields not the agent's: %+v", got)
	}
}

// Against a controller of an earlier version (no port sync, no allocation
// count) the agent still keeps its spares, writes its ports and releases
// its addresses: one address and one entry at a time.
func TestEarlierController(t *testing.T) {
	h := newHarness(t)
	h.proxy.old.Store(true)
	r := h.startAgent(agentOpts{spares: 3})
	eventually(t, 5*time.Second, func() (bool, string) {
		n := r.a.cache.Network(api.DefaultTaskNetwork)
		return n != nil && r.a.spares.size(n.UUID, "ipv4") == 3, "spare pool not filled one address at a time"
	})
	res := r.attach(attachReq("c1"))
	r.settle()
	addr := netip.MustParsePrefix(res.IPs[0].Address).Addr().String()
	if got, ok := h.reservation(addr); !ok || got.Owner != "c1/eth0" || got.Port != res.Port {
		t.Fatalf("reservation of %s: %+v %v, want held by c1/eth0 for port %s", addr, got, ok, res.Port)
	}
	if ps := h.ports(); len(ps) != 1 || ps[0].UUID != res.Port {
		t.Fatalf("ports: %+v", ps)
	}
	r.detach("c1", "eth0")
	r.settle()
	if _, ok := h.reservation(addr); ok {
		t.Fatalf("%s not released", addr)
	}
	if ps := h.ports(); len(ps) != 0 {
		t.Fatalf("ports left: %+v", ps)
	}
}
