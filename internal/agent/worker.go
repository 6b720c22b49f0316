package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
)

// controllerCallTimeout bounds one background controller call.
const controllerCallTimeout = 15 * time.Second

// needsWork reports whether a journal entry still has controller work:
// spares to hand over, a port to write, or a release to finish.
func needsWork(e *Entry) bool {
	if e.External {
		return false
	}
	if e.State == StateReleasing {
		return true
	}
	if !e.PortSynced {
		return true
	}
	return slices.ContainsFunc(e.IPs, func(ip JournalIP) bool { return ip.Owner != e.Owner })
}

// maxBatch bounds the journal keys a worker takes at once: their
// controller work goes in one port sync request.
const maxBatch = 64

// batchLinger is how long a worker that found work waits for more before
// it starts, so that the entries of a burst of attaches and detaches share
// a request and a store transaction.
const batchLinger = 5 * time.Millisecond

// workLoop finishes the controller side of journal entries until ctx ends.
func (a *Agent) workLoop(ctx context.Context) {
	for {
		keys, ok := a.queue.getBatch(ctx, maxBatch, batchLinger)
		if !ok {
			return
		}
		errs := a.processBatch(ctx, keys)
		for _, key := range keys {
			err := errs[key]
			if err != nil && ctx.Err() == nil {
				n := a.queue.failureCount(key)
				args := []any{"attempt", n + 1, "err", err}
				if n == 0 {
					a.log.Warn("controller update failed; will retry", args...)
				} else {
					a.log.Debug("controller update failed again; will retry", args...)
				}
			}
			a.queue.done(key, err != nil && ctx.Err() == nil)
		}
	}
}

// processBatch does the controller work of several entries: the common
// cases (a new attachment's port and hand-over, a release) in one port
// sync request, everything else and every item the controller refused
// through process, one entry at a time. It returns the error of each key
// that failed.
func (a *Agent) processBatch(ctx context.Context, keys []string) map[string]error {
	errs := map[string]error{}
	var req api.PortSyncRequest
	var attached, released, alone []*Entry
	destroyed := a.destroyInterfaces(ctx, keys, errs)
	for _, key := range keys {
		e, ok := a.journal.Get(key)
		switch {
		case !ok || e.External || errs[key] != nil:
		case e.State == StateReleasing:
			if destroyed[key] {
				e.DataplaneDetached = true
			}
			if !e.DataplaneDetached {
				// It became releasing after the destroys: the slow way.
				alone = append(alone, e)
				continue
			}
			req.Detach = append(req.Detach, a.detachItem(e))
			released = append(released, e)
		case !needsWork(e):
		case a.isUnwritten(e.PortUUID) && handOverKnown(e):
			// The port was never sent: it is created with the hand-over.
			a.unwritten.Delete(e.PortUUID)
			req.Attach = append(req.Attach, a.attachItem(e))
			attached = append(attached, e)
		default:
			alone = append(alone, e)
		}
	}
	if len(req.Attach)+len(req.Detach) > 0 {
		cctx, cancel := context.WithTimeout(ctx, controllerCallTimeout)
		resp, err := a.client.SyncPorts(cctx, a.cfg.NodeName, req)
		cancel()
		a.metrics.op("port_sync", err)
		switch {
		case err != nil && !errors.Is(err, api.ErrNotFound):
			// The controller did not answer: the releases keep what they
			// did to the data plane, and everything is retried.
			for _, e := range released {
				errs[e.Key()] = errors.Join(err, a.markDetached(e))
			}
			for _, e := range attached {
				errs[e.Key()] = err
			}
		case err != nil:
			// A controller without port sync (or that forgot the
			// node): one entry at a time.
			alone = append(alone, attached...)
			alone = append(alone, released...)
		default:
			// What the controller did is journalled; what it refused is
			// done alone.
			settle := func(entries []*Entry, results []api.PortSyncResult, what string, done func(*Entry) error) {
				for i, e := range entries {
					if ierr := results[i].Err(); ierr != nil {
						a.log.Debug("port sync refused "+what+"; doing it alone", "container", e.ContainerID, "ifname", e.IfName, "err", ierr)
						alone = append(alone, e)
					} else if err := done(e); err != nil {
						errs[e.Key()] = err
					}
				}
			}
			settle(attached, resp.Attach, "an attachment", a.portSynced)
			settle(released, resp.Detach, "a release", a.forgetReleased)
		}
	}
	for _, e := range alone {
		if err := a.process(ctx, e.Key()); err != nil {
			errs[e.Key()] = err
		}
	}
	return errs
}

