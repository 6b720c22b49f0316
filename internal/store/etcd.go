package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/logutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
)

// revisionProbeKey is the key ranged over (count only) to learn the current
// store revision from a response header. Any key works; etcd rejects "".
const revisionProbeKey = "\x00"

// Etcd implements KV over an etcd v3 client.
type Etcd struct {
	cli *clientv3.Client
}

var _ KV = (*Etcd)(nil)

// NewEtcd wraps an existing client. The Etcd takes ownership of cli: Close
// closes it.
func NewEtcd(cli *clientv3.Client) *Etcd { return &Etcd{cli: cli} }

// DialEtcd connects to the etcd cluster at endpoints and checks that it
// answers within dialTimeout (or before ctx is done).
func DialEtcd(ctx context.Context, endpoints []string, dialTimeout time.Duration) (*Etcd, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("dial etcd: no endpoints")
	}
	if dialTimeout <= 0 {
		dialTimeout = 5 * time.Second
	}
	// Errors reach callers as return values; keep the client's own log
	// (retries of failed calls, at warn level) quiet.
	lg, err := logutil.CreateDefaultZapLogger(zapcore.ErrorLevel)
	if err != nil {
		return nil, fmt.Errorf("dial etcd: client logger: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		Logger:      lg,
	})
	if err != nil {
		return nil, fmt.Errorf("dial etcd %v: %w", endpoints, err)
	}
	e := NewEtcd(cli)
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := e.Revision(pctx); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("dial etcd %v: %w", endpoints, err)
	}
	return e, nil
}

// Client returns the underlying etcd client, for features outside KV such as
// leader election. It is closed by Close.
func (e *Etcd) Client() *clientv3.Client { return e.cli }

// Get implements KV.
func (e *Etcd) Get(ctx context.Context, key string) (KeyValue, error) {
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return KeyValue{}, fmt.Errorf("get %q: %w", key, mapEtcdErr(err))
	}
	if len(resp.Kvs) == 0 {
		return KeyValue{}, fmt.Errorf("get %q: %w", key, ErrNotFound)
	}
	return fromEtcdKV(resp.Kvs[0]), nil
}

// List implements KV.
func (e *Etcd) List(ctx context.Context, prefix string) ([]KeyValue, int64, error) {
	resp, err := e.cli.Get(ctx, prefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("list %q: %w", prefix, mapEtcdErr(err))
	}
	kvs := make([]KeyValue, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs = append(kvs, fromEtcdKV(kv))
	}
	return kvs, resp.Header.GetRevision(), nil
}

// Txn implements KV.
func (e *Etcd) Txn(ctx context.Context, cmps []Cmp, ops []Op) (int64, error) {
	conds := make([]clientv3.Cmp, 0, len(cmps))
	for _, c := range cmps {
		if c.ModRevision == 0 {
			conds = append(conds, clientv3.Compare(clientv3.CreateRevision(c.Key), "=", 0))
		} else {
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(c.Key), "=", c.ModRevision))
		}
	}
	eops := make([]clientv3.Op, 0, len(ops))
	for _, op := range ops {
		if op.Delete {
			eops = append(eops, clientv3.OpDelete(op.Key))
		} else {
			eops = append(eops, clientv3.OpPut(op.Key, string(op.Value)))
		}
	}
	resp, err := e.cli.Txn(ctx).If(conds...).Then(eops...).Commit()
	if err != nil {
		return 0, fmt.Errorf("txn: %w", mapEtcdErr(err))
	}
	if !resp.Succeeded {
		return resp.Header.GetRevision(), fmt.Errorf("txn: %w", ErrConflict)
	}
	return resp.Header.GetRevision(), nil
}

// Watch implements KV. With fromRev 0 it first reads the current revision,
// so that every write completed after Watch returns is seen.
func (e *Etcd) Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse {
	if fromRev <= 0 {
		rev, err := e.Revision(ctx)
		if err != nil {
			return errWatch(fmt.Errorf("watch %q: %w", prefix, err))
		}
		fromRev = rev + 1
	}
	out := make(chan WatchResponse)
	wctx, cancel := context.WithCancel(ctx)
	wch := e.cli.Watch(clientv3.WithRequireLeader(wctx), prefix,
		clientv3.WithPrefix(), clientv3.WithRev(fromRev), clientv3.WithPrevKV())
	go func() {
		defer close(out)
		defer cancel()
		for {
			var (
				resp clientv3.WatchResponse
				ok   bool
			)
			select {
			case <-ctx.Done():
				return
			case resp, ok = <-wch:
			}
			if !ok {
				if ctx.Err() == nil {
					send(ctx, out, WatchResponse{Err: fmt.Errorf("watch %q: channel closed: %w", prefix, ErrClosed)})
				}
				return
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				send(ctx, out, WatchResponse{Err: fmt.Errorf("watch %q from revision %d (compacted at %d): %w",
					prefix, fromRev, resp.CompactRevision, ErrCompacted)})
				return
			}
			if err := resp.Err(); err != nil {
				send(ctx, out, WatchResponse{Err: fmt.Errorf("watch %q: %w", prefix, err)})
				return
			}
			if len(resp.Events) == 0 {
				continue // created or progress notification
			}
			evs := make([]Event, 0, len(resp.Events))
			for _, ev := range resp.Events {
				evs = append(evs, fromEtcdEvent(ev))
			}
			if !send(ctx, out, WatchResponse{Events: evs}) {
				return
			}
		}
	}()
	return out
}

// Compact implements KV. It returns an error wrapping ErrCompacted when rev
// is not above an earlier compaction.
func (e *Etcd) Compact(ctx context.Context, rev int64) error {
	if _, err := e.cli.Compact(ctx, rev); err != nil {
		return fmt.Errorf("compact to %d: %w", rev, mapEtcdErr(err))
	}
	return nil
}

// Revision implements KV.
func (e *Etcd) Revision(ctx context.Context) (int64, error) {
	resp, err := e.cli.Get(ctx, revisionProbeKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("revision: %w", mapEtcdErr(err))
	}
	return resp.Header.GetRevision(), nil
}

// Close implements KV: it closes the client.
func (e *Etcd) Close() error {
	if err := e.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}

// mapEtcdErr maps etcd errors that have a store sentinel to an error that
// wraps both.
func mapEtcdErr(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("%w: %w", ErrCompacted, err)
	}
	return err
}

func fromEtcdKV(kv *mvccpb.KeyValue) KeyValue {
	out := KeyValue{
		Key:            string(kv.Key),
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
	}
	if len(kv.Value) > 0 {
		out.Value = kv.Value
	}
	return out
}

func fromEtcdEvent(ev *clientv3.Event) Event {
	out := Event{KV: fromEtcdKV(ev.Kv)}
	if ev.Type == clientv3.EventTypeDelete {
		out.Type = EventDelete
		out.KV = KeyValue{Key: string(ev.Kv.Key), ModRevision: ev.Kv.ModRevision}
	} else {
		out.Type = EventPut
	}
	if ev.PrevKv != nil {
		p := fromEtcdKV(ev.PrevKv)
		out.PrevKV = &p
	}
	return out
}

// errWatch returns a closed watch channel holding one error response.
func errWatch(err error) <-chan WatchResponse {
	ch := make(chan WatchResponse, 1)
	ch <- WatchResponse{Err: err}
	close(ch)
	return ch
}

// send delivers resp unless ctx is done first; it reports whether it did.
func send(ctx context.Context, out chan<- WatchResponse, resp WatchResponse) bool {
	select {
	case out <- resp:
		return true
	case <-ctx.Done():
		return false
	}
}
