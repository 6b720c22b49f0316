package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/overlay"
	"github.com/weft-sdn/weft/internal/store"
)

// The overlay master: DC/OS-compatible VTEP and per-node subnet
// allocation. A node's VTEP addresses are claimed by a key per address
// (vtep/, vtep6/), and each node subnet of an overlay by a key per subnet
// (overlay-subnet/<overlay>/<cidr>), so that several controller replicas
// never hand one out twice; the assignments themselves live in the node
// object, which agents watch. Deleting a node deletes its claims in the
// same transaction, so they return to the pools exactly once.
const (
	vtep6Prefix        = keyPrefix + "vtep6/"
	overlaySubnetClaim = keyPrefix + "overlay-subnet/"
)

func vtep6Key(a netip.Addr) string { return vtep6Prefix + a.String() }

func subnetClaimPrefix(overlayName string) string { return overlaySubnetClaim + overlayName + "/" }

func subnetClaimKey(overlayName string, p netip.Prefix) string {
	return subnetClaimPrefix(overlayName) + strings.ReplaceAll(p.String(), "/", "_")
}

// overlayPlan is the parsed overlay configuration the registry allocates
// from.
type overlayPlan struct {
	cfg      overlay.NetworkConfig
	vtep6    netip.Prefix // invalid when the configuration has none
	backend  api.OverlayBackend
	overlays []overlaySpec
}

// overlaySpec is one configured overlay.
type overlaySpec struct {
	name, network string
	enabled       bool
	space4        netip.Prefix // invalid when IPv6 only
	bits4         int
	space6        netip.Prefix // invalid when IPv4 only
	bits6         int
}

// OverlayNetworkName is the fq_name of the network of an overlay.
func OverlayNetworkName(name string) string { return api.DefaultProject + ":" + name }

// newOverlayPlan prepares allocation from a validated configuration.
func newOverlayPlan(cfg overlay.NetworkConfig) (*overlayPlan, VTEPPool, error) {
	cfg = cfg.WithDefaults()
	pool, err := ParseVTEPPool(cfg.VTEPSubnet, cfg.VTEPMACOUI)
	if err != nil {
		return nil, VTEPPool{}, err
	}
	p := &overlayPlan{cfg: cfg}
	p.backend = api.OverlayBackend{VTEPName: cfg.VTEPName, VNI: cfg.VNI, Port: cfg.VXLANPort, MTU: cfg.VTEPMTU, VTEPPrefix: pool.Subnet.Bits()}
	if cfg.VTEPSubnet6 != "" {
		v6, err := netip.ParsePrefix(cfg.VTEPSubnet6)
		if err != nil {
			return nil, VTEPPool{}, fmt.Errorf("vtep_subnet6: %w", err)
		}
		p.vtep6 = v6.Masked()
		p.backend.VTEPPrefix6 = v6.Bits()
	}
	for i, o := range cfg.Overlays {
		s := overlaySpec{name: o.Name, network: OverlayNetworkName(o.Name), enabled: o.IsEnabled(), bits4: o.Prefix, bits6: o.Prefix6}
		if o.Subnet != "" {
			if s.space4, err = netip.ParsePrefix(o.Subnet); err != nil {
				return nil, VTEPPool{}, fmt.Errorf("overlays[%d].subnet: %w", i, err)
			}
			s.space4 = s.space4.Masked()
		}
		if o.Subnet6 != "" {
			if s.space6, err = netip.ParsePrefix(o.Subnet6); err != nil {
				return nil, VTEPPool{}, fmt.Errorf("overlays[%d].subnet6: %w", i, err)
			}
			s.space6 = s.space6.Masked()
		}
		p.overlays = append(p.overlays, s)
	}
	return p, pool, nil
}