// destroyInterfaces destroys the interfaces of the releasing entries among
// keys whose data plane still holds them, in parallel (each destroy waits
// for the kernel), and reports which it destroyed; failures go to errs.
func (a *Agent) destroyInterfaces(ctx context.Context, keys []string, errs map[string]error) map[string]bool {
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := map[string]bool{}
	for _, key := range keys {
		e, ok := a.journal.Get(key)
		if !ok || e.External || e.State != StateReleasing || e.DataplaneDetached {
			continue
		}
		wg.Go(func() {
			err := a.destroyInterface(ctx, e)
			if err == nil {
				a.syncAfterDestroy(e.NetworkUUID)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[key] = fmt.Errorf("release %s: %w", e.describe(), err)
			} else {
				done[key] = true
			}
		})
	}
	wg.Wait()
	return done
}

func (a *Agent) isUnwritten(portUUID string) bool {
	_, ok := a.unwritten.Load(portUUID)
	return ok
}

// handOverKnown reports whether every address of the entry is held by
// its owner or by a known one it is handed over from (not one the audit
// found missing).
func handOverKnown(e *Entry) bool {
	for _, ip := range e.IPs {
		if _, err := netip.ParsePrefix(ip.Address); err != nil || ip.Owner == "" {
			return false
		}
	}
	return true
}

// attachItem is the port sync item of a new attachment: its port, and
// the hand-over of the spares it took.
func (a *Agent) attachItem(e *Entry) api.PortAttach {
	it := api.PortAttach{Port: a.portObject(e), Owner: e.Owner}
	for _, ip := range e.IPs {
		if ip.Owner == e.Owner {
			continue
		}
		p, _ := netip.ParsePrefix(ip.Address)
		it.HandOver = append(it.HandOver, api.HandOver{IP: p.Addr().String(), FromOwner: ip.Owner})
	}
	return it
}

// detachItem is the port sync item of a release: the port (unless it was
// never sent) and the addresses, held by the container's owner or, for a
// spare never handed over, by the spare owner. Overlay addresses are the
// node's own, not the controller's.
func (a *Agent) detachItem(e *Entry) api.PortDetach {
	d := api.PortDetach{Network: e.NetworkUUID, Owner: e.Owner}
	if !a.isUnwritten(e.PortUUID) {
		d.Port = e.PortUUID
	}
	if e.Bridge != "" {
		return d
	}
	for _, ip := range e.IPs {
		if p, err := netip.ParsePrefix(ip.Address); err == nil {
			d.IPs = append(d.IPs, api.ReleaseIP{IP: p.Addr().String(), Owner: ip.Owner})
		}
	}
	return d
}

// portSynced journals that the controller holds the entry's port and
// addresses.
func (a *Agent) portSynced(e *Entry) error {
	return a.update(e.Key(), e.PortUUID, func(cur *Entry) bool {
		changed := false
		for i := range cur.IPs {
			if cur.IPs[i].Owner != cur.Owner {
				cur.IPs[i].Owner = cur.Owner
				changed = true
			}
		}
		if !cur.PortSynced && cur.State == StateAttached {
			cur.PortSynced = true
			changed = true
		}
		return changed
	})
}

// markDetached journals that a releasing entry's interface is destroyed,
// when its release cannot finish now.
func (a *Agent) markDetached(e *Entry) error {
	return a.update(e.Key(), e.PortUUID, func(cur *Entry) bool {
		if cur.DataplaneDetached || cur.State != StateReleasing {
			return false
		}
		cur.DataplaneDetached = true
		return true
	})
}

