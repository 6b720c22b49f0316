package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/ipam"
	"github.com/weft-sdn/weft/internal/store"
)

// Tests of POST /v1/nodes/{name}/port-sync (Registry.SyncPorts).

// psStores are the stores the port sync tests that count transactions run
// on: the in-memory fake and the shared embedded etcd (whose
// --max-txn-ops is the default 128).
var psStores = []struct {
	name string
	kv   func(testing.TB) store.KV
}{
	{"memory", func(testing.TB) store.KV { return store.NewMemory() }},
	{"etcd", etcdKV},
}

// psUUID is the n-th port uuid of a test: fixed, so that a test can look
// a port up and a detach can name it.
func psUUID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// psEnv is a controller with node1 and node2 registered and the network
// "blue" in the default project.
type psEnv struct {
	*testEnv
	net api.Network
}

func newPSEnv(t *testing.T, kv store.KV, cidr string) *psEnv {
	t.Helper()
	e := newEnv(t, kv)
	for i, node := range []string{"node1", "node2"} {
		body := fmt.Sprintf(`{"name":%q,"underlay_ip":"198.18.0.%d"}`, node, i+1)
		if code, ae, _ := e.do(t, http.MethodPost, "/v1/nodes/register", body); code >= 400 {
			t.Fatalf("register %s: %d %v", node, code, ae)
		}
	}
	n, err := e.cli.CreateNetwork(context.Background(), api.Network{Meta: api.Meta{Name: "blue"}, Subnets: []api.Subnet{{CIDR: cidr}}})
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	return &psEnv{testEnv: e, net: n}
}

// allocate reserves one address through POST /v1/ipam/allocate (an
// explicit one when ip is given, from node's blocks when node is given).
func (e *psEnv) allocate(t *testing.T, owner, node, ip string) string {
	t.Helper()
	b, _ := json.Marshal(api.AllocateRequest{Network: "blue", Owner: owner, Node: node, IP: ip})
	code, ae, body := e.do(t, http.MethodPost, "/v1/ipam/allocate", string(b))
	if code != http.StatusCreated {
		t.Fatalf("allocate for %s: %d %v", owner, code, ae)
	}
	var res api.AllocateResponse
	if err := json.Unmarshal(body, &res); err != nil || len(res.Reservations) != 1 {
		t.Fatalf("allocate for %s: %v %s", owner, err, body)
	}
	return res.Reservations[0].Address
}

// spare reserves a spare address of node1, as a node agent does.
func (e *psEnv) spare(t *testing.T) string { return e.allocate(t, "spare:node1", "node1", "") }

// createPort creates a port through POST /v1/ports.
func (e *psEnv) createPort(t *testing.T, id, name, node string) {
	t.Helper()
	p := api.Port{Meta: api.Meta{UUID: id, Name: name}, Network: "blue", Node: node}
	if err := e.cli.Create(context.Background(), "ports", p, nil); err != nil {
		t.Fatalf("create port %s: %v", name, err)
	}
}

// sync posts req as node and decodes a 200 answer.
func (e *psEnv) sync(t *testing.T, node string, req api.PortSyncRequest) (int, api.Error, api.PortSyncResponse) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	code, ae, body := e.do(t, http.MethodPost, "/v1/nodes/"+node+"/port-sync", string(b))
	var resp api.PortSyncResponse
	if code == http.StatusOK {
		if err := api.DecodeStrict(body, &resp); err != nil {
			t.Fatalf("port sync answer: %v\n%s", err, body)
		}
		if len(resp.Attach) != len(req.Attach) || len(resp.Detach) != len(req.Detach) {
			t.Fatalf("port sync: %d+%d results for %d+%d items", len(resp.Attach), len(resp.Detach), len(req.Attach), len(req.Detach))
		}
	}
	return code, ae, resp
}

func (e *psEnv) mustSync(t *testing.T, node string, req api.PortSyncRequest) api.PortSyncResponse {
	t.Helper()
	code, ae, resp := e.sync(t, node, req)
	if code != http.StatusOK {
		t.Fatalf("port sync: %d %q (field %q)", code, ae.Message, ae.Field)
	}
	return resp
}