// networks are the overlay networks to create: one per enabled overlay.
func (p *overlayPlan) networks() []*api.Network {
	var out []*api.Network
	for _, s := range p.overlays {
		if !s.enabled {
			continue
		}
		n := &api.Network{Meta: api.Meta{Kind: api.KindNetwork, FQName: s.network}, NetworkKind: api.NetworkOverlay, VNI: p.backend.VNI, MTU: p.cfg.VTEPMTU}
		if s.space4.IsValid() {
			n.Subnets = append(n.Subnets, api.Subnet{CIDR: s.space4.String(), BlockPrefix: s.bits4})
		}
		if s.space6.IsValid() {
			n.Subnets = append(n.Subnets, api.Subnet{CIDR: s.space6.String(), BlockPrefix: s.bits6})
		}
		out = append(out, n)
	}
	return out
}

// EnsureOverlayNetworks creates the network of every enabled overlay.
func (r *Registry) EnsureOverlayNetworks(ctx context.Context) error {
	if r.overlay == nil {
		return nil
	}
	for _, n := range r.overlay.networks() {
		if err := api.Validate(n); err != nil {
			return fmt.Errorf("overlay network %s: %w", n.FQName, err)
		}
		if cur, err := r.GetByFQName(ctx, api.KindNetwork, n.FQName); err == nil {
			if c := cur.(*api.Network); c.NetworkKind != api.NetworkOverlay {
				return fmt.Errorf("overlay %s: network %s exists and is not an overlay network; rename the overlay or delete the network", strings.TrimPrefix(n.FQName, api.DefaultProject+":"), n.FQName)
			}
			continue
		}
		if _, err := r.Create(ctx, n); err != nil && !errors.Is(err, api.ErrConflict) {
			return fmt.Errorf("create overlay network %s: %w", n.FQName, err)
		}
		r.log.Info("created overlay network", "fq_name", n.FQName, "subnets", n.Subnets)
	}
	return nil
}

// claimedPrefixes lists the subnets of an overlay claimed by any node.
func (r *Registry) claimedPrefixes(ctx context.Context, name string) (map[netip.Prefix]bool, error) {
	kvs, _, err := r.kv.List(ctx, subnetClaimPrefix(name))
	if err != nil {
		return nil, fmt.Errorf("list subnets of overlay %s: %w", name, err)
	}
	used := make(map[netip.Prefix]bool, len(kvs))
	for _, kv := range kvs {
		s := strings.ReplaceAll(strings.TrimPrefix(kv.Key, subnetClaimPrefix(name)), "_", "/")
		if p, err := netip.ParsePrefix(s); err == nil {
			used[p] = true
		}
	}
	return used, nil
}

// claimedAddrs lists the VTEP addresses claimed under prefix.
func (r *Registry) claimedAddrs(ctx context.Context, prefix string) (map[netip.Addr]bool, error) {
	kvs, _, err := r.kv.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list vteps: %w", err)
	}
	used := make(map[netip.Addr]bool, len(kvs))
	for _, kv := range kvs {
		if a, err := netip.ParseAddr(strings.TrimPrefix(kv.Key, prefix)); err == nil {
			used[a] = true
		}
	}
	return used, nil
}

