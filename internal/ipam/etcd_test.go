package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// TestConcurrentAllocateEtcd is the acceptance test: 8 goroutines on each of
// 2 IPAM instances, each with its own client of one embedded etcd, allocate
// 2,000 addresses of a /20 at once. No address may be handed out twice.
func TestConcurrentAllocateEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded etcd")
	}
	kv1, kv2 := sharedEtcd(t), sharedEtcd(t)
	n := testNet(uniqueUUID("net-c"), "10.64.0.0/20")
	start := time.Now()
	got := concurrentAllocate(t, []store.KV{kv1, kv2}, n, 8, 2000, api.AllocateRequest{})
	t.Logf("2000 concurrent allocations in %v", time.Since(start))
	if len(got) != 2000 {
		t.Fatalf("got %d distinct addresses, want 2000", len(got))
	}
	stored := storedAddrs(t, kv1, n.UUID)
	if len(stored) != 2000 {
		t.Fatalf("%d reservations stored, want 2000", len(stored))
	}
	p := netip.MustParsePrefix("10.64.0.0/20")
	for a := range got {
		if !stored[a] {
			t.Fatalf("returned address %s not stored", a)
		}
		if !p.Contains(a) || a == p.Addr() || a == p.Addr().Next() || a == lastAddr(p) {
			t.Fatalf("bad address %s", a)
		}
	}
}

// TestConcurrentLeaseBlockEtcd: 16 goroutines on 2 instances lease blocks
// of a subnet holding 16 of them, twice each: every block is leased once,
// the other half of the calls find the network exhausted.
func TestConcurrentLeaseBlockEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded etcd")
	}
	ctx := context.Background()
	kvs := []store.KV{sharedEtcd(t), sharedEtcd(t)}
	insts := []*IPAM{New(kvs[0], Config{}), New(kvs[1], Config{})}
	n := testNet(uniqueUUID("net-lb"), "10.65.0.0/22") // 16 × /26
	subnetP := netip.MustParsePrefix("10.65.0.0/22")
	var (
		mu        sync.Mutex
		leased    = map[string]string{}
		exhausted int
		errs      []error
		wg        sync.WaitGroup
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				node := fmt.Sprintf("node-%d", w)
				b, err := insts[w%2].LeaseBlock(ctx, n, node, "ipv4")
				mu.Lock()
				switch {
				case errors.Is(err, api.ErrExhausted):
					exhausted++
				case err != nil:
					errs = append(errs, err)
				default:
					if prev, dup := leased[b.CIDR]; dup {
						errs = append(errs, fmt.Errorf("block %s leased to %s and %s", b.CIDR, prev, node))
					}
					leased[b.CIDR] = node
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	if len(leased) != 16 || exhausted != 16 {
		t.Fatalf("%d blocks leased, %d exhausted; want 16 and 16", len(leased), exhausted)
	}
	stored, err := insts[0].Blocks(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 16 {
		t.Fatalf("%d blocks stored", len(stored))
	}
	for _, b := range stored {
		p := netip.MustParsePrefix(b.CIDR)
		if p.Bits() != 26 || p.Masked() != p || !containsPrefix(subnetP, p) {
			t.Fatalf("block %s misaligned or outside %s", p, subnetP)
		}
		if leased[b.CIDR] != b.Node {
			t.Fatalf("block %s stored for %s, returned to %s", b.CIDR, b.Node, leased[b.CIDR])
		}
	}
}

// TestConcurrentNodeAllocationEtcd mixes node allocations (and their
// block leases), plain ones and block releases on 2 instances.
func TestConcurrentNodeAllocationEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded etcd")
	}
	ctx := context.Background()
	kvs := []store.KV{sharedEtcd(t), sharedEtcd(t)}
	n := testNet(uniqueUUID("net-cn"), "10.66.0.0/22")
	n.Subnets[0].BlockPrefix = 28
	insts := []*IPAM{New(kvs[0], Config{}), New(kvs[1], Config{})}
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := insts[w%2]
			node := fmt.Sprintf("node-%d", w%4)
			for j := range 40 {
				req := api.AllocateRequest{Owner: fmt.Sprintf("o-%d-%d", w, j)}
				if j%2 == 0 {
					req.Node = node
				}
				if _, err := m.Allocate(ctx, n, req); err != nil {
					errc <- err
					return
				}
			}
			// Try to return every block of the node: refused while used.
			bs, err := m.Blocks(ctx, n.UUID)
			if err != nil {
				errc <- err
				return
			}
			for _, b := range bs {
				if b.Node == node {
					if err := m.ReleaseBlock(ctx, n, b.CIDR, node); err != nil && !errors.Is(err, api.ErrInUse) {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	rs, err := insts[0].Reservations(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 320 {
		t.Fatalf("%d reservations, want 320", len(rs))
	}
	if got := storedAddrs(t, kvs[0], n.UUID); len(got) != 320 {
		t.Fatalf("%d stored addresses", len(got))
	}
	bs, _ := insts[0].Blocks(ctx, n.UUID)
	for _, r := range rs {
		if r.Node == "" {
			continue
		}
		a := netip.MustParseAddr(r.Address)
		covered := false
		for _, b := range bs {
			if netip.MustParsePrefix(b.CIDR).Contains(a) {
				covered = true
			}
		}
		if !covered {
			t.Fatalf("node address %s (%s) outside any block: a non-empty block was released", a, r.Node)
		}
	}
}

func BenchmarkAllocate(b *testing.B) {
	for _, bc := range []struct {
		name string
		kv   func(testing.TB) store.KV
	}{
		{"memory", func(tb testing.TB) store.KV { return store.NewMemory() }},
		{"etcd", sharedEtcd},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			m := New(bc.kv(b), Config{})
			n := testNet(uniqueUUID("bench-alloc"), "10.0.0.0/8", "fd00:bec::/64")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := m.Allocate(ctx, n, api.AllocateRequest{Owner: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLeaseBlock(b *testing.B) {
	for _, bc := range []struct {
		name string
		kv   func(testing.TB) store.KV
	}{
		{"memory", func(tb testing.TB) store.KV { return store.NewMemory() }},
		{"etcd", sharedEtcd},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			m := New(bc.kv(b), Config{})
			// IPv6: an IPv4 /8 holds only 262,144 /26 blocks, fewer than
			// the in-memory run leases.
			n := testNet(uniqueUUID("bench-block"), "fd00:b10c::/64")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := m.LeaseBlock(ctx, n, fmt.Sprintf("node-%d", i), "ipv6"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
