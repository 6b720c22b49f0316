package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/ipam"
	"github.com/weft-sdn/weft/internal/store"
)

// Key layout in etcd (see docs/architecture.md).
const (
	keyPrefix   = "/weft/v1/"
	objPrefix   = keyPrefix + "obj/"
	fqPrefix    = keyPrefix + "fq/"
	delPrefix   = keyPrefix + "deleting/"
	vniPrefix   = keyPrefix + "vni/"
	firstAutoVN = 4096
	// staleDeleteMark is how long a delete guard may stand before a writer
	// that trips over it treats it as left by a crashed replica.
	staleDeleteMark = 30 * time.Second
	txnRetries      = 16
)

func objKey(k api.Kind, id string) string   { return objPrefix + string(k) + "/" + id }
func kindPrefix(k api.Kind) string          { return objPrefix + string(k) + "/" }
func fqKey(k api.Kind, fq string) string    { return fqPrefix + string(k) + "/" + fq }
func deletingKey(id string) string          { return delPrefix + id }
func vniKey(vni int) string                 { return vniPrefix + fmt.Sprintf("%08d", vni) }
func kindTitle(k api.Kind) string           { return strings.ReplaceAll(string(k), "_", " ") }
func encode(obj api.Object) ([]byte, error) { return json.Marshal(obj) }

type ipamNetwork = ipam.Network

// addressManager is what the registry needs of the IPAM.
type addressManager interface {
	Allocate(ctx context.Context, n ipam.Network, req api.AllocateRequest) ([]api.IPReservation, error)
	Release(ctx context.Context, n *ipam.Network, req api.ReleaseRequest) ([]api.IPReservation, error)
	LeaseBlock(ctx context.Context, n ipam.Network, node, family string) (api.Block, error)
	ReleaseBlock(ctx context.Context, n ipam.Network, cidr, node string) error
	Assign(ctx context.Context, n ipam.Network, req api.AssignRequest) (api.IPReservation, error)
	PrepareAssign(ctx context.Context, get ipam.Getter, n ipam.Network, req api.AssignRequest) (ipam.Write, api.IPReservation, error)
	PrepareRelease(ctx context.Context, get ipam.Getter, n ipam.Network, ip string, owners ...string) (ipam.Write, api.IPReservation, error)
	InUse(ctx context.Context, netUUID string) (int, error)
	ForgetNetwork(ctx context.Context, netUUID string) error
	PruneQuarantine(ctx context.Context, netUUID string) (int, error)
}

// Registry stores the resource model in the key-value store: objects by
// uuid, an fq_name index, and the guards that keep references whole.
type Registry struct {
	kv      store.KV
	vteps   VTEPPool
	overlay *overlayPlan // nil without an overlay configuration
	ipam    addressManager
	now     func() time.Time
	log     *slog.Logger
}

// NewRegistry returns a registry over kv. Nodes get VTEP addresses from
// vteps (none when its subnet is zero).
func NewRegistry(kv store.KV, am addressManager, vteps VTEPPool, now func() time.Time, log *slog.Logger) *Registry {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registry{kv: kv, ipam: am, vteps: vteps, now: now, log: log}
}