// assignOverlays completes n's overlay assignments in place: the backend,
// an IPv6 VTEP, and per enabled overlay a subnet of each family split into
// the halves its role asks for. Nothing a node holds is ever taken away or
// moved (assignments are sticky); an overlay that cannot get a subnet is
// marked FAILED with the reason and the numbers, and tried again at the
// next registration or heartbeat. It returns the claims to commit with the
// node and whether n changed.
func (r *Registry) assignOverlays(ctx context.Context, n *api.Node) (guard, bool, error) {
	var g guard
	p := r.overlay
	if p == nil {
		return g, false, nil
	}
	changed := false
	role := api.DefaultOverlayRole
	if n.OverlayRole != nil {
		role = *n.OverlayRole
	}
	if n.OverlayBackend == nil || *n.OverlayBackend != p.backend {
		b := p.backend
		n.OverlayBackend, changed = &b, true
	}
	if p.vtep6.IsValid() && n.VTEPIP6 == "" {
		vg, a, err := r.claimAddr(ctx, vtep6Prefix, p.vtep6, n.FQName, "vtep_ip6")
		if err != nil {
			return g, false, err
		}
		n.VTEPIP6, changed = a.String(), true
		g.add(vg)
	}
	for _, s := range p.overlays {
		if !s.enabled {
			continue
		}
		i := slices.IndexFunc(n.Overlays, func(o api.NodeOverlay) bool { return o.Name == s.name })
		if i < 0 && !role.AllocateSubnet {
			continue // a node without subnets has no part in the overlays but its VTEP
		}
		if i < 0 {
			n.Overlays = append(n.Overlays, api.NodeOverlay{Name: s.name, Network: s.network, Status: api.OverlayConfiguring})
			i, changed = len(n.Overlays)-1, true
		}
		o := &n.Overlays[i]
		before := cloneNodeOverlay(*o)
		wasMissing := p.missingSubnet(n, o)
		o.Network = s.network
		o.OverlaySubnet, o.OverlaySubnet6 = prefixString(s.space4), prefixString(s.space6)
		var failures []string
		if role.AllocateSubnet {
			for _, fam := range []struct {
				space netip.Prefix
				bits  int
				cur   *string
			}{{s.space4, s.bits4, &o.Subnet}, {s.space6, s.bits6, &o.Subnet6}} {
				if !fam.space.IsValid() || *fam.cur != "" {
					continue
				}
				used, err := r.claimedPrefixes(ctx, s.name)
				if err != nil {
					return g, false, err
				}
				sub, err := overlay.LowestFreeSubnet(fam.space, fam.bits, used)
				if err != nil {
					failures = append(failures, fmt.Sprintf("overlay %s: %v", s.name, err))
					continue
				}
				*fam.cur = sub.String()
				g.cmps = append(g.cmps, store.Absent(subnetClaimKey(s.name, sub)))
				g.ops = append(g.ops, store.Put(subnetClaimKey(s.name, sub), []byte(n.FQName)))
			}
		}
		o.MesosBridge, o.DockerBridge = halves(o, "m-"+s.name, role.MesosBridge, false), halves(o, "d-"+s.name, role.DockerBridge, true)
		switch {
		case len(failures) > 0:
			o.Status, o.Error = api.OverlayFailed, strings.Join(failures, "; ")
		case wasMissing:
			// The allocation failure (the only status an overlay without
			// its subnets can have) is over; the agent reports anew.
			o.Status, o.Error = api.OverlayConfiguring, ""
		}
		if !reflect.DeepEqual(*o, before) {
			changed = true
		}
	}
	return g, changed, nil
}

// cloneNodeOverlay copies o with its own bridges.
func cloneNodeOverlay(o api.NodeOverlay) api.NodeOverlay {
	for _, b := range []**api.OverlayBridge{&o.MesosBridge, &o.DockerBridge} {
		if *b != nil {
			c := **b
			*b = &c
		}
	}
	return o
}

