package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/dataplane"
)

// undoTimeout bounds the controller calls that undo a failed attach; they
// run even when the request's context is done.
const undoTimeout = 10 * time.Second

// maxAddresses bounds the addresses one attach may ask for.
const maxAddresses = 16

// validateAttach checks the request's own fields.
func validateAttach(req *api.AttachRequest) error {
	if err := validateIDs(req.ContainerID, req.IfName); err != nil {
		return err
	}
	if req.Netns == "" {
		return api.Invalid("netns", "is required (the path of the container's network namespace)")
	}
	if req.MTU != 0 && (req.MTU < 576 || req.MTU > 65535) {
		return api.Invalid("mtu", "%d is out of range (576-65535, or 0 for the network's)", req.MTU)
	}
	if len(req.IPs)+len(req.Families) > maxAddresses {
		return api.Invalid("ips", "%d addresses asked for; the limit is %d", len(req.IPs)+len(req.Families), maxAddresses)
	}
	for i, f := range req.Families {
		if f != "ipv4" && f != "ipv6" {
			return api.Invalid(fmt.Sprintf("families[%d]", i), "%q is not a family (ipv4 or ipv6)", f)
		}
	}
	seen := map[netip.Addr]bool{}
	for i, s := range req.IPs {
		a, err := api.ParseAddr(s)
		if err != nil {
			return api.Invalid(fmt.Sprintf("ips[%d]", i), "%v", err)
		}
		if seen[a] {
			return api.Invalid(fmt.Sprintf("ips[%d]", i), "address %s is asked for twice", a)
		}
		seen[a] = true
	}
	for i, s := range req.Subnets {
		if _, err := netip.ParsePrefix(strings.TrimSpace(s)); err != nil {
			return api.Invalid(fmt.Sprintf("subnets[%d]", i), "%q is not a CIDR", s)
		}
	}
	for i, sg := range req.SecurityGroups {
		if len(strings.Split(sg, ":")) != 3 {
			return api.Invalid(fmt.Sprintf("security_groups[%d]", i), "%q is not a security group fq_name (domain:project:name)", sg)
		}
	}
	for k := range req.Labels {
		if k == "" {
			return api.Invalid("labels", "label keys may not be empty")
		}
	}
	return nil
}

