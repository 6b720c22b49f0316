package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

// Getter reads one key; Prepare* take one so that a caller composing
// several writes into one transaction can read each key once.
type Getter func(ctx context.Context, key string) (store.KeyValue, error)

// Write is a prepared change of the IPAM's records: the conditions and
// writes of its part of a transaction, and what the IPAM notes in its
// cache once that transaction committed. A caller may join several
// Writes (and writes of its own) into one transaction, and must call
// Committed after it succeeded.
type Write struct {
	Cmps   []store.Cmp
	Ops    []store.Op
	commit func(rev int64)
}

// Empty reports whether the write changes nothing.
func (w Write) Empty() bool { return len(w.Ops) == 0 }

// Committed tells the IPAM that the transaction holding w committed at
// rev.
func (w Write) Committed(rev int64) {
	if w.commit != nil {
		w.commit(rev)
	}
}

// address parses an address of n's request field and puts it in the form
// of the subnet holding it.
func (m *IPAM) address(n Network, field, s string) (netip.Addr, error) {
	subs, err := m.subnets(n)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := parseAddress(s)
	if err != nil {
		return netip.Addr{}, api.Invalid(field, "%v", err)
	}
	if sub, sa := subnetOf(subs, a); sub != nil {
		a = sa
	}
	return a, nil
}

// reserved reads the reservation of the address ip (field "ip") of n for
// an operation named op: ErrNotFound when it is not reserved.
func (m *IPAM) reserved(ctx context.Context, get Getter, n Network, ip, op string) (netip.Addr, store.KeyValue, api.IPReservation, error) {
	a, err := m.address(n, "ip", ip)
	if err != nil {
		return a, store.KeyValue{}, api.IPReservation{}, err
	}
	kv, err := get(ctx, reservationKey(n.UUID, a))
	if errors.Is(err, store.ErrNotFound) {
		return a, kv, api.IPReservation{}, api.NotFound("address %s is not reserved in network %s", a, n.name())
	}
	if err != nil {
		return a, kv, api.IPReservation{}, fmt.Errorf("ipam: %s %s in network %s: %w", op, a, n.name(), err)
	}
	res, err := decodeReservation(kv)
	return a, kv, res, err
}

// PrepareAssign prepares the hand-over Assign makes: the reservation of
// req.IP in n goes from req.FromOwner to req.Owner, and gets req.Port (and
// req.Labels when given), on the condition that it is unchanged since
// read. A reservation the new owner already holds gives an empty Write
// (or only records req.Port when it has none); one it holds for another
// port is a conflict.
// The reservation returned is the one written (or held).
func (m *IPAM) PrepareAssign(ctx context.Context, get Getter, n Network, req api.AssignRequest) (Write, api.IPReservation, error) {
	switch {
	case req.IP == "":
		return Write{}, api.IPReservation{}, api.Invalid("ip", "is required")
	case req.Owner == "":
		return Write{}, api.IPReservation{}, api.Invalid("owner", "is required")
	case req.FromOwner == "":
		return Write{}, api.IPReservation{}, api.Invalid("from_owner", "is required (the current owner)")
	}
	a, kv, res, err := m.reserved(ctx, get, n, req.IP, "assign")
	if err != nil {
		return Write{}, api.IPReservation{}, err
	}
	key := kv.Key
	switch {
	case res.Owner == req.Owner && (req.Port == "" || res.Port == req.Port):
		return Write{}, res, nil
	case res.Owner == req.Owner && res.Port != "":
		return Write{}, api.IPReservation{}, api.Conflict("port", "address %s in network %s is already held by owner %s for port %s", a, n.name(), res.Owner, res.Port)
	case res.Owner != req.Owner && res.Owner != req.FromOwner:
		return Write{}, api.IPReservation{}, api.Conflict("from_owner", "address %s in network %s is reserved by owner %s, not %s", a, n.name(), res.Owner, req.FromOwner)
	}
	res.Owner, res.Port = req.Owner, req.Port
	if req.Labels != nil {
		res.Labels = req.Labels
	}
	res.UpdatedAt = m.now()
	res.ResourceVersion = 0
	val, err := json.Marshal(res)
	if err != nil {
		return Write{}, api.IPReservation{}, fmt.Errorf("ipam: encode reservation: %w", err)
	}
	return Write{Cmps: []store.Cmp{store.Unchanged(kv)}, Ops: []store.Op{store.Put(key, val)}}, res, nil
}

// PrepareRelease prepares the release of the address ip of n held by one
// of owners (any owner when none is given): the reservation is deleted
// and the address quarantined, on the condition that the reservation is
// unchanged since read. An address that is not reserved is ErrNotFound;
// one held by another owner is ErrConflict naming it.
func (m *IPAM) PrepareRelease(ctx context.Context, get Getter, n Network, ip string, owners ...string) (Write, api.IPReservation, error) {
	a, kv, res, err := m.reserved(ctx, get, n, ip, "release")
	if err != nil {
		return Write{}, api.IPReservation{}, err
	}
	if len(owners) > 0 && !slices.Contains(owners, res.Owner) {
		return Write{}, api.IPReservation{}, api.Conflict("owner", "address %s in network %s is reserved by owner %s, not %s", a, n.name(), res.Owner, owners[0])
	}
	w, err := m.releaseWrite(n.UUID, a, kv, res.Owner)
	return w, res, err
}

// releaseWrite is the write that deletes a reservation read as kv and
// quarantines its address.
func (m *IPAM) releaseWrite(netUUID string, a netip.Addr, kv store.KeyValue, owner string) (Write, error) {
	w := Write{Cmps: []store.Cmp{store.Unchanged(kv)}, Ops: []store.Op{store.Delete(kv.Key)}}
	qkey := quarantineKey(netUUID, a)
	var qval []byte
	var until time.Time
	if m.cfg.Quarantine > 0 {
		until = m.now().Add(m.cfg.Quarantine)
		var err error
		if qval, err = json.Marshal(quarantineRecord{Until: until, Owner: owner}); err != nil {
			return Write{}, fmt.Errorf("encode quarantine record: %w", err)
		}
		w.Ops = append(w.Ops, store.Put(qkey, qval))
	}
	w.commit = func(rev int64) {
		c := m.cacheIfAny(netUUID)
		if c == nil {
			return
		}
		c.mu.Lock()
		delete(c.taken, a)
		if qval != nil {
			c.quar[a] = quarEntry{kv: store.KeyValue{Key: qkey, Value: qval, CreateRevision: rev, ModRevision: rev}, until: until}
		}
		c.mu.Unlock()
	}
	return w, nil
}