// reservation reads the stored reservation of addr in blue.
func (e *psEnv) reservation(t *testing.T, addr string) (api.IPReservation, bool) {
	t.Helper()
	kv, err := e.kv.Get(context.Background(), ipam.ReservationPrefix+e.net.UUID+"/"+addr)
	if errors.Is(err, store.ErrNotFound) {
		return api.IPReservation{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var r api.IPReservation
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		t.Fatal(err)
	}
	return r, true
}

// wantReservation checks who holds addr, and for which port.
func (e *psEnv) wantReservation(t *testing.T, addr, owner, port string) {
	t.Helper()
	r, ok := e.reservation(t, addr)
	if !ok {
		t.Errorf("address %s: not reserved, want held by %s (port %q)", addr, owner, port)
		return
	}
	if r.Address != addr || r.Owner != owner || r.Port != port {
		t.Errorf("address %s: reservation {address %s owner %s port %q}, want owner %s port %q", addr, r.Address, r.Owner, r.Port, owner, port)
	}
}

// quarantine reads the quarantine record of addr in blue.
func (e *psEnv) quarantine(t *testing.T, addr string) (owner string, ok bool) {
	t.Helper()
	kv, err := e.kv.Get(context.Background(), ipam.QuarantinePrefix+e.net.UUID+"/"+addr)
	if errors.Is(err, store.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	var q struct {
		Owner string `json:"owner"`
	}
	if err := json.Unmarshal(kv.Value, &q); err != nil {
		t.Fatalf("quarantine record of %s: %v", addr, err)
	}
	return q.Owner, true
}

// wantReleased checks that addr is no longer reserved and is quarantined
// with its previous owner.
func (e *psEnv) wantReleased(t *testing.T, addr, prevOwner string) {
	t.Helper()
	if r, ok := e.reservation(t, addr); ok {
		t.Errorf("address %s: still reserved by %s, want released", addr, r.Owner)
	}
	if owner, ok := e.quarantine(t, addr); !ok || owner != prevOwner {
		t.Errorf("address %s: quarantine record %v owner %q, want one of owner %q", addr, ok, owner, prevOwner)
	}
}

// port reads the port with the uuid.
func (e *psEnv) port(t *testing.T, id string) (api.Port, bool) {
	t.Helper()
	var p api.Port
	err := e.cli.Get(context.Background(), "ports", id, &p)
	if errors.Is(err, api.ErrNotFound) {
		return p, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, true
}

func (e *psEnv) wantPort(t *testing.T, id, name, node string) {
	t.Helper()
	p, ok := e.port(t, id)
	switch {
	case !ok:
		t.Errorf("port %s (%s): missing", id, name)
	case p.FQName != api.DefaultProject+":"+name || p.Node != node || p.Network != e.net.FQName || p.Kind != api.KindPort:
		t.Errorf("port %s: fq_name %s node %s network %s kind %s, want %s:%s on %s in %s", id, p.FQName, p.Node, p.Network, p.Kind, api.DefaultProject, name, node, e.net.FQName)
	}
}

func (e *psEnv) wantNoPort(t *testing.T, id string) {
	t.Helper()
	if p, ok := e.port(t, id); ok {
		t.Errorf("port %s (%s) exists, want none", id, p.FQName)
	}
}

func (e *psEnv) revision(t *testing.T) int64 {
	t.Helper()
	rev, err := e.kv.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// newPSPort is a port of blue as an agent sends it in an attach.
func newPSPort(id, name, node string) *api.Port {
	return &api.Port{
		Meta:    api.Meta{UUID: id, Name: name, Parent: api.DefaultProject},
		Network: "blue", Node: node, ContainerID: "ctr-" + name, Interface: "eth0",
	}
}

// attachWith is an attach of a new port on node1 handing the addresses
// over from spare:node1 to owner.
func attachWith(id, name, owner string, ips ...string) api.PortAttach {
	a := api.PortAttach{Port: newPSPort(id, name, "node1"), Owner: owner}
	for _, ip := range ips {
		a.Port.IPs = append(a.Port.IPs, api.PortIP{Address: ip})
		a.HandOver = append(a.HandOver, api.HandOver{IP: ip, FromOwner: "spare:node1"})
	}
	return a
}

func wantResponse(t *testing.T, got, want api.PortSyncResponse) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("port sync results:\n got %+v\nwant %+v", got, want)
	}
}

// A batch of two attaches and a detach: all succeed, in one transaction.
func TestPortSyncBatchIsOneTransaction(t *testing.T) {
	for _, st := range psStores {
		t.Run(st.name, func(t *testing.T) {
			e := newPSEnv(t, st.kv(t), "10.50.0.0/24")
			a1, a2, b1, b2 := e.spare(t), e.spare(t), e.spare(t), e.spare(t)
			// An earlier port, p0, took b1; b2 is still a spare.
			got := e.mustSync(t, "node1", api.PortSyncRequest{Attach: []api.PortAttach{attachWith(psUUID(0), "p0", "c0/eth0", b1)}})
			wantResponse(t, got, api.PortSyncResponse{Attach: []api.PortSyncResult{{}}, Detach: []api.PortSyncResult{}})
			e.wantPort(t, psUUID(0), "p0", "node1")
			e.wantReservation(t, b1, "c0/eth0", psUUID(0))
			e.wantReservation(t, b2, "spare:node1", "")

			before := e.revision(t)
			got = e.mustSync(t, "node1", api.PortSyncRequest{
				Attach: []api.PortAttach{
					attachWith(psUUID(1), "p1", "c1/eth0", a1),
					attachWith(psUUID(2), "p2", "c2/eth0", a2),
				},
				Detach: []api.PortDetach{{
					Network: e.net.UUID, Port: psUUID(0), Owner: "c0/eth0",
					IPs: []api.ReleaseIP{{IP: b1}, {IP: b2, Owner: "spare:node1"}},
				}},
			})
			after := e.revision(t)
			wantResponse(t, got, api.PortSyncResponse{
				Attach: []api.PortSyncResult{{}, {}},
				Detach: []api.PortSyncResult{{Released: []string{b1, b2}}},
			})
			if after != before+1 {
				t.Errorf("store revision %d -> %d: the batch took %d transactions, want 1", before, after, after-before)
			}
			e.wantPort(t, psUUID(1), "p1", "node1")
			e.wantPort(t, psUUID(2), "p2", "node1")
			e.wantNoPort(t, psUUID(0))
			var p api.Port
			if err := e.cli.GetByFQName(context.Background(), "ports", api.DefaultProject+":p0", &p); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("fq_name of the deleted port p0 still resolves: %v %s", err, p.UUID)
			}
			e.wantReservation(t, a1, "c1/eth0", psUUID(1))
			e.wantReservation(t, a2, "c2/eth0", psUUID(2))
			e.wantReleased(t, b1, "c0/eth0")
			e.wantReleased(t, b2, "spare:node1")
		})
	}
}

// psFixture is the state the item error cases run against.
type psFixture struct {
	*psEnv
	spareIP   string // held by spare:node1
	otherIP   string // held by other-owner
	freeIP    string // not reserved
	goodSpare string // handed over by the valid attach
	goodIP    string // released by the valid detach
	farIP     string // held by far/eth0, of the port on node2
}

const (
	psTaken = 100 // port "taken" on node1
	psFar   = 101 // port "far" on node2
	psGoodD = 102 // port "gd" on node1, deleted by the valid detach
	psGoodA = 103 // port "good", created by the valid attach
	psBad   = 104 // the uuid of the port of a failing attach
)

func newPSFixture(t *testing.T) *psFixture {
	t.Helper()
	e := newPSEnv(t, store.NewMemory(), "10.51.0.0/24")
	f := &psFixture{psEnv: e, freeIP: "10.51.0.250"}
	// Explicit addresses only, so that freeIP stays free.
	f.spareIP = e.allocate(t, "spare:node1", "", "10.51.0.10")
	f.goodSpare = e.allocate(t, "spare:node1", "", "10.51.0.11")
	f.otherIP = e.allocate(t, "other-owner", "", "10.51.0.12")
	f.goodIP = e.allocate(t, "gd/eth0", "", "10.51.0.13")
	f.farIP = e.allocate(t, "far/eth0", "", "10.51.0.14")
	e.createPort(t, psUUID(psTaken), "taken", "node1")
	e.createPort(t, psUUID(psFar), "far", "node2")
	e.createPort(t, psUUID(psGoodD), "gd", "node1")
	return f
}

func (f *psFixture) goodAttach() api.PortAttach {
	return attachWith(psUUID(psGoodA), "good", "good/eth0", f.goodSpare)
}

func (f *psFixture) goodDetach() api.PortDetach {
	return api.PortDetach{Network: "blue", Port: psUUID(psGoodD), Owner: "gd/eth0", IPs: []api.ReleaseIP{{IP: f.goodIP}}}
}

// untouched checks that a failed item changed nothing of the fixture
// besides what the valid items do.
func (f *psFixture) untouched(t *testing.T) {
	t.Helper()
	f.wantNoPort(t, psUUID(psBad))
	f.wantReservation(t, f.spareIP, "spare:node1", "")
	f.wantReservation(t, f.otherIP, "other-owner", "")
	f.wantReservation(t, f.farIP, "far/eth0", "")
	if r, ok := f.reservation(t, f.freeIP); ok {
		t.Errorf("free address %s got reserved by %s", f.freeIP, r.Owner)
	}
	f.wantPort(t, psUUID(psTaken), "taken", "node1")
	f.wantPort(t, psUUID(psFar), "far", "node2")
}

// Item errors name their field; the valid items of the batch succeed.
func TestPortSyncItemErrors(t *testing.T) {
	badPort := func(mod func(p *api.Port)) func(*psFixture) *api.PortAttach {
		return func(f *psFixture) *api.PortAttach {
			a := attachWith(psUUID(psBad), "bad", "bad/eth0", f.spareIP)
			mod(a.Port)
			return &a
		}
	}
	tests := []struct {
		name   string
		attach func(*psFixture) *api.PortAttach // the failing item, attach[0]
		detach func(*psFixture) *api.PortDetach // or detach[0]
		field  string
		code   int
		msg    string // a substring of the error
	}{
		{name: "nil port", attach: func(f *psFixture) *api.PortAttach {
			return &api.PortAttach{Owner: "bad/eth0", HandOver: []api.HandOver{{IP: f.spareIP, FromOwner: "spare:node1"}}}
		}, field: "attach[0].port", code: 400, msg: "required"},
		{name: "missing owner", attach: func(f *psFixture) *api.PortAttach {
			a := attachWith(psUUID(psBad), "bad", "", f.spareIP)
			return &a
		}, field: "attach[0].owner", code: 400, msg: "required"},
		{name: "port on another node", attach: badPort(func(p *api.Port) { p.Node = "node2" }),
			field: "attach[0].port.node", code: 400, msg: "node2"},
		{name: "port of another kind", attach: badPort(func(p *api.Port) { p.Kind = api.KindNetwork }),
			field: "attach[0].port.kind", code: 400, msg: "not a port"},
		{name: "port without name", attach: badPort(func(p *api.Port) { p.Name = "" }),
			field: "attach[0].port.name", code: 400, msg: "required"},
		{name: "port with bad mac", attach: badPort(func(p *api.Port) { p.MAC = "zz" }),
			field: "attach[0].port.mac", code: 400, msg: "MAC"},
		{name: "port with bad uuid", attach: badPort(func(p *api.Port) { p.UUID = "not-a-uuid" }),
			field: "attach[0].port.uuid", code: 400, msg: "not a uuid"},
		{name: "unknown network", attach: badPort(func(p *api.Port) { p.Network = "nosuch" }),
			field: "attach[0].port.network", code: 400, msg: "nosuch"},
		{name: "port name taken", attach: badPort(func(p *api.Port) { p.Name = "taken" }),
			field: "attach[0].port.fq_name", code: 409, msg: "already exists"},
		{name: "port uuid taken", attach: badPort(func(p *api.Port) { p.UUID = psUUID(psTaken) }),
			field: "attach[0].port.uuid", code: 409, msg: "already exists"},
		{name: "hand-over without from_owner", attach: func(f *psFixture) *api.PortAttach {
			a := attachWith(psUUID(psBad), "bad", "bad/eth0", f.spareIP)
			a.HandOver[0].FromOwner = ""
			return &a
		}, field: "attach[0].hand_over[0]", code: 400, msg: "from_owner"},
		{name: "hand-over from the wrong owner", attach: func(f *psFixture) *api.PortAttach {
			a := attachWith(psUUID(psBad), "bad", "bad/eth0", f.otherIP)
			return &a
		}, field: "attach[0].hand_over[0].from_owner", code: 409, msg: "other-owner"},
		{name: "second hand-over from the wrong owner", attach: func(f *psFixture) *api.PortAttach {
			a := attachWith(psUUID(psBad), "bad", "bad/eth0", f.spareIP, f.otherIP)
			return &a
		}, field: "attach[0].hand_over[1].from_owner", code: 409, msg: "other-owner"},
		{name: "hand-over not reserved", attach: func(f *psFixture) *api.PortAttach {
			a := attachWith(psUUID(psBad), "bad", "bad/eth0", f.freeIP)
			return &a
		}, field: "attach[0].hand_over[0]", code: 404, msg: "not reserved"},
		{name: "hand-over of a bad address", attach: func(f *psFixture) *api.PortAttach {
			a := attachWith(psUUID(psBad), "bad", "bad/eth0")
			a.HandOver = []api.HandOver{{IP: "10.51.0.999", FromOwner: "spare:node1"}}
			return &a
		}, field: "attach[0].hand_over[0].ip", code: 400},
		{name: "detach without network", detach: func(f *psFixture) *api.PortDetach {
			return &api.PortDetach{Owner: "far/eth0", IPs: []api.ReleaseIP{{IP: f.farIP}}}
		}, field: "detach[0].network", code: 400, msg: "required"},
		{name: "detach without owner", detach: func(f *psFixture) *api.PortDetach {
			return &api.PortDetach{Network: "blue", IPs: []api.ReleaseIP{{IP: f.farIP, Owner: "far/eth0"}}}
		}, field: "detach[0].owner", code: 400, msg: "required"},
		{name: "detach in unknown network", detach: func(f *psFixture) *api.PortDetach {
			return &api.PortDetach{Network: "nosuch", Owner: "far/eth0", IPs: []api.ReleaseIP{{IP: f.farIP}}}
		}, field: "detach[0].network", code: 400, msg: "nosuch"},
		{name: "detach of a port on another node", detach: func(f *psFixture) *api.PortDetach {
			return &api.PortDetach{Network: "blue", Port: psUUID(psFar), Owner: "far/eth0", IPs: []api.ReleaseIP{{IP: f.farIP}}}
		}, field: "detach[0].port", code: 409, msg: "node2"},
		{name: "detach of a port that is not a uuid", detach: func(f *psFixture) *api.PortDetach {
			return &api.PortDetach{Network: "blue", Port: "far", Owner: "far/eth0", IPs: []api.ReleaseIP{{IP: f.farIP}}}
		}, field: "detach[0].port.uuid", code: 400, msg: "not a uuid"},
		{name: "detach of a bad address", detach: func(f *psFixture) *api.PortDetach {
			return &api.PortDetach{Network: "blue", Owner: "far/eth0", IPs: []api.ReleaseIP{{IP: "10.51.0.999"}, {IP: f.farIP}}}
		}, field: "detach[0].ips[0].ip", code: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newPSFixture(t)
			req := api.PortSyncRequest{Attach: []api.PortAttach{f.goodAttach()}, Detach: []api.PortDetach{f.goodDetach()}}
			if tc.attach != nil {
				req.Attach = append([]api.PortAttach{*tc.attach(f)}, req.Attach...)
			} else {
				req.Detach = append([]api.PortDetach{*tc.detach(f)}, req.Detach...)
			}
			resp := f.mustSync(t, "node1", req)
			bad, goodA, goodD := resp.Attach[0], resp.Attach[len(resp.Attach)-1], resp.Detach[len(resp.Detach)-1]
			if tc.detach != nil {
				bad = resp.Detach[0]
			}
			if bad.Field != tc.field || bad.Code != tc.code || bad.Error == "" || !strings.Contains(bad.Error, tc.msg) || bad.Released != nil {
				t.Errorf("failing item: %+v, want field %q code %d and an error mentioning %q", bad, tc.field, tc.code, tc.msg)
			}
			if err := bad.Err(); err == nil || err.(*api.Error).Field != tc.field {
				t.Errorf("failing item's Err(): %v", err)
			}
			if !reflect.DeepEqual(goodA, api.PortSyncResult{}) || !reflect.DeepEqual(goodD, api.PortSyncResult{Released: []string{f.goodIP}}) {
				t.Errorf("valid items: attach %+v, detach %+v; want success, releasing %s", goodA, goodD, f.goodIP)
			}
			f.wantPort(t, psUUID(psGoodA), "good", "node1")
			f.wantReservation(t, f.goodSpare, "good/eth0", psUUID(psGoodA))
			f.wantNoPort(t, psUUID(psGoodD))
			f.wantReleased(t, f.goodIP, "gd/eth0")
			f.untouched(t)
		})
	}
}