// validateIDs checks a container id and interface name.
func validateIDs(containerID, ifName string) error {
	switch {
	case containerID == "":
		return api.Invalid("container_id", "is required")
	case len(containerID) > 256:
		return api.Invalid("container_id", "is %d bytes long; the limit is 256", len(containerID))
	case strings.ContainsFunc(containerID, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return api.Invalid("container_id", "%q holds control characters", containerID)
	case ifName == "":
		return api.Invalid("ifname", "is required")
	case len(ifName) > 15:
		return api.Invalid("ifname", "%q is longer than 15 characters", ifName)
	case strings.ContainsAny(ifName, "/: \t\n\x00") || ifName == "." || ifName == "..":
		return api.Invalid("ifname", "%q is not a valid interface name", ifName)
	}
	return nil
}

// ownerOf is the reservation owner of a container interface.
func ownerOf(containerID, ifName string) string { return containerID + "/" + ifName }

// newEntry is the journal entry of a new attachment of req to network n,
// before its addresses and interface are known.
func newEntry(req api.AttachRequest, n *api.Network, portUUID string) *Entry {
	return &Entry{
		ContainerID:    req.ContainerID,
		IfName:         req.IfName,
		Netns:          req.Netns,
		CNINetwork:     req.CNINetwork,
		NetworkUUID:    n.UUID,
		NetworkFQName:  n.FQName,
		PortUUID:       portUUID,
		PortName:       portName(req.ContainerID, req.IfName),
		MTU:            req.MTU,
		Owner:          ownerOf(req.ContainerID, req.IfName),
		SecurityGroups: slices.Clone(req.SecurityGroups),
		Labels:         req.Labels,
		State:          StateAttached,
	}
}

// acquired is one address obtained for an attach.
type acquired struct {
	addr   netip.Addr
	prefix netip.Prefix // the subnet
	gw     netip.Addr
	owner  string // owner of its reservation now
	spare  bool   // taken from the spare pool
	sync   bool   // reserved by the controller during the attach
}

// Attach gives a container an interface (CNI ADD). See the package
// documentation for the path it takes; on any failure everything it did is
// undone.
func (a *Agent) Attach(ctx context.Context, req api.AttachRequest) (res api.AttachResult, err error) {
	start := time.Now()
	result := "ok"
	defer func() {
		if err != nil {
			result = "error"
		}
		a.metrics.attaches.WithLabelValues(result).Inc()
		a.metrics.attachLatency.Observe(time.Since(start).Seconds())
	}()
	if err := validateAttach(&req); err != nil {
		return res, err
	}
	if err := a.waitReady(ctx, attachReadyWait); err != nil {
		return res, err
	}
	key := attachKey(req.ContainerID, req.IfName)
	unlock, err := a.lockReleased(ctx, key)
	if err != nil {
		return res, err
	}
	defer unlock()

	if e, ok := a.journal.Get(key); ok {
		res, err := a.reattach(ctx, req, e)
		if err == nil {
			result = "idempotent"
		}
		return res, err
	}

	n, err := a.resolveNetwork(ctx, req.Network, req.Project)
	if err != nil {
		return res, err
	}
	if n.NetworkKind == api.NetworkOverlay {
		return a.attachOverlay(ctx, req, n, start)
	}
	allowed, err := allowedSubnets(n, req.Subnets)
	if err != nil {
		return res, err
	}
	owner := ownerOf(req.ContainerID, req.IfName)
	portUUID := uuid.NewString()
	a.wantSpare(n.UUID)

	var got []acquired
	committed := false
	defer func() {
		if !committed {
			a.undoAddresses(n, owner, portUUID, req, got)
		}
	}()
	if got, err = a.acquireAddresses(ctx, n, req, allowed, owner, portUUID); err != nil {
		return res, err
	}

	e := newEntry(req, n, portUUID)
	e.VNI, e.NetworkMTU = n.VNI, n.MTU
	for _, s := range n.Subnets {
		e.Subnets = append(e.Subnets, JournalSubnet{CIDR: s.CIDR, Gateway: s.Gateway})
	}
	for _, g := range got {
		e.IPs = append(e.IPs, JournalIP{Address: netip.PrefixFrom(g.addr, g.prefix.Bits()).String(), Gateway: g.gw.String(), Owner: g.owner})
	}

	dpn := dataplaneNetwork(n, e)
	ep := endpointOf(e)
	a.dpMu.RLock()
	defer a.dpMu.RUnlock()
	done, err := a.dp.Attach(ctx, dpn, ep)
	if err != nil {
		a.detachQuietly(dpn, ep)
		return res, fmt.Errorf("attach %s to network %s: %w", e.describe(), n.FQName, err)
	}
	e.HostIf = done.HostIf
	e.MAC = done.MAC.String()
	if done.MTU != 0 {
		e.MTU = done.MTU
	}
	a.addDefaultRoutes(e)
	if err := a.journal.Put(e); err != nil {
		a.detachQuietly(dpn, done)
		return res, err
	}
	committed = true
	a.unwritten.Store(e.PortUUID, struct{}{})
	for _, g := range got {
		if g.spare {
			a.spares.commit(n.UUID, g.addr)
		}
	}
	// After the answer: the controller learns about the port and the
	// spares change hands; the pool is refilled; remotes are synced.
	a.queue.add(key)
	a.kickSpares()
	a.kickSync()
	a.log.Info("attached", "container", e.ContainerID, "ifname", e.IfName, "network", e.NetworkFQName,
		"ips", ipStrings(e.IPs), "port", e.PortUUID, "duration", time.Since(start))
	return a.resultOf(e), nil
}

// releaseWait bounds how long an ADD waits for an earlier attachment of
// the same container interface to be released.
const releaseWait = 3 * time.Second

// lockReleased locks key once no release of an earlier attachment with
// that key is pending, and returns the unlock function. A DEL answers
// before the interface is destroyed and the addresses released; an ADD of
// the same container interface right after it destroys the old interface
// itself (its host veth has the same name) and waits up to releaseWait
// for the worker to finish the release, else it is refused as still
// being released.
func (a *Agent) lockReleased(ctx context.Context, key string) (func(), error) {
	deadline := time.Now().Add(releaseWait)
	for {
		unlock := a.keys.Lock(key)
		e, ok := a.journal.Get(key)
		if !ok || e.External || e.State != StateReleasing {
			return unlock, nil
		}
		if !e.DataplaneDetached {
			if err := a.destroyInterface(ctx, e); err != nil {
				unlock()
				return nil, fmt.Errorf("%s is being released: %w", e.describe(), err)
			}
			e.DataplaneDetached = true
			if err := a.journal.Put(e); err != nil {
				unlock()
				return nil, err
			}
		}
		unlock()
		a.queue.add(key)
		if time.Now().After(deadline) {
			return nil, api.Conflict("container_id", "%s is still being released; retry shortly", e.describe())
		}
		if !sleepCtx(ctx, 5*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// reattach answers an ADD for an attachment the journal already has: the
// journalled result when the interface is still there, else the interface
// is made again with the same addresses.
func (a *Agent) reattach(ctx context.Context, req api.AttachRequest, e *Entry) (api.AttachResult, error) {
	if e.External {
		return api.AttachResult{}, api.Conflict("container_id", "%s is registered as an external port", e.describe())
	}
	if e.State != StateAttached {
		return api.AttachResult{}, api.Conflict("container_id", "%s is still being released; retry shortly", e.describe())
	}
	if ref := resolveNetworkRef(req.Network, req.Project); ref != e.NetworkUUID && ref != e.NetworkFQName {
		if n := a.cache.Network(ref); n == nil || n.UUID != e.NetworkUUID {
			return api.AttachResult{}, api.Conflict("network", "%s is already attached to network %s", e.describe(), e.NetworkFQName)
		}
	}
	if req.Netns != e.Netns {
		return api.AttachResult{}, api.Conflict("netns", "%s is already attached in netns %s", e.describe(), e.Netns)
	}
	a.dpMu.RLock()
	defer a.dpMu.RUnlock()
	if err := a.entryCheck(ctx, e); err == nil {
		return a.resultOf(e), nil
	} else {
		a.log.Info("attachment in the journal is gone from the data plane; making it again", "container", e.ContainerID, "ifname", e.IfName, "reason", err)
	}
	var done struct {
		HostIf string
		MAC    net.HardwareAddr
	}
	if e.Bridge != "" {
		if a.odp == nil {
			return api.AttachResult{}, fmt.Errorf("%w: the overlay data plane is not running", ErrNotReady)
		}
		ep, err := a.odp.Attach(ctx, overlayEndpointOf(e))
		if err != nil {
			return api.AttachResult{}, fmt.Errorf("attach %s to overlay network %s again: %w", e.describe(), e.NetworkFQName, err)
		}
		done.HostIf, done.MAC = ep.HostIf, ep.MAC
	} else {
		ep, err := a.dp.Attach(ctx, dataplaneNetwork(a.cache.Network(e.NetworkUUID), e), endpointOf(e))
		if err != nil {
			return api.AttachResult{}, fmt.Errorf("attach %s to network %s again: %w", e.describe(), e.NetworkFQName, err)
		}
		done.HostIf, done.MAC = ep.HostIf, ep.MAC
	}
	if done.HostIf != e.HostIf || done.MAC.String() != e.MAC {
		e.HostIf, e.MAC = done.HostIf, done.MAC.String()
		if err := a.journal.Put(e); err != nil {
			return api.AttachResult{}, err
		}
	}
	a.kickSync()
	return a.resultOf(e), nil
}

// resolveNetwork finds the network an attach asks for: in the cache, else
// (just created?) at the controller. Unknown networks are a 400-class
// error naming the network.
func (a *Agent) resolveNetwork(ctx context.Context, ref, project string) (*api.Network, error) {
	full := resolveNetworkRef(ref, project)
	if n := a.cache.Network(full); n != nil {
		return n, nil
	}
	n, err := a.client.GetNetwork(ctx, full)
	switch {
	case err == nil:
		return &n, nil
	case errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrInvalid):
		return nil, api.Invalid("network", "network %q does not exist", full)
	}
	return nil, &api.Error{Message: fmt.Sprintf("network %q is not known to this agent and the controller cannot be asked: %v", full, err), Field: "network", Code: http.StatusServiceUnavailable}
}

// allowedSubnets checks that every asked-for subnet is one of the
// network's, and returns them parsed.
func allowedSubnets(n *api.Network, subnets []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range subnets {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, api.Invalid(fmt.Sprintf("subnets[%d]", i), "%q is not a CIDR", s)
		}
		p = p.Masked()
		found := false
		for _, ns := range n.Subnets {
			if np, err := netip.ParsePrefix(ns.CIDR); err == nil && np.Masked() == p {
				found = true
				break
			}
		}
		if !found {
			return nil, api.Invalid(fmt.Sprintf("subnets[%d]", i), "%s is not a subnet of network %s", p, n.FQName)
		}
		out = append(out, p)
	}
	return out, nil
}

// acquireAddresses obtains the attach's addresses: explicit ones from the
// controller (or the spare pool when it holds them), one per family from
// the spare pool, or from the controller when the pool is empty. On error
// the addresses obtained so far are returned too, for the undo.
func (a *Agent) acquireAddresses(ctx context.Context, n *api.Network, req api.AttachRequest, allowed []netip.Prefix, owner, portUUID string) ([]acquired, error) {
	var got []acquired
	inAllowed := func(addr netip.Addr) bool {
		return len(allowed) == 0 || slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(addr) })
	}
	for i, s := range req.IPs {
		addr, _ := api.ParseAddr(s)
		field := fmt.Sprintf("ips[%d]", i)
		sub, gw, ok := addressSubnet(n, addr)
		if !ok {
			return got, api.Invalid(field, "address %s is not in any subnet of network %s", addr, n.FQName)
		}
		if !inAllowed(addr) {
			return got, api.Invalid(field, "address %s is outside the subnets asked for (%s)", addr, strings.Join(req.Subnets, ", "))
		}
		if a.spares.takeAddr(n.UUID, addr) {
			got = append(got, acquired{addr: addr, prefix: sub, gw: gw, owner: a.spareOwner, spare: true})
			continue
		}
		a.metrics.syncAllocs.Inc()
		r, err := a.client.Allocate(ctx, api.AllocateRequest{Network: n.UUID, Owner: owner, IP: addr.String(), Node: a.cfg.NodeName, Port: portUUID})
		if err != nil {
			return got, explicitError(field, addr, n, err)
		}
		for _, x := range r.Reservations {
			xa, err := netip.ParseAddr(x.Address)
			if err != nil {
				continue
			}
			got = append(got, acquired{addr: xa, prefix: sub, gw: gw, owner: owner, sync: true})
		}
	}
	fams := slices.Clone(req.Families)
	if len(fams) == 0 && len(req.IPs) == 0 {
		fams = []string{defaultFamily(n)}
	}
	for i, fam := range fams {
		if !slices.Contains(networkFamilies(n), fam) {
			return got, api.Invalid(fmt.Sprintf("families[%d]", i), "network %s has no %s subnet", n.FQName, fam)
		}
		if addr, ok := a.spares.take(n.UUID, fam, allowed); ok {
			sub, gw, _ := addressSubnet(n, addr)
			got = append(got, acquired{addr: addr, prefix: sub, gw: gw, owner: a.spareOwner, spare: true})
			continue
		}
		g, err := a.allocateNow(ctx, n, fam, allowed, owner, portUUID)
		if err != nil {
			return got, err
		}
		got = append(got, g)
	}
	return got, nil
}

