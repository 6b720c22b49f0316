package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/ipam"
	"github.com/weft-sdn/weft/internal/store"
)

// readOnce is a store.KV that reads each key at most once: a batch of
// port work resolves the network, project and node its items share once,
// and reads each reservation once. Writes go to the store; everything
// written is checked by the conditions of the transaction, so a value read
// once serves the whole attempt.
type readOnce struct {
	store.KV
	mu   sync.Mutex
	seen map[string]readResult
}

type readResult struct {
	kv  store.KeyValue
	err error
}

func newReadOnce(kv store.KV) *readOnce { return &readOnce{KV: kv, seen: map[string]readResult{}} }

func (o *readOnce) Get(ctx context.Context, key string) (store.KeyValue, error) {
	o.mu.Lock()
	r, ok := o.seen[key]
	o.mu.Unlock()
	if ok {
		return r.kv, r.err
	}
	kv, err := o.KV.Get(ctx, key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return kv, err // not remembered: a later read may succeed
	}
	o.mu.Lock()
	o.seen[key] = readResult{kv, err}
	o.mu.Unlock()
	return kv, err
}

// with is a copy of the registry that reads through kv.
func (r *Registry) with(kv store.KV) *Registry {
	c := *r
	c.kv = kv
	return &c
}

// syncItem is one item of a port sync and what an attempt prepared for it.
type syncItem struct {
	attach bool
	i      int
	field  string
	// Prepared by an attempt:
	cmps     []store.Cmp
	ops      []store.Op
	writes   []ipam.Write
	released []string
}

