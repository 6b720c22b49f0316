package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/overlay"
	"github.com/weft-sdn/weft/internal/store"
)

const vtepPrefix = keyPrefix + "vtep/"

func vtepKey(a netip.Addr) string { return vtepPrefix + a.String() }

// VTEPPool hands out VTEP addresses: the lowest free address of Subnet, and
// a MAC made of the OUI's three high bytes and the address's three low
// bytes (the DC/OS derivation, unique because the subnet is at least /8).
type VTEPPool struct {
	Subnet netip.Prefix
	OUI    net.HardwareAddr
}

// ParseVTEPPool validates a VTEP subnet and MAC OUI with DC/OS's rules.
func ParseVTEPPool(subnet, oui string) (VTEPPool, error) {
	p, err := api.ParseSubnet(subnet)
	if err != nil {
		return VTEPPool{}, fmt.Errorf("vtep subnet: %w", err)
	}
	if !p.Addr().Is4() {
		return VTEPPool{}, fmt.Errorf("vtep subnet: %s is not IPv4", p)
	}
	if p.Bits() < 8 {
		return VTEPPool{}, fmt.Errorf("vtep subnet: %s is shorter than /8; VTEP MACs are derived from the last 24 bits of the VTEP IP and would not be unique", p)
	}
	hw, err := net.ParseMAC(oui)
	if err != nil || len(hw) != 6 {
		return VTEPPool{}, fmt.Errorf("vtep mac oui: %q is not a MAC address (xx:xx:xx:00:00:00)", oui)
	}
	if hw[3] != 0 || hw[4] != 0 || hw[5] != 0 {
		return VTEPPool{}, fmt.Errorf("vtep mac oui: %s has its low three bytes set; an OUI is xx:xx:xx:00:00:00", hw)
	}
	return VTEPPool{Subnet: p, OUI: hw}, nil
}

// MAC derives the VTEP MAC of a VTEP address.
func (v VTEPPool) MAC(a netip.Addr) net.HardwareAddr { return overlay.MAC(v.OUI, a) }

// RegisterNode creates the node, or refreshes an existing one, and makes
// sure it holds a VTEP address and MAC. A node keeps its VTEP across
// re-registrations and controller restarts. created reports a new node.
func (r *Registry) RegisterNode(ctx context.Context, in *api.Node) (node *api.Node, created bool, err error) {
	for range txnRetries {
		cur, kv, err := r.getFQ(ctx, api.KindNode, in.FQName)
		switch {
		case errors.Is(err, api.ErrNotFound):
			n, err := r.createNode(ctx, in)
			if errors.Is(err, api.ErrConflict) {
				continue // registered concurrently: refresh it instead
			}
			return n, err == nil, err
		case err != nil:
			return nil, false, err
		}
		n := cur.(*api.Node)
		changed := false
		if n.UnderlayIP != in.UnderlayIP {
			n.UnderlayIP, changed = in.UnderlayIP, true
		}
		if in.Labels != nil && !equalLabels(n.Labels, in.Labels) {
			n.Labels, changed = in.Labels, true
		}
		if in.OverlayRole != nil && (n.OverlayRole == nil || *n.OverlayRole != *in.OverlayRole) {
			n.OverlayRole, changed = in.OverlayRole, true
		}
		var g guard
		if n.VTEPIP == "" {
			vg, ip, err := r.claimVTEP(ctx, n.FQName)
			if err != nil {
				return nil, false, err
			}
			n.VTEPIP, n.VTEPMAC, changed = ip.String(), r.vteps.MAC(ip).String(), true
			g.add(vg)
		}
		og, ochanged, err := r.assignOverlays(ctx, n)
		if err != nil {
			return nil, false, err
		}
		g.add(og)
		changed = changed || ochanged
		if !changed {
			return n, false, nil
		}
		n.UpdatedAt = r.now().UTC()
		n.ResourceVersion = 0
		val, err := encode(n)
		if err != nil {
			return nil, false, err
		}
		rev, err := r.kv.Txn(ctx, append(g.cmps, store.Unchanged(kv)), append(g.ops, store.Put(kv.Key, val)))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("update node %s: %w", n.FQName, err)
		}
		n.ResourceVersion = rev
		return n, false, nil
	}
	return nil, false, api.Conflict("", "register node %s: too much contention, try again", in.FQName)
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (r *Registry) createNode(ctx context.Context, in *api.Node) (*api.Node, error) {
	n := *in
	if n.Status == "" {
		n.Status = "registered"
	}
	obj, err := r.Create(ctx, &n)
	if err != nil {
		return nil, err
	}
	return obj.(*api.Node), nil
}