// allocateNow reserves an address of the family at the controller, in
// the allowed subnets when given.
func (a *Agent) allocateNow(ctx context.Context, n *api.Network, fam string, allowed []netip.Prefix, owner, portUUID string) (acquired, error) {
	a.metrics.syncAllocs.Inc()
	r, err := a.client.Allocate(ctx, api.AllocateRequest{Network: n.UUID, Owner: owner, Family: fam, Node: a.cfg.NodeName, Port: portUUID})
	if err != nil {
		return acquired{}, fmt.Errorf("reserve an %s address in network %s: %w", fam, n.FQName, err)
	}
	var g acquired
	for _, x := range r.Reservations {
		addr, err := netip.ParseAddr(x.Address)
		if err != nil {
			continue
		}
		sub, gw, ok := addressSubnet(n, addr)
		if !ok {
			continue
		}
		g = acquired{addr: addr, prefix: sub, gw: gw, owner: owner, sync: true}
		break
	}
	if !g.addr.IsValid() {
		return acquired{}, fmt.Errorf("reserve an %s address in network %s: the controller answered without a usable address", fam, n.FQName)
	}
	if len(allowed) == 0 || slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(g.addr) }) {
		return g, nil
	}
	// The controller picks the subnet itself; give that address back and
	// ask for a free one of the allowed subnets by name.
	a.releaseNow(n, g.addr, owner)
	for _, cand := range a.freeCandidates(n, fam, allowed, 16) {
		sub, gw, _ := addressSubnet(n, cand)
		a.metrics.syncAllocs.Inc()
		r, err := a.client.Allocate(ctx, api.AllocateRequest{Network: n.UUID, Owner: owner, IP: cand.String(), Node: a.cfg.NodeName, Port: portUUID})
		if errors.Is(err, api.ErrConflict) {
			continue
		}
		if err != nil {
			return acquired{}, fmt.Errorf("reserve %s in network %s: %w", cand, n.FQName, err)
		}
		if len(r.Reservations) > 0 {
			return acquired{addr: cand, prefix: sub, gw: gw, owner: owner, sync: true}, nil
		}
	}
	return acquired{}, api.Exhausted("subnets", "network %s has no free %s address in %s", n.FQName, fam, prefixList(allowed))
}