// process does the pending controller work of one entry.
func (a *Agent) process(ctx context.Context, key string) error {
	e, ok := a.journal.Get(key)
	if !ok || e.External {
		return nil
	}
	if e.State == StateReleasing {
		return a.finishRelease(ctx, e)
	}
	var errs []error
	var assigned []string
	for _, ip := range e.IPs {
		if ip.Owner == e.Owner {
			continue
		}
		if err := a.handOver(ctx, e, ip); err != nil {
			errs = append(errs, err)
			continue
		}
		assigned = append(assigned, ip.Address)
	}
	err := errors.Join(errs...)
	portWritten := false
	if err == nil && !e.PortSynced {
		a.unwritten.Delete(e.PortUUID)
		if err = a.writePort(ctx, e); err == nil {
			portWritten = true
		}
	}
	// One journal write records what the controller now holds.
	if len(assigned) == 0 && !portWritten {
		return err
	}
	uerr := a.update(key, e.PortUUID, func(cur *Entry) bool {
		changed := false
		for i := range cur.IPs {
			if slices.Contains(assigned, cur.IPs[i].Address) && cur.IPs[i].Owner != cur.Owner {
				cur.IPs[i].Owner = cur.Owner
				changed = true
			}
		}
		if portWritten && !cur.PortSynced && cur.State == StateAttached {
			cur.PortSynced = true
			changed = true
		}
		return changed
	})
	return errors.Join(err, uerr)
}

// update re-reads the entry under its lock and applies fn to it when it is
// still the same attachment (same port); fn says whether it changed it.
// What update records (the controller's acknowledgements, the audit's
// findings, an interface destroyed) is redone harmlessly when a crash
// loses it, so it does not wait for the write to be durable.
func (a *Agent) update(key, portUUID string, fn func(e *Entry) bool) error {
	unlock := a.keys.Lock(key)
	defer unlock()
	e, ok := a.journal.Get(key)
	if !ok || e.PortUUID != portUUID {
		return nil
	}
	if !fn(e) {
		return nil
	}
	return a.journal.PutUnsynced(e)
}

// handOver assigns a spare the attach took to the container's owner; the
// caller records it in the journal.
func (a *Agent) handOver(ctx context.Context, e *Entry, ip JournalIP) error {
	p, err := netip.ParsePrefix(ip.Address)
	if err != nil {
		return fmt.Errorf("journal of %s: bad address %q", e.describe(), ip.Address)
	}
	addr := p.Addr()
	cctx, cancel := context.WithTimeout(ctx, controllerCallTimeout)
	defer cancel()
	_, err = a.client.Assign(cctx, api.AssignRequest{
		Network: e.NetworkUUID, IP: addr.String(), FromOwner: ip.Owner, Owner: e.Owner, Port: e.PortUUID,
	})
	a.metrics.op("assign", err)
	if err != nil {
		// Find out where the reservation stands before deciding.
		held, found, lerr := a.reservationOf(cctx, e.NetworkUUID, addr)
		switch {
		case lerr != nil:
			return fmt.Errorf("assign %s to %s: %w (and reading it back failed: %v)", addr, e.Owner, err, lerr)
		case found && held.Owner == e.Owner:
			// Assigned before (the journal write was lost).
		case found:
			return fmt.Errorf("assign %s in %s from %s to %s: %w", addr, e.NetworkFQName, ip.Owner, e.Owner, err)
		default:
			// The spare's reservation is gone (released behind the
			// agent's back): take the address again for the container.
			_, aerr := a.client.Allocate(cctx, api.AllocateRequest{Network: e.NetworkUUID, Owner: e.Owner, IP: addr.String(), Node: a.cfg.NodeName, Port: e.PortUUID})
			a.metrics.op("reserve", aerr)
			if aerr != nil {
				if errors.Is(aerr, api.ErrConflict) {
					a.log.Error("address of a running container was reserved by someone else; it may be duplicated",
						"container", e.ContainerID, "ifname", e.IfName, "network", e.NetworkFQName, "ip", addr, "err", aerr)
				}
				return fmt.Errorf("reserve %s again for %s: %w", addr, e.Owner, aerr)
			}
		}
	}
	return nil
}

// reservationOf reads the reservation of addr in a network.
func (a *Agent) reservationOf(ctx context.Context, network string, addr netip.Addr) (api.IPReservation, bool, error) {
	items, _, err := client.ListItems[api.IPReservation](ctx, a.client, api.KindIPReservation.Plural(), url.Values{"network": {network}})
	if err != nil {
		return api.IPReservation{}, false, err
	}
	for _, r := range items {
		if ra, err := netip.ParseAddr(r.Address); err == nil && ra == addr {
			return r, true, nil
		}
	}
	return api.IPReservation{}, false, nil
}