// SyncPorts does a node agent's batch of port work (api.PortSyncRequest):
// all items in one transaction when their conditions hold together, else
// each item in a transaction of its own. An item's own failure is its
// result; a failure of the store fails the whole call.
func (r *Registry) SyncPorts(ctx context.Context, node string, req api.PortSyncRequest) (api.PortSyncResponse, error) {
	resp := api.PortSyncResponse{Attach: make([]api.PortSyncResult, len(req.Attach)), Detach: make([]api.PortSyncResult, len(req.Detach))}
	if n := len(req.Attach) + len(req.Detach); n > api.MaxPortSyncItems {
		return resp, api.Invalid("attach", "%d items in one port sync; the limit is %d", n, api.MaxPortSyncItems)
	}
	// The first attempt reads through rr, which keeps what it read: the
	// node read here serves the ports' checks too.
	rr := r.with(newReadOnce(r.kv))
	if _, _, err := rr.getFQ(ctx, api.KindNode, node); err != nil {
		if errors.Is(err, api.ErrNotFound) {
			return resp, api.NotFound("node %q is not registered", node)
		}
		return resp, err
	}
	var items []*syncItem
	for i, a := range req.Attach {
		it := &syncItem{attach: true, i: i, field: fmt.Sprintf("attach[%d]", i)}
		if err := checkAttach(node, a); err != nil {
			resp.Attach[i] = syncResult(it.field, err)
			continue
		}
		// The port gets its identity once; every attempt writes the same.
		if err := r.newMeta(a.Port); err != nil {
			resp.Attach[i] = syncResult(it.field+".port", err)
			continue
		}
		items = append(items, it)
	}
	for i, d := range req.Detach {
		it := &syncItem{i: i, field: fmt.Sprintf("detach[%d]", i)}
		switch {
		case d.Network == "":
			resp.Detach[i] = syncResult(it.field, api.Invalid("network", "is required (uuid or fq_name of a network)"))
		case d.Owner == "":
			resp.Detach[i] = syncResult(it.field, api.Invalid("owner", "is required"))
		case len(d.IPs) > maxItemAddresses:
			resp.Detach[i] = syncResult(it.field, api.Invalid("ips", "%d addresses; an attachment has at most %d", len(d.IPs), maxItemAddresses))
		default:
			items = append(items, it)
		}
	}
	if len(items) > 1 {
		var err error
		if items, err = r.syncTogether(ctx, rr, node, req, items, &resp); err != nil {
			return resp, err
		}
		rr = nil // transactions may have committed since: read afresh
	}
	for _, it := range items {
		if err := r.syncAlone(ctx, rr, node, req, it, &resp); err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// checkAttach checks an attach item's own fields.
func checkAttach(node string, a api.PortAttach) error {
	p := a.Port
	switch {
	case p == nil:
		return api.Invalid("port", "is required")
	case a.Owner == "":
		return api.Invalid("owner", "is required (the owner of the port's addresses)")
	case p.Kind != "" && p.Kind != api.KindPort:
		return api.Invalid("port.kind", "%q is not a port", p.Kind)
	case p.Node == "":
		p.Node = node
	case p.Node != node:
		return api.Invalid("port.node", "port is on node %q, not %q", p.Node, node)
	}
	p.Kind = api.KindPort
	if len(a.HandOver) > maxItemAddresses {
		return api.Invalid("hand_over", "%d addresses; an attachment has at most %d", len(a.HandOver), maxItemAddresses)
	}
	for j, h := range a.HandOver {
		if h.IP == "" || h.FromOwner == "" {
			return api.Invalid(fmt.Sprintf("hand_over[%d]", j), "needs ip and from_owner")
		}
	}
	return within("port", api.Validate(p))
}

// maxTxnOps bounds the conditions and the writes of one transaction:
// etcd's default --max-txn-ops.
const maxTxnOps = 128

// maxItemAddresses bounds the addresses of one item, as the agent bounds
// those of one attachment. (An item that still does not fit a transaction,
// with many security groups, fails on its own in syncAlone.)
const maxItemAddresses = 16

// txnChunk is the items joined in one transaction.
type txnChunk struct {
	items   []*syncItem
	cmps    []store.Cmp
	ops     []store.Op
	cmpSeen map[store.Cmp]bool
	written map[string]bool
}

// join adds the item unless it writes a key the chunk already writes or
// would take the chunk over maxTxnOps.
func (c *txnChunk) join(it *syncItem) bool {
	var cmps []store.Cmp
	for _, cmp := range it.cmps {
		if !c.cmpSeen[cmp] && !slices.Contains(cmps, cmp) {
			cmps = append(cmps, cmp)
		}
	}
	if len(c.cmps)+len(cmps) > maxTxnOps || len(c.ops)+len(it.ops) > maxTxnOps {
		return false
	}
	for _, op := range it.ops {
		if c.written[op.Key] {
			return false
		}
	}
	for _, op := range it.ops {
		c.written[op.Key] = true
	}
	for _, cmp := range cmps {
		c.cmpSeen[cmp] = true
	}
	c.cmps, c.ops = append(c.cmps, cmps...), append(c.ops, it.ops...)
	c.items = append(c.items, it)
	return true
}

// syncTogether tries the items in as few transactions as the limits allow,
// prepared through rr (a registry reading each key once). It returns the
// items left to do one by one: those of a transaction whose conditions did
// not hold, and those that could not join one.
func (r *Registry) syncTogether(ctx context.Context, rr *Registry, node string, req api.PortSyncRequest, items []*syncItem, resp *api.PortSyncResponse) ([]*syncItem, error) {
	var chunks []*txnChunk
	var alone []*syncItem
	for _, it := range items {
		if err := rr.prepareSync(ctx, node, req, it); err != nil {
			if isStoreFailure(err) {
				return nil, err
			}
			setSyncResult(resp, it, syncResult(it.field, err))
			continue
		}
		if len(chunks) == 0 || !chunks[len(chunks)-1].join(it) {
			c := &txnChunk{cmpSeen: map[store.Cmp]bool{}, written: map[string]bool{}}
			if !c.join(it) {
				alone = append(alone, it)
				continue
			}
			chunks = append(chunks, c)
		}
	}
	for _, c := range chunks {
		if len(c.items) == 1 {
			alone = append(alone, c.items[0])
			continue
		}
		rev, err := r.kv.Txn(ctx, c.cmps, c.ops)
		switch {
		case errors.Is(err, store.ErrConflict):
			r.log.Debug("port sync: the conditions of a batch did not hold together; item by item", "node", node, "items", len(c.items))
			alone = append(alone, c.items...)
			continue
		case err != nil:
			return nil, fmt.Errorf("port sync of node %s: %w", node, err)
		}
		for _, it := range c.items {
			r.committed(it, rev, resp)
		}
		r.log.Debug("port sync", "node", node, "items", len(c.items), "revision", rev)
	}
	return alone, nil
}

// syncAlone does one item in transactions of its own until its conditions
// hold, it fails, or contention outlasts txnRetries. The first attempt
// reads through rr when given; every other one reads afresh.
func (r *Registry) syncAlone(ctx context.Context, rr *Registry, node string, req api.PortSyncRequest, it *syncItem, resp *api.PortSyncResponse) error {
	for range txnRetries {
		if rr == nil {
			rr = r.with(newReadOnce(r.kv))
		}
		err := rr.prepareSync(ctx, node, req, it)
		rr = nil
		if err != nil {
			if isStoreFailure(err) {
				return err
			}
			setSyncResult(resp, it, syncResult(it.field, err))
			return nil
		}
		if len(it.cmps) > maxTxnOps || len(it.ops) > maxTxnOps {
			// More than one transaction may hold (many security groups):
			// the item's own failure, not the call's.
			setSyncResult(resp, it, syncResult(it.field, api.Invalid("", "needs %d conditions and %d writes; one transaction holds at most %d of each", len(it.cmps), len(it.ops), maxTxnOps)))
			return nil
		}
		rev, err := r.kv.Txn(ctx, it.cmps, it.ops)
		if err == nil {
			r.committed(it, rev, resp)
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("port sync of node %s: %w", node, err)
		}
		if it.attach {
			if err := r.createConflict(ctx, req.Attach[it.i].Port.GetMeta()); err != nil {
				setSyncResult(resp, it, syncResult(it.field+".port", err))
				return nil
			}
		}
	}
	setSyncResult(resp, it, syncResult(it.field, api.Conflict("", "too much contention; try again")))
	return nil
}

// isStoreFailure tells a failure of the store (the whole call fails) from
// an item's own error (an *api.Error).
func isStoreFailure(err error) bool {
	var ae *api.Error
	return !errors.As(err, &ae)
}

// committed records the result of an item whose transaction committed.
func (r *Registry) committed(it *syncItem, rev int64, resp *api.PortSyncResponse) {
	for _, w := range it.writes {
		w.Committed(rev)
	}
	setSyncResult(resp, it, api.PortSyncResult{Released: it.released})
}

func setSyncResult(resp *api.PortSyncResponse, it *syncItem, res api.PortSyncResult) {
	if it.attach {
		resp.Attach[it.i] = res
	} else {
		resp.Detach[it.i] = res
	}
}

// prepareSync prepares an item's conditions and writes, reading through
// r (a registry reading each key once).
func (r *Registry) prepareSync(ctx context.Context, node string, req api.PortSyncRequest, it *syncItem) error {
	it.cmps, it.ops, it.writes, it.released = nil, nil, nil, nil
	if it.attach {
		return r.prepareAttach(ctx, req.Attach[it.i], it)
	}
	return r.prepareDetach(ctx, node, req.Detach[it.i], it)
}

// prepareAttach: the port is created and the addresses handed over.
func (r *Registry) prepareAttach(ctx context.Context, a api.PortAttach, it *syncItem) error {
	cmps, ops, err := r.createWrite(ctx, a.Port)
	if err != nil {
		return within("port", err)
	}
	it.cmps, it.ops = cmps, ops
	if len(a.HandOver) == 0 {
		return nil
	}
	n, err := r.IPAMNetwork(ctx, a.Port.Network)
	if err != nil {
		return within("port", err)
	}
	seen := map[string]bool{}
	for j, h := range a.HandOver {
		w, res, err := r.ipam.PrepareAssign(ctx, r.kv.Get, n, api.AssignRequest{
			Network: n.UUID, IP: h.IP, FromOwner: h.FromOwner, Owner: a.Owner, Port: a.Port.UUID,
		})
		if err != nil {
			return within(fmt.Sprintf("hand_over[%d]", j), err)
		}
		if seen[res.Address] {
			return api.Invalid(fmt.Sprintf("hand_over[%d].ip", j), "address %s is handed over twice", res.Address)
		}
		seen[res.Address] = true
		it.add(w)
	}
	return nil
}

// prepareDetach: the port is deleted and the addresses released.
func (r *Registry) prepareDetach(ctx context.Context, node string, d api.PortDetach, it *syncItem) error {
	n, err := r.IPAMNetwork(ctx, d.Network)
	if err != nil {
		return err
	}
	if d.Port != "" {
		obj, kv, err := r.get(ctx, api.KindPort, d.Port)
		switch {
		case errors.Is(err, api.ErrNotFound):
		case err != nil:
			return within("port", err)
		default:
			p := obj.(*api.Port)
			if p.Node != "" && p.Node != node {
				return api.Conflict("port", "port %s is on node %s, not %s", p.UUID, p.Node, node)
			}
			// Ports are referred to by nothing that a delete must check
			// (see referrers): no delete mark is needed.
			it.cmps = append(it.cmps, store.Unchanged(kv), store.Absent(deletingKey(p.UUID)))
			it.ops = append(it.ops, store.Delete(kv.Key), store.Delete(fqKey(api.KindPort, p.FQName)))
		}
	}
	for j, ip := range d.IPs {
		owners := []string{d.Owner}
		if ip.Owner != "" && ip.Owner != d.Owner {
			owners = append(owners, ip.Owner)
		}
		w, res, err := r.ipam.PrepareRelease(ctx, r.kv.Get, n, ip.IP, owners...)
		switch {
		case errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrConflict):
			// Not reserved, or not ours: nothing to release.
			continue
		case err != nil:
			return within(fmt.Sprintf("ips[%d]", j), err)
		case slices.Contains(it.released, res.Address):
			continue // named twice: released once
		}
		it.add(w)
		it.released = append(it.released, res.Address)
	}
	return nil
}

func (it *syncItem) add(w ipam.Write) {
	it.cmps = append(it.cmps, w.Cmps...)
	it.ops = append(it.ops, w.Ops...)
	it.writes = append(it.writes, w)
}

// within puts an API error's field under prefix (attach[2] + ip =
// attach[2].ip); other errors pass unchanged.
func within(prefix string, err error) error {
	var ae *api.Error
	if err == nil || !errors.As(err, &ae) {
		return err
	}
	c := *ae
	if c.Field == "" {
		c.Field = prefix
	} else {
		c.Field = prefix + "." + c.Field
	}
	return &c
}

// syncResult is the result of an item that failed with err.
func syncResult(prefix string, err error) api.PortSyncResult {
	var ae *api.Error
	if errors.As(within(prefix, err), &ae) {
		return api.PortSyncResult{Error: ae.Message, Field: ae.Field, Code: ae.Code}
	}
	return api.PortSyncResult{Error: err.Error(), Code: 500}
}