// Two attaches handing over one address: one wins, the other fails whole.
func TestPortSyncSameAddressTwice(t *testing.T) {
	tests := []struct {
		name           string
		owner0, owner1 string
		field          string // of the loser's error, after hand_over[i].
	}{
		// The address is held by the other owner now.
		{"different owners", "c1/eth0", "c2/eth0", "from_owner"},
		// The owner holds it already, for the other port.
		{"same owner", "c1/eth0", "c1/eth0", "port"},
	}
	for _, st := range psStores {
		for _, tc := range tests {
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				e := newPSEnv(t, st.kv(t), "10.52.0.0/24")
				a, other := e.spare(t), e.spare(t)
				owners := []string{tc.owner0, tc.owner1}
				resp := e.mustSync(t, "node1", api.PortSyncRequest{Attach: []api.PortAttach{
					attachWith(psUUID(1), "p1", tc.owner0, a),
					attachWith(psUUID(2), "p2", tc.owner1, other, a),
				}})
				var won []int
				for i, r := range resp.Attach {
					if r.Error == "" {
						won = append(won, i)
					}
				}
				if len(won) != 1 {
					r, _ := e.reservation(t, a)
					_, p1 := e.port(t, psUUID(1))
					_, p2 := e.port(t, psUUID(2))
					t.Fatalf("%d of the two attaches succeeded (%+v), want exactly one; ports p1 %v p2 %v exist, %s is held by %s for port %s",
						len(won), resp.Attach, p1, p2, a, r.Owner, r.Port)
				}
				w, l := won[0], 1-won[0]
				lost := resp.Attach[l]
				wantField := fmt.Sprintf("attach[%d].hand_over[%d].%s", l, l, tc.field)
				if !reflect.DeepEqual(resp.Attach[w], api.PortSyncResult{}) || lost.Code != http.StatusConflict || lost.Field != wantField {
					t.Errorf("results %+v: want one success and a 409 on %s", resp.Attach, wantField)
				}
				e.wantPort(t, psUUID(w+1), fmt.Sprintf("p%d", w+1), "node1")
				e.wantNoPort(t, psUUID(l+1))
				e.wantReservation(t, a, owners[w], psUUID(w+1))
				if l == 1 {
					e.wantReservation(t, other, "spare:node1", "") // not half-done
				} else {
					e.wantReservation(t, other, owners[1], psUUID(2))
				}
			})
		}
	}
}

