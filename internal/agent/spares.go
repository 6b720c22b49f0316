package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// spareKey names one pool: a network (uuid) and a family.
type spareKey struct {
	network string
	family  string
}

// sparePool holds addresses the node reserved ahead of need (owner
// "spare:<node>"), so that an attach takes one without a controller round
// trip. An address is in at most one of: a pool, the taken set (handed to
// an attach that has not finished), or the journal.
type sparePool struct {
	mu    sync.Mutex
	pools map[spareKey][]netip.Addr
	taken map[string]map[netip.Addr]bool // network uuid -> addresses
	// onChange is told the new size of a pool; it must not call back.
	onChange func(k spareKey, size int)
}

func newSparePool(onChange func(spareKey, int)) *sparePool {
	if onChange == nil {
		onChange = func(spareKey, int) {}
	}
	return &sparePool{pools: map[spareKey][]netip.Addr{}, taken: map[string]map[netip.Addr]bool{}, onChange: onChange}
}

// take hands out a spare of the network and family, inside one of
// allowed when allowed is not empty. The address is marked taken until
// commit or put.
func (p *sparePool) take(network, family string, allowed []netip.Prefix) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := spareKey{network, family}
	pool := p.pools[k]
	for i, a := range pool {
		if len(allowed) > 0 && !slices.ContainsFunc(allowed, func(s netip.Prefix) bool { return s.Contains(a) }) {
			continue
		}
		p.pools[k] = slices.Delete(pool, i, i+1)
		p.markTaken(network, a)
		p.onChange(k, len(p.pools[k]))
		return a, true
	}
	return netip.Addr{}, false
}

// takeAddr takes the spare a of the network, if the pool holds it.
func (p *sparePool) takeAddr(network string, a netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pool := range p.pools {
		if k.network != network {
			continue
		}
		if i := slices.Index(pool, a); i >= 0 {
			p.pools[k] = slices.Delete(pool, i, i+1)
			p.markTaken(network, a)
			p.onChange(k, len(p.pools[k]))
			return true
		}
	}
	return false
}

func (p *sparePool) markTaken(network string, a netip.Addr) {
	if p.taken[network] == nil {
		p.taken[network] = map[netip.Addr]bool{}
	}
	p.taken[network][a] = true
}

func (p *sparePool) unmarkTaken(network string, a netip.Addr) {
	delete(p.taken[network], a)
	if len(p.taken[network]) == 0 {
		delete(p.taken, network)
	}
}

// commit forgets a taken spare: it now belongs to a journal entry.
func (p *sparePool) commit(network string, a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unmarkTaken(network, a)
}

// put adds a spare to its pool (a new one, or one given back by an attach
// that failed).
func (p *sparePool) put(network string, a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unmarkTaken(network, a)
	k := spareKey{network, api.Family(a)}
	if !slices.Contains(p.pools[k], a) {
		p.pools[k] = append(p.pools[k], a)
	}
	p.onChange(k, len(p.pools[k]))
}

// remove drops a from the network's pools: its reservation went away or
// changed hands.
func (p *sparePool) remove(network string, a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := spareKey{network, api.Family(a)}
	if i := slices.Index(p.pools[k], a); i >= 0 {
		p.pools[k] = slices.Delete(p.pools[k], i, i+1)
		p.onChange(k, len(p.pools[k]))
	}
}

// size is the number of spares of the network and family.
func (p *sparePool) size(network, family string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pools[spareKey{network, family}])
}

// reset replaces every pool with have (network uuid -> addresses),
// leaving out addresses currently taken and those held returns (called
// under the pool's lock).
func (p *sparePool) reset(have map[string][]netip.Addr, held func() map[string]map[netip.Addr]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	inUse := held()
	old := p.pools
	p.pools = map[spareKey][]netip.Addr{}
	for network, addrs := range have {
		for _, a := range addrs {
			if p.taken[network][a] || inUse[network][a] {
				continue
			}
			k := spareKey{network, api.Family(a)}
			p.pools[k] = append(p.pools[k], a)
		}
	}
	for k := range p.pools {
		slices.SortFunc(p.pools[k], netip.Addr.Compare)
		p.onChange(k, len(p.pools[k]))
	}
	for k := range old {
		if _, ok := p.pools[k]; !ok {
			p.onChange(k, 0)
		}
	}
}

