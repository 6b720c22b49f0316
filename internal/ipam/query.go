package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// deleteBatch bounds the operations of one transaction (etcd refuses more
// than 128 by default).
const deleteBatch = 64

// Reservations returns the reservations of a network (all networks when
// netUUID is empty), sorted by network uuid and address key.
func (m *IPAM) Reservations(ctx context.Context, netUUID string) ([]api.IPReservation, error) {
	prefix, err := netPrefix(ReservationPrefix, netUUID)
	if err != nil {
		return nil, err
	}
	kvs, _, err := m.kv.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("ipam: list reservations: %w", err)
	}
	out := make([]api.IPReservation, 0, len(kvs))
	for _, kv := range kvs {
		r, err := decodeReservation(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Blocks returns the blocks of a network (all networks when netUUID is
// empty).
func (m *IPAM) Blocks(ctx context.Context, netUUID string) ([]api.Block, error) {
	prefix, err := netPrefix(BlockPrefix, netUUID)
	if err != nil {
		return nil, err
	}
	kvs, _, err := m.kv.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("ipam: list blocks: %w", err)
	}
	out := make([]api.Block, 0, len(kvs))
	for _, kv := range kvs {
		e, err := decodeBlock(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, e.block)
	}
	return out, nil
}

// InUse returns the number of reservations of a network (all networks
// when netUUID is empty); a network is not deleted while it is non-zero.
func (m *IPAM) InUse(ctx context.Context, netUUID string) (int, error) {
	prefix, err := netPrefix(ReservationPrefix, netUUID)
	if err != nil {
		return 0, err
	}
	kvs, _, err := m.kv.List(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("ipam: list reservations: %w", err)
	}
	return len(kvs), nil
}

// ForgetNetwork deletes the blocks and quarantine records of a network
// once the network is deleted, and drops the instance's cache of it.
// Reservations are not touched: the network must not be deleted while it
// has any (see InUse).
func (m *IPAM) ForgetNetwork(ctx context.Context, netUUID string) error {
	if netUUID == "" || strings.ContainsAny(netUUID, "/\x00") {
		return api.Invalid("network", "invalid network uuid %q", netUUID)
	}
	for _, prefix := range []string{blockNetPrefix(netUUID), quarantineNetPrefix(netUUID)} {
		kvs, _, err := m.kv.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("ipam: forget network %s: %w", netUUID, err)
		}
		for len(kvs) > 0 {
			k := min(len(kvs), deleteBatch)
			ops := make([]store.Op, k)
			for i, kv := range kvs[:k] {
				ops[i] = store.Delete(kv.Key)
			}
			if _, err := m.kv.Txn(ctx, nil, ops); err != nil {
				return fmt.Errorf("ipam: forget network %s: %w", netUUID, err)
			}
			kvs = kvs[k:]
		}
	}
	m.mu.Lock()
	delete(m.caches, netUUID)
	m.mu.Unlock()
	return nil
}

// PruneQuarantine deletes the expired quarantine records of a network (all
// networks when netUUID is empty) and returns how many it deleted. Expired
// records are harmless (allocation reuses and removes them) but, in large
// IPv6 subnets, would otherwise accumulate; the controller may call this
// periodically.
func (m *IPAM) PruneQuarantine(ctx context.Context, netUUID string) (int, error) {
	prefix, err := netPrefix(QuarantinePrefix, netUUID)
	if err != nil {
		return 0, err
	}
	kvs, _, err := m.kv.List(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("ipam: list quarantine: %w", err)
	}
	now := m.now()
	var expired []store.KeyValue
	for _, kv := range kvs {
		if q, err := parseQuarantine(kv.Value); err != nil || !q.Until.After(now) {
			expired = append(expired, kv)
		}
	}
	pruned := 0
	for len(expired) > 0 {
		k := min(len(expired), deleteBatch)
		batch := expired[:k]
		expired = expired[k:]
		cmps := make([]store.Cmp, k)
		ops := make([]store.Op, k)
		for i, kv := range batch {
			cmps[i] = store.Unchanged(kv)
			ops[i] = store.Delete(kv.Key)
		}
		_, err := m.kv.Txn(ctx, cmps, ops)
		if err == nil {
			pruned += k
			m.forgetQuarantine(batch)
			continue
		}
		if !errors.Is(err, store.ErrConflict) {
			return pruned, fmt.Errorf("ipam: prune quarantine: %w", err)
		}
		// Some changed meanwhile (reused or re-quarantined): one by one.
		for i, kv := range batch {
			_, err := m.kv.Txn(ctx, cmps[i:i+1], ops[i:i+1])
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return pruned, fmt.Errorf("ipam: prune quarantine: %w", err)
			}
			pruned++
			m.forgetQuarantine([]store.KeyValue{kv})
		}
	}
	return pruned, nil
}

// forgetQuarantine drops deleted quarantine records from the caches.
func (m *IPAM) forgetQuarantine(kvs []store.KeyValue) {
	for _, kv := range kvs {
		netUUID, name, ok := splitKey(QuarantinePrefix, kv.Key)
		if !ok {
			continue
		}
		a, err := netip.ParseAddr(name)
		if err != nil {
			continue
		}
		if c := m.cacheIfAny(netUUID); c != nil {
			c.mu.Lock()
			if q, ok := c.quar[a]; ok && q.kv.ModRevision == kv.ModRevision {
				delete(c.quar, a)
			}
			c.mu.Unlock()
		}
	}
}

// netPrefix returns the key prefix of one network under root, or root
// itself for all networks.
func netPrefix(root, netUUID string) (string, error) {
	if netUUID == "" {
		return root, nil
	}
	if strings.ContainsAny(netUUID, "/\x00") {
		return "", api.Invalid("network", "invalid network uuid %q", netUUID)
	}
	return root + netUUID + "/", nil
}