// freeCandidates lists up to limit addresses of the allowed subnets that
// the cache shows free: in this node's blocks first, then outside every
// block.
func (a *Agent) freeCandidates(n *api.Network, fam string, allowed []netip.Prefix, limit int) []netip.Addr {
	snap := a.cache.Snapshot()
	used := map[netip.Addr]bool{}
	for _, r := range snap.Reservations {
		if r.Network == n.FQName {
			if addr, err := netip.ParseAddr(r.Address); err == nil {
				used[addr] = true
			}
		}
	}
	var own, other []netip.Prefix
	for _, b := range snap.Blocks {
		if b.Network != n.FQName {
			continue
		}
		if p, err := netip.ParsePrefix(b.CIDR); err == nil {
			if b.Node == a.cfg.NodeName {
				own = append(own, p)
			} else {
				other = append(other, p)
			}
		}
	}
	blocks := slices.Concat(own, other)
	var out []netip.Addr
	scan := func(region, sub netip.Prefix, skipBlocks bool) {
		_, gw, _ := addressSubnet(n, sub.Addr())
		last := api.LastAddr(sub)
		for addr := region.Addr(); region.Contains(addr) && len(out) < limit; addr = addr.Next() {
			if skipBlocks && slices.ContainsFunc(blocks, func(p netip.Prefix) bool { return p.Contains(addr) }) {
				continue
			}
			usable := addr != sub.Addr() && addr != gw && !(addr.Is4() && addr == last) && !used[addr]
			if usable && !slices.Contains(out, addr) {
				out = append(out, addr)
			}
		}
	}
	for _, sub := range allowed {
		if api.Family(sub.Addr()) != fam {
			continue
		}
		for _, b := range own {
			if sub.Contains(b.Addr()) {
				scan(b, sub, false)
			}
		}
	}
	for _, sub := range allowed {
		if api.Family(sub.Addr()) == fam && len(out) < limit {
			scan(sub, sub, true)
		}
	}
	return out
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// explicitError turns the controller's refusal of an explicit address
// into an error that names the address.
func explicitError(field string, addr netip.Addr, n *api.Network, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500 {
		msg := ae.Message
		if !strings.Contains(msg, addr.String()) {
			msg = fmt.Sprintf("address %s in network %s: %s", addr, n.FQName, msg)
		}
		return api.ErrorFromStatus(ae.Code, msg, field)
	}
	return fmt.Errorf("reserve address %s in network %s: %w", addr, n.FQName, err)
}

// defaultFamily is the family of an attach that asks for nothing: IPv4,
// or the network's only family.
func defaultFamily(n *api.Network) string {
	fams := networkFamilies(n)
	if len(fams) == 0 || slices.Contains(fams, "ipv4") {
		return "ipv4"
	}
	return fams[0]
}

// undoAddresses gives back what a failed attach obtained: spares return to
// the pool, addresses reserved for it are released. A release the
// controller does not take now is journalled and retried, so that nothing
// leaks.
func (a *Agent) undoAddresses(n *api.Network, owner, portUUID string, req api.AttachRequest, got []acquired) {
	var pending []JournalIP
	for _, g := range got {
		switch {
		case g.spare:
			a.spares.put(n.UUID, g.addr)
		case g.sync:
			if !a.releaseNow(n, g.addr, owner) {
				pending = append(pending, JournalIP{Address: netip.PrefixFrom(g.addr, g.prefix.Bits()).String(), Owner: owner})
			}
		}
	}
	if len(pending) == 0 {
		return
	}
	e := &Entry{
		ContainerID: req.ContainerID, IfName: req.IfName, Netns: req.Netns, CNINetwork: req.CNINetwork,
		NetworkUUID: n.UUID, NetworkFQName: n.FQName, VNI: n.VNI, PortUUID: portUUID, Owner: owner,
		IPs: pending, State: StateReleasing, DataplaneDetached: true,
	}
	if err := a.journal.Put(e); err != nil {
		a.log.Error("cannot journal the release of an undone attach; the addresses stay reserved until the controller's garbage collection",
			"container", req.ContainerID, "ifname", req.IfName, "ips", ipStrings(pending), "err", err)
		return
	}
	a.queue.add(e.Key())
}

// releaseNow releases one address reserved by owner, bounded by
// undoTimeout; it reports whether the controller took it (or it was gone).
func (a *Agent) releaseNow(n *api.Network, addr netip.Addr, owner string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx()), undoTimeout)
	defer cancel()
	_, err := a.client.Release(ctx, api.ReleaseRequest{Network: n.UUID, IP: addr.String(), Owner: owner})
	if err == nil || errors.Is(err, api.ErrNotFound) {
		return true
	}
	a.log.Warn("release of an undone reservation failed; will retry", "network", n.FQName, "ip", addr, "owner", owner, "err", err)
	return false
}

