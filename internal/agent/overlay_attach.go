package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/overlay"
	"github.com/weft-sdn/weft/internal/overlaydp"
)

// Attachments to overlay networks (the CNI configurations written in weft
// mode): the container joins the node's Mesos bridge of the overlay
// (m-dcos) with an address of the node's Mesos half, which belongs to
// this node alone. So the agent allocates locally, as host-local does in
// DC/OS's layout, with no controller call on the attach path; the journal
// is the record of what is taken, and the port is written to the
// controller afterwards like any other.

// overlayAttachment is the node's Mesos half of an overlay network.
type overlayAttachment struct {
	bridge string
	halves []netip.Prefix // IPv4 and/or IPv6
}

// overlayHalves finds this node's Mesos halves of overlay network n.
func (a *Agent) overlayHalves(n *api.Network) (overlayAttachment, error) {
	self := a.cache.Node(a.cfg.NodeName)
	if self == nil {
		return overlayAttachment{}, fmt.Errorf("%w: node %s is not known to the controller yet", ErrNotReady, a.cfg.NodeName)
	}
	i := slices.IndexFunc(self.Overlays, func(o api.NodeOverlay) bool { return o.Network == n.FQName })
	if i < 0 {
		return overlayAttachment{}, api.Invalid("network", "overlay network %s has no subnet on node %s; see `weftctl overlay state`", n.FQName, a.cfg.NodeName)
	}
	o := self.Overlays[i]
	if o.MesosBridge == nil {
		why := o.Error
		if why == "" {
			why = "the node's role has no Mesos bridge"
		}
		return overlayAttachment{}, api.Invalid("network", "node %s has no Mesos half of overlay %s (%s): Mesos containers cannot join it here", a.cfg.NodeName, o.Name, why)
	}
	at := overlayAttachment{bridge: o.MesosBridge.Name}
	for _, s := range []string{o.MesosBridge.IP, o.MesosBridge.IP6} {
		if p, err := netip.ParsePrefix(s); err == nil && (p.Addr().Is4() || a.cfg.OverlayIPv6) {
			at.halves = append(at.halves, p)
		}
	}
	if len(at.halves) == 0 {
		return overlayAttachment{}, api.Invalid("network", "node %s has no usable Mesos half of overlay %s", a.cfg.NodeName, o.Name)
	}
	return at, nil
}

// allocateOverlay picks an address of each half for a new attachment: the
// asked-for address when it is in the half and free, else the next free
// one after the last handed out (as host-local does, so that a released
// address is not reused at once). The caller holds ovlAllocMu until the
// attachment is journalled.
func (a *Agent) allocateOverlay(networkUUID string, halves []netip.Prefix, want []string) ([]netip.Prefix, error) {
	used := map[netip.Addr]bool{}
	a.journal.scan(func(e *Entry) {
		if e.NetworkUUID != networkUUID || e.External {
			return
		}
		for _, ip := range e.IPs {
			if p, err := netip.ParsePrefix(ip.Address); err == nil {
				used[p.Addr()] = true
			}
		}
	})
	var out []netip.Prefix
	for _, half := range halves {
		gw := overlay.Gateway(half)
		reserved := func(x netip.Addr) bool {
			return x == half.Addr() || x == gw || (x.Is4() && x == api.LastAddr(half))
		}
		var explicit netip.Addr
		for _, w := range want {
			if x, err := netip.ParseAddr(w); err == nil && x.Is4() == half.Addr().Is4() {
				explicit = x
			}
		}
		if explicit.IsValid() {
			switch {
			case !half.Contains(explicit):
				return nil, api.Invalid("ips", "%s is outside this node's Mesos half %s of the overlay", explicit, half)
			case reserved(explicit):
				return nil, api.Invalid("ips", "%s is the network, gateway or broadcast address of %s", explicit, half)
			case used[explicit]:
				return nil, api.Conflict("ips", "%s is in use on this node", explicit)
			}
			out = append(out, netip.PrefixFrom(explicit, half.Bits()))
			continue
		}
		key := networkUUID + "/" + half.String()
		start := a.ovlCursor[key]
		if !half.Contains(start) {
			start = gw
		}
		x, ok := nextFree(half, start, func(x netip.Addr) bool { return used[x] || reserved(x) })
		if !ok {
			return nil, api.Exhausted("network", "this node's Mesos half %s of the overlay is full (%d addresses in use); add nodes or use a shorter agent prefix", half, countIn(used, half))
		}
		a.ovlCursor[key] = x
		out = append(out, netip.PrefixFrom(x, half.Bits()))
	}
	return out, nil
}

// nextFree returns the first address of p after start, wrapping around
// once, for which taken is false; it looks at most 1<<16 addresses (an
// IPv6 half is never that full on one node).
func nextFree(p netip.Prefix, start netip.Addr, taken func(netip.Addr) bool) (netip.Addr, bool) {
	x := start
	for range 1 << 16 {
		if x = x.Next(); !x.IsValid() || !p.Contains(x) {
			x = p.Addr()
		}
		if !taken(x) {
			return x, true
		}
		if x == start {
			break
		}
	}
	return netip.Addr{}, false
}