// prepareNode claims the node's VTEP address on create (the lowest free
// one, or the one asked for) and keeps it immutable on update.
func (r *Registry) prepareNode(ctx context.Context, n *api.Node, old *api.Node) (guard, error) {
	if old != nil {
		if n.VTEPIP == "" {
			n.VTEPIP, n.VTEPMAC = old.VTEPIP, old.VTEPMAC
		}
		// Overlay assignments belong to the controller.
		n.VTEPIP6, n.Overlays, n.OverlayBackend = old.VTEPIP6, old.Overlays, old.OverlayBackend
		if n.OverlayRole == nil {
			n.OverlayRole = old.OverlayRole
		}
		if n.VTEPIP != old.VTEPIP || (n.VTEPMAC != "" && n.VTEPMAC != old.VTEPMAC) {
			return guard{}, api.Invalid("vtep_ip", "the VTEP of a node cannot change (%s %s)", old.VTEPIP, old.VTEPMAC)
		}
		return guard{}, nil
	}
	n.VTEPIP6, n.Overlays, n.OverlayBackend = "", nil, nil // assigned here, never given
	if !r.vteps.Subnet.IsValid() {
		return guard{}, nil
	}
	var g guard
	if n.VTEPIP != "" {
		a := netip.MustParseAddr(n.VTEPIP)
		if !r.vteps.Subnet.Contains(a) || !a.Is4() {
			return guard{}, api.Invalid("vtep_ip", "%s is outside the VTEP subnet %s", a, r.vteps.Subnet)
		}
		if kv, err := r.kv.Get(ctx, vtepKey(a)); err == nil {
			return guard{}, api.Conflict("vtep_ip", "%s is the VTEP of node %s", a, kv.Value)
		}
		n.VTEPMAC = r.vteps.MAC(a).String()
		g = guard{cmps: []store.Cmp{store.Absent(vtepKey(a))}, ops: []store.Op{store.Put(vtepKey(a), []byte(n.FQName))}}
	} else {
		vg, a, err := r.claimVTEP(ctx, n.FQName)
		if err != nil {
			return guard{}, err
		}
		n.VTEPIP, n.VTEPMAC = a.String(), r.vteps.MAC(a).String()
		g = vg
	}
	og, _, err := r.assignOverlays(ctx, n)
	if err != nil {
		return guard{}, err
	}
	g.add(og)
	return g, nil
}

// claimVTEP picks the lowest free VTEP address and returns the guard that
// claims it.
func (r *Registry) claimVTEP(ctx context.Context, node string) (guard, netip.Addr, error) {
	return r.claimAddr(ctx, vtepPrefix, r.vteps.Subnet, node, "vtep_ip")
}

// claimAddr picks the lowest free address of space among the claims
// under prefix (one key per address) and returns the guard that claims it
// for node.
func (r *Registry) claimAddr(ctx context.Context, prefix string, space netip.Prefix, node, field string) (guard, netip.Addr, error) {
	used, err := r.claimedAddrs(ctx, prefix)
	if err != nil {
		return guard{}, netip.Addr{}, err
	}
	a, err := overlay.LowestFreeAddr(space, used)
	if err != nil {
		return guard{}, netip.Addr{}, api.Exhausted(field, "%v", err)
	}
	key := prefix + a.String()
	return guard{cmps: []store.Cmp{store.Absent(key)}, ops: []store.Op{store.Put(key, []byte(node))}}, a, nil
}

// Heartbeat records that the node's agent is alive.
func (r *Registry) Heartbeat(ctx context.Context, name string) (*api.Node, error) {
	for range txnRetries {
		cur, kv, err := r.getFQ(ctx, api.KindNode, name)
		if err != nil {
			return nil, err
		}
		n := cur.(*api.Node)
		n.Heartbeat = r.now().UTC()
		n.Status = "ready"
		n.ResourceVersion = 0
		var g guard
		if r.overlayIncomplete(n) {
			og, _, err := r.assignOverlays(ctx, n)
			if err != nil {
				return nil, err
			}
			g = og
		}
		val, err := encode(n)
		if err != nil {
			return nil, err
		}
		rev, err := r.kv.Txn(ctx, append(g.cmps, store.Unchanged(kv)), append(g.ops, store.Put(kv.Key, val)))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("heartbeat of node %s: %w", name, err)
		}
		n.ResourceVersion = rev
		return n, nil
	}
	return nil, api.Conflict("", "heartbeat of node %s: too much contention, try again", name)
}

func (s *Server) handleRegisterNode(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := api.DecodeObject(api.KindNode, body)
	if err != nil {
		return err
	}
	in := obj.(*api.Node)
	if in.VTEPIP != "" || in.VTEPMAC != "" {
		return api.Invalid("vtep_ip", "the controller allocates VTEP addresses; leave vtep_ip and vtep_mac out")
	}
	n, created, err := s.reg.RegisterNode(r.Context(), in)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, n)
	return nil
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) error {
	n, err := s.reg.Heartbeat(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}
