package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

func TestAllocateValidation(t *testing.T) {
	n := testNet("net-v", "10.0.0.0/24")
	n.Subnets[0].Gateway = "10.0.0.254"
	v6 := testNet("net-v6", "fd00::/64")
	tests := []struct {
		name  string
		n     Network
		req   api.AllocateRequest
		err   error
		field string
		msg   []string
	}{
		{"no owner", n, api.AllocateRequest{}, api.ErrInvalid, "owner", nil},
		{"no network uuid", Network{FQName: "x"}, api.AllocateRequest{Owner: "o"}, api.ErrInvalid, "network", nil},
		{"bad subnet", testNet("bad", "10.0.0.0/33"), api.AllocateRequest{Owner: "o"}, api.ErrInvalid, "subnets[0].cidr", nil},
		{"bad ip", n, api.AllocateRequest{Owner: "o", IP: "10.0.0.300"}, api.ErrInvalid, "ip", nil},
		{"ip with zone", n, api.AllocateRequest{Owner: "o", IP: "fe80::1%eth0"}, api.ErrInvalid, "ip", nil},
		{"ip outside", n, api.AllocateRequest{Owner: "o", IP: "10.0.1.1"}, api.ErrInvalid, "ip", []string{"10.0.1.1", n.FQName}},
		{"network address", n, api.AllocateRequest{Owner: "o", IP: "10.0.0.0"}, api.ErrInvalid, "ip", []string{"network address"}},
		{"gateway", n, api.AllocateRequest{Owner: "o", IP: "10.0.0.254"}, api.ErrInvalid, "ip", []string{"gateway"}},
		{"broadcast", n, api.AllocateRequest{Owner: "o", IP: "10.0.0.255"}, api.ErrInvalid, "ip", []string{"broadcast"}},
		{"unknown family", n, api.AllocateRequest{Owner: "o", Family: "ipx"}, api.ErrInvalid, "family", nil},
		{"no ipv6 subnet", n, api.AllocateRequest{Owner: "o", Family: "ipv6"}, api.ErrInvalid, "family", []string{"IPv6", n.FQName}},
		{"dual without ipv6", n, api.AllocateRequest{Owner: "o", Family: "dual"}, api.ErrInvalid, "family", nil},
		{"no ipv4 subnet by default", v6, api.AllocateRequest{Owner: "o"}, api.ErrInvalid, "family", nil},
		{"ip family mismatch", n, api.AllocateRequest{Owner: "o", IP: "10.0.0.5", Family: "ipv6"}, api.ErrInvalid, "family", nil},
		{"ipv6 subnet router", v6, api.AllocateRequest{Owner: "o", IP: "fd00::"}, api.ErrInvalid, "ip", []string{"network address"}},
		{"ipv6 default gateway", v6, api.AllocateRequest{Owner: "o", IP: "fd00::1"}, api.ErrInvalid, "ip", []string{"gateway"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, kv, _ := newMemIPAM(t)
			before, _ := kv.Revision(context.Background())
			_, err := m.Allocate(context.Background(), tc.n, tc.req)
			wantAPIErr(t, err, tc.err, tc.field, tc.msg...)
			if rev, _ := kv.Revision(context.Background()); rev != before {
				t.Fatalf("store written (revision %d) by a refused allocation", rev)
			}
		})
	}
}

func TestAllocateAutoSkipsSpecialAndExhausts(t *testing.T) {
	tests := []struct {
		name    string
		cidr    string
		gateway string
		want    []string
	}{
		{"ipv4 /29", "10.1.0.0/29", "", []string{"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"}},
		{"ipv4 /29 gateway last", "10.1.0.8/29", "10.1.0.14", []string{"10.1.0.9", "10.1.0.10", "10.1.0.11", "10.1.0.12", "10.1.0.13"}},
		{"ipv4 /31", "10.1.0.16/31", "", []string{"10.1.0.16", "10.1.0.17"}},
		{"ipv6 /126", "fd00::/126", "", []string{"fd00::2", "fd00::3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, kv, _ := newMemIPAM(t)
			n := testNet("net-x", tc.cidr)
			n.Subnets[0].Gateway = tc.gateway
			fam := familyOf(netip.MustParsePrefix(tc.cidr).Addr())
			var got []string
			for range tc.want {
				got = append(got, alloc1(t, m, n, api.AllocateRequest{Owner: "o", Family: fam}).String())
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("allocated %v, want %v", got, want)
			}
			_, err := m.Allocate(context.Background(), n, api.AllocateRequest{Owner: "o", Family: fam})
			wantAPIErr(t, err, api.ErrExhausted, "network", n.FQName, tc.cidr, "no free")
			if len(storedAddrs(t, kv, n.UUID)) != len(tc.want) {
				t.Fatal("wrong number of stored reservations")
			}
		})
	}
}

