package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The conformance suite runs every case against Memory and against one real
// embedded etcd shared by the whole test binary. Cases on etcd are isolated
// by key prefix and run sequentially, since compaction is store-wide.

var (
	etcdOnce sync.Once
	etcdSrv  *Embedded
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

// sharedEtcd starts the embedded server on first use.
func sharedEtcd(t *testing.T) *Embedded {
	t.Helper()
	etcdOnce.Do(func() {
		etcdDir, etcdErr = os.MkdirTemp("", "weft-store-etcd-")
		if etcdErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		etcdSrv, etcdErr = StartEmbedded(ctx, EmbedConfig{
			DataDir:       etcdDir,
			ClientURL:     "http://127.0.0.1:0",
			StartTimeout:  20 * time.Second,
			UnsafeNoFsync: true,
		})
	})
	if etcdErr != nil {
		t.Fatalf("embedded etcd: %v", etcdErr)
	}
	return etcdSrv
}

type backend struct {
	name string
	open func(t *testing.T) KV
}

var prefixSeq atomic.Int64

// testPrefix is a key prefix unique to the test, so cases on the shared etcd
// do not see each other's keys.
func testPrefix(t *testing.T) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/t/%s-%d", name, prefixSeq.Add(1))
}

func backends() []backend {
	return []backend{
		{"memory", func(t *testing.T) KV {
			m := NewMemory()
			t.Cleanup(func() { _ = m.Close() })
			return m
		}},
		{"etcd", func(t *testing.T) KV {
			srv := sharedEtcd(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e, err := srv.Client(ctx)
			if err != nil {
				t.Fatalf("dial embedded etcd: %v", err)
			}
			t.Cleanup(func() { _ = e.Close() })
			return e
		}},
		{"etcd-local", func(t *testing.T) KV {
			e := sharedEtcd(t).LocalClient()
			t.Cleanup(func() { _ = e.Close() })
			return e
		}},
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustTxn(t *testing.T, kv KV, cmps []Cmp, ops []Op) int64 {
	t.Helper()
	rev, err := kv.Txn(testCtx(t), cmps, ops)
	if err != nil {
		t.Fatalf("txn %v %v: %v", cmps, ops, err)
	}
	return rev
}

func mustGet(t *testing.T, kv KV, key string) KeyValue {
	t.Helper()
	got, err := kv.Get(testCtx(t), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return got
}

func mustRev(t *testing.T, kv KV) int64 {
	t.Helper()
	rev, err := kv.Revision(testCtx(t))
	if err != nil {
		t.Fatalf("revision: %v", err)
	}
	return rev
}

func wantNotFound(t *testing.T, kv KV, key string) {
	t.Helper()
	if got, err := kv.Get(testCtx(t), key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get %q = %+v, %v; want ErrNotFound", key, got, err)
	}
}

func wantKV(t *testing.T, kv KV, key, value string, create, mod int64) {
	t.Helper()
	got := mustGet(t, kv, key)
	if string(got.Value) != value || got.CreateRevision != create || got.ModRevision != mod {
		t.Fatalf("get %q = %s; want %q create=%d mod=%d", key, fmtKV(got), value, create, mod)
	}
}

func fmtKV(kv KeyValue) string {
	return fmt.Sprintf("%s=%q c=%d m=%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision)
}

// fmtEvent renders an event relative to prefix p for comparisons.
func fmtEvent(p string, ev Event) string {
	s := fmt.Sprintf("%s %s", ev.Type, fmtKV(ev.KV))
	if ev.PrevKV != nil {
		s += " prev(" + fmtKV(*ev.PrevKV) + ")"
	}
	return strings.ReplaceAll(s, p, "")
}

// collect reads responses until it has at least n events, failing on an
// error response, a closed channel or a timeout.
func collect(t *testing.T, ch <-chan WatchResponse, n int) []Event {
	t.Helper()
	var evs []Event
	timeout := time.After(5 * time.Second)
	for len(evs) < n {
		select {
		case resp, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(evs), n)
			}
			if resp.Err != nil {
				t.Fatalf("watch error after %d of %d events: %v", len(evs), n, resp.Err)
			}
			evs = append(evs, resp.Events...)
		case <-timeout:
			t.Fatalf("timed out after %d of %d events", len(evs), n)
		}
	}
	return evs
}

func wantEvents(t *testing.T, p string, got []Event, want []string) {
	t.Helper()
	gs := make([]string, len(got))
	for i, ev := range got {
		gs[i] = fmtEvent(p, ev)
	}
	if strings.Join(gs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(gs, "\n"), strings.Join(want, "\n"))
	}
}

// wantCompacted expects one ErrCompacted response, then a closed channel.
func wantCompacted(t *testing.T, ch <-chan WatchResponse) {
	t.Helper()
	select {
	case resp, ok := <-ch:
		if !ok || !errors.Is(resp.Err, ErrCompacted) || len(resp.Events) != 0 {
			t.Fatalf("first response = %+v (open=%v); want ErrCompacted", resp, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for ErrCompacted")
	}
	select {
	case resp, ok := <-ch:
		if ok {
			t.Fatalf("response after ErrCompacted: %+v", resp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ErrCompacted")
	}
}

var conformance = []struct {
	name string
	run  func(t *testing.T, kv KV, p string)
}{
	{"GetMissing", func(t *testing.T, kv KV, p string) {
		wantNotFound(t, kv, p+"/missing")
	}},
	{"CreateIfAbsent", func(t *testing.T, kv KV, p string) {
		k := p + "/k"
		r1 := mustTxn(t, kv, []Cmp{Absent(k)}, []Op{Put(k, []byte("v1"))})
		wantKV(t, kv, k, "v1", r1, r1)
		rev, err := kv.Txn(testCtx(t), []Cmp{Absent(k)}, []Op{Put(k, []byte("v2")), Put(p+"/other", []byte("x"))})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("second create = %d, %v; want ErrConflict", rev, err)
		}
		wantKV(t, kv, k, "v1", r1, r1)
		wantNotFound(t, kv, p+"/other")
		if got := mustRev(t, kv); got != r1 {
			t.Fatalf("revision after conflict = %d; want %d", got, r1)
		}
	}},
	{"Unchanged", func(t *testing.T, kv KV, p string) {
		k := p + "/k"
		r1 := mustTxn(t, kv, nil, []Op{Put(k, []byte("v1"))})
		kv1 := mustGet(t, kv, k)
		r2 := mustTxn(t, kv, []Cmp{Unchanged(kv1)}, []Op{Put(k, []byte("v2"))})
		wantKV(t, kv, k, "v2", r1, r2)
		if _, err := kv.Txn(testCtx(t), []Cmp{Unchanged(kv1)}, []Op{Put(k, []byte("v3"))}); !errors.Is(err, ErrConflict) {
			t.Fatalf("txn on stale read: %v; want ErrConflict", err)
		}
		if _, err := kv.Txn(testCtx(t), []Cmp{Absent(k)}, nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("absent on present key: %v; want ErrConflict", err)
		}
		kv2 := mustGet(t, kv, k)
		r3 := mustTxn(t, kv, []Cmp{Unchanged(kv2)}, []Op{Delete(k)})
		wantNotFound(t, kv, k)
		if _, err := kv.Txn(testCtx(t), []Cmp{Unchanged(kv2)}, []Op{Put(k, []byte("v4"))}); !errors.Is(err, ErrConflict) {
			t.Fatalf("unchanged on deleted key: %v; want ErrConflict", err)
		}
		r4 := mustTxn(t, kv, []Cmp{Absent(k)}, []Op{Put(k, []byte("v5"))})
		if r4 != r3+1 {
			t.Fatalf("recreate at %d; want %d", r4, r3+1)
		}
		wantKV(t, kv, k, "v5", r4, r4) // a new life of the key
	}},
	{"MultiOpAtomicity", func(t *testing.T, kv KV, p string) {
		a, b, c := p+"/a", p+"/b", p+"/c"
		r1 := mustTxn(t, kv, nil, []Op{Put(a, []byte("a1")), Put(b, []byte("b1"))})
		wantKV(t, kv, a, "a1", r1, r1)
		wantKV(t, kv, b, "b1", r1, r1)
		ka := mustGet(t, kv, a)
		r2 := mustTxn(t, kv, []Cmp{Unchanged(ka), Absent(c)},
			[]Op{Put(a, []byte("a2")), Delete(b), Put(c, []byte("c1"))})
		if r2 != r1+1 {
			t.Fatalf("txn revision %d; want %d", r2, r1+1)
		}
		wantKV(t, kv, a, "a2", r1, r2)
		wantNotFound(t, kv, b)
		wantKV(t, kv, c, "c1", r2, r2)
		// One stale condition among good ones: nothing is written.
		kc := mustGet(t, kv, c)
		_, err := kv.Txn(testCtx(t), []Cmp{Unchanged(kc), Unchanged(ka), Absent(b)},
			[]Op{Put(a, []byte("a3")), Put(b, []byte("b2")), Delete(c)})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("txn with stale cmp: %v; want ErrConflict", err)
		}
		wantKV(t, kv, a, "a2", r1, r2)
		wantNotFound(t, kv, b)
		wantKV(t, kv, c, "c1", r2, r2)
		if got := mustRev(t, kv); got != r2 {
			t.Fatalf("revision after failed txn = %d; want %d", got, r2)
		}
	}},
	{"DeleteMissing", func(t *testing.T, kv KV, p string) {
		r0 := mustTxn(t, kv, nil, []Op{Put(p+"/k", []byte("v"))})
		rev := mustTxn(t, kv, nil, []Op{Delete(p + "/missing")})
		if rev != r0 {
			t.Fatalf("delete of missing key moved revision %d -> %d", r0, rev)
		}
		if rev := mustTxn(t, kv, nil, nil); rev != r0 {
			t.Fatalf("empty txn = %d; want current revision %d", rev, r0)
		}
		wantNotFound(t, kv, p+"/missing")
	}},
	{"ListSortedPrefix", func(t *testing.T, kv KV, p string) {
		for _, k := range []string{"/ab", "/a/2", "/a/10", "/a", "/a/1", "/b/1"} {
			mustTxn(t, kv, nil, []Op{Put(p+k, []byte(k))})
		}
		cur := mustRev(t, kv)
		for _, tc := range []struct {
			prefix string
			want   string
		}{
			{"/a/", "/a/1 /a/10 /a/2"},
			{"/a/1", "/a/1 /a/10"},
			{"/a/10", "/a/10"},
			{"/a", "/a /a/1 /a/10 /a/2 /ab"},
			{"/ab", "/ab"},
			{"/c", ""},
			{"", "/a /a/1 /a/10 /a/2 /ab /b/1"},
		} {
			kvs, rev, err := kv.List(testCtx(t), p+tc.prefix)
			if err != nil {
				t.Fatalf("list %q: %v", tc.prefix, err)
			}
			var keys []string
			for _, e := range kvs {
				k := strings.TrimPrefix(e.Key, p)
				if string(e.Value) != k {
					t.Errorf("list %q: %s has value %q", tc.prefix, e.Key, e.Value)
				}
				keys = append(keys, k)
			}
			if got := strings.Join(keys, " "); got != tc.want {
				t.Errorf("list %q = %q; want %q", tc.prefix, got, tc.want)
			}
			if rev != cur {
				t.Errorf("list %q at revision %d; want %d", tc.prefix, rev, cur)
			}
		}
	}},
	{"WatchReplay", func(t *testing.T, kv KV, p string) {
		w := p + "/w/"
		mustTxn(t, kv, nil, []Op{Put(w+"old", []byte("o"))})
		r0 := mustRev(t, kv)
		r1 := mustTxn(t, kv, nil, []Op{Put(w+"k1", []byte("a"))})
		r2 := mustTxn(t, kv, nil, []Op{Put(w+"k2", []byte("b"))})
		mustTxn(t, kv, nil, []Op{Put(p+"/x", []byte("outside"))})
		r4 := mustTxn(t, kv, nil, []Op{Put(w+"k1", []byte("c"))})
		r5 := mustTxn(t, kv, nil, []Op{Delete(w + "k2")})
		r6 := mustTxn(t, kv, nil, []Op{Put(w+"k3", []byte("d")), Delete(w + "k1")})
		ch := kv.Watch(testCtx(t), w, r0+1)
		got := collect(t, ch, 6)
		wantEvents(t, p, got, []string{
			fmt.Sprintf(`PUT /w/k1="a" c=%d m=%d`, r1, r1),
			fmt.Sprintf(`PUT /w/k2="b" c=%d m=%d`, r2, r2),
			fmt.Sprintf(`PUT /w/k1="c" c=%d m=%d prev(/w/k1="a" c=%d m=%d)`, r1, r4, r1, r1),
			fmt.Sprintf(`DELETE /w/k2="" c=0 m=%d prev(/w/k2="b" c=%d m=%d)`, r5, r2, r2),
			fmt.Sprintf(`PUT /w/k3="d" c=%d m=%d`, r6, r6),
			fmt.Sprintf(`DELETE /w/k1="" c=0 m=%d prev(/w/k1="c" c=%d m=%d)`, r6, r1, r4),
		})
		if !got[0].Created() || got[2].Created() {
			t.Errorf("Created() wrong: %v %v", got[0].Created(), got[2].Created())
		}
		// Nothing more than a later sentinel.
		r7 := mustTxn(t, kv, nil, []Op{Put(w+"sentinel", nil)})
		wantEvents(t, p, collect(t, ch, 1), []string{fmt.Sprintf(`PUT /w/sentinel="" c=%d m=%d`, r7, r7)})
	}},
	{"WatchFromNow", func(t *testing.T, kv KV, p string) {
		mustTxn(t, kv, nil, []Op{Put(p+"/before", []byte("1"))})
		ch := kv.Watch(testCtx(t), p+"/", 0)
		r := mustTxn(t, kv, nil, []Op{Put(p+"/after", []byte("2"))})
		wantEvents(t, p, collect(t, ch, 1), []string{fmt.Sprintf(`PUT /after="2" c=%d m=%d`, r, r)})
	}},
	{"WatchResume", func(t *testing.T, kv KV, p string) {
		r0 := mustRev(t, kv)
		var want []string
		put := func(i int) {
			k := fmt.Sprintf("%s/k%d", p, i%3)
			r := mustTxn(t, kv, nil, []Op{Put(k, []byte(fmt.Sprint(i)))})
			want = append(want, fmt.Sprintf("%s@%d", strings.TrimPrefix(k, p), r))
		}
		for i := range 6 {
			put(i)
		}
		ctx, cancel := context.WithCancel(testCtx(t))
		ch := kv.Watch(ctx, p+"/", r0+1)
		var seen []Event
		for len(seen) < 3 { // read some, possibly all
			seen = append(seen, collect(t, ch, 1)...)
		}
		cancel()
		for i := 6; i < 10; i++ {
			put(i)
		}
		last := seen[len(seen)-1].KV.ModRevision
		ch = kv.Watch(testCtx(t), p+"/", last+1)
		seen = append(seen, collect(t, ch, 10-len(seen))...)
		put(10)
		seen = append(seen, collect(t, ch, 1)...)
		var got []string
		for _, ev := range seen {
			got = append(got, fmt.Sprintf("%s@%d", strings.TrimPrefix(ev.KV.Key, p), ev.KV.ModRevision))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("events across resume:\n%v\nwant:\n%v", got, want)
		}
	}},
	{"Compact", func(t *testing.T, kv KV, p string) {
		r1 := mustTxn(t, kv, nil, []Op{Put(p+"/k1", []byte("1"))})
		r2 := mustTxn(t, kv, nil, []Op{Put(p+"/k2", []byte("2"))})
		r3 := mustTxn(t, kv, nil, []Op{Put(p+"/k1", []byte("3"))})
		if err := kv.Compact(testCtx(t), r2); err != nil {
			t.Fatalf("compact %d: %v", r2, err)
		}
		wantCompacted(t, kv.Watch(testCtx(t), p+"/", r1))
		wantEvents(t, p, collect(t, kv.Watch(testCtx(t), p+"/", r2), 2), []string{
			fmt.Sprintf(`PUT /k2="2" c=%d m=%d`, r2, r2),
			fmt.Sprintf(`PUT /k1="3" c=%d m=%d prev(/k1="1" c=%d m=%d)`, r1, r3, r1, r1),
		})
		for _, rev := range []int64{r1, r2} {
			if err := kv.Compact(testCtx(t), rev); !errors.Is(err, ErrCompacted) {
				t.Errorf("compact %d again: %v; want ErrCompacted", rev, err)
			}
		}
		if err := kv.Compact(testCtx(t), r3+100); err == nil {
			t.Errorf("compact to a future revision succeeded")
		}
		wantKV(t, kv, p+"/k1", "3", r1, r3) // current state survives
	}},
	{"RevisionIncreases", func(t *testing.T, kv KV, p string) {
		r0 := mustRev(t, kv)
		if r0 < 1 {
			t.Fatalf("revision %d; want >= 1", r0)
		}
		prev := r0
		for i := range 3 {
			r := mustTxn(t, kv, nil, []Op{Put(p+"/k", []byte(fmt.Sprint(i)))})
			if r != prev+1 {
				t.Fatalf("write %d at revision %d; want %d", i, r, prev+1)
			}
			if got := mustRev(t, kv); got != r {
				t.Fatalf("Revision() = %d after write at %d", got, r)
			}
			prev = r
		}
	}},
}

func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, b.open(t), testPrefix(t))
				})
			}
		})
	}
}

