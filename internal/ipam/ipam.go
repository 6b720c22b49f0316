// Package ipam is the IPAM server of Weft: it reserves addresses of
// networks for owners and leases per-node address blocks, keeping all of
// its state in the store (etcd).
//
// Every decision is a store transaction whose conditions make it safe for
// several controller replicas sharing one etcd: an address is taken only by
// a transaction requiring its reservation key to be absent (and its
// quarantine record, if any, to be unchanged), and a block is leased only by
// one requiring its key to be absent. Each instance keeps a per-network
// cache of the store to pick candidates, refreshed when a transaction's
// condition fails; the cache is never trusted for correctness.
//
// Key layout (see the Prefix constants):
//
//	/weft/v1/obj/ip_reservation/<net-uuid>/<address>  api.IPReservation
//	/weft/v1/obj/block/<net-uuid>/<cidr, '/' as '_'>  api.Block
//	/weft/v1/ipam/quarantine/<net-uuid>/<address>     {"until": time, "owner": previous owner}
package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// DefaultQuarantine is how long a released address is kept from automatic
// allocation when Config.Quarantine is zero.
const DefaultQuarantine = 60 * time.Second

// maxAttempts bounds the transactions one decision may try before giving up
// on concurrent changes.
const maxAttempts = 64

// rollbackTimeout bounds the undo of a half-made dual-stack allocation,
// which runs even when the request's context is done.
const rollbackTimeout = 10 * time.Second

// Config configures an IPAM.
type Config struct {
	// Quarantine is how long a released address is kept from automatic
	// allocation; 0 means DefaultQuarantine and a negative value disables
	// quarantine.
	Quarantine time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// DefaultBlockPrefix4 and DefaultBlockPrefix6 are the block prefix
	// lengths of subnets without BlockPrefix; default 26 and 122.
	DefaultBlockPrefix4, DefaultBlockPrefix6 int
}

// IPAM allocates addresses and blocks of networks. It is safe for
// concurrent use, and several IPAMs (in one process or several) may share
// one store.
type IPAM struct {
	kv  store.KV
	cfg Config

	mu     sync.Mutex
	caches map[string]*netCache
}