// Detach leaves alone what is not its to release, and may be repeated.
func TestPortSyncDetachLeavesOthersAlone(t *testing.T) {
	type step struct {
		d    api.PortDetach
		want api.PortSyncResult
	}
	tests := []struct {
		name  string
		steps func(t *testing.T, e *psEnv) []step
		check func(t *testing.T, e *psEnv)
	}{
		{"address of an unrelated owner", func(t *testing.T, e *psEnv) []step {
			x := e.allocate(t, "someone-else", "", "10.53.0.20")
			return []step{{api.PortDetach{Network: "blue", Owner: "c1/eth0", IPs: []api.ReleaseIP{{IP: x}}}, api.PortSyncResult{}}}
		}, func(t *testing.T, e *psEnv) {
			e.wantReservation(t, "10.53.0.20", "someone-else", "")
			if _, q := e.quarantine(t, "10.53.0.20"); q {
				t.Errorf("address left alone got quarantined")
			}
		}},
		{"address of an unrelated owner, another spare owner named", func(t *testing.T, e *psEnv) []step {
			x := e.allocate(t, "someone-else", "", "10.53.0.21")
			return []step{{api.PortDetach{Network: e.net.UUID, Owner: "c1/eth0", IPs: []api.ReleaseIP{{IP: x, Owner: "spare:node1"}}}, api.PortSyncResult{}}}
		}, func(t *testing.T, e *psEnv) {
			e.wantReservation(t, "10.53.0.21", "someone-else", "")
		}},
		{"address not reserved", func(t *testing.T, e *psEnv) []step {
			return []step{{api.PortDetach{Network: "blue", Owner: "c1/eth0", IPs: []api.ReleaseIP{{IP: "10.53.0.22"}}}, api.PortSyncResult{}}}
		}, func(t *testing.T, e *psEnv) {
			if _, ok := e.reservation(t, "10.53.0.22"); ok {
				t.Errorf("10.53.0.22 reserved")
			}
			if _, q := e.quarantine(t, "10.53.0.22"); q {
				t.Errorf("address never reserved got quarantined")
			}
		}},
		{"port that does not exist", func(t *testing.T, e *psEnv) []step {
			return []step{{api.PortDetach{Network: "blue", Port: psUUID(9), Owner: "c1/eth0"}, api.PortSyncResult{}}}
		}, func(t *testing.T, e *psEnv) {}},
		{"detach twice", func(t *testing.T, e *psEnv) []step {
			x := e.spare(t)
			e.mustSync(t, "node1", api.PortSyncRequest{Attach: []api.PortAttach{attachWith(psUUID(1), "p1", "c1/eth0", x)}})
			d := api.PortDetach{Network: "blue", Port: psUUID(1), Owner: "c1/eth0", IPs: []api.ReleaseIP{{IP: x, Owner: "spare:node1"}}}
			return []step{{d, api.PortSyncResult{Released: []string{x}}}, {d, api.PortSyncResult{}}}
		}, func(t *testing.T, e *psEnv) {
			e.wantNoPort(t, psUUID(1))
		}},
		{"released address in another form", func(t *testing.T, e *psEnv) []step {
			x := e.allocate(t, "c1/eth0", "", "10.53.0.23")
			return []step{{api.PortDetach{Network: "blue", Owner: "c1/eth0", IPs: []api.ReleaseIP{{IP: "::ffff:" + x}}}, api.PortSyncResult{Released: []string{x}}}}
		}, func(t *testing.T, e *psEnv) {
			e.wantReleased(t, "10.53.0.23", "c1/eth0")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newPSEnv(t, store.NewMemory(), "10.53.0.0/24")
			for i, s := range tc.steps(t, e) {
				resp := e.mustSync(t, "node1", api.PortSyncRequest{Detach: []api.PortDetach{s.d}})
				if !reflect.DeepEqual(resp.Detach[0], s.want) {
					t.Errorf("step %d: %+v, want %+v", i, resp.Detach[0], s.want)
				}
			}
			tc.check(t, e)
		})
	}
}