// drain empties the pools of a network and returns what they held.
func (p *sparePool) drain(network string) []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netip.Addr
	for k, pool := range p.pools {
		if k.network == network {
			out = append(out, pool...)
			delete(p.pools, k)
			p.onChange(k, 0)
		}
	}
	return out
}

// spareIdle is how long spares of a network stay reserved after its last
// local attachment went away (the default task network keeps its spares).
const spareIdle = 10 * time.Minute

// rebuildSpares fills the spare pools from the controller's reservations
// of the spare owner. Addresses that journal entries hold, or that an
// attach in progress took, are left out: both are checked under the pool's
// lock, and an attach journals an address before it stops being taken.
func (a *Agent) rebuildSpares() {
	snap := a.cache.Snapshot()
	have := map[string][]netip.Addr{}
	for _, r := range snap.Reservations {
		if r.Owner != a.spareOwner || r.Node != a.cfg.NodeName {
			continue
		}
		n := snap.NetworkByRef(r.Network)
		addr, err := netip.ParseAddr(r.Address)
		if n == nil || err != nil {
			continue
		}
		have[n.UUID] = append(have[n.UUID], addr)
		a.wantSpare(n.UUID)
	}
	for _, e := range a.journal.Entries() {
		if !e.External && e.Bridge == "" { // overlay addresses are the node's own
			a.wantSpare(e.NetworkUUID)
		}
	}
	if n := snap.NetworkByRef(api.DefaultTaskNetwork); n != nil {
		a.wantSpare(n.UUID)
	}
	a.spares.reset(have, a.journalAddresses)
	a.kickSpares()
}

// journalAddresses lists the addresses journal entries hold, by network.
func (a *Agent) journalAddresses() map[string]map[netip.Addr]bool {
	out := map[string]map[netip.Addr]bool{}
	for _, e := range a.journal.Entries() {
		for _, ip := range e.IPs {
			if p, err := netip.ParsePrefix(ip.Address); err == nil {
				if out[e.NetworkUUID] == nil {
					out[e.NetworkUUID] = map[netip.Addr]bool{}
				}
				out[e.NetworkUUID][p.Addr()] = true
			}
		}
	}
	return out
}

// wantSpare makes the agent keep spares of the network.
func (a *Agent) wantSpare(network string) {
	a.wantMu.Lock()
	defer a.wantMu.Unlock()
	a.wantSpares[network] = time.Now()
}

// spareLoop keeps the spare pools of the wanted networks full, gives back
// the spares of networks no longer used on the node, and audits the
// journal against the controller.
func (a *Agent) spareLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(a.cfg.ResyncInterval))
	defer t.Stop()
	failures := 0
	for {
		err := a.fillSpares(ctx)
		var retry <-chan time.Time
		if err != nil && ctx.Err() == nil {
			a.log.Warn("refilling spare addresses failed", "attempt", failures+1, "err", err)
			retry = time.After(retryBackoff.delay(failures))
			failures++
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-a.spareKick:
		case <-retry:
		case <-t.C:
			a.trimSpares(ctx)
			a.auditJournal()
		}
	}
}