// ctx is the agent's run context, or Background before Run.
func (a *Agent) ctx() context.Context {
	if a.runCtx != nil {
		return a.runCtx
	}
	return context.Background()
}

// detachQuietly removes what an attach may have left in the data plane.
func (a *Agent) detachQuietly(n dataplane.Network, ep dataplane.Endpoint) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx()), undoTimeout)
	defer cancel()
	if err := a.dp.Detach(ctx, n, ep); err != nil {
		a.log.Warn("undo of a failed attach left the data plane unclean; the next sync repairs it", "container", ep.ContainerID, "ifname", ep.IfName, "err", err)
		a.kickSync()
	}
}

// addDefaultRoutes gives the attachment a default route per family via the
// gateway of its first address of that family, unless another interface
// of the container already has that family (its first interface keeps the
// default route).
func (a *Agent) addDefaultRoutes(e *Entry) {
	taken := map[string]bool{}
	a.journal.scan(func(o *Entry) {
		if o.ContainerID != e.ContainerID || o.IfName == e.IfName || o.External || o.State != StateAttached {
			return
		}
		for _, r := range o.Routes {
			if p, err := netip.ParsePrefix(r.Dst); err == nil && p.Bits() == 0 {
				taken[api.Family(p.Addr())] = true
			}
		}
	})
	e.Routes = nil
	for _, ip := range e.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil || ip.Gateway == "" {
			continue
		}
		fam := api.Family(p.Addr())
		if taken[fam] {
			continue
		}
		taken[fam] = true
		dst := "0.0.0.0/0"
		if fam == "ipv6" {
			dst = "::/0"
		}
		e.Routes = append(e.Routes, api.AttachedRoute{Dst: dst, GW: ip.Gateway})
	}
}

