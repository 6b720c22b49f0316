package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// fakeClock is an injectable, advanceable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newMemIPAM returns an IPAM on a fresh in-memory store with a fake clock.
func newMemIPAM(t testing.TB) (*IPAM, *store.Memory, *fakeClock) {
	t.Helper()
	kv := store.NewMemory()
	t.Cleanup(func() { _ = kv.Close() })
	clk := newFakeClock()
	return New(kv, Config{Now: clk.Now}), kv, clk
}

// testNet builds a network with the given subnet CIDRs.
func testNet(uuid string, cidrs ...string) Network {
	n := Network{UUID: uuid, FQName: "default-domain:default-project:" + uuid}
	for _, c := range cidrs {
		n.Subnets = append(n.Subnets, api.Subnet{CIDR: c})
	}
	return n
}

// wantAPIErr checks that err wraps sentinel, names field (when not empty)
// and mentions every substring.
func wantAPIErr(t testing.TB, err error, sentinel error, field string, substrs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	var ae *api.Error
	if field != "" {
		if !errors.As(err, &ae) {
			t.Fatalf("error %q is not an *api.Error", err)
		}
		if ae.Field != field {
			t.Fatalf("error %q names field %q, want %q", err, ae.Field, field)
		}
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}

// alloc allocates and fails the test on error.
func alloc(t testing.TB, m *IPAM, n Network, req api.AllocateRequest) []api.IPReservation {
	t.Helper()
	res, err := m.Allocate(context.Background(), n, req)
	if err != nil {
		t.Fatalf("allocate %+v: %v", req, err)
	}
	return res
}

// alloc1 allocates one address and returns it.
func alloc1(t testing.TB, m *IPAM, n Network, req api.AllocateRequest) netip.Addr {
	t.Helper()
	res := alloc(t, m, n, req)
	if len(res) != 1 {
		t.Fatalf("allocate %+v: got %d reservations, want 1", req, len(res))
	}
	return netip.MustParseAddr(res[0].Address)
}

// storedAddrs returns the addresses of the stored reservation keys of a
// network, failing on duplicates.
func storedAddrs(t testing.TB, kv store.KV, netUUID string) map[netip.Addr]bool {
	t.Helper()
	kvs, _, err := kv.List(context.Background(), reservationNetPrefix(netUUID))
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]bool{}
	for _, r := range kvs {
		_, name, ok := splitKey(ReservationPrefix, r.Key)
		if !ok {
			t.Fatalf("malformed key %q", r.Key)
		}
		a := netip.MustParseAddr(name)
		if out[a] {
			t.Fatalf("address %s stored twice", a)
		}
		out[a] = true
	}
	return out
}

// Shared embedded etcd for the tests and benchmarks that need a real one.
var (
	etcdOnce sync.Once
	etcdSrv  *store.Embedded
	etcdDir  string
	etcdErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if etcdSrv != nil {
		etcdSrv.Close()
	}
	if etcdDir != "" {
		_ = os.RemoveAll(etcdDir)
	}
	os.Exit(code)
}

// sharedEtcd starts (once) an embedded etcd and returns a new client to
// it, closed at the end of the test.
func sharedEtcd(tb testing.TB) store.KV {
	tb.Helper()
	etcdOnce.Do(func() {
		etcdDir, etcdErr = os.MkdirTemp("", "weft-ipam-etcd-")
		if etcdErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		etcdSrv, etcdErr = store.StartEmbedded(ctx, store.EmbedConfig{
			DataDir:       etcdDir,
			ClientURL:     "http://127.0.0.1:0",
			UnsafeNoFsync: true,
		})
	})
	if etcdErr != nil {
		tb.Fatalf("start embedded etcd: %v", etcdErr)
	}
	cli, err := etcdSrv.Client(context.Background())
	if err != nil {
		tb.Fatalf("etcd client: %v", err)
	}
	tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

var netSeq struct {
	sync.Mutex
	n int
}

// uniqueUUID returns a network uuid unused in the shared etcd.
func uniqueUUID(prefix string) string {
	netSeq.Lock()
	defer netSeq.Unlock()
	netSeq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), netSeq.n)
}
