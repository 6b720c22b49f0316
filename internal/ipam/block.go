package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// LeaseBlock leases to node the lowest free aligned block of the family
// (FamilyIPv4 when empty) in network n, taking the first subnet of the
// family with room. The block's prefix length is the subnet's BlockPrefix
// or the default of the family, never shorter than the subnet.
func (m *IPAM) LeaseBlock(ctx context.Context, n Network, node, family string) (api.Block, error) {
	subs, err := m.subnets(n)
	if err != nil {
		return api.Block{}, err
	}
	if node == "" {
		return api.Block{}, api.Invalid("node", "node is required")
	}
	switch family {
	case "":
		family = FamilyIPv4
	case FamilyIPv4, FamilyIPv6:
	default:
		return api.Block{}, api.Invalid("family", "unknown block family %q (want %s or %s)", family, FamilyIPv4, FamilyIPv6)
	}
	fsubs := ofFamily(subs, family)
	if len(fsubs) == 0 {
		return api.Block{}, api.Invalid("family", "network %s has no %s subnet", n.name(), familyLabel(family))
	}
	return m.leaseBlock(ctx, m.cache(n.UUID), n, fsubs, node, family)
}

// leaseBlock leases a block of subs (all of one family) to node.
func (m *IPAM) leaseBlock(ctx context.Context, c *netCache, n Network, subs []*subnet, node, fam string) (api.Block, error) {
	refreshed := false
	for conflicts := 0; conflicts < maxAttempts; {
		gen, err := c.generation(ctx, m.kv)
		if err != nil {
			return api.Block{}, err
		}
		c.mu.Lock()
		p, ok, err := c.lowestFreeBlock(ctx, subs, m.now())
		if ok {
			c.blockHold[p] = true
		}
		c.mu.Unlock()
		if err != nil {
			return api.Block{}, err
		}
		if !ok {
			if !refreshed {
				if err := c.refresh(ctx, m.kv, gen); err != nil {
					return api.Block{}, err
				}
				refreshed = true
				continue
			}
			return api.Block{}, m.blocksExhausted(c, n, subs, fam)
		}

		b := api.Block{
			Meta: api.Meta{
				Kind:      api.KindBlock,
				UUID:      uuid.NewString(),
				Name:      p.String(),
				CreatedAt: m.now(),
			},
			Network: n.FQName,
			CIDR:    p.String(),
			Node:    node,
		}
		val, err := json.Marshal(b)
		if err != nil {
			c.mu.Lock()
			delete(c.blockHold, p)
			clear(c.blockLow)
			c.mu.Unlock()
			return api.Block{}, fmt.Errorf("ipam: encode block %s: %w", p, err)
		}
		key := blockKey(n.UUID, p)
		rev, err := m.kv.Txn(ctx, []store.Cmp{store.Absent(key)}, []store.Op{store.Put(key, val)})
		c.mu.Lock()
		switch {
		case err == nil:
			delete(c.blockHold, p)
			b.ResourceVersion = rev
			c.putBlock(&blockEntry{kv: store.KeyValue{Key: key, Value: val, CreateRevision: rev, ModRevision: rev}, block: b, prefix: p})
		case errors.Is(err, store.ErrConflict):
			c.blockHold[p] = false // assumed leased until the next refresh
		default:
			delete(c.blockHold, p)
			clear(c.blockLow)
		}
		c.mu.Unlock()
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return api.Block{}, fmt.Errorf("ipam: lease block %s of network %s: %w", p, n.name(), err)
		}
		conflicts++
		c.conflicts.Add(1)
		if err := c.refresh(ctx, m.kv, gen); err != nil {
			return api.Block{}, err
		}
		refreshed = true
	}
	return api.Block{}, api.Conflict("network", "network %s: gave up leasing a block after %d conflicting concurrent leases; retry", n.name(), maxAttempts)
}

// lowestFreeBlock returns the lowest aligned block of the first subnet with
// one that overlaps no cached or held block and has at least one address
// free (a block filled by allocations without node would be of no use to
// its node). It walks past one block per leased or filled block, never
// through free space. Called with c.mu held.
func (c *netCache) lowestFreeBlock(ctx context.Context, subs []*subnet, now time.Time) (netip.Prefix, bool, error) {
	steps := 0
	for _, s := range subs {
		lk := blockLowKey{subnet: s.prefix, bits: s.blockBits}
		b, ok := c.blockLow[lk]
		if !ok {
			b = netip.PrefixFrom(s.prefix.Addr(), s.blockBits)
		}
		lowSet := false
		for ok := true; ok && s.prefix.Contains(b.Addr()); b, ok = nextPrefix(b) {
			if steps++; steps%scanCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return netip.Prefix{}, false, err
				}
			}
			if c.blockOverlaps(b) {
				continue
			}
			if !lowSet {
				c.blockLow[lk] = b
				lowSet = true
			}
			if c.hasFree(s, b, now) {
				return b, true, nil
			}
		}
		if !lowSet {
			c.blockLow[lk] = b // past the end: every block is leased
		}
	}
	return netip.Prefix{}, false, nil
}

// hasFree reports whether p (inside s) has an address free for automatic
// allocation. It stops at the first one, so it walks at most the taken,
// pending and quarantined addresses of p. Called with c.mu held.
func (c *netCache) hasFree(s *subnet, p netip.Prefix, now time.Time) bool {
	last := lastAddr(p)
	for a := p.Addr(); a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		if c.free(s, a, now) {
			return true
		}
	}
	return false
}