func TestReservationRecord(t *testing.T) {
	m, kv, clk := newMemIPAM(t)
	n := testNet("net-r", "10.2.0.0/24")
	res := alloc(t, m, n, api.AllocateRequest{Owner: "task-1", Node: "node-a", Port: "port-1", IP: "10.2.0.7", Labels: map[string]string{"app": "web"}})
	stored, err := kv.Get(context.Background(), "/weft/v1/obj/ip_reservation/net-r/10.2.0.7")
	if err != nil {
		t.Fatal(err)
	}
	var r api.IPReservation
	if err := json.Unmarshal(stored.Value, &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != api.KindIPReservation || r.UUID == "" || r.Name != "10.2.0.7" || r.Address != "10.2.0.7" ||
		r.Network != n.FQName || r.Owner != "task-1" || r.Node != "node-a" || r.Port != "port-1" ||
		r.Labels["app"] != "web" || !r.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("stored reservation %+v", r)
	}
	if res[0].ResourceVersion != stored.ModRevision || res[0].UUID != r.UUID {
		t.Fatalf("returned %+v, stored at %d", res[0], stored.ModRevision)
	}
}

func TestExplicitAddress(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newMemIPAM(t)
	n := testNet("net-e", "10.3.0.0/24", "fd03::/64")
	steps := []struct {
		name  string
		req   api.AllocateRequest
		want  []string
		err   error
		field string
		msg   []string
	}{
		{"honoured", api.AllocateRequest{Owner: "a", IP: "10.3.0.77"}, []string{"10.3.0.77"}, nil, "", nil},
		{"same owner again is idempotent", api.AllocateRequest{Owner: "a", IP: "10.3.0.77"}, []string{"10.3.0.77"}, nil, "", nil},
		{"other owner refused", api.AllocateRequest{Owner: "b", IP: "10.3.0.77"}, nil, api.ErrConflict, "ip", []string{"10.3.0.77", n.FQName, "owner a"}},
		{"ipv6 canonical form", api.AllocateRequest{Owner: "b", IP: "FD03:0:0::0042"}, []string{"fd03::42"}, nil, "", nil},
		{"ipv6 taken", api.AllocateRequest{Owner: "c", IP: "fd03::42"}, nil, api.ErrConflict, "ip", []string{"owner b"}},
		{"dual with ip", api.AllocateRequest{Owner: "d", IP: "fd03::99", Family: "dual"}, []string{"10.3.0.", "fd03::99"}, nil, "", nil},
	}
	for _, st := range steps {
		res, err := m.Allocate(ctx, n, st.req)
		if st.err != nil {
			wantAPIErr(t, err, st.err, st.field, st.msg...)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(res) != len(st.want) {
			t.Fatalf("%s: got %v, want %v", st.name, res, st.want)
		}
		for i, w := range st.want {
			if !strings.HasPrefix(res[i].Address, w) {
				t.Fatalf("%s: got %s, want %s", st.name, res[i].Address, w)
			}
		}
	}
	// Automatic allocation never returns an explicitly taken address.
	for range 250 {
		if a := alloc1(t, m, n, api.AllocateRequest{Owner: "auto"}); a.String() == "10.3.0.77" {
			t.Fatal("explicitly reserved address handed out again")
		}
	}
}

func TestQuarantine(t *testing.T) {
	ctx := context.Background()
	m, kv, clk := newMemIPAM(t)
	n := testNet("net-q", "10.4.0.0/29") // usable .2 - .6
	for range 5 {
		alloc1(t, m, n, api.AllocateRequest{Owner: "o"})
	}
	rel, err := m.Release(ctx, &n, api.ReleaseRequest{IP: "10.4.0.4"})
	if err != nil || len(rel) != 1 || rel[0].Address != "10.4.0.4" || rel[0].Owner != "o" {
		t.Fatalf("release: %v %v", rel, err)
	}
	qkey := "/weft/v1/ipam/quarantine/net-q/10.4.0.4"
	qkv, err := kv.Get(ctx, qkey)
	if err != nil {
		t.Fatalf("quarantine record: %v", err)
	}
	q, err := parseQuarantine(qkv.Value)
	if err != nil || !q.Until.Equal(clk.Now().Add(DefaultQuarantine)) || q.Owner != "o" {
		t.Fatalf("quarantine record %s: %+v %v", qkv.Value, q, err)
	}

	// The only free address is quarantined: exhausted, also from a fresh
	// instance (no cache) and with a node.
	fresh := New(kv, Config{Now: clk.Now})
	for _, inst := range []*IPAM{m, fresh} {
		_, err = inst.Allocate(ctx, n, api.AllocateRequest{Owner: "p"})
		wantAPIErr(t, err, api.ErrExhausted, "network", n.FQName, "quarantine")
	}
	clk.Advance(DefaultQuarantine - time.Nanosecond)
	_, err = m.Allocate(ctx, n, api.AllocateRequest{Owner: "p"})
	wantAPIErr(t, err, api.ErrExhausted, "network")

	clk.Advance(time.Nanosecond)
	if a := alloc1(t, m, n, api.AllocateRequest{Owner: "p"}); a.String() != "10.4.0.4" {
		t.Fatalf("got %s after quarantine, want 10.4.0.4", a)
	}
	if _, err := kv.Get(ctx, qkey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired quarantine record not removed on reuse: %v", err)
	}
}

func TestQuarantineLargeSubnet(t *testing.T) {
	ctx := context.Background()
	m, kv, clk := newMemIPAM(t)
	other := New(kv, Config{Now: clk.Now}) // second instance, stale cache
	n := testNet("net-ql", "10.5.0.0/26")  // 61 usable
	var first []netip.Addr
	for range 20 {
		first = append(first, alloc1(t, m, n, api.AllocateRequest{Owner: "old"}))
	}
	// Load the other instance's cache before the release.
	alloc1(t, other, n, api.AllocateRequest{Owner: "warm"})
	if rel, err := m.Release(ctx, &n, api.ReleaseRequest{Owner: "old"}); err != nil || len(rel) != 20 {
		t.Fatalf("release: %d %v", len(rel), err)
	}
	// 40 free addresses remain outside quarantine; take them all from both
	// instances: none may be a quarantined one.
	for i := range 40 {
		inst := m
		if i%2 == 1 {
			inst = other
		}
		a := alloc1(t, inst, n, api.AllocateRequest{Owner: "new"})
		if slices.Contains(first, a) {
			t.Fatalf("quarantined address %s handed out", a)
		}
	}
	_, err := other.Allocate(ctx, n, api.AllocateRequest{Owner: "new"})
	wantAPIErr(t, err, api.ErrExhausted, "network", "20 more in quarantine")

	// Explicit requests may take a quarantined address.
	if a := alloc1(t, other, n, api.AllocateRequest{Owner: "static", IP: first[0].String()}); a != first[0] {
		t.Fatalf("explicit got %s", a)
	}
	if _, err := kv.Get(ctx, quarantineKey(n.UUID, first[0])); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("quarantine record kept after explicit reuse: %v", err)
	}

	clk.Advance(DefaultQuarantine)
	got := map[netip.Addr]bool{}
	for range 19 {
		got[alloc1(t, m, n, api.AllocateRequest{Owner: "later"})] = true
	}
	for _, a := range first[1:] {
		if !got[a] {
			t.Fatalf("expired quarantined address %s not reused", a)
		}
	}
	if left, _, _ := kv.List(ctx, quarantineNetPrefix(n.UUID)); len(left) != 0 {
		t.Fatalf("%d quarantine records left after reuse", len(left))
	}
}