// portObject is the controller's Port for an entry.
func (a *Agent) portObject(e *Entry) *api.Port {
	p := &api.Port{
		Meta: api.Meta{
			Kind:   api.KindPort,
			UUID:   e.PortUUID,
			Name:   e.PortName,
			Parent: projectOf(e.NetworkFQName),
			Labels: e.Labels,
		},
		Network:        e.NetworkUUID,
		Node:           a.cfg.NodeName,
		ContainerID:    e.ContainerID,
		Interface:      e.IfName,
		MAC:            e.MAC,
		SecurityGroups: e.SecurityGroups,
		State:          StateAttached,
	}
	if p.Name == "" {
		p.Name = portName(e.ContainerID, e.IfName)
	}
	for _, ip := range e.IPs {
		pfx, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			continue
		}
		p.IPs = append(p.IPs, api.PortIP{Address: pfx.Addr().String(), Subnet: pfx.Masked().String(), Gateway: ip.Gateway})
	}
	return p
}

// projectOf is the project of a network fq_name (domain:project:name).
func projectOf(networkFQName string) string {
	if i := strings.LastIndexByte(networkFQName, ':'); i > 0 && strings.Count(networkFQName, ":") == 2 {
		return networkFQName[:i]
	}
	return api.DefaultProject
}

// writePort creates the entry's Port in the controller, or updates it
// when it exists; the caller records it in the journal. A stale port of
// the same container interface under the same name (left by an earlier
// attachment) is replaced.
func (a *Agent) writePort(ctx context.Context, e *Entry) error {
	cctx, cancel := context.WithTimeout(ctx, controllerCallTimeout)
	defer cancel()
	p := a.portObject(e)
	err := a.client.Create(cctx, api.KindPort.Plural(), p, nil)
	if errors.Is(err, api.ErrConflict) {
		err = a.updatePort(cctx, e)
		if errors.Is(err, api.ErrNotFound) {
			err = a.replaceStalePort(cctx, e)
		}
	}
	a.metrics.op("port", err)
	if err != nil {
		return fmt.Errorf("write port %s of %s: %w", e.PortName, e.describe(), err)
	}
	return nil
}

// updatePort rewrites the fields the agent owns (network, node, container,
// interface, MAC, addresses, state) on an existing port with a
// compare-and-swap, keeping what the mesos-manager keeps there: app, task
// and instance ids, floating IPs, its weft/* labels, and the security
// groups it checked.
func (a *Agent) updatePort(ctx context.Context, e *Entry) error {
	for range 8 {
		var cur api.Port
		if err := a.client.Get(ctx, api.KindPort.Plural(), e.PortUUID, &cur); err != nil {
			return err
		}
		p := mergeManagerFields(a.portObject(e), &cur)
		err := a.client.Update(ctx, api.KindPort.Plural(), e.PortUUID, p, nil)
		if !errors.Is(err, api.ErrConflict) {
			return err
		}
	}
	return api.Conflict("", "port %s keeps changing; will retry", e.PortUUID)
}

// mergeManagerFields copies onto p, the agent's view of a port, the fields
// another component maintains on cur, and cur's resource version so that
// the update is a compare-and-swap.
func mergeManagerFields(p *api.Port, cur *api.Port) *api.Port {
	p.ResourceVersion = cur.ResourceVersion
	p.AppID, p.TaskID, p.InstanceID = cur.AppID, cur.TaskID, cur.InstanceID
	p.FloatingIPs = cur.FloatingIPs
	if len(cur.SecurityGroups) > 0 {
		p.SecurityGroups = cur.SecurityGroups
	}
	for k, v := range cur.Labels {
		if strings.HasPrefix(k, "weft/") {
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels[k] = v
		}
	}
	return p
}

// replaceStalePort deletes the port holding the entry's port name when it
// is an earlier port of the same container interface on this node, and
// creates the entry's port.
func (a *Agent) replaceStalePort(ctx context.Context, e *Entry) error {
	p := a.portObject(e)
	fq := p.Parent + ":" + p.Name
	var old api.Port
	if err := a.client.GetByFQName(ctx, api.KindPort.Plural(), fq, &old); err != nil {
		return fmt.Errorf("read port %s: %w", fq, err)
	}
	if old.ContainerID != e.ContainerID || old.Interface != e.IfName || (old.Node != "" && old.Node != a.cfg.NodeName) {
		return api.Conflict("name", "port %s belongs to container %s interface %s on node %s", fq, old.ContainerID, old.Interface, old.Node)
	}
	a.log.Info("replacing a stale port of the same container interface", "port", fq, "old_uuid", old.UUID, "new_uuid", e.PortUUID)
	if err := a.client.Delete(ctx, api.KindPort.Plural(), old.UUID); err != nil {
		return fmt.Errorf("delete stale port %s: %w", old.UUID, err)
	}
	return a.client.Create(ctx, api.KindPort.Plural(), p, nil)
}

