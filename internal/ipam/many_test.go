package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// countingKV counts the transactions that write.
type countingKV struct {
	store.KV
	mu   sync.Mutex
	txns int
}

func (c *countingKV) Txn(ctx context.Context, cmps []store.Cmp, ops []store.Op) (int64, error) {
	if len(ops) > 0 {
		c.mu.Lock()
		c.txns++
		c.mu.Unlock()
	}
	return c.KV.Txn(ctx, cmps, ops)
}

func (c *countingKV) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txns
}

func TestAllocateCount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cidrs   []string
		block   int // block prefix of every subnet; 0 for the default
		req     api.AllocateRequest
		want    int // reservations
		maxTxns int // transactions that write, block leases included
	}{
		{name: "outside blocks", cidrs: []string{"10.60.0.0/24"}, req: api.AllocateRequest{Count: 40}, want: 40, maxTxns: 2},
		{name: "node blocks of 16, leased as needed", cidrs: []string{"10.61.0.0/24"}, block: 28, req: api.AllocateRequest{Node: "n1", Count: 40}, want: 40, maxTxns: 12},
		{name: "dual stack: count per family", cidrs: []string{"10.62.0.0/24", "fd00:62::/120"}, req: api.AllocateRequest{Family: "dual", Count: 10}, want: 20, maxTxns: 2},
		{name: "fewer left than asked", cidrs: []string{"10.63.0.0/28"}, req: api.AllocateRequest{Count: 100}, want: 13, maxTxns: 4},
		{name: "one", cidrs: []string{"10.64.0.0/24"}, req: api.AllocateRequest{Count: 1}, want: 1, maxTxns: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := &countingKV{KV: store.NewMemory()}
			t.Cleanup(func() { _ = kv.Close() })
			m := New(kv, Config{})
			n := testNet("net-count", tc.cidrs...)
			for i := range n.Subnets {
				n.Subnets[i].BlockPrefix = tc.block
			}
			req := tc.req
			req.Owner = "spare:n1"
			res := alloc(t, m, n, req)
			if len(res) != tc.want {
				t.Fatalf("got %d reservations, want %d", len(res), tc.want)
			}
			seen := map[netip.Addr]bool{}
			for _, r := range res {
				a := netip.MustParseAddr(r.Address)
				if seen[a] {
					t.Fatalf("%s handed out twice", a)
				}
				seen[a] = true
				if r.Owner != "spare:n1" || r.Node != req.Node || r.ResourceVersion == 0 {
					t.Fatalf("reservation %+v", r)
				}
			}
			stored := storedAddrs(t, kv, n.UUID)
			if len(stored) != len(seen) {
				t.Fatalf("stored %d reservations, answered %d", len(stored), len(seen))
			}
			for a := range seen {
				if !stored[a] {
					t.Fatalf("%s answered but not stored", a)
				}
			}
			if got := kv.count(); got > tc.maxTxns {
				t.Fatalf("%d transactions, want at most %d", got, tc.maxTxns)
			}
			if req.Node != "" {
				for _, b := range mustBlocks(t, m, n.UUID) {
					if b.Node != req.Node {
						t.Fatalf("block %+v leased for another node", b)
					}
				}
			}
		})
	}
}

func TestAllocateCountValidation(t *testing.T) {
	m, _, _ := newMemIPAM(t)
	n := testNet("net-countv", "10.65.0.0/24")
	ctx := context.Background()
	for _, tc := range []struct {
		req  api.AllocateRequest
		want string
	}{
		{api.AllocateRequest{Owner: "o", Count: -1}, "out of range"},
		{api.AllocateRequest{Owner: "o", Count: api.MaxAllocateCount + 1}, "out of range"},
		{api.AllocateRequest{Owner: "o", Count: 2, IP: "10.65.0.9"}, "explicit address"},
	} {
		_, err := m.Allocate(ctx, n, tc.req)
		wantAPIErr(t, err, api.ErrInvalid, "count", tc.want)
	}
	// A full network: exhausted, nothing reserved.
	full := testNet("net-countfull", "10.66.0.0/30")
	alloc(t, m, full, api.AllocateRequest{Owner: "o", Count: 2})
	_, err := m.Allocate(ctx, full, api.AllocateRequest{Owner: "o", Count: 2})
	wantAPIErr(t, err, api.ErrExhausted, "")
}

// Batches from several goroutines and two IPAM instances on one store
// never hand out an address twice.
func TestAllocateCountConcurrent(t *testing.T) {
	kv := store.NewMemory()
	t.Cleanup(func() { _ = kv.Close() })
	n := testNet("net-countc", "10.67.0.0/22")
	n.Subnets[0].BlockPrefix = 26
	insts := []*IPAM{New(kv, Config{}), New(kv, Config{})}
	var (
		mu   sync.Mutex
		got  = map[netip.Addr]string{}
		errs []error
		wg   sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for j := range 5 {
				owner := fmt.Sprintf("w%d-%d", w, j)
				res, err := insts[w%2].Allocate(context.Background(), n, api.AllocateRequest{Owner: owner, Node: fmt.Sprintf("n%d", w%3), Count: 16})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, r := range res {
					a := netip.MustParseAddr(r.Address)
					if prev, ok := got[a]; ok {
						errs = append(errs, fmt.Errorf("%s handed to %s and %s", a, prev, owner))
					}
					got[a] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(got) != 8*5*16 || len(storedAddrs(t, kv, n.UUID)) != len(got) {
		t.Fatalf("answered %d, stored %d, want %d", len(got), len(storedAddrs(t, kv, n.UUID)), 8*5*16)
	}
}