// blocksExhausted builds the error of a family without free block.
func (m *IPAM) blocksExhausted(c *netCache, n Network, subs []*subnet, fam string) error {
	total := new(big.Int)
	leased := 0
	c.mu.Lock()
	for _, s := range subs {
		total.Add(total, new(big.Int).Lsh(big.NewInt(1), uint(s.blockBits-s.prefix.Bits())))
		for p := range c.blocks {
			if containsPrefix(s.prefix, p) {
				leased++
			}
		}
	}
	c.mu.Unlock()
	if big.NewInt(int64(leased)).Cmp(total) < 0 {
		return api.Exhausted("network", "network %s has no free %s block in %s (%d of %s leased, the others have no free address)", n.name(), familyLabel(fam), cidrList(subs), leased, total)
	}
	return api.Exhausted("network", "network %s has no free %s block in %s (%d of %s leased)", n.name(), familyLabel(fam), cidrList(subs), leased, total)
}

// ReleaseBlock returns the block cidr leased to node in network n. It is
// refused with api.ErrInUse while reservations remain inside the block,
// and with api.ErrConflict when another node holds the block; releasing a
// block that is not leased succeeds.
//
// The check for reservations cannot be a single transaction, so the block
// is first marked as being released (label "weft.io/releasing"), which
// makes any allocation decided on its earlier state fail, and stops
// automatic allocation in it; then the reservations are listed, and the
// block deleted only if it is still in the marked state. An explicit
// allocation in the block meanwhile clears the mark, so the delete fails and
// the block is found in use. When reservations remain, the mark is removed
// again.
func (m *IPAM) ReleaseBlock(ctx context.Context, n Network, cidr, node string) error {
	if _, err := m.subnets(n); err != nil {
		return err
	}
	if node == "" {
		return api.Invalid("node", "node is required")
	}
	p, err := parseBlockCIDR(cidr)
	if err != nil {
		return api.Invalid("cidr", "%v", err)
	}
	key := blockKey(n.UUID, p)
	c := m.cacheIfAny(n.UUID)
	for range maxAttempts {
		kv, err := m.kv.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			m.forgetBlock(c, p)
			return nil
		}
		if err != nil {
			return fmt.Errorf("ipam: release block %s of network %s: %w", p, n.name(), err)
		}
		e, err := decodeBlock(kv)
		if err != nil {
			return err
		}
		if e.block.Node != node {
			return api.Conflict("node", "block %s of network %s is leased by node %s, not %s", p, n.name(), e.block.Node, node)
		}
		plain, err := blockValue(e.block, time.Time{})
		if err != nil {
			return err
		}
		marked := kv
		if !e.draining {
			val, err := blockValue(e.block, m.now())
			if err != nil {
				return err
			}
			rev, err := m.kv.Txn(ctx, []store.Cmp{store.Unchanged(kv)}, []store.Op{store.Put(key, val)})
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return fmt.Errorf("ipam: release block %s of network %s: %w", p, n.name(), err)
			}
			marked = store.KeyValue{Key: key, Value: val, CreateRevision: kv.CreateRevision, ModRevision: rev}
		}
		m.noteBlock(c, marked)

		resKVs, _, err := m.kv.List(ctx, reservationNetPrefix(n.UUID))
		if err != nil {
			return fmt.Errorf("ipam: release block %s of network %s: %w", p, n.name(), err)
		}
		inside := 0
		for _, r := range resKVs {
			if _, name, ok := splitKey(ReservationPrefix, r.Key); ok {
				if a, err := parseAddress(name); err == nil && p.Contains(a) {
					inside++
				}
			}
		}
		if inside > 0 {
			rev, err := m.kv.Txn(ctx, []store.Cmp{store.Unchanged(marked)}, []store.Op{store.Put(key, plain)})
			if err == nil {
				m.noteBlock(c, store.KeyValue{Key: key, Value: plain, CreateRevision: kv.CreateRevision, ModRevision: rev})
			}
			return api.InUse("block %s of network %s still holds %d reservation(s)", p, n.name(), inside)
		}
		_, err = m.kv.Txn(ctx, []store.Cmp{store.Unchanged(marked)}, []store.Op{store.Delete(key)})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ipam: release block %s of network %s: %w", p, n.name(), err)
		}
		m.forgetBlock(c, p)
		return nil
	}
	return api.Conflict("cidr", "network %s: gave up releasing block %s after %d conflicting concurrent changes; retry", n.name(), p, maxAttempts)
}

// blockValue encodes b with the releasing mark of time markAt, or without
// mark when markAt is zero.
func blockValue(b api.Block, markAt time.Time) ([]byte, error) {
	b.Labels = maps.Clone(b.Labels)
	if !markAt.IsZero() {
		if b.Labels == nil {
			b.Labels = map[string]string{}
		}
		b.Labels[labelReleasing] = markAt.Format(time.RFC3339Nano)
	} else {
		delete(b.Labels, labelReleasing)
		if len(b.Labels) == 0 {
			b.Labels = nil
		}
	}
	b.ResourceVersion = 0
	v, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("ipam: encode block %s: %w", b.CIDR, err)
	}
	return v, nil
}

// noteBlock records a block this instance wrote in its cache, if it has one.
func (m *IPAM) noteBlock(c *netCache, kv store.KeyValue) {
	if c == nil {
		return
	}
	e, err := decodeBlock(kv)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.putBlock(e)
	c.mu.Unlock()
}

// forgetBlock drops a block this instance deleted from its cache.
func (m *IPAM) forgetBlock(c *netCache, p netip.Prefix) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.blocks, p)
	c.recomputeBlockBits()
	clear(c.blockLow)
	c.mu.Unlock()
}