// destroyInterface deletes the interface of a releasing entry (Detach:
// a missing one is success); the address may be given out again only
// after this.
func (a *Agent) destroyInterface(ctx context.Context, e *Entry) error {
	select {
	case <-a.dpReady:
	default:
		return fmt.Errorf("%w: the data plane is not built yet", ErrNotReady)
	}
	a.dpMu.RLock()
	defer a.dpMu.RUnlock()
	if err := a.entryDetach(ctx, e); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	return nil
}

// finishRelease finishes a detach: the data plane destroys the interface
// (DEL only withdrew it), the controller forgets the port and releases
// the addresses, and the journal entry goes.
func (a *Agent) finishRelease(ctx context.Context, e *Entry) error {
	if e.DataplaneDetached {
		return a.releaseAtController(ctx, e)
	}
	if err := a.destroyInterface(ctx, e); err != nil {
		return fmt.Errorf("release %s: %w", e.describe(), err)
	}
	a.syncAfterDestroy(e.NetworkUUID)
	err := a.releaseAtController(ctx, e)
	if err == nil {
		return nil
	}
	// Journalled only when the release cannot finish now: destroying an
	// interface again is harmless, and most releases end with the entry
	// deleted a moment later.
	return errors.Join(err, a.markDetached(e))
}

// releaseAtController has the controller forget the port of a releasing
// entry whose interface is gone and release its addresses, then deletes
// the entry.
func (a *Agent) releaseAtController(ctx context.Context, e *Entry) error {
	cctx, cancel := context.WithTimeout(ctx, controllerCallTimeout)
	defer cancel()
	// A port this agent never tried to write (the container left before
	// the background work got to it) does not exist: nothing to delete.
	if !a.isUnwritten(e.PortUUID) && e.PortUUID != "" {
		err := a.client.Delete(cctx, api.KindPort.Plural(), e.PortUUID)
		a.metrics.op("port_delete", err)
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("release %s: delete port %s: %w", e.describe(), e.PortUUID, err)
		}
	}
	// Each address goes from whoever of the two may hold it: a spare the
	// attach took but never handed over is still the spare owner's, unless
	// it was handed over by an agent that died before journalling it. ""
	// is an address the audit found missing: if it was taken back, it is
	// the container's owner's; if not, it is not ours to release.
	if e.Bridge == "" {
		for _, ip := range e.IPs {
			p, err := netip.ParsePrefix(ip.Address)
			if err != nil {
				continue
			}
			owners := []string{e.Owner}
			if ip.Owner != "" && ip.Owner != e.Owner {
				owners = []string{ip.Owner, e.Owner}
			}
			for _, owner := range owners {
				_, err = a.client.Release(cctx, api.ReleaseRequest{Network: e.NetworkUUID, IP: p.Addr().String(), Owner: owner})
				a.metrics.op("release", err)
				if !errors.Is(err, api.ErrConflict) {
					break
				}
			}
			switch {
			case err == nil, errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrConflict):
				// Released, not reserved, or not ours.
			case errors.Is(err, api.ErrInvalid):
				// The network is gone: so are its reservations.
				a.log.Warn("network of a released attachment no longer exists", "container", e.ContainerID, "ifname", e.IfName, "network", e.NetworkFQName, "err", err)
			default:
				return fmt.Errorf("release %s: release %s: %w", e.describe(), p.Addr(), err)
			}
		}
	}
	return a.forgetReleased(e)
}

// forgetReleased deletes the journal entry of an attachment whose
// release the controller finished.
func (a *Agent) forgetReleased(e *Entry) error {
	unlock := a.keys.Lock(e.Key())
	defer unlock()
	if cur, ok := a.journal.Get(e.Key()); !ok || cur.PortUUID != e.PortUUID || cur.State != StateReleasing {
		return nil
	}
	// Lost in a crash, the entry would be released again: the port is
	// gone, and addresses held by others by then are left alone.
	if err := a.journal.DeleteUnsynced(e.Key()); err != nil {
		return err
	}
	a.unwritten.Delete(e.PortUUID)
	a.log.Info("released", "container", e.ContainerID, "ifname", e.IfName, "network", e.NetworkFQName, "ips", ipStrings(e.IPs))
	return nil
}