func countIn(used map[netip.Addr]bool, p netip.Prefix) int {
	n := 0
	for x := range used {
		if p.Contains(x) {
			n++
		}
	}
	return n
}

// attachOverlay is Attach for an overlay network; the caller holds the
// attachment's key lock.
func (a *Agent) attachOverlay(ctx context.Context, req api.AttachRequest, n *api.Network, start time.Time) (api.AttachResult, error) {
	if a.odp == nil {
		return api.AttachResult{}, fmt.Errorf("%w: the overlay data plane is not running", ErrNotReady)
	}
	at, err := a.overlayHalves(n)
	if err != nil {
		return api.AttachResult{}, err
	}
	a.ovlAllocMu.Lock()
	defer a.ovlAllocMu.Unlock()
	ips, err := a.allocateOverlay(n.UUID, at.halves, req.IPs)
	if err != nil {
		return api.AttachResult{}, err
	}
	e := newEntry(req, n, uuid.NewString())
	e.Bridge = at.bridge
	for i, p := range ips {
		gw := overlay.Gateway(at.halves[i])
		e.IPs = append(e.IPs, JournalIP{Address: p.String(), Gateway: gw.String(), Owner: e.Owner})
	}
	a.addDefaultRoutes(e)
	done, err := a.odp.Attach(ctx, overlayEndpointOf(e))
	if err != nil {
		a.detachOverlayQuietly(e)
		return api.AttachResult{}, fmt.Errorf("attach %s to overlay network %s: %w", e.describe(), n.FQName, err)
	}
	e.HostIf, e.MAC, e.MTU = done.HostIf, done.MAC.String(), done.MTU
	if err := a.journal.Put(e); err != nil {
		a.detachOverlayQuietly(e)
		return api.AttachResult{}, err
	}
	a.unwritten.Store(e.PortUUID, struct{}{})
	a.queue.add(e.Key())
	a.log.Info("attached", "container", e.ContainerID, "ifname", e.IfName, "network", e.NetworkFQName, "bridge", e.Bridge,
		"ips", ipStrings(e.IPs), "port", e.PortUUID, "duration", time.Since(start))
	return a.resultOf(e), nil
}

// overlayEndpointOf is the overlay data plane's view of an attachment.
func overlayEndpointOf(e *Entry) overlaydp.Endpoint {
	ep := overlaydp.Endpoint{ContainerID: e.ContainerID, IfName: e.IfName, Netns: e.Netns, Bridge: e.Bridge, HostIf: e.HostIf, MTU: e.MTU}
	if mac, err := net.ParseMAC(e.MAC); err == nil {
		ep.MAC = mac
	}
	for _, ip := range e.IPs {
		if p, err := netip.ParsePrefix(ip.Address); err == nil {
			ep.IPs = append(ep.IPs, p)
		}
	}
	for _, r := range e.Routes {
		if gw, err := netip.ParseAddr(r.GW); err == nil {
			ep.Gateways = append(ep.Gateways, gw)
			ep.DefaultRoute = true
		}
	}
	return ep
}

func (a *Agent) detachOverlayQuietly(e *Entry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx()), undoTimeout)
	defer cancel()
	if err := a.odp.Detach(ctx, overlayEndpointOf(e)); err != nil {
		a.log.Warn("undo of a failed overlay attach left an interface behind", "container", e.ContainerID, "ifname", e.IfName, "err", err)
	}
}

// The data-plane operations on a journalled attachment, on whichever
// data plane holds it. The callers hold dpMu shared.

func (a *Agent) entryCheck(ctx context.Context, e *Entry) error {
	if e.Bridge != "" {
		if a.odp == nil {
			return fmt.Errorf("%w: the overlay data plane is not running", ErrNotReady)
		}
		return a.odp.Check(ctx, overlayEndpointOf(e))
	}
	return a.dp.Check(ctx, dataplaneNetwork(a.cache.Network(e.NetworkUUID), e), endpointOf(e))
}

// entryWithdraw takes the attachment out of service; an overlay
// attachment is detached at once (its bridge port has no routes to
// withdraw).
func (a *Agent) entryWithdraw(ctx context.Context, e *Entry) error {
	if e.Bridge != "" {
		if a.odp == nil {
			return nil // destroyed by the worker once the overlay data plane runs
		}
		return a.odp.Detach(ctx, overlayEndpointOf(e))
	}
	return a.dp.Withdraw(ctx, dataplaneNetwork(a.cache.Network(e.NetworkUUID), e), endpointOf(e))
}

func (a *Agent) entryDetach(ctx context.Context, e *Entry) error {
	if e.Bridge != "" {
		if a.odp == nil {
			return fmt.Errorf("%w: the overlay data plane is not running", ErrNotReady)
		}
		return a.odp.Detach(ctx, overlayEndpointOf(e))
	}
	return a.dp.Detach(ctx, dataplaneNetwork(a.cache.Network(e.NetworkUUID), e), endpointOf(e))
}