func decodeStored(k api.Kind, kv store.KeyValue) (api.Object, error) {
	obj := api.NewObject(k)
	if obj == nil {
		return nil, fmt.Errorf("unknown kind %q at %s", k, kv.Key)
	}
	if err := json.Unmarshal(kv.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	obj.GetMeta().ResourceVersion = kv.ModRevision
	return obj, nil
}

// Get returns the object of the kind with the uuid.
func (r *Registry) Get(ctx context.Context, k api.Kind, id string) (api.Object, error) {
	obj, _, err := r.get(ctx, k, id)
	return obj, err
}

func (r *Registry) get(ctx context.Context, k api.Kind, id string) (api.Object, store.KeyValue, error) {
	if !api.IsUUID(id) {
		return nil, store.KeyValue{}, api.Invalid("uuid", "%q is not a uuid", id)
	}
	kv, err := r.kv.Get(ctx, objKey(k, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, kv, api.NotFound("%s %s not found", kindTitle(k), id)
	}
	if err != nil {
		return nil, kv, fmt.Errorf("read %s %s: %w", k, id, err)
	}
	obj, err := decodeStored(k, kv)
	return obj, kv, err
}

// GetByFQName returns the object of the kind with the fq_name.
func (r *Registry) GetByFQName(ctx context.Context, k api.Kind, fq string) (api.Object, error) {
	obj, _, err := r.getFQ(ctx, k, fq)
	return obj, err
}

func (r *Registry) getFQ(ctx context.Context, k api.Kind, fq string) (api.Object, store.KeyValue, error) {
	for range txnRetries {
		ikv, err := r.kv.Get(ctx, fqKey(k, fq))
		if errors.Is(err, store.ErrNotFound) {
			return nil, ikv, api.NotFound("%s %q not found", kindTitle(k), fq)
		}
		if err != nil {
			return nil, ikv, fmt.Errorf("read %s %q: %w", k, fq, err)
		}
		obj, kv, err := r.get(ctx, k, string(ikv.Value))
		if errors.Is(err, api.ErrNotFound) {
			continue // deleted between the two reads; look again
		}
		return obj, kv, err
	}
	return nil, store.KeyValue{}, api.NotFound("%s %q not found", kindTitle(k), fq)
}

// Resolve finds an object by uuid, fq_name, or a short name inside the
// kind's default parent.
func (r *Registry) Resolve(ctx context.Context, k api.Kind, ref string) (api.Object, error) {
	obj, _, err := r.resolve(ctx, k, ref)
	return obj, err
}

func (r *Registry) resolve(ctx context.Context, k api.Kind, ref string) (api.Object, store.KeyValue, error) {
	switch {
	case ref == "":
		return nil, store.KeyValue{}, api.Invalid("", "empty %s reference", kindTitle(k))
	case api.IsUUID(ref):
		return r.get(ctx, k, ref)
	case strings.Contains(ref, ":") || api.Depth(k) == 1:
		return r.getFQ(ctx, k, ref)
	}
	return r.getFQ(ctx, k, api.DefaultParent(k)+":"+ref)
}

// List returns every object of the kind that keep accepts (nil: all) and
// the store revision the list was read at.
func (r *Registry) List(ctx context.Context, k api.Kind, keep func(api.Object) bool) ([]api.Object, int64, error) {
	kvs, rev, err := r.kv.List(ctx, kindPrefix(k))
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", k, err)
	}
	out := make([]api.Object, 0, len(kvs))
	for _, kv := range kvs {
		obj, err := decodeStored(k, kv)
		if err != nil {
			return nil, 0, err
		}
		if keep == nil || keep(obj) {
			out = append(out, obj)
		}
	}
	return out, rev, nil
}

// guard is a set of conditions and writes that a create or update adds to
// its transaction to keep references whole.
type guard struct {
	cmps []store.Cmp
	ops  []store.Op
}

func (g *guard) add(o guard) { g.cmps = append(g.cmps, o.cmps...); g.ops = append(g.ops, o.ops...) }

// refGuard checks that an object exists and is not being deleted, and
// returns the conditions that keep it so until the transaction commits.
func (r *Registry) refGuard(ctx context.Context, k api.Kind, ref, field string) (api.Object, guard, error) {
	obj, kv, err := r.resolve(ctx, k, ref)
	if errors.Is(err, api.ErrNotFound) {
		return nil, guard{}, api.Invalid(field, "%s %q does not exist", kindTitle(k), ref)
	}
	if err != nil {
		return nil, guard{}, err
	}
	id := obj.GetMeta().UUID
	dkv, err := r.kv.Get(ctx, deletingKey(id))
	switch {
	case err == nil:
		var since time.Time
		_ = since.UnmarshalText(dkv.Value)
		if r.now().Sub(since) < staleDeleteMark {
			return nil, guard{}, api.Conflict(field, "%s %q is being deleted", kindTitle(k), ref)
		}
		// A replica died half-way through a delete; clear its mark.
		if _, err := r.kv.Txn(ctx, []store.Cmp{store.Unchanged(dkv)}, []store.Op{store.Delete(dkv.Key)}); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, guard{}, fmt.Errorf("clear stale delete mark of %s: %w", ref, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, guard{}, fmt.Errorf("read delete mark of %s: %w", ref, err)
	}
	return obj, guard{cmps: []store.Cmp{store.Unchanged(kv), store.Absent(deletingKey(id))}}, nil
}

// Create stores a new object. obj must have passed api.Validate.
func (r *Registry) Create(ctx context.Context, obj api.Object) (api.Object, error) {
	if err := r.newMeta(obj); err != nil {
		return nil, err
	}
	m := obj.GetMeta()
	for range txnRetries {
		cmps, ops, err := r.createWrite(ctx, obj)
		if err != nil {
			return nil, err
		}
		rev, err := r.kv.Txn(ctx, cmps, ops)
		if err == nil {
			m.ResourceVersion = rev
			r.log.Debug("created", "kind", m.Kind, "fq_name", m.FQName, "uuid", m.UUID)
			return obj, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("create %s %q: %w", m.Kind, m.FQName, err)
		}
		if err := r.createConflict(ctx, m); err != nil {
			return nil, err
		}
		// A referenced object or the VNI map changed under us: try again.
	}
	return nil, api.Conflict("", "create %s %q: too much contention, try again", kindTitle(m.Kind), m.FQName)
}

// newMeta fills the identity and times of an object about to be created.
func (r *Registry) newMeta(obj api.Object) error {
	m := obj.GetMeta()
	if m.Kind.IPAMOwned() {
		return api.Invalid("kind", "%s objects are made through /v1/ipam", kindTitle(m.Kind))
	}
	if m.UUID == "" {
		m.UUID = uuid.NewString()
	} else if !api.IsUUID(m.UUID) {
		return api.Invalid("uuid", "%q is not a uuid", m.UUID)
	} else {
		m.UUID = strings.ToLower(m.UUID)
	}
	m.ResourceVersion = 0
	m.CreatedAt = r.now().UTC()
	m.UpdatedAt = m.CreatedAt
	return nil
}

// createWrite prepares the transaction that creates obj (after newMeta):
// the guards of its references, and the puts of the object and of its
// fq_name index on the condition that neither exists.
func (r *Registry) createWrite(ctx context.Context, obj api.Object) ([]store.Cmp, []store.Op, error) {
	m := obj.GetMeta()
	var g guard
	if pk := api.ParentKind(m.Kind); pk != "" {
		_, pg, err := r.refGuard(ctx, pk, m.Parent, "parent")
		if err != nil {
			return nil, nil, err
		}
		g.add(pg)
	}
	kg, err := r.prepare(ctx, obj, nil)
	if err != nil {
		return nil, nil, err
	}
	g.add(kg)
	val, err := encode(obj)
	if err != nil {
		return nil, nil, err
	}
	cmps := append(g.cmps, store.Absent(objKey(m.Kind, m.UUID)), store.Absent(fqKey(m.Kind, m.FQName)))
	ops := append(g.ops, store.Put(objKey(m.Kind, m.UUID), val), store.Put(fqKey(m.Kind, m.FQName), []byte(m.UUID)))
	return cmps, ops, nil
}

// createConflict explains a failed create transaction: the name or uuid
// is taken (an error), or something it referred to changed (nil: try
// again).
func (r *Registry) createConflict(ctx context.Context, m *api.Meta) error {
	if _, err := r.kv.Get(ctx, fqKey(m.Kind, m.FQName)); err == nil {
		return api.Conflict("fq_name", "%s %q already exists", kindTitle(m.Kind), m.FQName)
	}
	if _, err := r.kv.Get(ctx, objKey(m.Kind, m.UUID)); err == nil {
		return api.Conflict("uuid", "%s %s already exists", kindTitle(m.Kind), m.UUID)
	}
	return nil
}

// prepare runs the kind-specific checks of a create (old == nil) or an
// update, normalises references to fq_names, and returns the guards.
func (r *Registry) prepare(ctx context.Context, obj, old api.Object) (guard, error) {
	var g guard
	switch o := obj.(type) {
	case *api.Node:
		oldNode, _ := old.(*api.Node)
		return r.prepareNode(ctx, o, oldNode)
	case *api.Network:
		if old != nil {
			return g, r.prepareNetworkUpdate(ctx, o, old.(*api.Network))
		}
		if o.NetworkKind == api.NetworkOverlay {
			break // overlays share the node's VTEP device and its VNI
		}
		vg, err := r.claimVNI(ctx, o)
		if err != nil {
			return g, err
		}
		g.add(vg)
	case *api.Port:
		if old != nil && o.Network == "" {
			o.Network = old.(*api.Port).Network
		}
		net, ng, err := r.refGuard(ctx, api.KindNetwork, o.Network, "network")
		if err != nil {
			return g, err
		}
		if old != nil && net.GetMeta().FQName != old.(*api.Port).Network {
			return g, api.Invalid("network", "a port cannot move to another network (delete it and create a new one)")
		}
		o.Network = net.GetMeta().FQName
		g.add(ng)
		if o.Node != "" {
			if _, _, err := r.getFQ(ctx, api.KindNode, o.Node); err != nil {
				return g, api.Invalid("node", "node %q is not registered", o.Node)
			}
		}
		for i, sg := range o.SecurityGroups {
			_, sgg, err := r.refGuard(ctx, api.KindSecurityGroup, sg, fmt.Sprintf("security_groups[%d]", i))
			if err != nil {
				return g, err
			}
			g.add(sgg)
		}
	case *api.Service:
		if o.Network != "" {
			net, ng, err := r.refGuard(ctx, api.KindNetwork, o.Network, "network")
			if err != nil {
				return g, err
			}
			o.Network = net.GetMeta().FQName
			g.add(ng)
		}
	case *api.SecurityGroup:
		for i, rule := range o.Rules {
			if rule.RemoteGroup != "" && rule.RemoteGroup != o.FQName {
				if _, _, err := r.getFQ(ctx, api.KindSecurityGroup, rule.RemoteGroup); err != nil {
					return g, api.Invalid(fmt.Sprintf("rules[%d].remote_group", i), "security group %q does not exist", rule.RemoteGroup)
				}
			}
		}
	case *api.NetworkPolicy:
		for i, rule := range o.Rules {
			for field, ref := range map[string]string{"source": rule.Source, "destination": rule.Destination} {
				if ref == "any" {
					continue
				}
				if _, _, err := r.resolve(ctx, api.KindNetwork, ref); err != nil {
					return g, api.Invalid(fmt.Sprintf("rules[%d].%s", i, field), "network %q does not exist", ref)
				}
			}
		}
	case *api.FloatingIP:
		if o.Port != "" {
			if _, _, err := r.resolve(ctx, api.KindPort, o.Port); err != nil {
				return g, api.Invalid("port", "port %q does not exist", o.Port)
			}
		}
	}
	return g, nil
}

// claimVNI reserves the network's VNI (the lowest free one from 4096 when
// none was asked for) through a key per VNI.
func (r *Registry) claimVNI(ctx context.Context, n *api.Network) (guard, error) {
	if n.VNI != 0 {
		kv, err := r.kv.Get(ctx, vniKey(n.VNI))
		if err == nil {
			return guard{}, api.Conflict("vni", "vni %d is used by network %s", n.VNI, string(kv.Value))
		}
		return guard{cmps: []store.Cmp{store.Absent(vniKey(n.VNI))}, ops: []store.Op{store.Put(vniKey(n.VNI), []byte(n.FQName))}}, nil
	}
	kvs, _, err := r.kv.List(ctx, vniPrefix)
	if err != nil {
		return guard{}, fmt.Errorf("list vnis: %w", err)
	}
	used := make(map[int]bool, len(kvs))
	for _, kv := range kvs {
		v, _ := strconv.Atoi(strings.TrimPrefix(kv.Key, vniPrefix))
		used[v] = true
	}
	for v := firstAutoVN; v <= api.MaxVNI; v++ {
		if !used[v] {
			n.VNI = v
			return guard{cmps: []store.Cmp{store.Absent(vniKey(v))}, ops: []store.Op{store.Put(vniKey(v), []byte(n.FQName))}}, nil
		}
	}
	return guard{}, api.Exhausted("vni", "no free vni left")
}

func (r *Registry) prepareNetworkUpdate(ctx context.Context, n, old *api.Network) error {
	if n.VNI == 0 {
		n.VNI = old.VNI
	}
	if n.VNI != old.VNI {
		return api.Invalid("vni", "the vni of a network cannot change (%d)", old.VNI)
	}
	if n.NetworkKind != old.NetworkKind {
		return api.Invalid("network_kind", "the kind of a network cannot change (%s)", old.NetworkKind)
	}
	// A subnet may be added; one that is removed or changed must hold no
	// reservation.
	var removed []netip.Prefix
	for _, os := range old.Subnets {
		if !slices.ContainsFunc(n.Subnets, func(s api.Subnet) bool { return s == os }) {
			removed = append(removed, netip.MustParsePrefix(os.CIDR))
		}
	}
	if len(removed) == 0 {
		return nil
	}
	res, _, err := r.List(ctx, api.KindIPReservation, func(o api.Object) bool {
		return o.(*api.IPReservation).Network == old.FQName
	})
	if err != nil {
		return err
	}
	for _, o := range res {
		a, err := netip.ParseAddr(o.(*api.IPReservation).Address)
		if err != nil {
			continue
		}
		for _, p := range removed {
			if p.Contains(a) {
				return api.Invalid("subnets", "subnet %s still holds reservations (%s); release them first", p, a)
			}
		}
	}
	return nil
}

// Update replaces the object with the uuid. Identity fields cannot change;
// a non-zero resource_version makes the update a compare-and-swap.
func (r *Registry) Update(ctx context.Context, k api.Kind, id string, obj api.Object) (api.Object, error) {
	if k.IPAMOwned() {
		return nil, api.Invalid("kind", "%s objects are changed through /v1/ipam", kindTitle(k))
	}
	m := obj.GetMeta()
	for range txnRetries {
		old, kv, err := r.get(ctx, k, id)
		if err != nil {
			return nil, err
		}
		om := old.GetMeta()
		switch {
		case m.UUID != "" && !strings.EqualFold(m.UUID, om.UUID):
			return nil, api.Invalid("uuid", "does not match the path (%s)", om.UUID)
		case m.FQName != om.FQName:
			return nil, api.Invalid("fq_name", "cannot change (%s); names are immutable", om.FQName)
		case m.ResourceVersion != 0 && m.ResourceVersion != kv.ModRevision:
			return nil, api.Conflict("resource_version", "%s %s changed since version %d (now %d); read it again", kindTitle(k), om.FQName, m.ResourceVersion, kv.ModRevision)
		}
		m.UUID, m.CreatedAt, m.UpdatedAt = om.UUID, om.CreatedAt, r.now().UTC()
		m.ResourceVersion = 0
		g, err := r.prepare(ctx, obj, old)
		if err != nil {
			return nil, err
		}
		val, err := encode(obj)
		if err != nil {
			return nil, err
		}
		rev, err := r.kv.Txn(ctx, append(g.cmps, store.Unchanged(kv)), append(g.ops, store.Put(kv.Key, val)))
		if err == nil {
			m.ResourceVersion = rev
			return obj, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("update %s %s: %w", k, id, err)
		}
		if m.ResourceVersion != 0 {
			return nil, api.Conflict("resource_version", "%s %s changed concurrently; read it again", kindTitle(k), om.FQName)
		}
	}
	return nil, api.Conflict("", "update %s %s: too much contention, try again", kindTitle(k), id)
}

// referrers names the objects that keep obj from being deleted.
func (r *Registry) referrers(ctx context.Context, obj api.Object) ([]string, error) {
	m := obj.GetMeta()
	var out []string
	scan := func(k api.Kind, match func(api.Object) bool) error {
		objs, _, err := r.List(ctx, k, match)
		if err != nil {
			return err
		}
		for _, o := range objs {
			out = append(out, kindTitle(k)+" "+o.GetMeta().FQName)
		}
		return nil
	}
	byParent := func(o api.Object) bool { return o.GetMeta().Parent == m.FQName }
	for _, k := range api.Kinds {
		if api.ParentKind(k) == m.Kind {
			if err := scan(k, byParent); err != nil {
				return nil, err
			}
		}
	}
	switch m.Kind {
	case api.KindNetwork:
		if err := scan(api.KindPort, func(o api.Object) bool { return o.(*api.Port).Network == m.FQName }); err != nil {
			return nil, err
		}
		if err := scan(api.KindService, func(o api.Object) bool { return o.(*api.Service).Network == m.FQName }); err != nil {
			return nil, err
		}
		n, err := r.ipam.InUse(ctx, m.UUID)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("%d ip reservation(s)", n))
		}
	case api.KindSecurityGroup:
		if err := scan(api.KindPort, func(o api.Object) bool { return slices.Contains(o.(*api.Port).SecurityGroups, m.FQName) }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Delete removes the object with the uuid. A missing object is not an
// error. An object that others still refer to is refused with the list.
// The delete marks the object first, so that no reference can be created
// between the check and the delete.
func (r *Registry) Delete(ctx context.Context, k api.Kind, id string) error {
	if k.IPAMOwned() {
		return api.Invalid("kind", "%s objects are released through /v1/ipam", kindTitle(k))
	}
	obj, kv, err := r.get(ctx, k, id)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	m := obj.GetMeta()
	if m.Kind == api.KindNode {
		// Everything the node held goes back to the pools (quarantined).
		if _, err := r.ipam.Release(ctx, nil, api.ReleaseRequest{Node: m.FQName}); err != nil {
			return fmt.Errorf("release addresses of node %s: %w", m.FQName, err)
		}
	}
	mark, _ := r.now().UTC().MarshalText()
	if _, err := r.kv.Txn(ctx, []store.Cmp{store.Absent(deletingKey(id))}, []store.Op{store.Put(deletingKey(id), mark)}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// A concurrent delete: done when it deletes the object.
			if r.awaitDelete(ctx, kv.Key, id) {
				return nil
			}
			return api.Conflict("", "%s %q is already being deleted", kindTitle(k), m.FQName)
		}
		return fmt.Errorf("mark %s for delete: %w", m.FQName, err)
	}
	unmark := func() {
		if _, err := r.kv.Txn(context.WithoutCancel(ctx), nil, []store.Op{store.Delete(deletingKey(id))}); err != nil {
			r.log.Warn("clear delete mark", "kind", k, "uuid", id, "err", err)
		}
	}
	refs, err := r.referrers(ctx, obj)
	if err != nil {
		unmark()
		return err
	}
	if len(refs) > 0 {
		unmark()
		more := ""
		if len(refs) > 5 {
			more = fmt.Sprintf(" and %d more", len(refs)-5)
			refs = refs[:5]
		}
		return api.InUse("%s %q is still in use by %s%s", kindTitle(k), m.FQName, strings.Join(refs, ", "), more)
	}
	ops := []store.Op{store.Delete(kv.Key), store.Delete(fqKey(k, m.FQName)), store.Delete(deletingKey(id))}
	if n, ok := obj.(*api.Node); ok {
		ops = append(ops, nodeClaimOps(n)...)
	}
	if n, ok := obj.(*api.Network); ok && n.VNI != 0 && n.NetworkKind != api.NetworkOverlay {
		ops = append(ops, store.Delete(vniKey(n.VNI)))
	}
	if _, err := r.kv.Txn(ctx, []store.Cmp{store.Unchanged(kv)}, ops); err != nil {
		unmark()
		if errors.Is(err, store.ErrConflict) {
			// Deleted meanwhile by a concurrent delete: done.
			if _, gerr := r.kv.Get(ctx, kv.Key); errors.Is(gerr, store.ErrNotFound) {
				return nil
			}
			return api.Conflict("", "%s %q changed during the delete; try again", kindTitle(k), m.FQName)
		}
		return fmt.Errorf("delete %s %q: %w", k, m.FQName, err)
	}
	if k == api.KindNetwork {
		if err := r.ipam.ForgetNetwork(ctx, id); err != nil {
			r.log.Warn("forget network blocks", "network", m.FQName, "err", err)
		}
	}
	r.log.Debug("deleted", "kind", k, "fq_name", m.FQName, "uuid", id)
	return nil
}

// concurrentDeleteWait bounds how long a delete waits for a concurrent
// delete of the same object to end.
const concurrentDeleteWait = 5 * time.Second

// awaitDelete waits until the delete mark of id is gone (the concurrent
// delete ended), at most concurrentDeleteWait, and reports whether the
// object at key is gone too.
func (r *Registry) awaitDelete(ctx context.Context, key, id string) bool {
	ctx, cancel := context.WithTimeout(ctx, concurrentDeleteWait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := r.kv.Get(ctx, deletingKey(id)); errors.Is(err, store.ErrNotFound) {
			_, err := r.kv.Get(ctx, key)
			return errors.Is(err, store.ErrNotFound)
		} else if err != nil && ctx.Err() == nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// IPAMNetwork resolves a network reference into what the IPAM needs.
func (r *Registry) IPAMNetwork(ctx context.Context, ref string) (ipam.Network, error) {
	n, err := r.network(ctx, ref)
	if err != nil {
		return ipam.Network{}, err
	}
	return ipam.Network{UUID: n.UUID, FQName: n.FQName, Subnets: n.Subnets}, nil
}

// AllocatableNetwork is IPAMNetwork for a request that reserves addresses
// or blocks: an overlay network is refused, since each node allocates the
// addresses of its own subnet of an overlay itself.
func (r *Registry) AllocatableNetwork(ctx context.Context, ref string) (ipam.Network, error) {
	n, err := r.network(ctx, ref)
	if err != nil {
		return ipam.Network{}, err
	}
	if n.NetworkKind == api.NetworkOverlay {
		return ipam.Network{}, api.Invalid("network", "network %s is an overlay: its nodes allocate its addresses from their own subnets", n.FQName)
	}
	return ipam.Network{UUID: n.UUID, FQName: n.FQName, Subnets: n.Subnets}, nil
}

// network resolves a network reference; an unknown one is invalid input.
func (r *Registry) network(ctx context.Context, ref string) (*api.Network, error) {
	obj, _, err := r.resolve(ctx, api.KindNetwork, ref)
	if errors.Is(err, api.ErrNotFound) {
		return nil, api.Invalid("network", "network %q does not exist", ref)
	}
	if err != nil {
		return nil, err
	}
	return obj.(*api.Network), nil
}

// EnsureDefaults creates the default domain, project and networks when they
// are missing. Safe to run on every start and on several replicas at once.
func (r *Registry) EnsureDefaults(ctx context.Context, taskSubnets, fabricSubnets []api.Subnet) error {
	defaults := []api.Object{
		&api.Domain{Meta: api.Meta{Kind: api.KindDomain, Name: api.DefaultDomain}},
		&api.Project{Meta: api.Meta{Kind: api.KindProject, FQName: api.DefaultProject}},
		&api.Network{Meta: api.Meta{Kind: api.KindNetwork, FQName: api.DefaultTaskNetwork}, Subnets: taskSubnets},
		&api.Network{Meta: api.Meta{Kind: api.KindNetwork, FQName: api.FabricNetwork}, Subnets: fabricSubnets},
	}
	for _, obj := range defaults {
		if err := api.Validate(obj); err != nil {
			return fmt.Errorf("default %s: %w", obj.GetMeta().FQName, err)
		}
		m := obj.GetMeta()
		if _, err := r.GetByFQName(ctx, m.Kind, m.FQName); err == nil {
			continue
		}
		if _, err := r.Create(ctx, obj); err != nil && !errors.Is(err, api.ErrConflict) {
			return fmt.Errorf("create default %s %s: %w", m.Kind, m.FQName, err)
		}
		r.log.Info("created default", "kind", m.Kind, "fq_name", m.FQName)
	}
	return nil
}