func TestQuarantineDisabled(t *testing.T) {
	ctx := context.Background()
	kv := store.NewMemory()
	m := New(kv, Config{Quarantine: -1})
	n := testNet("net-qd", "10.6.0.0/30") // one usable address: .2
	alloc1(t, m, n, api.AllocateRequest{Owner: "a"})
	if _, err := m.Release(ctx, &n, api.ReleaseRequest{Owner: "a"}); err != nil {
		t.Fatal(err)
	}
	if a := alloc1(t, m, n, api.AllocateRequest{Owner: "b"}); a.String() != "10.6.0.2" {
		t.Fatalf("got %s", a)
	}
}

func TestPruneQuarantine(t *testing.T) {
	ctx := context.Background()
	m, kv, clk := newMemIPAM(t)
	n := testNet("net-pq", "10.7.0.0/24")
	for range 100 {
		alloc1(t, m, n, api.AllocateRequest{Owner: "a"})
	}
	if _, err := m.Release(ctx, nil, api.ReleaseRequest{Owner: "a"}); err != nil {
		t.Fatal(err)
	}
	if c, err := m.PruneQuarantine(ctx, ""); err != nil || c != 0 {
		t.Fatalf("pruned %d %v before expiry", c, err)
	}
	clk.Advance(2 * DefaultQuarantine)
	if c, err := m.PruneQuarantine(ctx, n.UUID); err != nil || c != 100 {
		t.Fatalf("pruned %d %v, want 100", c, err)
	}
	if left, _, _ := kv.List(ctx, QuarantinePrefix); len(left) != 0 {
		t.Fatalf("%d records left", len(left))
	}
	alloc1(t, m, n, api.AllocateRequest{Owner: "b"})
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	m, kv, _ := newMemIPAM(t)
	n1 := testNet("net-1", "10.8.0.0/24")
	n2 := testNet("net-2", "10.9.0.0/24", "fd09::/64")
	var bAddr string
	for range 3 {
		alloc(t, m, n1, api.AllocateRequest{Owner: "a"})
		alloc(t, m, n2, api.AllocateRequest{Owner: "a", Family: "dual"})
		bAddr = alloc1(t, m, n1, api.AllocateRequest{Owner: "b"}).String()
	}
	unknown := "10.8.0.2"
	for storedAddrs(t, kv, n1.UUID)[netip.MustParseAddr(unknown)] {
		unknown = netip.MustParseAddr(unknown).Next().String()
	}
	tests := []struct {
		name  string
		n     *Network
		req   api.ReleaseRequest
		count int
		err   error
		field string
		msg   []string
	}{
		{"nothing to release by", &n1, api.ReleaseRequest{}, 0, api.ErrInvalid, "owner", nil},
		{"ip without network", nil, api.ReleaseRequest{IP: "10.8.0.2"}, 0, api.ErrInvalid, "network", nil},
		{"bad ip", &n1, api.ReleaseRequest{IP: "10.8.0"}, 0, api.ErrInvalid, "ip", nil},
		{"unknown address", &n1, api.ReleaseRequest{IP: unknown}, 0, api.ErrNotFound, "", []string{unknown, n1.FQName}},
		{"ip of another owner", &n1, api.ReleaseRequest{IP: bAddr, Owner: "zz"}, 0, api.ErrConflict, "owner", []string{"owner b"}},
		{"ip on another node", &n1, api.ReleaseRequest{IP: bAddr, Node: "zz"}, 0, api.ErrConflict, "node", []string{bAddr, "not zz"}},
		{"owner in one network", &n1, api.ReleaseRequest{Owner: "a"}, 3, nil, "", nil},
		{"owner again: idempotent", &n1, api.ReleaseRequest{Owner: "a"}, 0, nil, "", nil},
		{"owner in all networks", nil, api.ReleaseRequest{Owner: "a"}, 6, nil, "", nil},
		{"unknown owner", nil, api.ReleaseRequest{Owner: "nobody"}, 0, nil, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := m.Release(ctx, tc.n, tc.req)
			if tc.err != nil {
				wantAPIErr(t, err, tc.err, tc.field, tc.msg...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rel == nil || len(rel) != tc.count {
				t.Fatalf("released %d (%v), want %d", len(rel), rel, tc.count)
			}
			for _, r := range rel {
				if r.Owner != tc.req.Owner {
					t.Fatalf("released %+v", r)
				}
			}
		})
	}
	if c, _ := m.InUse(ctx, ""); c != 3 {
		t.Fatalf("in use %d, want 3 (owner b)", c)
	}
	if rs, _ := m.Reservations(ctx, n1.UUID); len(rs) != 3 || rs[0].Owner != "b" {
		t.Fatalf("left %v", rs)
	}
	q, _, _ := kv.List(ctx, QuarantinePrefix)
	if len(q) != 9 {
		t.Fatalf("%d quarantine records, want 9", len(q))
	}
	// An address in another form (IPv4-mapped) releases the subnet's form.
	rel, err := m.Release(ctx, &n1, api.ReleaseRequest{IP: "::ffff:" + bAddr, Owner: "b"})
	if err != nil || len(rel) != 1 || rel[0].Address != bAddr || rel[0].Owner != "b" {
		t.Fatalf("release of %s in IPv4-mapped form: %+v %v", bAddr, rel, err)
	}
	if _, err := kv.Get(ctx, quarantineKey(n1.UUID, netip.MustParseAddr(bAddr))); err != nil {
		t.Fatalf("quarantine record of %s: %v", bAddr, err)
	}
}

func TestReleaseByNode(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newMemIPAM(t)
	n1 := testNet("net-n1", "10.10.0.0/24")
	n2 := testNet("net-n2", "10.11.0.0/24")
	for _, n := range []Network{n1, n2} {
		for range 3 {
			alloc(t, m, n, api.AllocateRequest{Owner: "x", Node: "node-a"})
		}
		alloc(t, m, n, api.AllocateRequest{Owner: "y", Node: "node-b"})
		alloc(t, m, n, api.AllocateRequest{Owner: "z"})
	}
	if bs, _ := m.Blocks(ctx, ""); len(bs) != 4 {
		t.Fatalf("%d blocks, want 4", len(bs))
	}
	rel, err := m.Release(ctx, &n1, api.ReleaseRequest{Node: "node-a"})
	if err != nil || len(rel) != 3 {
		t.Fatalf("release node-a in n1: %d %v", len(rel), err)
	}
	for _, b := range mustBlocks(t, m, n1.UUID) {
		if b.Node == "node-a" {
			t.Fatalf("block %s of node-a left in n1", b.CIDR)
		}
	}
	if len(mustBlocks(t, m, n2.UUID)) != 2 {
		t.Fatal("blocks of the other network touched")
	}
	rel, err = m.Release(ctx, nil, api.ReleaseRequest{Node: "node-a"})
	if err != nil || len(rel) != 3 {
		t.Fatalf("release node-a everywhere: %d %v", len(rel), err)
	}
	for _, r := range rel {
		if r.Node != "node-a" || r.Network != n2.FQName {
			t.Fatalf("released %+v", r)
		}
	}
	bs, _ := m.Blocks(ctx, "")
	if len(bs) != 2 || bs[0].Node != "node-b" || bs[1].Node != "node-b" {
		t.Fatalf("blocks left %+v", bs)
	}
	if c, _ := m.InUse(ctx, ""); c != 4 {
		t.Fatalf("in use %d, want 4", c)
	}
	// Node and owner together: only that owner's addresses, blocks kept.
	rel, err = m.Release(ctx, nil, api.ReleaseRequest{Node: "node-b", Owner: "y"})
	if err != nil || len(rel) != 2 {
		t.Fatalf("release y on node-b: %d %v", len(rel), err)
	}
	if bs, _ := m.Blocks(ctx, ""); len(bs) != 2 {
		t.Fatalf("blocks released with owner+node: %v", bs)
	}
}

func mustBlocks(t *testing.T, m *IPAM, netUUID string) []api.Block {
	t.Helper()
	bs, err := m.Blocks(context.Background(), netUUID)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func TestIPv6(t *testing.T) {
	ctx := context.Background()
	m, kv, _ := newMemIPAM(t)
	n := testNet("net-6", "10.12.0.0/24", "fd12:3456::/64")
	p6 := netip.MustParsePrefix("fd12:3456::/64")
	seen := map[netip.Addr]bool{}
	for range 300 {
		a := alloc1(t, m, n, api.AllocateRequest{Owner: "o", Family: "ipv6"})
		if !p6.Contains(a) || a == p6.Addr() || a == p6.Addr().Next() || seen[a] {
			t.Fatalf("bad or duplicate IPv6 address %s", a)
		}
		seen[a] = true
	}
	res := alloc(t, m, n, api.AllocateRequest{Owner: "d", Family: "dual", Node: "node-6"})
	if len(res) != 2 || !strings.HasPrefix(res[0].Address, "10.12.0.") || !strings.HasPrefix(res[1].Address, "fd12:3456::") {
		t.Fatalf("dual: %+v", res)
	}
	blocks := mustBlocks(t, m, n.UUID)
	if len(blocks) != 2 {
		t.Fatalf("blocks %+v", blocks)
	}
	for i, r := range res {
		bp := netip.MustParsePrefix(blocks[i].CIDR)
		if !bp.Contains(netip.MustParseAddr(r.Address)) || blocks[i].Node != "node-6" {
			t.Fatalf("%s not in node block %s", r.Address, bp)
		}
	}
	b6, err := m.LeaseBlock(ctx, n, "node-7", "ipv6")
	if err != nil || b6.CIDR != "fd12:3456::40/122" {
		t.Fatalf("ipv6 block %v %v", b6.CIDR, err)
	}
	if len(storedAddrs(t, kv, n.UUID)) != 302 {
		t.Fatal("wrong reservation count")
	}
}

func TestDualStackAllOrNothing(t *testing.T) {
	ctx := context.Background()
	m, kv, _ := newMemIPAM(t)
	n := testNet("net-d", "10.13.0.0/24", "fd13::/126") // two IPv6 addresses
	alloc(t, m, n, api.AllocateRequest{Owner: "a", Family: "dual"})
	alloc(t, m, n, api.AllocateRequest{Owner: "b", Family: "dual"})
	_, err := m.Allocate(ctx, n, api.AllocateRequest{Owner: "c", Family: "dual"})
	wantAPIErr(t, err, api.ErrExhausted, "network", n.FQName, "IPv6", "fd13::/126")
	if c, _ := m.InUse(ctx, n.UUID); c != 4 {
		t.Fatalf("in use %d after failed dual allocation, want 4", c)
	}
	if q, _, _ := kv.List(ctx, QuarantinePrefix); len(q) != 0 {
		t.Fatalf("rolled back address quarantined: %v", q)
	}
	// The rolled-back IPv4 address is immediately available again.
	if a := alloc1(t, m, n, api.AllocateRequest{Owner: "d"}); !strings.HasPrefix(a.String(), "10.13.0.") {
		t.Fatalf("got %s", a)
	}
}

func TestMultipleSubnetsInOrder(t *testing.T) {
	m, _, _ := newMemIPAM(t)
	n := testNet("net-m", "10.14.0.0/30", "10.14.1.0/30") // one usable each
	if a := alloc1(t, m, n, api.AllocateRequest{Owner: "o"}); a.String() != "10.14.0.2" {
		t.Fatalf("first from %s", a)
	}
	if a := alloc1(t, m, n, api.AllocateRequest{Owner: "o"}); a.String() != "10.14.1.2" {
		t.Fatalf("second from %s", a)
	}
	_, err := m.Allocate(context.Background(), n, api.AllocateRequest{Owner: "o"})
	wantAPIErr(t, err, api.ErrExhausted, "network", "10.14.0.0/30, 10.14.1.0/30", "(2 of 2 in use)")
}

func TestBlocks(t *testing.T) {
	ctx := context.Background()
	m, kv, _ := newMemIPAM(t)
	n := testNet("net-b", "10.20.0.0/24", "10.21.0.0/28")
	n.Subnets[0].BlockPrefix = 26
	want := []string{"10.20.0.0/26", "10.20.0.64/26", "10.20.0.128/26", "10.20.0.192/26", "10.21.0.0/28"}
	for i, w := range want {
		b, err := m.LeaseBlock(ctx, n, "node-"+string(rune('a'+i)), "")
		if err != nil || b.CIDR != w || b.Node != "node-"+string(rune('a'+i)) || b.Network != n.FQName || b.Kind != api.KindBlock || b.UUID == "" {
			t.Fatalf("lease %d: %+v %v, want %s", i, b, err, w)
		}
		if _, err := kv.Get(ctx, "/weft/v1/obj/block/net-b/"+strings.Replace(w, "/", "_", 1)); err != nil {
			t.Fatalf("block key: %v", err)
		}
	}
	_, err := m.LeaseBlock(ctx, n, "node-z", "ipv4")
	wantAPIErr(t, err, api.ErrExhausted, "network", n.FQName, "block", "(5 of 5 leased)")

	errTests := []struct {
		name  string
		node  string
		fam   string
		err   error
		field string
	}{
		{"no node", "", "", api.ErrInvalid, "node"},
		{"bad family", "n", "dual", api.ErrInvalid, "family"},
		{"no such family", "n", "ipv6", api.ErrInvalid, "family"},
	}
	for _, tc := range errTests {
		_, err := m.LeaseBlock(ctx, n, tc.node, tc.fam)
		wantAPIErr(t, err, tc.err, tc.field)
	}

	// Returning blocks.
	alloc(t, m, n, api.AllocateRequest{Owner: "o", IP: "10.20.0.70"})
	relTests := []struct {
		name  string
		cidr  string
		node  string
		err   error
		field string
	}{
		{"bad cidr", "10.20.0.64", "node-b", api.ErrInvalid, "cidr"},
		{"host bits", "10.20.0.65/26", "node-b", api.ErrInvalid, "cidr"},
		{"no node", "10.20.0.64/26", "", api.ErrInvalid, "node"},
		{"other node", "10.20.0.64/26", "node-a", api.ErrConflict, "node"},
		{"in use", "10.20.0.64/26", "node-b", api.ErrInUse, ""},
		{"empty", "10.20.0.0/26", "node-a", nil, ""},
		{"already gone", "10.20.0.0/26", "node-a", nil, ""},
		{"never leased", "10.99.0.0/26", "node-a", nil, ""},
	}
	for _, tc := range relTests {
		err := m.ReleaseBlock(ctx, n, tc.cidr, tc.node)
		if tc.err == nil {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			continue
		}
		wantAPIErr(t, err, tc.err, tc.field)
	}
	// The refused release left the block unmarked and usable.
	bkv, _ := kv.Get(ctx, blockKey(n.UUID, netip.MustParsePrefix("10.20.0.64/26")))
	if strings.Contains(string(bkv.Value), labelReleasing) {
		t.Fatalf("block left marked: %s", bkv.Value)
	}
	if _, err := m.Release(ctx, &n, api.ReleaseRequest{IP: "10.20.0.70"}); err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseBlock(ctx, n, "10.20.0.64/26", "node-b"); err != nil {
		t.Fatalf("release emptied block: %v", err)
	}
	// The lowest free block is leased again.
	if b, err := m.LeaseBlock(ctx, n, "node-y", ""); err != nil || b.CIDR != "10.20.0.0/26" {
		t.Fatalf("re-lease %+v %v", b, err)
	}
	if bs := mustBlocks(t, m, n.UUID); len(bs) != 4 {
		t.Fatalf("%d blocks", len(bs))
	}
}

func TestNodeAllocation(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newMemIPAM(t)
	n := testNet("net-na", "10.30.0.0/24")
	n.Subnets[0].BlockPrefix = 28
	inBlockOf := func(a netip.Addr, node string) bool {
		for _, b := range mustBlocks(t, m, n.UUID) {
			if netip.MustParsePrefix(b.CIDR).Contains(a) {
				return b.Node == node
			}
		}
		return false
	}
	// Without node: outside blocks.
	a := alloc1(t, m, n, api.AllocateRequest{Owner: "free"})
	if inBlockOf(a, "") || len(mustBlocks(t, m, n.UUID)) != 0 {
		t.Fatal("allocation without node leased a block")
	}
	// With node: a block is leased and used; next ones come from it.
	nodeAddrs := map[netip.Addr]bool{}
	for range 20 {
		a := alloc1(t, m, n, api.AllocateRequest{Owner: "t", Node: "node-a"})
		if !inBlockOf(a, "node-a") {
			t.Fatalf("node allocation %s not in node-a's block", a)
		}
		if nodeAddrs[a] {
			t.Fatalf("node allocation %s handed out twice", a)
		}
		nodeAddrs[a] = true
	}
	if bs := mustBlocks(t, m, n.UUID); len(bs) != 2 {
		t.Fatalf("blocks after 20 node allocations: %d, want 2", len(bs))
	}
	// Without node: never inside the node's blocks while space remains.
	for range 100 {
		if a := alloc1(t, m, n, api.AllocateRequest{Owner: "free"}); inBlockOf(a, "node-a") {
			t.Fatalf("allocation without node took %s from node-a's block", a)
		}
	}
	// Fill everything outside blocks, then borrow from blocks.
	for {
		a, err := m.Allocate(ctx, n, api.AllocateRequest{Owner: "fill"})
		if errors.Is(err, api.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = a
	}
	if c, _ := m.InUse(ctx, n.UUID); c != 253 {
		t.Fatalf("in use %d, want 253 (all usable addresses, borrowed ones included)", c)
	}
}

func TestLeaseSkipsFilledBlocks(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newMemIPAM(t)
	n := testNet("net-fb", "10.33.0.0/27")
	n.Subnets[0].BlockPrefix = 28
	for i := 2; i < 16; i++ { // .0 network, .1 gateway
		alloc(t, m, n, api.AllocateRequest{Owner: "o", IP: fmt.Sprintf("10.33.0.%d", i)})
	}
	if b, err := m.LeaseBlock(ctx, n, "node-a", ""); err != nil || b.CIDR != "10.33.0.16/28" {
		t.Fatalf("leased %+v %v, want 10.33.0.16/28", b, err)
	}
	_, err := m.LeaseBlock(ctx, n, "node-b", "")
	wantAPIErr(t, err, api.ErrExhausted, "network", "1 of 2 leased, the others have no free address")
}

func TestNodeBorrowsWhenNoBlockLeft(t *testing.T) {
	m, _, _ := newMemIPAM(t)
	n := testNet("net-nb", "10.31.0.0/28") // one block: the whole subnet
	if _, err := m.LeaseBlock(context.Background(), n, "node-a", ""); err != nil {
		t.Fatal(err)
	}
	a := alloc1(t, m, n, api.AllocateRequest{Owner: "t", Node: "node-b"})
	if !netip.MustParsePrefix("10.31.0.0/28").Contains(a) {
		t.Fatalf("got %s", a)
	}
}

func TestReleasingBlockIsSkipped(t *testing.T) {
	ctx := context.Background()
	m, kv, clk := newMemIPAM(t)
	n := testNet("net-rb", "10.32.0.0/28", "10.32.1.0/28")
	n.Subnets[0].BlockPrefix = 28
	n.Subnets[1].BlockPrefix = 28
	b, err := m.LeaseBlock(ctx, n, "node-a", "")
	if err != nil {
		t.Fatal(err)
	}
	key := blockKey(n.UUID, netip.MustParsePrefix(b.CIDR))
	// mark simulates a ReleaseBlock stopped between marking and deleting.
	mark := func() {
		t.Helper()
		bkv, _ := kv.Get(ctx, key)
		e, _ := decodeBlock(bkv)
		marked, _ := blockValue(e.block, clk.Now())
		if _, err := kv.Txn(ctx, []store.Cmp{store.Unchanged(bkv)}, []store.Op{store.Put(key, marked)}); err != nil {
			t.Fatal(err)
		}
	}
	isMarked := func() bool {
		bkv, _ := kv.Get(ctx, key)
		return strings.Contains(string(bkv.Value), labelReleasing)
	}
	inBlock := func(a netip.Addr) bool { return strings.HasPrefix(a.String(), "10.32.0.") }

	mark()
	// Automatic allocation (on a stale cache) does not land in it.
	for range 3 {
		if a := alloc1(t, m, n, api.AllocateRequest{Owner: "o", Node: "node-a"}); inBlock(a) {
			t.Fatalf("allocated %s in a block being released", a)
		}
	}
	// An abandoned mark is cleared by the next allocation in the block.
	clk.Advance(releaseMarkTTL)
	if a := alloc1(t, m, n, api.AllocateRequest{Owner: "o", Node: "node-a"}); !inBlock(a) || isMarked() {
		t.Fatalf("allocated %s; block still marked: %v", a, isMarked())
	}
	// An explicit allocation in a marked block cancels the release.
	mark()
	explicit := netip.MustParseAddr("10.32.0.2")
	for storedAddrs(t, kv, n.UUID)[explicit] {
		explicit = explicit.Next()
	}
	alloc(t, m, n, api.AllocateRequest{Owner: "s", IP: explicit.String()})
	if isMarked() {
		t.Fatal("explicit allocation did not clear the releasing mark")
	}
	err = m.ReleaseBlock(ctx, n, b.CIDR, "node-a")
	wantAPIErr(t, err, api.ErrInUse, "", b.CIDR, "2 reservation")
	if isMarked() {
		t.Fatal("refused release left the mark")
	}
}

func TestForgetNetwork(t *testing.T) {
	ctx := context.Background()
	m, kv, _ := newMemIPAM(t)
	n := testNet("net-f", "10.40.0.0/16")
	keep := testNet("net-f2", "10.41.0.0/24")
	for range 150 {
		alloc(t, m, n, api.AllocateRequest{Owner: "o", Node: "node-a"})
	}
	alloc(t, m, keep, api.AllocateRequest{Owner: "o", Node: "node-a"})
	if _, err := m.Release(ctx, &n, api.ReleaseRequest{Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := m.InUse(ctx, n.UUID); c != 0 {
		t.Fatalf("in use %d", c)
	}
	if err := m.ForgetNetwork(ctx, n.UUID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{blockNetPrefix(n.UUID), quarantineNetPrefix(n.UUID)} {
		if kvs, _, _ := kv.List(ctx, p); len(kvs) != 0 {
			t.Fatalf("%d keys left under %s", len(kvs), p)
		}
	}
	if bs := mustBlocks(t, m, keep.UUID); len(bs) != 1 {
		t.Fatal("other network's block deleted")
	}
	wantAPIErr(t, m.ForgetNetwork(ctx, ""), api.ErrInvalid, "network")
}

// TestConcurrentMemory is the quick (in-memory) form of the etcd
// acceptance test: 2 instances × 8 goroutines.
func TestConcurrentMemory(t *testing.T) {
	kv := store.NewMemory()
	n := testNet("net-cm", "10.50.0.0/22")
	got := concurrentAllocate(t, []store.KV{kv, kv}, n, 8, 1000, api.AllocateRequest{})
	if len(got) != 1000 || len(storedAddrs(t, kv, n.UUID)) != 1000 {
		t.Fatalf("got %d, stored %d", len(got), len(storedAddrs(t, kv, n.UUID)))
	}
}

// concurrentAllocate runs perInst goroutines on one IPAM per store client,
// allocating total addresses, and returns them, failing on duplicates.
func concurrentAllocate(t *testing.T, kvs []store.KV, n Network, perInst, total int, tmpl api.AllocateRequest) map[netip.Addr]bool {
	t.Helper()
	ctx := context.Background()
	workers := perInst * len(kvs)
	var (
		mu   sync.Mutex
		got  = map[netip.Addr]bool{}
		errs []error
		wg   sync.WaitGroup
	)
	insts := make([]*IPAM, len(kvs))
	for i, kv := range kvs {
		insts[i] = New(kv, Config{})
	}
	for w := range workers {
		count := total / workers
		if w < total%workers {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := insts[w%len(insts)]
			for j := range count {
				req := tmpl
				req.Owner = fmt.Sprintf("w%d-%d", w, j)
				res, err := m.Allocate(ctx, n, req)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, r := range res {
					a := netip.MustParseAddr(r.Address)
					if got[a] {
						errs = append(errs, errors.New("duplicate address "+r.Address))
					}
					got[a] = true
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, m := range insts {
		c := m.cache(n.UUID)
		t.Logf("instance %d: %d conflicts, %d cache loads", i, c.conflicts.Load(), c.refreshes.Load())
	}
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	return got
}
