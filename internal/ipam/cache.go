package ipam

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// labelReleasing marks a block that ReleaseBlock is returning; its value is
// the time of the mark. While it is set, automatic allocation does not use
// the block, so that the emptiness check and the delete cannot be raced by
// an allocation. A mark older than releaseMarkTTL is taken as abandoned (a
// controller died mid-release): allocations use the block again, clearing
// the mark in their transaction, which makes a late delete fail safely.
const labelReleasing = "weft.io/releasing"

// releaseMarkTTL is how long a releasing mark keeps automatic allocation
// out of a block.
const releaseMarkTTL = 30 * time.Second

// quarEntry is a cached quarantine record.
type quarEntry struct {
	kv    store.KeyValue
	until time.Time // zero for an unreadable record, which counts as expired
}

// blockEntry is a cached block.
type blockEntry struct {
	kv       store.KeyValue
	block    api.Block
	prefix   netip.Prefix
	draining bool      // carries the releasing mark
	markedAt time.Time // time of the mark; zero when unreadable
}

// releasing reports whether the block is being released at now: marked,
// and not so long ago that the mark counts as abandoned.
func (e *blockEntry) releasing(now time.Time) bool {
	return e.draining && now.Sub(e.markedAt) < releaseMarkTTL
}

// netCache is an IPAM instance's view of one network's reservations,
// quarantine records and blocks. It is only a hint: every decision is a
// transaction whose conditions are checked by the store, and a failed
// condition refreshes the view.
type netCache struct {
	uuid string

	// refreshMu serialises refreshes so that goroutines hitting conflicts
	// at once share one.
	refreshMu sync.Mutex

	mu     sync.Mutex
	loaded bool
	gen    uint64 // incremented by every refresh
	// taken maps reserved addresses to the mod revision of their key; 0
	// marks an address assumed taken after a failed transaction, dropped at
	// the next refresh.
	taken map[netip.Addr]int64
	// pending holds addresses handed to an in-flight transaction of this
	// instance.
	pending map[netip.Addr]struct{}
	quar    map[netip.Addr]quarEntry
	blocks  map[netip.Prefix]*blockEntry
	// blockHold holds blocks in an in-flight lease of this instance (true)
	// or assumed leased after a failed one (false).
	blockHold map[netip.Prefix]bool
	// blockBits lists the distinct prefix lengths of cached blocks.
	blockBits []int
	// blockLow remembers, per subnet and block length, the lowest block
	// position not known to be leased: every position below it is a cached
	// or held block. Cleared whenever a block or a hold leaves the cache.
	blockLow map[blockLowKey]netip.Prefix
	// cursors are the next-fit positions, per scanned region.
	cursors map[netip.Prefix]netip.Addr
	rnd     *rand.Rand

	// Counters, for tests and benchmarks.
	conflicts, refreshes atomic.Int64
}

