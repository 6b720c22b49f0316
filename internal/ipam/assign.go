package ipam

import (
	"context"
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
	for range maxAttempts {
		w, res, err := m.PrepareAssign(ctx, m.kv.Get, n, req)
		if err != nil || w.Empty() {
			return res, err
		}
		rev, err := m.kv.Txn(ctx, w.Cmps, w.Ops)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return api.IPReservation{}, fmt.Errorf("ipam: assign %s in network %s: %w", req.IP, n.name(), err)
		}
		w.Committed(rev)
		res.ResourceVersion = rev
		return res, nil
	}
	return api.IPReservation{}, api.Conflict("ip", "network %s: gave up assigning %s after %d conflicting concurrent changes; retry", n.name(), req.IP, maxAttempts)
}