func TestConcurrentCreate(t *testing.T) {
	const workers, keys = 8, 100
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			kv := b.open(t)
			p := testPrefix(t)
			var wins atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Go(func() {
					for i := range keys {
						k := fmt.Sprintf("%s/%03d", p, i)
						_, err := kv.Txn(testCtx(t), []Cmp{Absent(k)}, []Op{Put(k, []byte(fmt.Sprint(w)))})
						switch {
						case err == nil:
							wins.Add(1)
						case !errors.Is(err, ErrConflict):
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := wins.Load(); got != keys {
				t.Fatalf("%d successful creates; want %d", got, keys)
			}
			kvs, _, err := kv.List(testCtx(t), p+"/")
			if err != nil || len(kvs) != keys {
				t.Fatalf("list: %d keys, %v; want %d", len(kvs), err, keys)
			}
		})
	}
}

func TestMemoryDump(t *testing.T) {
	ctx := testCtx(t)
	m := NewMemory()
	defer m.Close()
	steps := []struct {
		cmps []Cmp
		ops  []Op
	}{
		{nil, []Op{Put("/nodes/b", []byte("beta")), Put("/nodes/a", []byte("alpha"))}}, // 2
		{nil, []Op{Put("/ipam/10.0.0.1", []byte("node-a"))}},                           // 3
		{[]Cmp{Absent("/nodes/c")}, []Op{Put("/nodes/c", []byte("gamma"))}},            // 4
		{nil, []Op{Put("/nodes/a", []byte("alpha v2"))}},                               // 5
		{nil, []Op{Delete("/nodes/c")}},                                                // 6
		{nil, []Op{Put("/bin", []byte{0, 1, '\n'})}},                                   // 7
	}
	for _, s := range steps {
		if _, err := m.Txn(ctx, s.cmps, s.ops); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Txn(ctx, []Cmp{Absent("/nodes/a")}, []Op{Put("/nodes/a", nil)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("conflicting txn: %v", err)
	}
	if err := m.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	const want = `/bin = "\x00\x01\n" (create=7 mod=7)
/ipam/10.0.0.1 = node-a (create=3 mod=3)
/nodes/a = alpha v2 (create=2 mod=5)
/nodes/b = beta (create=2 mod=2)
revision=7 compacted=4
`
	if got := m.Dump(); got != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", got, want)
	}
	if got := NewMemory().Dump(); got != "revision=1 compacted=0\n" {
		t.Fatalf("empty dump = %q", got)
	}
}

// TestMemorySlowWatcher checks that writers never wait for a watcher that
// does not read, and that it loses nothing.
func TestMemorySlowWatcher(t *testing.T) {
	ctx := testCtx(t)
	m := NewMemory()
	defer m.Close()
	ch := m.Watch(ctx, "/", 0)
	const n = 5000
	for i := range n {
		if _, err := m.Txn(ctx, nil, []Op{Put(fmt.Sprintf("/k%d", i%7), []byte(fmt.Sprint(i)))}); err != nil {
			t.Fatal(err)
		}
	}
	evs := collect(t, ch, n)
	for i, ev := range evs {
		if ev.KV.ModRevision != int64(i+2) || string(ev.KV.Value) != fmt.Sprint(i) {
			t.Fatalf("event %d = %s", i, fmtKV(ev.KV))
		}
	}
}

func TestMemoryClose(t *testing.T) {
	ctx := testCtx(t)
	m := NewMemory()
	ch := m.Watch(ctx, "/", 0)
	if _, err := m.Txn(ctx, nil, []Op{Put("/k", []byte("v"))}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var sawEvent, sawClosed bool
	for resp := range ch {
		sawEvent = sawEvent || len(resp.Events) > 0
		sawClosed = sawClosed || errors.Is(resp.Err, ErrClosed)
	}
	if !sawEvent || !sawClosed {
		t.Fatalf("watch after close: event=%v closed=%v", sawEvent, sawClosed)
	}
	if _, err := m.Get(ctx, "/k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestWatchCancelCloses checks that a watch channel closes when its context
// is done.
func TestWatchCancelCloses(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			kv := b.open(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			ch := kv.Watch(ctx, testPrefix(t), 0)
			cancel()
			timeout := time.After(5 * time.Second)
			for {
				select {
				case resp, ok := <-ch:
					if !ok {
						return
					}
					if len(resp.Events) > 0 {
						t.Fatalf("unexpected events: %+v", resp)
					}
				case <-timeout:
					t.Fatal("watch not closed after cancel")
				}
			}
		})
	}
}

func TestEmbeddedCloseIdempotent(t *testing.T) {
	srv := sharedEtcd(t)
	if len(srv.Endpoints()) != 1 || !strings.HasPrefix(srv.Endpoints()[0], "http://127.0.0.1:") ||
		strings.HasSuffix(srv.Endpoints()[0], ":0") {
		t.Fatalf("endpoints = %v", srv.Endpoints())
	}
	// A second, short-lived server exercises Close twice.
	dir := t.TempDir()
	ctx := testCtx(t)
	e, err := StartEmbedded(ctx, EmbedConfig{DataDir: dir, ClientURL: "http://127.0.0.1:0", UnsafeNoFsync: true, AutoCompactRetention: 10})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Client(ctx)
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	if c.Client() == nil {
		t.Error("nil client")
	}
	_ = c.Close()
	e.Close()
	e.Close()
}