// Requests the handler refuses whole.
func TestPortSyncRequestErrors(t *testing.T) {
	e := newPSEnv(t, store.NewMemory(), "10.54.0.0/24")
	x := e.spare(t)
	items := func(n int) string {
		var req api.PortSyncRequest
		for range n {
			req.Detach = append(req.Detach, api.PortDetach{Network: "blue", Owner: "c1/eth0"})
		}
		b, _ := json.Marshal(req)
		return string(b)
	}
	valid, _ := json.Marshal(api.PortSyncRequest{Attach: []api.PortAttach{attachWith(psUUID(1), "p1", "c1/eth0", x)}})
	tests := []struct {
		name, node, body string
		code             int
		field            string
		msg              string
	}{
		{"node not registered", "ghost", string(valid), 404, "", "ghost"},
		{"too many items", "node1", items(api.MaxPortSyncItems + 1), 400, "attach", fmt.Sprint(api.MaxPortSyncItems)},
		{"empty body", "node1", ``, 400, "", "empty"},
		{"malformed JSON", "node1", `{"attach":[`, 400, "", "malformed JSON"},
		{"trailing data", "node1", `{} {}`, 400, "", "after the JSON"},
		{"unknown field", "node1", `{"attach":[],"colour":"red"}`, 400, "colour", "unknown field"},
		{"unknown field of an item", "node1", `{"detach":[{"network":"blue","owner":"o","colour":1}]}`, 400, "colour", "unknown field"},
		{"wrong type", "node1", `{"attach":{}}`, 400, "attach", "must be"},
		{"array body", "node1", `[]`, 400, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.revision(t)
			code, ae, body := e.do(t, http.MethodPost, "/v1/nodes/"+tc.node+"/port-sync", tc.body)
			if code != tc.code || ae.Field != tc.field || !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("%d field %q %q, want %d field %q mentioning %q (body %s)", code, ae.Field, ae.Message, tc.code, tc.field, tc.msg, body)
			}
			if after := e.revision(t); after != before {
				t.Errorf("refused request wrote to the store: revision %d -> %d", before, after)
			}
		})
	}
	e.wantNoPort(t, psUUID(1))
	e.wantReservation(t, x, "spare:node1", "")

	// The limit itself is fine; an empty request has empty results.
	for _, n := range []int{api.MaxPortSyncItems, 0} {
		code, ae, body := e.do(t, http.MethodPost, "/v1/nodes/node1/port-sync", items(n))
		var resp api.PortSyncResponse
		if err := api.DecodeStrict(body, &resp); code != 200 || err != nil || len(resp.Detach) != n || resp.Attach == nil || len(resp.Attach) != 0 {
			t.Errorf("%d items: %d %v %v; %d detach results, attach %v", n, code, ae, err, len(resp.Detach), resp.Attach)
		}
		for i, r := range resp.Detach {
			if !reflect.DeepEqual(r, api.PortSyncResult{}) {
				t.Errorf("%d items: detach[%d] = %+v", n, i, r)
			}
		}
	}
}

