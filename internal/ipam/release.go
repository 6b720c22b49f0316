package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// Release releases reservations and puts their addresses in quarantine. It
// releases req.IP of network n (n required; refused when req.Owner or
// req.Node is given and does not match), or every reservation of req.Owner
// and/or req.Node in n (all networks when n is nil). Releasing by node
// alone also returns all of the node's blocks in those networks. It returns
// the reservations released; releasing by owner or node when there is
// nothing to release returns an empty list.
func (m *IPAM) Release(ctx context.Context, n *Network, req api.ReleaseRequest) ([]api.IPReservation, error) {
	if n != nil {
		if _, err := m.subnets(*n); err != nil {
			return nil, err
		}
	}
	switch {
	case req.IP != "":
		if n == nil {
			return nil, api.Invalid("network", "releasing address %s needs a network", req.IP)
		}
		a, err := m.address(*n, "ip", req.IP)
		if err != nil {
			return nil, err
		}
		res, err := m.releaseAddress(ctx, *n, a, req)
		if err != nil {
			return nil, err
		}
		return []api.IPReservation{res}, nil
	case req.Owner != "" || req.Node != "":
		return m.releaseMatching(ctx, n, req)
	}
	return nil, api.Invalid("owner", "release needs an ip, an owner or a node")
}

// releaseAddress releases one address of n (in the form of its subnet).
func (m *IPAM) releaseAddress(ctx context.Context, n Network, a netip.Addr, req api.ReleaseRequest) (api.IPReservation, error) {
	var owners []string
	if req.Owner != "" {
		owners = []string{req.Owner}
	}
	for range maxAttempts {
		w, res, err := m.PrepareRelease(ctx, m.kv.Get, n, a.String(), owners...)
		if err != nil {
			return api.IPReservation{}, err
		}
		if req.Node != "" && res.Node != req.Node {
			return api.IPReservation{}, api.Conflict("node", "address %s in network %s is reserved on node %q, not %s", a, n.name(), res.Node, req.Node)
		}
		rev, err := m.kv.Txn(ctx, w.Cmps, w.Ops)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return api.IPReservation{}, fmt.Errorf("ipam: release %s in network %s: %w", a, n.name(), err)
		}
		w.Committed(rev)
		return res, nil
	}
	return api.IPReservation{}, api.Conflict("ip", "network %s: gave up releasing %s after %d conflicting concurrent changes; retry", n.name(), a, maxAttempts)
}

// releaseMatching releases every reservation matching req's owner and node.
func (m *IPAM) releaseMatching(ctx context.Context, n *Network, req api.ReleaseRequest) ([]api.IPReservation, error) {
	prefix := ReservationPrefix
	if n != nil {
		prefix = reservationNetPrefix(n.UUID)
	}
	kvs, _, err := m.kv.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("ipam: list reservations: %w", err)
	}
	matches := func(r api.IPReservation) bool {
		return (req.Owner == "" || r.Owner == req.Owner) && (req.Node == "" || r.Node == req.Node)
	}
	out := []api.IPReservation{}
	for _, kv := range kvs {
		netUUID, name, ok := splitKey(ReservationPrefix, kv.Key)
		if !ok {
			continue
		}
		a, err := parseAddress(name)
		if err != nil {
			continue
		}
		res, err := decodeReservation(kv)
		if err != nil {
			return out, err
		}
		if !matches(res) {
			continue
		}
		released := false
		for attempt := 0; ; attempt++ {
			err := m.releaseOne(ctx, netUUID, a, kv, res.Owner)
			if err == nil {
				released = true
				break
			}
			if !errors.Is(err, store.ErrConflict) {
				return out, fmt.Errorf("ipam: release %s in network %s: %w", a, res.Network, err)
			}
			if attempt+1 >= maxAttempts {
				return out, api.Conflict("owner", "gave up releasing %s in network %s after %d conflicting concurrent changes; retry", a, res.Network, maxAttempts)
			}
			// Changed meanwhile: released by someone else, or re-reserved.
			if kv, err = m.kv.Get(ctx, kv.Key); errors.Is(err, store.ErrNotFound) {
				break
			} else if err != nil {
				return out, fmt.Errorf("ipam: release %s in network %s: %w", a, res.Network, err)
			}
			if res, err = decodeReservation(kv); err != nil {
				return out, err
			}
			if !matches(res) {
				break
			}
		}
		if released {
			out = append(out, res)
		}
	}
	if req.Node != "" && req.Owner == "" {
		if err := m.releaseNodeBlocks(ctx, n, req.Node); err != nil {
			return out, err
		}
	}
	return out, nil
}

// releaseOne deletes a reservation read as kv and quarantines its address,
// in one transaction conditioned on kv being unchanged. A failed condition
// is returned wrapping store.ErrConflict.
func (m *IPAM) releaseOne(ctx context.Context, netUUID string, a netip.Addr, kv store.KeyValue, owner string) error {
	w, err := m.releaseWrite(netUUID, a, kv, owner)
	if err != nil {
		return err
	}
	rev, err := m.kv.Txn(ctx, w.Cmps, w.Ops)
	if err != nil {
		return err
	}
	w.Committed(rev)
	return nil
}

// releaseNodeBlocks deletes every block of node in n (all networks when n
// is nil), whatever they hold.
func (m *IPAM) releaseNodeBlocks(ctx context.Context, n *Network, node string) error {
	prefix := BlockPrefix
	if n != nil {
		prefix = blockNetPrefix(n.UUID)
	}
	kvs, _, err := m.kv.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("ipam: list blocks: %w", err)
	}
	for _, kv := range kvs {
		netUUID, _, ok := splitKey(BlockPrefix, kv.Key)
		if !ok {
			continue
		}
		e, err := decodeBlock(kv)
		if err != nil || e.block.Node != node {
			continue
		}
		for attempt := 0; ; attempt++ {
			_, err := m.kv.Txn(ctx, []store.Cmp{store.Unchanged(kv)}, []store.Op{store.Delete(kv.Key)})
			if err == nil {
				m.forgetBlock(m.cacheIfAny(netUUID), e.prefix)
				break
			}
			if !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("ipam: release block %s of node %s: %w", e.prefix, node, err)
			}
			if attempt+1 >= maxAttempts {
				return api.Conflict("node", "gave up releasing block %s of node %s after %d conflicting concurrent changes; retry", e.prefix, node, maxAttempts)
			}
			if kv, err = m.kv.Get(ctx, kv.Key); errors.Is(err, store.ErrNotFound) {
				break
			} else if err != nil {
				return fmt.Errorf("ipam: release block %s of node %s: %w", e.prefix, node, err)
			}
			if e, err = decodeBlock(kv); err != nil || e.block.Node != node {
				break
			}
		}
	}
	return nil
}

// decodeReservation decodes a stored reservation.
func decodeReservation(kv store.KeyValue) (api.IPReservation, error) {
	var r api.IPReservation
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return api.IPReservation{}, fmt.Errorf("ipam: decode reservation %s: %w", kv.Key, err)
	}
	r.ResourceVersion = kv.ModRevision
	return r, nil
}