// resultOf is the answer to the plugin for a journal entry.
func (a *Agent) resultOf(e *Entry) api.AttachResult {
	r := api.AttachResult{
		Port:      e.PortUUID,
		Network:   e.NetworkFQName,
		Interface: e.IfName,
		MAC:       e.MAC,
		HostIf:    e.HostIf,
		Sandbox:   e.Netns,
		MTU:       e.MTU,
		IPs:       make([]api.AttachedIP, 0, len(e.IPs)),
		Routes:    slices.Clone(e.Routes),
		DNS:       a.cfg.DNS,
	}
	for _, ip := range e.IPs {
		r.IPs = append(r.IPs, api.AttachedIP{Address: ip.Address, Gateway: ip.Gateway})
	}
	return r
}

func ipStrings(ips []JournalIP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.Address
	}
	return out
}

// Detach removes an attachment (CNI DEL): the data plane withdraws the
// interface (no traffic reaches or leaves it any more), the journal marks
// it releasing, and the answer comes at once; the interface is destroyed,
// the controller forgets the port and the addresses are released
// afterwards, in that order. Unknown attachments succeed.
func (a *Agent) Detach(ctx context.Context, req api.DetachRequest) (err error) {
	result := "ok"
	defer func() {
		if err != nil {
			result = "error"
		}
		a.metrics.detaches.WithLabelValues(result).Inc()
	}()
	if err := validateIDs(req.ContainerID, req.IfName); err != nil {
		return err
	}
	key := attachKey(req.ContainerID, req.IfName)
	unlock := a.keys.Lock(key)
	defer unlock()
	e, ok := a.journal.Get(key)
	if !ok {
		result = "unknown"
		return nil
	}
	if e.State == StateReleasing {
		return nil
	}
	return a.detachEntry(ctx, e, req.Netns)
}