// More items than one transaction holds: a few transactions, not one per
// item, and every item done.
func TestPortSyncSplitsLargeBatches(t *testing.T) {
	const n = 60 // 60 × 3 writes > maxTxnOps
	for _, st := range psStores {
		t.Run(st.name, func(t *testing.T) {
			e := newPSEnv(t, st.kv(t), "10.55.0.0/24")
			var req api.PortSyncRequest
			ips := make([]string, n)
			for i := range n {
				ips[i] = e.spare(t)
				req.Attach = append(req.Attach, attachWith(psUUID(i), fmt.Sprintf("p%d", i), fmt.Sprintf("c%d/eth0", i), ips[i]))
			}
			before := e.revision(t)
			resp := e.mustSync(t, "node1", req)
			txns := e.revision(t) - before
			want := api.PortSyncResponse{Attach: make([]api.PortSyncResult, n), Detach: []api.PortSyncResult{}}
			wantResponse(t, resp, want)
			if txns <= 1 || txns > 5 {
				t.Errorf("%d attaches took %d transactions, want 2 to 5", n, txns)
			}
			for i := range n {
				e.wantPort(t, psUUID(i), fmt.Sprintf("p%d", i), "node1")
				e.wantReservation(t, ips[i], fmt.Sprintf("c%d/eth0", i), psUUID(i))
			}

			// And back: 60 detaches releasing them, plus their ports.
			req = api.PortSyncRequest{}
			for i := range n {
				req.Detach = append(req.Detach, api.PortDetach{Network: "blue", Port: psUUID(i), Owner: fmt.Sprintf("c%d/eth0", i), IPs: []api.ReleaseIP{{IP: ips[i]}}})
			}
			before = e.revision(t)
			resp = e.mustSync(t, "node1", req)
			txns = e.revision(t) - before
			want = api.PortSyncResponse{Attach: []api.PortSyncResult{}, Detach: make([]api.PortSyncResult, n)}
			for i := range n {
				want.Detach[i].Released = []string{ips[i]}
			}
			wantResponse(t, resp, want)
			if txns <= 1 || txns > 5 {
				t.Errorf("%d detaches took %d transactions, want 2 to 5", n, txns)
			}
			for i := range n {
				e.wantNoPort(t, psUUID(i))
				e.wantReleased(t, ips[i], fmt.Sprintf("c%d/eth0", i))
			}
		})
	}
}

