package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// Assign hands the reservation of req.IP in n over from req.FromOwner to
// req.Owner (and sets its port and labels) with a compare-and-swap, so an
// address reserved ahead of need is never held twice. Assigning to the
// owner that already holds it is a no-op that returns the reservation.
func (m *IPAM) Assign(ctx context.Context, n Network, req api.AssignRequest) (api.IPReservation, error) {
	switch {
	case req.IP == "":
		return api.IPReservation{}, api.Invalid("ip", "is required")
	case req.Owner == "":
		return api.IPReservation{}, api.Invalid("owner", "is required")
	case req.FromOwner == "":
		return api.IPReservation{}, api.Invalid("from_owner", "is required (the current owner)")
	}
	subs, err := m.subnets(n)
	if err != nil {
		return api.IPReservation{}, err
	}
	a, err := parseAddress(req.IP)
	if err != nil {
		return api.IPReservation{}, api.Invalid("ip", "%v", err)
	}
	if s, sa := subnetOf(subs, a); s != nil {
		a = sa
	}
	key := reservationKey(n.UUID, a)
	for range maxAttempts {
		kv, err := m.kv.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return api.IPReservation{}, api.NotFound("address %s is not reserved in network %s", a, n.name())
		}
		if err != nil {
			return api.IPReservation{}, fmt.Errorf("ipam: assign %s in network %s: %w", a, n.name(), err)
		}
		res, err := decodeReservation(kv)
		if err != nil {
			return api.IPReservation{}, err
		}
		if res.Owner == req.Owner {
			return res, nil
		}
		if res.Owner != req.FromOwner {
			return api.IPReservation{}, api.Conflict("from_owner", "address %s in network %s is reserved by owner %s, not %s", a, n.name(), res.Owner, req.FromOwner)
		}
		res.Owner, res.Port = req.Owner, req.Port
		if req.Labels != nil {
			res.Labels = req.Labels
		}
		res.UpdatedAt = m.now()
		res.ResourceVersion = 0
		val, err := json.Marshal(res)
		if err != nil {
			return api.IPReservation{}, fmt.Errorf("ipam: encode reservation: %w", err)
		}
		rev, err := m.kv.Txn(ctx, []store.Cmp{store.Unchanged(kv)}, []store.Op{store.Put(key, val)})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return api.IPReservation{}, fmt.Errorf("ipam: assign %s in network %s: %w", a, n.name(), err)
		}
		res.ResourceVersion = rev
		return res, nil
	}
	return api.IPReservation{}, api.Conflict("ip", "network %s: gave up assigning %s after %d conflicting concurrent changes; retry", n.name(), a, maxAttempts)
}
