package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// errEmptyKey mirrors etcd's rejection of an empty key.
var errEmptyKey = errors.New("key is not provided")

// Memory is an in-memory KV with etcd's MVCC semantics: a store revision that
// starts at 1 and grows by one per transaction that changes something,
// per-key create and modification revisions, a history of events from the
// compaction revision on for watches to replay, and compaction. It is meant
// for tests; its whole state can be rendered with Dump.
//
// Watchers get their events through unbounded queues, so writers never wait
// for readers and a slow watcher loses nothing. Unlike etcd, a watcher that
// lags behind a compaction still receives every event.
type Memory struct {
	mu        sync.Mutex
	rev       int64
	compacted int64
	keys      map[string]KeyValue
	history   []Event // every event with revision >= compacted, in order
	watchers  map[*memWatcher]struct{}
	closed    bool
}

var _ KV = (*Memory)(nil)

type memWatcher struct {
	prefix  string
	fromRev int64
	queue   []Event // guarded by Memory.mu
	err     error   // guarded by Memory.mu; delivered once queue is empty
	wake    chan struct{}
}

// NewMemory returns an empty store at revision 1.
func NewMemory() *Memory {
	return &Memory{
		rev:      1,
		keys:     make(map[string]KeyValue),
		watchers: make(map[*memWatcher]struct{}),
	}
}

// Get implements KV.
func (m *Memory) Get(ctx context.Context, key string) (KeyValue, error) {
	if err := ctx.Err(); err != nil {
		return KeyValue{}, fmt.Errorf("get %q: %w", key, err)
	}
	if key == "" {
		return KeyValue{}, fmt.Errorf("get: %w", errEmptyKey)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return KeyValue{}, fmt.Errorf("get %q: %w", key, ErrClosed)
	}
	kv, ok := m.keys[key]
	if !ok {
		return KeyValue{}, fmt.Errorf("get %q: %w", key, ErrNotFound)
	}
	return cloneKV(kv), nil
}

// List implements KV.
func (m *Memory) List(ctx context.Context, prefix string) ([]KeyValue, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("list %q: %w", prefix, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, 0, fmt.Errorf("list %q: %w", prefix, ErrClosed)
	}
	kvs := make([]KeyValue, 0)
	for k, kv := range m.keys {
		if strings.HasPrefix(k, prefix) {
			kvs = append(kvs, cloneKV(kv))
		}
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return kvs, m.rev, nil
}

// Txn implements KV. Like etcd, it rejects an op with an empty key and two
// ops on the same key, and a transaction whose ops change nothing (only
// deletes of missing keys) does not advance the revision.
func (m *Memory) Txn(ctx context.Context, cmps []Cmp, ops []Op) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("txn: %w", err)
	}
	seen := make(map[string]struct{}, len(ops))
	for _, op := range ops {
		if op.Key == "" {
			return 0, fmt.Errorf("txn: %w", errEmptyKey)
		}
		if _, dup := seen[op.Key]; dup {
			return 0, fmt.Errorf("txn: duplicate key %q given in ops", op.Key)
		}
		seen[op.Key] = struct{}{}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("txn: %w", ErrClosed)
	}
	for _, c := range cmps {
		if m.keys[c.Key].ModRevision != c.ModRevision { // missing key: 0
			return m.rev, fmt.Errorf("txn: %w", ErrConflict)
		}
	}

	newRev := m.rev + 1
	var events []Event
	for _, op := range ops {
		prev, existed := m.keys[op.Key]
		if op.Delete {
			if !existed {
				continue
			}
			delete(m.keys, op.Key)
			p := prev
			events = append(events, Event{
				Type:   EventDelete,
				KV:     KeyValue{Key: op.Key, ModRevision: newRev},
				PrevKV: &p,
			})
			continue
		}
		kv := KeyValue{Key: op.Key, CreateRevision: newRev, ModRevision: newRev}
		if len(op.Value) > 0 {
			kv.Value = slices.Clone(op.Value)
		}
		ev := Event{Type: EventPut, KV: kv}
		if existed {
			kv.CreateRevision = prev.CreateRevision
			ev.KV.CreateRevision = prev.CreateRevision
			p := prev
			ev.PrevKV = &p
		}
		m.keys[op.Key] = kv
		events = append(events, ev)
	}
	if len(events) == 0 {
		return m.rev, nil
	}
	m.rev = newRev
	m.history = append(m.history, events...)
	for w := range m.watchers {
		w.enqueue(events)
	}
	return m.rev, nil
}