// An item that alone has more writes than one transaction may hold, or
// that names one address twice, is that item's failure (or success), not
// a failure of the whole request: the other items are done and reported.
func TestPortSyncOversizedAndRepeatedItems(t *testing.T) {
	for _, st := range psStores {
		t.Run(st.name, func(t *testing.T) {
			tests := []struct {
				name string
				item func(t *testing.T, e *psEnv) (api.PortSyncRequest, func(t *testing.T, res api.PortSyncResult))
			}{
				{"attach handing over 130 addresses", func(t *testing.T, e *psEnv) (api.PortSyncRequest, func(*testing.T, api.PortSyncResult)) {
					var ips []string
					for range 130 { // 130 writes besides the port's: more than maxTxnOps
						ips = append(ips, e.spare(t))
					}
					a := attachWith(psUUID(1), "big", "big/eth0", ips...)
					return api.PortSyncRequest{Attach: []api.PortAttach{a}}, func(t *testing.T, res api.PortSyncResult) {
						if res.Error == "" {
							e.wantPort(t, psUUID(1), "big", "node1")
							for _, ip := range ips {
								e.wantReservation(t, ip, "big/eth0", psUUID(1))
							}
							return
						}
						e.wantNoPort(t, psUUID(1))
						for _, ip := range ips {
							e.wantReservation(t, ip, "spare:node1", "")
						}
					}
				}},
				{"attach handing over one address twice", func(t *testing.T, e *psEnv) (api.PortSyncRequest, func(*testing.T, api.PortSyncResult)) {
					x := e.spare(t)
					a := attachWith(psUUID(1), "twice", "tw/eth0", x)
					a.HandOver = append(a.HandOver, a.HandOver[0])
					return api.PortSyncRequest{Attach: []api.PortAttach{a}}, func(t *testing.T, res api.PortSyncResult) {
						if res.Error == "" {
							e.wantPort(t, psUUID(1), "twice", "node1")
							e.wantReservation(t, x, "tw/eth0", psUUID(1))
							return
						}
						e.wantNoPort(t, psUUID(1))
						e.wantReservation(t, x, "spare:node1", "")
					}
				}},
				{"attach whose port has more security groups than one transaction holds", func(t *testing.T, e *psEnv) (api.PortSyncRequest, func(*testing.T, api.PortSyncResult)) {
					x := e.spare(t)
					a := attachWith(psUUID(1), "guarded", "sg/eth0", x)
					for i := range 70 { // two conditions each
						name := fmt.Sprintf("sg%d", i)
						e.mustCreate(t, "security-groups", `{"name":"`+name+`"}`)
						a.Port.SecurityGroups = append(a.Port.SecurityGroups, "default-domain:default-project:"+name)
					}
					return api.PortSyncRequest{Attach: []api.PortAttach{a}}, func(t *testing.T, res api.PortSyncResult) {
						if res.Code != http.StatusBadRequest || res.Field != "attach[0]" || !strings.Contains(res.Error, "one transaction holds at most 128") {
							t.Errorf("result %+v, want a 400 on attach[0] saying the item does not fit a transaction", res)
						}
						e.wantNoPort(t, psUUID(1))
						e.wantReservation(t, x, "spare:node1", "")
					}
				}},
				{"detach releasing one address twice", func(t *testing.T, e *psEnv) (api.PortSyncRequest, func(*testing.T, api.PortSyncResult)) {
					x := e.allocate(t, "tw/eth0", "", "")
					d := api.PortDetach{Network: "blue", Owner: "tw/eth0", IPs: []api.ReleaseIP{{IP: x}, {IP: x}}}
					return api.PortSyncRequest{Detach: []api.PortDetach{d}}, func(t *testing.T, res api.PortSyncResult) {
						if res.Error == "" {
							if !slices.Equal(res.Released, []string{x}) {
								t.Errorf("released %v, want [%s] once", res.Released, x)
							}
							e.wantReleased(t, x, "tw/eth0")
							return
						}
						e.wantReservation(t, x, "tw/eth0", "")
					}
				}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					e := newPSEnv(t, st.kv(t), "10.56.0.0/24")
					g1, g2 := e.spare(t), e.spare(t)
					req, check := tc.item(t, e)
					// Two valid attaches besides (which fit one transaction).
					req.Attach = append(req.Attach,
						attachWith(psUUID(2), "ok2", "ok2/eth0", g1),
						attachWith(psUUID(3), "ok3", "ok3/eth0", g2))
					code, ae, resp := e.sync(t, "node1", req)
					if code != http.StatusOK {
						_, ok2 := e.port(t, psUUID(2))
						_, ok3 := e.port(t, psUUID(3))
						t.Fatalf("port sync: %d %q, want 200 with a result for each item (valid ports committed nonetheless: %v, %v)", code, ae.Message, ok2, ok3)
					}
					res := resp.Attach[0]
					if len(req.Detach) > 0 {
						res = resp.Detach[0]
					}
					if res.Error != "" && (res.Code < 400 || res.Code >= 500) {
						t.Errorf("item result %+v: an item error must be a 4xx", res)
					}
					check(t, res)
					n := len(resp.Attach)
					if ok := resp.Attach[n-2:]; !reflect.DeepEqual(ok, []api.PortSyncResult{{}, {}}) {
						t.Errorf("valid attaches: %+v", ok)
					}
					e.wantPort(t, psUUID(2), "ok2", "node1")
					e.wantPort(t, psUUID(3), "ok3", "node1")
					e.wantReservation(t, g1, "ok2/eth0", psUUID(2))
					e.wantReservation(t, g2, "ok3/eth0", psUUID(3))
				})
			}
		})
	}
}

// A released address is quarantined: automatic allocation does not hand
// it out again right away.
func TestPortSyncReleaseQuarantines(t *testing.T) {
	e := newPSEnv(t, store.NewMemory(), "10.57.0.0/29")
	// Reserve every address of the /29 as spares.
	var all []string
	for {
		code, ae, body := e.do(t, http.MethodPost, "/v1/ipam/allocate", `{"network":"blue","owner":"spare:node1"}`)
		if code == http.StatusConflict {
			break
		}
		if code != http.StatusCreated {
			t.Fatalf("allocate: %d %v", code, ae)
		}
		var res api.AllocateResponse
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		all = append(all, res.Reservations[0].Address)
		if len(all) > 8 {
			t.Fatalf("a /29 gave %d addresses: %v", len(all), all)
		}
	}
	if len(all) < 3 {
		t.Fatalf("a /29 gave only %v", all)
	}
	x, y := all[0], all[1]
	e.mustSync(t, "node1", api.PortSyncRequest{Attach: []api.PortAttach{attachWith(psUUID(1), "p1", "c1/eth0", x)}})
	resp := e.mustSync(t, "node1", api.PortSyncRequest{Detach: []api.PortDetach{
		{Network: "blue", Port: psUUID(1), Owner: "c1/eth0", IPs: []api.ReleaseIP{{IP: x}}},
		{Network: "blue", Owner: "c2/eth0", IPs: []api.ReleaseIP{{IP: y, Owner: "spare:node1"}}},
	}})
	wantResponse(t, resp, api.PortSyncResponse{Attach: []api.PortSyncResult{}, Detach: []api.PortSyncResult{{Released: []string{x}}, {Released: []string{y}}}})
	e.wantReleased(t, x, "c1/eth0")
	e.wantReleased(t, y, "spare:node1")
	// Both free addresses are quarantined: the network is exhausted.
	code, ae, body := e.do(t, http.MethodPost, "/v1/ipam/allocate", `{"network":"blue","owner":"next"}`)
	if code != http.StatusConflict || !errors.Is(api.ErrorFromStatus(code, ae.Message, ae.Field), api.ErrConflict) {
		t.Errorf("allocate after release: %d %s, want 409 (the released addresses are quarantined)", code, body)
	}
	if r, ok := e.reservation(t, x); ok {
		t.Errorf("released %s handed out again to %s", x, r.Owner)
	}
	if r, ok := e.reservation(t, y); ok {
		t.Errorf("released %s handed out again to %s", y, r.Owner)
	}
}