func newNetCache(netUUID string) *netCache {
	return &netCache{
		uuid:      netUUID,
		taken:     map[netip.Addr]int64{},
		pending:   map[netip.Addr]struct{}{},
		quar:      map[netip.Addr]quarEntry{},
		blocks:    map[netip.Prefix]*blockEntry{},
		blockHold: map[netip.Prefix]bool{},
		blockLow:  map[blockLowKey]netip.Prefix{},
		cursors:   map[netip.Prefix]netip.Addr{},
		rnd:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// generation returns the refresh generation, loading the cache first if it
// never was.
func (c *netCache) generation(ctx context.Context, kv store.KV) (uint64, error) {
	c.mu.Lock()
	loaded, gen := c.loaded, c.gen
	c.mu.Unlock()
	if loaded {
		return gen, nil
	}
	if err := c.refresh(ctx, kv, gen); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, nil
}

// refresh reloads the cache from the store unless another refresh completed
// since generation seen was observed.
func (c *netCache) refresh(ctx context.Context, kv store.KV, seen uint64) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.mu.Lock()
	skip := c.loaded && c.gen != seen
	c.mu.Unlock()
	if skip {
		return nil
	}
	c.refreshes.Add(1)

	resKVs, resRev, err := kv.List(ctx, reservationNetPrefix(c.uuid))
	if err != nil {
		return fmt.Errorf("ipam: load reservations of network %s: %w", c.uuid, err)
	}
	qKVs, qRev, err := kv.List(ctx, quarantineNetPrefix(c.uuid))
	if err != nil {
		return fmt.Errorf("ipam: load quarantine of network %s: %w", c.uuid, err)
	}
	bKVs, bRev, err := kv.List(ctx, blockNetPrefix(c.uuid))
	if err != nil {
		return fmt.Errorf("ipam: load blocks of network %s: %w", c.uuid, err)
	}

	taken := make(map[netip.Addr]int64, len(resKVs))
	for _, r := range resKVs {
		_, name, ok := splitKey(ReservationPrefix, r.Key)
		if !ok {
			continue
		}
		if a, err := parseAddress(name); err == nil {
			taken[a] = r.ModRevision
		}
	}
	quar := make(map[netip.Addr]quarEntry, len(qKVs))
	for _, q := range qKVs {
		_, name, ok := splitKey(QuarantinePrefix, q.Key)
		if !ok {
			continue
		}
		a, err := parseAddress(name)
		if err != nil {
			continue
		}
		rec, _ := parseQuarantine(q.Value) // unreadable: zero time, expired
		quar[a] = quarEntry{kv: q, until: rec.Until}
	}
	blocks := make(map[netip.Prefix]*blockEntry, len(bKVs))
	for _, b := range bKVs {
		e, err := decodeBlock(b)
		if err != nil {
			continue
		}
		blocks[e.prefix] = e
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	// Keep what this instance wrote after the lists were read.
	for a, rev := range c.taken {
		if rev > resRev {
			taken[a] = rev
		}
	}
	for a, q := range c.quar {
		if q.kv.ModRevision > qRev {
			quar[a] = q
		}
	}
	for p, b := range c.blocks {
		if b.kv.ModRevision > bRev {
			blocks[p] = b
		}
	}
	for p, inflight := range c.blockHold {
		if !inflight {
			delete(c.blockHold, p)
		}
	}
	c.taken, c.quar, c.blocks = taken, quar, blocks
	clear(c.blockLow)
	c.recomputeBlockBits()
	c.loaded = true
	c.gen++
	return nil
}

// blockLowKey identifies the blocks of one length in one subnet.
type blockLowKey struct {
	subnet netip.Prefix
	bits   int
}

// decodeBlock decodes a stored block.
func decodeBlock(kv store.KeyValue) (*blockEntry, error) {
	var b api.Block
	if err := json.Unmarshal(kv.Value, &b); err != nil {
		return nil, fmt.Errorf("ipam: decode block %s: %w", kv.Key, err)
	}
	_, name, ok := splitKey(BlockPrefix, kv.Key)
	if !ok {
		return nil, fmt.Errorf("ipam: malformed block key %q", kv.Key)
	}
	p, err := parseBlockName(name)
	if err != nil {
		return nil, fmt.Errorf("ipam: block key %q: %w", kv.Key, err)
	}
	b.ResourceVersion = kv.ModRevision
	e := &blockEntry{kv: kv, block: b, prefix: p}
	if mark, ok := b.Labels[labelReleasing]; ok {
		e.draining = true
		e.markedAt, _ = time.Parse(time.RFC3339Nano, mark)
	}
	return e, nil
}

// recomputeBlockBits rebuilds blockBits. Called with mu held.
func (c *netCache) recomputeBlockBits() {
	c.blockBits = c.blockBits[:0]
	for p := range c.blocks {
		if !slices.Contains(c.blockBits, p.Bits()) {
			c.blockBits = append(c.blockBits, p.Bits())
		}
	}
	slices.Sort(c.blockBits)
}

// putBlock records a block. Called with mu held.
func (c *netCache) putBlock(e *blockEntry) {
	c.blocks[e.prefix] = e
	if !slices.Contains(c.blockBits, e.prefix.Bits()) {
		c.blockBits = append(c.blockBits, e.prefix.Bits())
		slices.Sort(c.blockBits)
	}
}

// markCleared records that this instance cleared the releasing mark of e
// at revision rev. Called with mu held.
func (c *netCache) markCleared(e *blockEntry, rev int64) {
	b := e.block
	b.Labels = maps.Clone(b.Labels)
	delete(b.Labels, labelReleasing)
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	b.ResourceVersion = rev
	val, err := blockValue(b, time.Time{})
	if err != nil {
		return
	}
	c.putBlock(&blockEntry{
		kv:     store.KeyValue{Key: e.kv.Key, Value: val, CreateRevision: e.kv.CreateRevision, ModRevision: rev},
		block:  b,
		prefix: e.prefix,
	})
}

// blockAt returns the cached block containing a. Called with mu held.
func (c *netCache) blockAt(a netip.Addr) *blockEntry {
	for _, bits := range c.blockBits {
		if bits > a.BitLen() {
			continue
		}
		if e, ok := c.blocks[netip.PrefixFrom(a, bits).Masked()]; ok {
			return e
		}
	}
	return nil
}

// blockOverlaps reports whether p overlaps a cached or held block. Called
// with mu held.
func (c *netCache) blockOverlaps(p netip.Prefix) bool {
	if _, ok := c.blockHold[p]; ok {
		return true
	}
	for _, bits := range c.blockBits {
		switch {
		case bits > p.Addr().BitLen():
		case bits <= p.Bits():
			if _, ok := c.blocks[netip.PrefixFrom(p.Addr(), bits).Masked()]; ok {
				return true
			}
		default:
			// A longer block inside p: only with blocks of several sizes,
			// after a subnet's block prefix was changed.
			for q := range c.blocks {
				if q.Bits() == bits && p.Contains(q.Addr()) {
					return true
				}
			}
		}
	}
	return false
}

// sortedBlocks returns the cached blocks inside the subnet for which keep
// holds, by address. Called with mu held.
func (c *netCache) sortedBlocks(s *subnet, keep func(*blockEntry) bool) []*blockEntry {
	var out []*blockEntry
	for _, e := range c.blocks {
		if containsPrefix(s.prefix, e.prefix) && keep(e) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *blockEntry) int {
		return cmp.Or(a.prefix.Addr().Compare(b.prefix.Addr()), cmp.Compare(a.prefix.Bits(), b.prefix.Bits()))
	})
	return out
}

// free reports whether a may be handed out automatically at now. Called
// with mu held.
func (c *netCache) free(s *subnet, a netip.Addr, now time.Time) bool {
	if s.special(a) {
		return false
	}
	if _, ok := c.taken[a]; ok {
		return false
	}
	if _, ok := c.pending[a]; ok {
		return false
	}
	if q, ok := c.quar[a]; ok && q.until.After(now) {
		return false
	}
	return true
}

// scanCheckEvery is how many addresses a scan walks between context checks.
const scanCheckEvery = 1 << 14

// scan returns a free address of region (a prefix inside s), next-fit from
// the region's cursor and wrapping once. With skipBlocks, addresses inside
// blocks are skipped a whole block at a time. The walk visits at most the
// taken, pending and quarantined addresses, the blocks and the special
// addresses before it finds a free one, so it never enumerates a large
// free subnet. Called with mu held.
func (c *netCache) scan(ctx context.Context, s *subnet, region netip.Prefix, skipBlocks bool, now time.Time) (netip.Addr, error) {
	first, last := region.Addr(), lastAddr(region)
	cur, ok := c.cursors[region]
	if !ok || !region.Contains(cur) {
		cur = randomAddr(region, c.rnd)
	}
	segments := [][2]netip.Addr{{cur, last}}
	if cur != first {
		segments = append(segments, [2]netip.Addr{first, cur.Prev()})
	}
	steps := 0
	for _, seg := range segments {
		for a := seg[0]; a.IsValid() && a.Compare(seg[1]) <= 0; {
			if steps++; steps%scanCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return netip.Addr{}, err
				}
			}
			if skipBlocks {
				if e := c.blockAt(a); e != nil {
					a = lastAddr(e.prefix).Next()
					continue
				}
			}
			if c.free(s, a, now) {
				next := a.Next()
				if a == last {
					next = first
				}
				c.cursors[region] = next
				return a, nil
			}
			a = a.Next()
		}
	}
	return netip.Addr{}, nil
}

// jumpCursor moves the cursor of region to a random place, so that an
// instance that collided with another one stops following it.
func (c *netCache) jumpCursor(region netip.Prefix) {
	c.cursors[region] = randomAddr(region, c.rnd)
}