// fillSpares tops up every wanted pool that has fallen to half of
// Spares or below (or is empty) back to Spares addresses, each in one
// controller request. A network that is out of addresses is not an error.
// Overlay networks have no spares: their attachments allocate locally, in
// the node's Mesos half.
func (a *Agent) fillSpares(ctx context.Context) error {
	if a.cfg.Spares == 0 {
		return nil
	}
	a.wantMu.Lock()
	nets := make([]string, 0, len(a.wantSpares))
	for n := range a.wantSpares {
		nets = append(nets, n)
	}
	a.wantMu.Unlock()
	slices.Sort(nets)
	for _, uuid := range nets {
		n := a.cache.Network(uuid)
		if n == nil || n.NetworkKind == api.NetworkOverlay {
			continue
		}
		for _, fam := range networkFamilies(n) {
			have := a.spares.size(n.UUID, fam)
			if have > a.cfg.Spares/2 || ctx.Err() != nil {
				continue
			}
			if err := a.refill(ctx, n, fam, min(a.cfg.Spares-have, api.MaxAllocateCount)); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
	return nil
}

// refill reserves count spares of the family in one request, or in one
// request per address from a controller that does not know count yet (a
// rolling upgrade).
func (a *Agent) refill(ctx context.Context, n *api.Network, fam string, count int) error {
	req := api.AllocateRequest{Network: n.UUID, Owner: a.spareOwner, Family: fam, Node: a.cfg.NodeName, Count: count}
	res, err := a.client.Allocate(ctx, req)
	var ae *api.Error
	if count > 1 && errors.As(err, &ae) && ae.Field == "count" {
		req.Count = 0
		for range count {
			if res, err = a.client.Allocate(ctx, req); err != nil {
				break
			}
			a.putSpares(n, res)
		}
	} else if err == nil {
		a.putSpares(n, res)
	}
	a.metrics.op("spare", err)
	switch {
	case errors.Is(err, api.ErrExhausted):
		a.log.Debug("network has no address left for spares", "network", n.FQName, "family", fam)
	case err != nil:
		return fmt.Errorf("reserve %d spare %s addresses in %s: %w", count, fam, n.FQName, err)
	}
	return nil
}

// putSpares adds the reservations of an allocation to the pools.
func (a *Agent) putSpares(n *api.Network, res api.AllocateResponse) {
	for _, r := range res.Reservations {
		if addr, err := netip.ParseAddr(r.Address); err == nil {
			a.spares.put(n.UUID, addr)
		}
	}
}

// trimSpares releases the spares of networks that have had no local
// attachment for spareIdle, so that spares never keep a network that is
// no longer used here from being deleted.
func (a *Agent) trimSpares(ctx context.Context) {
	used := map[string]bool{}
	for _, e := range a.journal.Entries() {
		used[e.NetworkUUID] = true
	}
	def := a.cache.Network(api.DefaultTaskNetwork)
	a.wantMu.Lock()
	var idle []string
	for n, last := range a.wantSpares {
		if !used[n] && (def == nil || n != def.UUID) && time.Since(last) > spareIdle {
			idle = append(idle, n)
			delete(a.wantSpares, n)
		}
	}
	a.wantMu.Unlock()
	for _, network := range idle {
		for _, addr := range a.spares.drain(network) {
			_, err := a.client.Release(ctx, api.ReleaseRequest{Network: network, IP: addr.String(), Owner: a.spareOwner})
			a.metrics.op("spare_release", err)
			if err != nil && !errors.Is(err, api.ErrNotFound) {
				a.log.Warn("release of an idle spare failed; keeping it", "network", network, "ip", addr, "err", err)
				a.spares.put(network, addr)
			}
		}
		a.log.Info("released the spares of a network no longer used on this node", "network", network)
	}
}

// auditJournal checks that the controller still holds the addresses of
// the node's attachments for them (a node the controller declared lost has
// had everything released) and has the background work take back any that
// went missing. Overlay attachments are left out: their addresses are the
// node's own, never reserved at the controller.
func (a *Agent) auditJournal() {
	if !a.cache.Synced() {
		return
	}
	snap := a.cache.Snapshot()
	held := map[string]string{} // network fq_name + address -> owner
	for _, r := range snap.Reservations {
		if addr, err := netip.ParseAddr(r.Address); err == nil {
			held[r.Network+" "+addr.String()] = r.Owner
		}
	}
	settled := 2 * time.Duration(a.cfg.ResyncInterval)
	for _, e := range a.journal.Entries() {
		if e.External || e.Bridge != "" || e.State != StateAttached || needsWork(e) || time.Since(e.UpdatedAt) < settled {
			continue
		}
		var lost []string
		for _, ip := range e.IPs {
			p, err := netip.ParsePrefix(ip.Address)
			if err == nil && held[e.NetworkFQName+" "+p.Addr().String()] != e.Owner {
				lost = append(lost, ip.Address)
			}
		}
		if len(lost) == 0 {
			continue
		}
		a.log.Warn("the controller no longer holds addresses of a running attachment; taking them back", "container", e.ContainerID, "ifname", e.IfName, "ips", lost)
		err := a.update(e.Key(), e.PortUUID, func(cur *Entry) bool {
			for i := range cur.IPs {
				if slices.Contains(lost, cur.IPs[i].Address) {
					cur.IPs[i].Owner = ""
				}
			}
			cur.PortSynced = false
			return true
		})
		if err != nil {
			a.log.Error("journal the audit of an attachment", "container", e.ContainerID, "err", err)
			continue
		}
		a.queue.add(e.Key())
	}
}