// Watch implements KV. Responses may carry the events of several revisions,
// but never split a revision.
func (m *Memory) Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse {
	if err := ctx.Err(); err != nil {
		return errWatch(fmt.Errorf("watch %q: %w", prefix, err))
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errWatch(fmt.Errorf("watch %q: %w", prefix, ErrClosed))
	}
	if fromRev > 0 && fromRev < m.compacted {
		compacted := m.compacted
		m.mu.Unlock()
		return errWatch(fmt.Errorf("watch %q from revision %d (compacted at %d): %w",
			prefix, fromRev, compacted, ErrCompacted))
	}
	if fromRev <= 0 {
		fromRev = m.rev + 1
	}
	w := &memWatcher{prefix: prefix, fromRev: fromRev, wake: make(chan struct{}, 1)}
	i := sort.Search(len(m.history), func(i int) bool { return m.history[i].KV.ModRevision >= fromRev })
	w.enqueue(m.history[i:])
	m.watchers[w] = struct{}{}
	m.mu.Unlock()

	out := make(chan WatchResponse)
	go m.runWatcher(ctx, w, out)
	return out
}

// enqueue appends the events w wants; the caller holds Memory.mu.
func (w *memWatcher) enqueue(events []Event) {
	n := len(w.queue)
	for _, ev := range events {
		if ev.KV.ModRevision >= w.fromRev && strings.HasPrefix(ev.KV.Key, w.prefix) {
			w.queue = append(w.queue, ev)
		}
	}
	if len(w.queue) > n {
		w.signal()
	}
}

func (w *memWatcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (m *Memory) runWatcher(ctx context.Context, w *memWatcher, out chan<- WatchResponse) {
	defer close(out)
	defer func() {
		m.mu.Lock()
		delete(m.watchers, w)
		m.mu.Unlock()
	}()
	for {
		m.mu.Lock()
		events, err := w.queue, w.err
		w.queue = nil
		m.mu.Unlock()
		switch {
		case len(events) > 0:
			resp := WatchResponse{Events: make([]Event, len(events))}
			for i, ev := range events {
				resp.Events[i] = cloneEvent(ev)
			}
			if !send(ctx, out, resp) {
				return
			}
			continue
		case err != nil:
			send(ctx, out, WatchResponse{Err: err})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
	}
}

// Compact implements KV. Like etcd, it fails with ErrCompacted when rev is
// not above an earlier compaction, and rejects a rev above the current
// revision.
func (m *Memory) Compact(ctx context.Context, rev int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("compact to %d: %w", rev, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("compact to %d: %w", rev, ErrClosed)
	}
	if rev <= m.compacted {
		return fmt.Errorf("compact to %d: mvcc: required revision has been compacted (compacted at %d): %w",
			rev, m.compacted, ErrCompacted)
	}
	if rev > m.rev {
		return fmt.Errorf("compact to %d: mvcc: required revision is a future revision (current %d)", rev, m.rev)
	}
	m.compacted = rev
	i := sort.Search(len(m.history), func(i int) bool { return m.history[i].KV.ModRevision >= rev })
	m.history = slices.Clone(m.history[i:])
	return nil
}

// Revision implements KV.
func (m *Memory) Revision(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("revision: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("revision: %w", ErrClosed)
	}
	return m.rev, nil
}

// Close implements KV. Later calls fail with ErrClosed; each active watch
// delivers its pending events, then one ErrClosed response, and closes.
// Dump still works after Close.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for w := range m.watchers {
		w.err = fmt.Errorf("watch %q: %w", w.prefix, ErrClosed)
		w.signal()
	}
	return nil
}

// Dump renders the whole state as stable text: one line per key, sorted,
// "<key> = <value> (create=N mod=M)", then "revision=N compacted=M". Values
// that are printable UTF-8 are written as is, others Go-quoted.
func (m *Memory) Dump() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.keys))
	for k := range m.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		kv := m.keys[k]
		fmt.Fprintf(&b, "%s = %s (create=%d mod=%d)\n", k, dumpValue(kv.Value), kv.CreateRevision, kv.ModRevision)
	}
	fmt.Fprintf(&b, "revision=%d compacted=%d\n", m.rev, m.compacted)
	return b.String()
}

func dumpValue(v []byte) string {
	if !utf8.Valid(v) {
		return strconv.Quote(string(v))
	}
	for _, r := range string(v) {
		if !unicode.IsPrint(r) {
			return strconv.Quote(string(v))
		}
	}
	return string(v)
}

func cloneKV(kv KeyValue) KeyValue {
	kv.Value = slices.Clone(kv.Value)
	return kv
}

func cloneEvent(ev Event) Event {
	ev.KV = cloneKV(ev.KV)
	if ev.PrevKV != nil {
		p := cloneKV(*ev.PrevKV)
		ev.PrevKV = &p
	}
	return ev
}