// halves returns the bridge of one half of the node's overlay subnets
// (upper halves for Docker), or nil when the role disables it or the node
// has no subnet.
func halves(o *api.NodeOverlay, name string, enabled, upper bool) *api.OverlayBridge {
	if !enabled || (o.Subnet == "" && o.Subnet6 == "") {
		return nil
	}
	b := &api.OverlayBridge{Name: name}
	for _, sub := range []struct {
		cidr string
		dst  *string
	}{{o.Subnet, &b.IP}, {o.Subnet6, &b.IP6}} {
		p, err := netip.ParsePrefix(sub.cidr)
		if err != nil {
			continue
		}
		lo, hi := overlay.Halves(p)
		if upper {
			*sub.dst = hi.String()
		} else {
			*sub.dst = lo.String()
		}
	}
	return b
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// nodeClaimOps are the deletes of every claim node n holds, for the
// transaction that deletes the node.
func nodeClaimOps(n *api.Node) []store.Op {
	var ops []store.Op
	if a, err := netip.ParseAddr(n.VTEPIP); err == nil {
		ops = append(ops, store.Delete(vtepKey(a)))
	}
	if a, err := netip.ParseAddr(n.VTEPIP6); err == nil {
		ops = append(ops, store.Delete(vtep6Key(a)))
	}
	for _, o := range n.Overlays {
		for _, s := range []string{o.Subnet, o.Subnet6} {
			if p, err := netip.ParsePrefix(s); err == nil {
				ops = append(ops, store.Delete(subnetClaimKey(o.Name, p)))
			}
		}
	}
	return ops
}

// ReportOverlayStatus records the status an agent reports for its
// overlays. Only the status and error of overlays the node has change.
func (r *Registry) ReportOverlayStatus(ctx context.Context, name string, rep api.OverlayStatusReport) (*api.Node, error) {
	for i, s := range rep.Overlays {
		switch s.Status {
		case api.OverlayOK, api.OverlayFailed, api.OverlayConfiguring:
		default:
			return nil, api.Invalid(fmt.Sprintf("overlays[%d].status", i), "%q is not OK, FAILED or CONFIGURING", s.Status)
		}
		if s.Name == "" {
			return nil, api.Invalid(fmt.Sprintf("overlays[%d].name", i), "is required")
		}
	}
	for range txnRetries {
		cur, kv, err := r.getFQ(ctx, api.KindNode, name)
		if err != nil {
			return nil, err
		}
		n := cur.(*api.Node)
		changed := false
		for _, s := range rep.Overlays {
			i := slices.IndexFunc(n.Overlays, func(o api.NodeOverlay) bool { return o.Name == s.Name })
			if i < 0 {
				continue
			}
			o := &n.Overlays[i]
			if r.overlay != nil && r.overlay.missingSubnet(n, o) {
				continue // the controller's own failure stands until it is fixed
			}
			if o.Status != s.Status || o.Error != s.Error {
				o.Status, o.Error, changed = s.Status, s.Error, true
			}
		}
		if !changed {
			return n, nil
		}
		n.UpdatedAt = r.now().UTC()
		n.ResourceVersion = 0
		val, err := encode(n)
		if err != nil {
			return nil, err
		}
		rev, err := r.kv.Txn(ctx, []store.Cmp{store.Unchanged(kv)}, []store.Op{store.Put(kv.Key, val)})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("overlay status of node %s: %w", name, err)
		}
		n.ResourceVersion = rev
		return n, nil
	}
	return nil, api.Conflict("", "overlay status of node %s: too much contention, try again", name)
}

// DeleteNodesByIP deletes the nodes whose underlay address is one of ips,
// returning every claim they held to the pools (DC/OS's
// /overlay-master/agents/delete). Unknown addresses are skipped. It
// returns the fq_names of the deleted nodes.
func (r *Registry) DeleteNodesByIP(ctx context.Context, ips []netip.Addr) ([]string, error) {
	objs, _, err := r.List(ctx, api.KindNode, func(o api.Object) bool {
		a, err := netip.ParseAddr(o.(*api.Node).UnderlayIP)
		return err == nil && slices.Contains(ips, a.Unmap())
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range objs {
		m := o.GetMeta()
		if err := r.Delete(ctx, api.KindNode, m.UUID); err != nil {
			return out, fmt.Errorf("delete node %s: %w", m.FQName, err)
		}
		r.log.Info("node deleted by the overlay master", "node", m.FQName, "underlay", o.(*api.Node).UnderlayIP)
		out = append(out, m.FQName)
	}
	return out, nil
}

// CollectGoneNodes deletes the nodes whose last heartbeat (or, without
// one, creation) is older than grace, returning their VTEPs, subnets,
// blocks and addresses to the pools. Each node's claims are freed once:
// they go in the transaction that deletes the node, conditional on the
// node being unchanged since Delete read it. Staleness is judged on the
// list, not checked again: a node whose agent heartbeats between the list
// and its delete is deleted all the same.
func (r *Registry) CollectGoneNodes(ctx context.Context, grace time.Duration) ([]string, error) {
	now := r.now()
	objs, _, err := r.List(ctx, api.KindNode, func(o api.Object) bool {
		n := o.(*api.Node)
		last := n.Heartbeat
		if last.IsZero() {
			last = n.CreatedAt
		}
		return !last.IsZero() && now.Sub(last) > grace
	})
	if err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	for _, o := range objs {
		n := o.(*api.Node)
		if err := r.Delete(ctx, api.KindNode, n.UUID); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.FQName, err))
			continue
		}
		r.log.Warn("node gone past the grace period: deleted, its VTEP, subnets and addresses freed",
			"node", n.FQName, "underlay", n.UnderlayIP, "last_heartbeat", n.Heartbeat, "grace", grace)
		out = append(out, n.FQName)
	}
	return out, errors.Join(errs...)
}