// New returns an IPAM keeping its state in kv.
func New(kv store.KV, cfg Config) *IPAM {
	if cfg.Quarantine == 0 {
		cfg.Quarantine = DefaultQuarantine
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultBlockPrefix4 <= 0 || cfg.DefaultBlockPrefix4 > 32 {
		cfg.DefaultBlockPrefix4 = DefaultBlockPrefix4
	}
	if cfg.DefaultBlockPrefix6 <= 0 || cfg.DefaultBlockPrefix6 > 128 {
		cfg.DefaultBlockPrefix6 = DefaultBlockPrefix6
	}
	return &IPAM{kv: kv, cfg: cfg, caches: map[string]*netCache{}}
}

func (m *IPAM) now() time.Time { return m.cfg.Now().UTC() }

// cache returns the network's cache, creating it (unloaded) when needed.
func (m *IPAM) cache(netUUID string) *netCache {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.caches[netUUID]
	if !ok {
		c = newNetCache(netUUID)
		m.caches[netUUID] = c
	}
	return c
}

// cacheIfAny returns the network's cache or nil.
func (m *IPAM) cacheIfAny(netUUID string) *netCache {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.caches[netUUID]
}

func (m *IPAM) subnets(n Network) ([]*subnet, error) {
	return parseSubnets(n, m.cfg.DefaultBlockPrefix4, m.cfg.DefaultBlockPrefix6)
}

// made is one reservation written (or found) by Allocate.
type made struct {
	res     api.IPReservation
	kv      store.KeyValue
	created bool
}

// Allocate reserves addresses of network n for req.Owner: one per family
// (req.Family "ipv4", "ipv6" or "dual"; default the family of req.IP, else
// ipv4). With req.IP that address is reserved, even if it is in
// quarantine; reserving again an address the same owner holds returns the
// existing reservation. Otherwise addresses are chosen automatically,
// never from quarantine: without req.Node outside blocks first, then
// borrowed from blocks; with req.Node from the node's blocks, then from a
// block newly leased for the node, then anywhere. req.Count (automatic
// allocation only) asks for that many addresses per family; a family that
// runs out after its first address gives fewer. A dual-stack allocation
// is all or nothing: each family gets at least one address, or none does.
func (m *IPAM) Allocate(ctx context.Context, n Network, req api.AllocateRequest) ([]api.IPReservation, error) {
	subs, err := m.subnets(n)
	if err != nil {
		return nil, err
	}
	if req.Owner == "" {
		return nil, api.Invalid("owner", "owner is required")
	}
	var ip netip.Addr
	if req.IP != "" {
		a, err := parseAddress(req.IP)
		if err != nil {
			return nil, api.Invalid("ip", "%v", err)
		}
		ip = a
	}
	var ipSub *subnet
	ipFam := ""
	if ip.IsValid() {
		if ipSub, ip = subnetOf(subs, ip); ipSub == nil {
			return nil, api.Invalid("ip", "address %s is not in any subnet of network %s", req.IP, n.name())
		}
		if r := ipSub.reason(ip); r != "" {
			return nil, api.Invalid("ip", "address %s is %s of subnet %s of network %s", ip, r, ipSub.prefix, n.name())
		}
		ipFam = ipSub.family
	}
	fams, err := families(req.Family, ipFam)
	if err != nil {
		return nil, err
	}
	if ipFam != "" && !slices.Contains(fams, ipFam) {
		return nil, api.Invalid("family", "address %s is not of family %s", ip, req.Family)
	}
	for _, fam := range fams {
		if len(ofFamily(subs, fam)) == 0 {
			return nil, api.Invalid("family", "network %s has no %s subnet", n.name(), familyLabel(fam))
		}
	}

	switch {
	case req.Count < 0 || req.Count > api.MaxAllocateCount:
		return nil, api.Invalid("count", "%d is out of range (1-%d)", req.Count, api.MaxAllocateCount)
	case req.Count > 1 && ip.IsValid():
		return nil, api.Invalid("count", "an explicit address is one address; count is for automatic allocation")
	}

	c := m.cache(n.UUID)
	var done []made
	for _, fam := range fams {
		var mks []made
		var err error
		if ip.IsValid() && fam == ipSub.family {
			var mk made
			mk, err = m.allocExplicit(ctx, c, n, ipSub, ip, req)
			mks = []made{mk}
		} else {
			mks, err = m.allocAutoMany(ctx, c, n, ofFamily(subs, fam), fam, req, max(req.Count, 1))
		}
		done = append(done, mks...)
		if err != nil {
			return nil, errors.Join(err, m.rollback(ctx, c, done))
		}
	}
	out := make([]api.IPReservation, len(done))
	for i, mk := range done {
		out[i] = mk.res
	}
	return out, nil
}

// families resolves the requested family; ipFam is the family of the
// requested address, if any.
func families(fam, ipFam string) ([]string, error) {
	switch fam {
	case "":
		if ipFam != "" {
			return []string{ipFam}, nil
		}
		return []string{FamilyIPv4}, nil
	case FamilyIPv4, FamilyIPv6:
		return []string{fam}, nil
	case FamilyDual:
		return []string{FamilyIPv4, FamilyIPv6}, nil
	}
	return nil, api.Invalid("family", "unknown family %q (want %s, %s or %s)", fam, FamilyIPv4, FamilyIPv6, FamilyDual)
}

// subnetOf returns the subnet containing a, trying the IPv4 form of an
// IPv4-mapped IPv6 address too, and the address in the subnet's form.
func subnetOf(subs []*subnet, a netip.Addr) (*subnet, netip.Addr) {
	for _, cand := range []netip.Addr{a, a.Unmap()} {
		for _, s := range subs {
			if s.prefix.Contains(cand) {
				return s, cand
			}
		}
	}
	return nil, a
}

// rollback deletes the reservations Allocate created before failing,
// without quarantine.
func (m *IPAM) rollback(ctx context.Context, c *netCache, done []made) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	var errs []error
	for _, mk := range done {
		if !mk.created {
			continue
		}
		if _, err := m.kv.Txn(ctx, []store.Cmp{store.Unchanged(mk.kv)}, []store.Op{store.Delete(mk.kv.Key)}); err != nil {
			errs = append(errs, fmt.Errorf("ipam: roll back reservation of %s: %w", mk.res.Address, err))
			continue
		}
		if a, err := netip.ParseAddr(mk.res.Address); err == nil {
			c.mu.Lock()
			delete(c.taken, a)
			c.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// newReservation builds the record of a reservation of a.
func (m *IPAM) newReservation(n Network, a netip.Addr, req api.AllocateRequest) (api.IPReservation, []byte, error) {
	res := api.IPReservation{
		Meta: api.Meta{
			Kind:      api.KindIPReservation,
			UUID:      uuid.NewString(),
			Name:      a.String(),
			Labels:    maps.Clone(req.Labels),
			CreatedAt: m.now(),
		},
		Network: n.FQName,
		Address: a.String(),
		Owner:   req.Owner,
		Node:    req.Node,
		Port:    req.Port,
	}
	b, err := json.Marshal(res)
	if err != nil {
		return api.IPReservation{}, nil, fmt.Errorf("ipam: encode reservation of %s: %w", a, err)
	}
	return res, b, nil
}

// blockCond returns the condition on the block enclosing a: unchanged when
// the cache knows one, absent otherwise. Every allocation carries it, so
// that an allocation cannot land in a block being released (see
// ReleaseBlock) nor be decided on a stale view of the blocks. Called with
// c.mu held.
func blockCond(c *netCache, s *subnet, a netip.Addr) (store.Cmp, *blockEntry) {
	if e := c.blockAt(a); e != nil {
		return store.Unchanged(e.kv), e
	}
	return store.Absent(blockKey(c.uuid, s.blockFor(a))), nil
}

// allocExplicit reserves exactly a (already checked to be an assignable
// address of s).
func (m *IPAM) allocExplicit(ctx context.Context, c *netCache, n Network, s *subnet, a netip.Addr, req api.AllocateRequest) (made, error) {
	key := reservationKey(n.UUID, a)
	for range maxAttempts {
		gen, err := c.generation(ctx, m.kv)
		if err != nil {
			return made{}, err
		}
		res, val, err := m.newReservation(n, a, req)
		if err != nil {
			return made{}, err
		}
		c.mu.Lock()
		bc, blk := blockCond(c, s, a)
		c.mu.Unlock()
		cmps := []store.Cmp{store.Absent(key), bc}
		ops := []store.Op{store.Put(key, val), store.Delete(quarantineKey(n.UUID, a))}
		var unmarked []byte
		if blk != nil && blk.draining {
			// Taking an address of a block being released cancels the
			// release: ReleaseBlock's delete then fails and it finds the
			// block in use.
			if unmarked, err = blockValue(blk.block, time.Time{}); err != nil {
				return made{}, err
			}
			ops = append(ops, store.Put(blk.kv.Key, unmarked))
		}
		rev, err := m.kv.Txn(ctx, cmps, ops)
		if err == nil {
			res.ResourceVersion = rev
			c.mu.Lock()
			c.taken[a] = rev
			delete(c.quar, a)
			if unmarked != nil {
				c.markCleared(blk, rev)
			}
			c.mu.Unlock()
			return made{res: res, kv: store.KeyValue{Key: key, Value: val, ModRevision: rev}, created: true}, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return made{}, fmt.Errorf("ipam: reserve %s in network %s: %w", a, n.name(), err)
		}
		// Either the address is taken or the block changed.
		cur, gerr := m.kv.Get(ctx, key)
		switch {
		case gerr == nil:
			var held api.IPReservation
			if err := json.Unmarshal(cur.Value, &held); err != nil {
				return made{}, fmt.Errorf("ipam: decode reservation %s: %w", key, err)
			}
			held.ResourceVersion = cur.ModRevision
			c.mu.Lock()
			c.taken[a] = cur.ModRevision
			c.mu.Unlock()
			if held.Owner == req.Owner {
				return made{res: held, kv: cur}, nil
			}
			return made{}, api.Conflict("ip", "address %s is already reserved in network %s by owner %s", a, n.name(), held.Owner)
		case !errors.Is(gerr, store.ErrNotFound):
			return made{}, fmt.Errorf("ipam: reserve %s in network %s: %w", a, n.name(), gerr)
		}
		if err := c.refresh(ctx, m.kv, gen); err != nil {
			return made{}, err
		}
	}
	return made{}, api.Conflict("ip", "network %s: gave up reserving %s after %d conflicting concurrent changes; retry", n.name(), a, maxAttempts)
}

// candidate is an address picked from the cache for a transaction.
type candidate struct {
	addr   netip.Addr
	region netip.Prefix
	gen    uint64
	cmps   []store.Cmp
	ops    []store.Op
	unmark *blockEntry // block whose abandoned releasing mark ops clear
}

// pick chooses a candidate for automatic allocation from the cache: the
// node's blocks first (when node is set), then, if borrow is set,
// addresses outside blocks and at last inside other blocks. The candidate
// is marked pending. ok is false when the cache has nothing.
func (m *IPAM) pick(ctx context.Context, c *netCache, subs []*subnet, node string, borrow bool) (cand candidate, ok bool, err error) {
	now := m.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	found := func(s *subnet, region netip.Prefix, a netip.Addr) (candidate, bool, error) {
		cand := candidate{addr: a, region: region, gen: c.gen}
		bc, blk := blockCond(c, s, a)
		qkey := quarantineKey(c.uuid, a)
		cand.cmps = []store.Cmp{store.Absent(reservationKey(c.uuid, a)), bc}
		if blk != nil && blk.draining {
			// An abandoned releasing mark (scan skipped live ones): clear it.
			val, err := blockValue(blk.block, time.Time{})
			if err != nil {
				return candidate{}, false, err
			}
			cand.ops = append(cand.ops, store.Put(blk.kv.Key, val))
			cand.unmark = blk
		}
		if q, ok := c.quar[a]; ok {
			// Expired (scan checked): removed in the same transaction.
			cand.cmps = append(cand.cmps, store.Unchanged(q.kv))
			cand.ops = append(cand.ops, store.Delete(qkey))
		} else {
			cand.cmps = append(cand.cmps, store.Absent(qkey))
		}
		c.pending[a] = struct{}{}
		return cand, true, nil
	}
	if node != "" {
		for _, s := range subs {
			for _, e := range c.sortedBlocks(s, func(e *blockEntry) bool { return e.block.Node == node && !e.releasing(now) }) {
				a, err := c.scan(ctx, s, e.prefix, false, now)
				if err != nil {
					return candidate{}, false, err
				}
				if a.IsValid() {
					return found(s, e.prefix, a)
				}
			}
		}
		if !borrow {
			return candidate{}, false, nil
		}
	}
	for _, s := range subs {
		a, err := c.scan(ctx, s, s.prefix, true, now)
		if err != nil {
			return candidate{}, false, err
		}
		if a.IsValid() {
			return found(s, s.prefix, a)
		}
	}
	for _, s := range subs {
		for _, e := range c.sortedBlocks(s, func(e *blockEntry) bool { return !e.releasing(now) && (node == "" || e.block.Node != node) }) {
			a, err := c.scan(ctx, s, e.prefix, false, now)
			if err != nil {
				return candidate{}, false, err
			}
			if a.IsValid() {
				return found(s, e.prefix, a)
			}
		}
	}
	return candidate{}, false, nil
}

// maxLeasesPerAllocation bounds the blocks one allocation may lease for its
// node when concurrent allocations keep filling them.
const maxLeasesPerAllocation = 2

// allocAuto reserves one automatically chosen address of the family.
func (m *IPAM) allocAuto(ctx context.Context, c *netCache, n Network, subs []*subnet, fam string, req api.AllocateRequest) (made, error) {
	if _, err := c.generation(ctx, m.kv); err != nil {
		return made{}, err
	}
	refreshed := false
	borrow := req.Node == ""
	leases := 0
	conflicts := 0
	for conflicts < maxAttempts {
		if err := ctx.Err(); err != nil {
			return made{}, err
		}
		cand, ok, err := m.pick(ctx, c, subs, req.Node, borrow)
		if err != nil {
			return made{}, err
		}
		if !ok {
			c.mu.Lock()
			gen := c.gen
			c.mu.Unlock()
			switch {
			case !refreshed:
				// The view may be stale: others may have released.
				if err := c.refresh(ctx, m.kv, gen); err != nil {
					return made{}, err
				}
				refreshed = true
			case !borrow && leases < maxLeasesPerAllocation:
				leases++
				if _, err := m.leaseBlock(ctx, c, n, subs, req.Node, fam); err != nil {
					if !errors.Is(err, api.ErrExhausted) {
						return made{}, err
					}
					borrow = true
				}
			case !borrow:
				borrow = true
			default:
				return made{}, m.exhausted(c, n, subs, fam)
			}
			continue
		}
		res, val, err := m.newReservation(n, cand.addr, req)
		if err != nil {
			m.unpend(c, cand.addr)
			return made{}, err
		}
		key := reservationKey(n.UUID, cand.addr)
		rev, err := m.kv.Txn(ctx, cand.cmps, append([]store.Op{store.Put(key, val)}, cand.ops...))
		c.mu.Lock()
		delete(c.pending, cand.addr)
		switch {
		case err == nil:
			c.taken[cand.addr] = rev
			delete(c.quar, cand.addr)
			if cand.unmark != nil {
				c.markCleared(cand.unmark, rev)
			}
		case errors.Is(err, store.ErrConflict):
			if _, ok := c.taken[cand.addr]; !ok {
				c.taken[cand.addr] = 0
			}
			c.jumpCursor(cand.region)
		}
		c.mu.Unlock()
		if err == nil {
			res.ResourceVersion = rev
			return made{res: res, kv: store.KeyValue{Key: key, Value: val, ModRevision: rev}, created: true}, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return made{}, fmt.Errorf("ipam: reserve %s in network %s: %w", cand.addr, n.name(), err)
		}
		conflicts++
		c.conflicts.Add(1)
		if err := c.refresh(ctx, m.kv, cand.gen); err != nil {
			return made{}, err
		}
		refreshed = true
	}
	return made{}, api.Conflict("network", "network %s: gave up allocating an %s address after %d conflicting concurrent allocations; retry", n.name(), familyLabel(fam), maxAttempts)
}

func (m *IPAM) unpend(c *netCache, a netip.Addr) {
	c.mu.Lock()
	delete(c.pending, a)
	c.mu.Unlock()
}

// exhausted builds the error of a family without free address.
func (m *IPAM) exhausted(c *netCache, n Network, subs []*subnet, fam string) error {
	now := m.now()
	size := new(big.Int)
	used, quarantined := 0, 0
	c.mu.Lock()
	for _, s := range subs {
		size.Add(size, s.usable())
	}
	for a := range c.taken {
		if s, _ := subnetOf(subs, a); s != nil && !s.special(a) {
			used++
		}
	}
	for a, q := range c.quar {
		if _, held := c.taken[a]; held || !q.until.After(now) {
			continue
		}
		if s, _ := subnetOf(subs, a); s != nil && !s.special(a) {
			quarantined++
		}
	}
	c.mu.Unlock()
	if quarantined > 0 {
		return api.Exhausted("network", "network %s has no free %s address in %s (%d of %s in use, %d more in quarantine)", n.name(), familyLabel(fam), cidrList(subs), used, size, quarantined)
	}
	return api.Exhausted("network", "network %s has no free %s address in %s (%d of %s in use)", n.name(), familyLabel(fam), cidrList(subs), used, size)
}
