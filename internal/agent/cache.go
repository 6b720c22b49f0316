package agent

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/weft-sdn/weft/internal/api"
)

// watchedKinds are the kinds the agent mirrors from the controller.
var watchedKinds = []api.Kind{api.KindNetwork, api.KindNode, api.KindBlock, api.KindIPReservation}

// Snapshot is an immutable view of the controller objects the agent
// follows. Maps are keyed by uuid, except Nodes (by name).
type Snapshot struct {
	Networks     map[string]*api.Network
	Nodes        map[string]*api.Node
	Blocks       map[string]*api.Block
	Reservations map[string]*api.IPReservation
}

// NetworkByRef finds a network by uuid or fq_name.
func (s *Snapshot) NetworkByRef(ref string) *api.Network {
	if n, ok := s.Networks[ref]; ok {
		return n
	}
	for _, n := range s.Networks {
		if n.FQName == ref {
			return n
		}
	}
	return nil
}

// cache mirrors the controller's networks, nodes, blocks and reservations.
// Snapshot hands out an immutable copy, rebuilt only after a change.
type cache struct {
	mu   sync.Mutex
	cur  *Snapshot // mutated in place under mu
	snap *Snapshot // last copy handed out; nil when cur changed since
	// listRev is the revision each kind was listed at; watch events at or
	// below it are already in the list.
	listRev map[api.Kind]int64
	synced  bool
}

func newCache() *cache {
	return &cache{cur: emptySnapshot(), listRev: map[api.Kind]int64{}}
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		Networks:     map[string]*api.Network{},
		Nodes:        map[string]*api.Node{},
		Blocks:       map[string]*api.Block{},
		Reservations: map[string]*api.IPReservation{},
	}
}

// Snapshot returns the current view; the caller must not modify it.
func (c *cache) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == nil {
		c.snap = &Snapshot{
			Networks:     maps.Clone(c.cur.Networks),
			Nodes:        maps.Clone(c.cur.Nodes),
			Blocks:       maps.Clone(c.cur.Blocks),
			Reservations: maps.Clone(c.cur.Reservations),
		}
	}
	return c.snap
}

// Network finds a network by uuid or fq_name.
func (c *cache) Network(ref string) *api.Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.NetworkByRef(ref)
}

// Node finds a node by name, without copying the view (the attach path
// uses it; nodes change with every heartbeat).
func (c *cache) Node(name string) *api.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.Nodes[name]
}

// Synced reports whether a full list has been loaded.
func (c *cache) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// listed is the result of listing every watched kind.
type listed struct {
	networks     []api.Network
	nodes        []api.Node
	blocks       []api.Block
	reservations []api.IPReservation
	revs         map[api.Kind]int64
}

// replace installs a fresh list and returns the revision to watch from:
// the lowest list revision, so that nothing between the lists is missed
// (events a list already holds are skipped by apply).
func (c *cache) replace(l listed) int64 {
	s := emptySnapshot()
	for i := range l.networks {
		s.Networks[l.networks[i].UUID] = &l.networks[i]
	}
	for i := range l.nodes {
		s.Nodes[l.nodes[i].FQName] = &l.nodes[i]
	}
	for i := range l.blocks {
		s.Blocks[l.blocks[i].UUID] = &l.blocks[i]
	}
	for i := range l.reservations {
		s.Reservations[l.reservations[i].UUID] = &l.reservations[i]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur, c.snap = s, nil
	c.listRev = maps.Clone(l.revs)
	var lo int64
	for _, r := range l.revs {
		if lo == 0 || r < lo {
			lo = r
		}
	}
	c.synced = true
	return lo
}

// apply applies one watch event. changed is false when the event was
// already known (at or below its kind's list revision) or of another kind.
func (c *cache) apply(ev api.WatchEvent) (changed bool, err error) {
	if !slices.Contains(watchedKinds, ev.Kind) {
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Revision <= c.listRev[ev.Kind] {
		return false, nil
	}
	del := ev.Type == api.EventDeleted
	s := c.cur
	switch ev.Kind {
	case api.KindNetwork:
		var n api.Network
		if err := json.Unmarshal(ev.Object, &n); err != nil {
			return false, fmt.Errorf("decode network event: %w", err)
		}
		upsert(s.Networks, n.UUID, &n, del)
	case api.KindNode:
		var n api.Node
		if err := json.Unmarshal(ev.Object, &n); err != nil {
			return false, fmt.Errorf("decode node event: %w", err)
		}
		upsert(s.Nodes, n.FQName, &n, del)
	case api.KindBlock:
		var b api.Block
		if err := json.Unmarshal(ev.Object, &b); err != nil {
			return false, fmt.Errorf("decode block event: %w", err)
		}
		upsert(s.Blocks, b.UUID, &b, del)
	case api.KindIPReservation:
		var r api.IPReservation
		if err := json.Unmarshal(ev.Object, &r); err != nil {
			return false, fmt.Errorf("decode ip reservation event: %w", err)
		}
		upsert(s.Reservations, r.UUID, &r, del)
	}
	c.snap = nil
	return true, nil
}

// upsert sets m[k] to v, or deletes k when del.
func upsert[V any](m map[string]*V, k string, v *V, del bool) {
	if del {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// addressSubnet finds the subnet of n holding a.
func addressSubnet(n *api.Network, a netip.Addr) (netip.Prefix, netip.Addr, bool) {
	for _, s := range n.Subnets {
		p, err := netip.ParsePrefix(s.CIDR)
		if err != nil || !p.Contains(a) {
			continue
		}
		gw, err := netip.ParseAddr(s.Gateway)
		if err != nil {
			gw = api.DefaultGateway(p)
		}
		return p, gw, true
	}
	return netip.Prefix{}, netip.Addr{}, false
}

// networkFamilies lists the families n has subnets of, in subnet order.
func networkFamilies(n *api.Network) []string {
	var out []string
	for _, s := range n.Subnets {
		p, err := netip.ParsePrefix(s.CIDR)
		if err != nil {
			continue
		}
		if f := api.Family(p.Addr()); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// resolveNetworkRef completes a network reference the way the plugin
// gives it: empty is the default task network; a short name resolves in
// project (default default-domain:default-project); a uuid or fq_name is
// taken as is.
func resolveNetworkRef(ref, project string) string {
	switch {
	case ref == "":
		return api.DefaultTaskNetwork
	case api.IsUUID(ref), strings.Contains(ref, ":"):
		return ref
	}
	if project == "" {
		project = api.DefaultProject
	}
	return project + ":" + ref
}