// OverlayUsage is the fill level of one overlay: subnets per family in
// use out of the total, and the nodes whose assignment failed.
type OverlayUsage struct {
	Name         string   `json:"name"`
	Network      string   `json:"network"`
	Enabled      bool     `json:"enabled"`
	Subnet       string   `json:"subnet,omitempty"`
	Prefix       int      `json:"prefix,omitempty"`
	Subnets      uint64   `json:"subnets,omitempty"`
	SubnetsUsed  int      `json:"subnets_used"`
	Subnet6      string   `json:"subnet6,omitempty"`
	Prefix6      int      `json:"prefix6,omitempty"`
	Subnets6     uint64   `json:"subnets6,omitempty"`
	Subnets6Used int      `json:"subnets6_used"`
	Exhausted    bool     `json:"exhausted"`
	FailedNodes  []string `json:"failed_nodes,omitempty"`
}

// OverlayUsage reports every configured overlay's fill level.
func (r *Registry) OverlayUsage(ctx context.Context) ([]OverlayUsage, error) {
	if r.overlay == nil {
		return []OverlayUsage{}, nil
	}
	nodes, _, err := r.List(ctx, api.KindNode, nil)
	if err != nil {
		return nil, err
	}
	out := []OverlayUsage{}
	for _, s := range r.overlay.overlays {
		u := OverlayUsage{Name: s.name, Network: s.network, Enabled: s.enabled}
		used, err := r.claimedPrefixes(ctx, s.name)
		if err != nil {
			return nil, err
		}
		if s.space4.IsValid() {
			u.Subnet, u.Prefix, u.Subnets = s.space4.String(), s.bits4, overlay.Capacity(s.space4, s.bits4)
		}
		if s.space6.IsValid() {
			u.Subnet6, u.Prefix6, u.Subnets6 = s.space6.String(), s.bits6, overlay.Capacity(s.space6, s.bits6)
		}
		for p := range used {
			if p.Addr().Is4() {
				u.SubnetsUsed++
			} else {
				u.Subnets6Used++
			}
		}
		u.Exhausted = (u.Subnets > 0 && uint64(u.SubnetsUsed) >= u.Subnets) || (u.Subnets6 > 0 && uint64(u.Subnets6Used) >= u.Subnets6)
		for _, o := range nodes {
			n := o.(*api.Node)
			for _, no := range n.Overlays {
				if no.Name == s.name && no.Status == api.OverlayFailed {
					u.FailedNodes = append(u.FailedNodes, n.FQName+": "+no.Error)
				}
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// overlayIncomplete reports whether a heartbeat should try to complete
// n's overlay assignments: a missing backend, IPv6 VTEP or overlay, or an
// overlay whose subnet allocation failed.
func (r *Registry) overlayIncomplete(n *api.Node) bool {
	p := r.overlay
	if p == nil {
		return false
	}
	if n.OverlayBackend == nil || *n.OverlayBackend != p.backend || (p.vtep6.IsValid() && n.VTEPIP6 == "") {
		return true
	}
	for _, s := range p.overlays {
		if !s.enabled {
			continue
		}
		i := slices.IndexFunc(n.Overlays, func(o api.NodeOverlay) bool { return o.Name == s.name })
		if (i < 0 && (n.OverlayRole == nil || n.OverlayRole.AllocateSubnet)) || (i >= 0 && p.missingSubnet(n, &n.Overlays[i])) {
			return true
		}
	}
	return false
}

// missingSubnet reports whether node n should have a subnet of overlay o
// of a family that it lacks (the allocation failed).
func (p *overlayPlan) missingSubnet(n *api.Node, o *api.NodeOverlay) bool {
	if n.OverlayRole != nil && !n.OverlayRole.AllocateSubnet {
		return false
	}
	for _, s := range p.overlays {
		if s.name == o.Name && s.enabled {
			return (s.space4.IsValid() && o.Subnet == "") || (s.space6.IsValid() && o.Subnet6 == "")
		}
	}
	return false
}
