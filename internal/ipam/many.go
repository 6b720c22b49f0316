package ipam

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// maxPerTxn bounds the addresses one transaction of allocAutoMany
// reserves, keeping it well inside etcd's default of 128 conditions and
// 128 writes per transaction (each address brings up to three of each).
const maxPerTxn = 32

// allocAutoMany reserves up to count automatically chosen addresses of
// the family: those the cache offers at once in one transaction each
// round, and one through allocAuto (which leases a block, borrows or
// reloads the cache as needed) whenever the cache offers fewer than two or
// a transaction's conditions do not hold. It stops early, without error,
// when the network runs out after at least one address; on error it
// returns what it reserved so far, for the caller's rollback.
func (m *IPAM) allocAutoMany(ctx context.Context, c *netCache, n Network, subs []*subnet, fam string, req api.AllocateRequest, count int) ([]made, error) {
	if count == 1 {
		mk, err := m.allocAuto(ctx, c, n, subs, fam, req)
		if err != nil {
			return nil, err
		}
		return []made{mk}, nil
	}
	if _, err := c.generation(ctx, m.kv); err != nil {
		return nil, err
	}
	var out []made
	for len(out) < count {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		batch, err := m.allocBatch(ctx, c, n, subs, req, min(count-len(out), maxPerTxn))
		if err != nil {
			return out, err
		}
		if len(batch) > 0 {
			out = append(out, batch...)
			continue
		}
		mk, err := m.allocAuto(ctx, c, n, subs, fam, req)
		if errors.Is(err, api.ErrExhausted) && len(out) > 0 {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, mk)
	}
	return out, nil
}

// allocBatch reserves up to want addresses that the cache offers now in
// one transaction. It returns none, and no error, when the cache offers
// fewer than two or the transaction's conditions did not hold (the cache
// is reloaded then).
func (m *IPAM) allocBatch(ctx context.Context, c *netCache, n Network, subs []*subnet, req api.AllocateRequest, want int) ([]made, error) {
	var cands []candidate
	unpend := func() {
		c.mu.Lock()
		for _, cand := range cands {
			delete(c.pending, cand.addr)
		}
		c.mu.Unlock()
	}
	for len(cands) < want {
		cand, ok, err := m.pick(ctx, c, subs, req.Node, req.Node == "")
		if err != nil {
			unpend()
			return nil, err
		}
		if !ok {
			break
		}
		cands = append(cands, cand)
	}
	if len(cands) < 2 {
		unpend()
		return nil, nil
	}
	var cmps []store.Cmp
	var ops []store.Op
	out := make([]made, 0, len(cands))
	for _, cand := range cands {
		res, val, err := m.newReservation(n, cand.addr, req)
		if err != nil {
			unpend()
			return nil, err
		}
		for _, cmp := range cand.cmps {
			if !slices.Contains(cmps, cmp) {
				cmps = append(cmps, cmp)
			}
		}
		key := reservationKey(n.UUID, cand.addr)
		ops = append(ops, store.Put(key, val))
		ops = append(ops, cand.ops...)
		out = append(out, made{res: res, kv: store.KeyValue{Key: key, Value: val}, created: true})
	}
	ops = dedupeOps(ops)
	rev, err := m.kv.Txn(ctx, cmps, ops)
	c.mu.Lock()
	for _, cand := range cands {
		delete(c.pending, cand.addr)
	}
	if err == nil {
		for i, cand := range cands {
			c.taken[cand.addr] = rev
			delete(c.quar, cand.addr)
			if cand.unmark != nil {
				c.markCleared(cand.unmark, rev)
			}
			out[i].res.ResourceVersion = rev
			out[i].kv.CreateRevision, out[i].kv.ModRevision = rev, rev
		}
	}
	gen := c.gen
	c.mu.Unlock()
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, store.ErrConflict):
		c.conflicts.Add(1)
		return nil, c.refresh(ctx, m.kv, gen)
	}
	return nil, fmt.Errorf("ipam: reserve %d addresses in network %s: %w", len(cands), n.name(), err)
}

// dedupeOps drops repeated writes of one key (two candidates in a block
// whose abandoned releasing mark both clear); the writes are identical.
func dedupeOps(ops []store.Op) []store.Op {
	seen := make(map[string]bool, len(ops))
	out := ops[:0]
	for _, op := range ops {
		if seen[op.Key] {
			continue
		}
		seen[op.Key] = true
		out = append(out, op)
	}
	return out
}