// psFuzzEnv is a controller on the in-memory store with node1 and node2
// registered, network blue (10.80.0.0/24), spares 10.80.0.10-13 of
// spare:node1, port p0 (psUUID(0)) on node1 holding 10.80.0.20 for
// c0/eth0, and port far (psUUID(1)) on node2.
func psFuzzEnv(t testing.TB) *Controller {
	t.Helper()
	c, err := NewWithStore(context.Background(), testConfig(), store.NewMemory(), discardLog())
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	for _, rq := range []struct{ path, body string }{
		{"/v1/nodes/register", `{"name":"node1","underlay_ip":"198.18.0.1"}`},
		{"/v1/nodes/register", `{"name":"node2","underlay_ip":"198.18.0.2"}`},
		{"/v1/networks", `{"name":"blue","subnets":[{"cidr":"10.80.0.0/24"}]}`},
		{"/v1/ipam/allocate", `{"network":"blue","owner":"spare:node1","ip":"10.80.0.10"}`},
		{"/v1/ipam/allocate", `{"network":"blue","owner":"spare:node1","ip":"10.80.0.11"}`},
		{"/v1/ipam/allocate", `{"network":"blue","owner":"spare:node1","ip":"10.80.0.12"}`},
		{"/v1/ipam/allocate", `{"network":"blue","owner":"spare:node1","ip":"10.80.0.13"}`},
		{"/v1/ports", `{"uuid":"` + psUUID(0) + `","name":"p0","network":"blue","node":"node1"}`},
		{"/v1/ports", `{"uuid":"` + psUUID(1) + `","name":"far","network":"blue","node":"node2"}`},
		{"/v1/ipam/allocate", `{"network":"blue","owner":"c0/eth0","ip":"10.80.0.20","port":"` + psUUID(0) + `"}`},
	} {
		rec := httptest.NewRecorder()
		c.Server.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, rq.path, strings.NewReader(rq.body)))
		if rec.Code >= 300 {
			t.Fatalf("fuzz setup %s %s: %d %s", rq.path, rq.body, rec.Code, rec.Body)
		}
	}
	return c
}

// FuzzPortSync feeds arbitrary bodies to the handler: it never panics,
// answers 200, 400, 404 or 413, and a 200 has one well-formed result per
// item.
func FuzzPortSync(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"attach":[{"port":{"uuid":"` + psUUID(5) + `","name":"p5","network":"blue","node":"node1","container_id":"c5","interface":"eth0","ips":[{"address":"10.80.0.10"}]},"owner":"c5/eth0","hand_over":[{"ip":"10.80.0.10","from_owner":"spare:node1"}]}]}`,
		`{"attach":[{"port":{"name":"a","network":"blue"},"owner":"a/eth0","hand_over":[{"ip":"10.80.0.11","from_owner":"spare:node1"}]},{"port":{"name":"b","network":"blue"},"owner":"b/eth0","hand_over":[{"ip":"10.80.0.11","from_owner":"spare:node1"},{"ip":"10.80.0.12","from_owner":"spare:node1"}]}]}`,
		`{"detach":[{"network":"blue","port":"` + psUUID(0) + `","owner":"c0/eth0","ips":[{"ip":"10.80.0.20"},{"ip":"10.80.0.13","owner":"spare:node1"}]}]}`,
		`{"attach":[{"port":{"name":"p0","network":"blue"},"owner":"x"}],"detach":[{"network":"blue","port":"` + psUUID(1) + `","owner":"far"}]}`,
		`{"attach":[{"port":null,"owner":"x"},{"port":{"kind":"network","name":"n","network":"nope","node":"node2"},"owner":"x","hand_over":[{"ip":"fd00::1"}]}]}`,
		`{"detach":[{"network":"","owner":""},{"network":"blue","port":"zz","owner":"o","ips":[{"ip":"::ffff:10.80.0.10"},{"ip":"10.80.1.1"}]}]}`,
		`{"attach":[`, `[]`, `null`, `{"attach":{}}`, `{"colour":1}`, `{} {}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c := psFuzzEnv(t)
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Server.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/nodes/node1/port-sync", bytes.NewReader(body)))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer within 10s to %q", body)
		}
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
			var ae api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil || ae.Message == "" {
				t.Fatalf("%d with a bad error body %q", rec.Code, rec.Body)
			}
			return
		default:
			t.Fatalf("status %d: %s\nbody %q", rec.Code, rec.Body, body)
		}
		var req api.PortSyncRequest
		if err := api.DecodeStrict(body, &req); err != nil {
			t.Fatalf("200 for a body that does not decode (%v): %q", err, body)
		}
		var resp api.PortSyncResponse
		if err := api.DecodeStrict(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer does not decode: %v\n%s", err, rec.Body)
		}
		if len(resp.Attach) != len(req.Attach) || len(resp.Detach) != len(req.Detach) {
			t.Fatalf("%d+%d results for %d+%d items: %q", len(resp.Attach), len(resp.Detach), len(req.Attach), len(req.Detach), body)
		}
		for _, r := range slices.Concat(resp.Attach, resp.Detach) {
			if r.Error == "" && (r.Code != 0 || r.Field != "") || r.Error != "" && (r.Code < 400 || r.Code >= 500 || r.Released != nil) {
				t.Fatalf("malformed result %+v for %q", r, body)
			}
		}
	})
}