// detachEntry detaches a journalled attachment; the caller holds its key
// lock. The interface is only withdrawn here: destroying a veth makes the
// kernel wait for an RCU grace period, which the background worker does
// (finishRelease), before any address is released. When the runtime
// deletes the container's namespace right after DEL, as Mesos does, the
// kernel destroys the pair itself and the worker finds nothing left.
func (a *Agent) detachEntry(ctx context.Context, e *Entry, netns string) error {
	if netns != "" {
		e.Netns = netns
	}
	// With a data plane (normally), the interface is withdrawn now;
	// without one (the agent restarted while the controller is
	// unreachable) the background work removes it once the data plane is
	// built.
	if err := a.waitDataPlane(ctx, 5*time.Second); err == nil {
		a.dpMu.RLock()
		werr := a.entryWithdraw(ctx, e)
		a.dpMu.RUnlock()
		if werr != nil {
			return fmt.Errorf("detach %s: %w", e.describe(), werr)
		}
	}
	e.State = StateReleasing
	if err := a.journal.Put(e); err != nil {
		return err
	}
	a.linger(e.NetworkUUID)
	a.queue.add(e.Key())
	a.kickSync()
	a.log.Info("detached", "container", e.ContainerID, "ifname", e.IfName, "network", e.NetworkFQName, "ips", ipStrings(e.IPs))
	return nil
}

// Check verifies an attachment (CNI CHECK) against the journal and the
// data plane.
func (a *Agent) Check(ctx context.Context, req api.DetachRequest) error {
	if err := validateIDs(req.ContainerID, req.IfName); err != nil {
		return err
	}
	if err := a.waitDataPlane(ctx, attachReadyWait); err != nil {
		return err
	}
	e, ok := a.journal.Get(attachKey(req.ContainerID, req.IfName))
	switch {
	case !ok:
		return api.NotFound("container %s has no interface %s attached by this agent", req.ContainerID, req.IfName)
	case e.State != StateAttached:
		return api.Conflict("", "%s is being released", e.describe())
	case req.Netns != "" && req.Netns != e.Netns:
		return api.Conflict("netns", "%s is attached in netns %s, not %s", e.describe(), e.Netns, req.Netns)
	}
	a.dpMu.RLock()
	defer a.dpMu.RUnlock()
	if err := a.entryCheck(ctx, e); err != nil {
		return api.Conflict("", "%s: %v", e.describe(), err)
	}
	return nil
}

// GC detaches every attachment of the CNI network that the runtime no
// longer holds (CNI GC).
func (a *Agent) GC(ctx context.Context, req api.GCRequest) error {
	if req.CNINetwork == "" {
		return api.Invalid("cni_network", "is required")
	}
	valid := map[string]bool{}
	for _, v := range req.Valid {
		valid[attachKey(v.ContainerID, v.IfName)] = true
	}
	var errs []error
	for _, e := range a.journal.Entries() {
		if e.External || e.State != StateAttached || e.CNINetwork != req.CNINetwork || valid[e.Key()] {
			continue
		}
		unlock := a.keys.Lock(e.Key())
		cur, ok := a.journal.Get(e.Key())
		if ok && cur.State == StateAttached {
			a.log.Info("garbage-collecting attachment the runtime no longer holds", "container", cur.ContainerID, "ifname", cur.IfName, "cni_network", req.CNINetwork)
			if err := a.detachEntry(ctx, cur, ""); err != nil {
				errs = append(errs, err)
			}
		}
		unlock()
	}
	return errors.Join(errs...)
}
