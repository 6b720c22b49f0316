package mesosmanager

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// FakeController is an in-memory Controller with the controller's rules
// for what the manager uses: resource versions and compare-and-swap on
// ports, security groups that must exist, release by owner, node or
// address, node deletion releasing the node's addresses, and leases with
// the controller's take/renew/expire semantics on an injectable clock.
// Dump prints its whole state as text for golden tests.
type FakeController struct {
	// Fail, when set, is asked before every call with the call's name
	// (list_ports, get_port, update_port, delete_port, release,
	// list_nodes, delete_node, exists, list_floating_ips,
	// create_floating_ip, delete_floating_ip, acquire_lease,
	// release_lease); a non-nil error fails the call.
	Fail func(op string) error

	mu     sync.Mutex
	clock  Clock
	seq    int
	rev    int64
	ports  map[string]*api.Port
	nodes  map[string]*api.Node
	res    map[string]fakeReservation
	sgs    map[string]bool
	pools  map[string]bool
	fips   map[string]*api.FloatingIP
	leases map[string]*api.Lease
	calls  map[string]int
}

type fakeReservation struct {
	network, address, owner, node string
}

// NewFakeController returns an empty fake on clock (nil: the system
// clock).
func NewFakeController(clock Clock) *FakeController {
	if clock == nil {
		clock = systemClock{}
	}
	return &FakeController{
		clock: clock, ports: map[string]*api.Port{}, nodes: map[string]*api.Node{}, res: map[string]fakeReservation{},
		sgs: map[string]bool{}, pools: map[string]bool{}, fips: map[string]*api.FloatingIP{}, leases: map[string]*api.Lease{},
		calls: map[string]int{},
	}
}

func (f *FakeController) newUUID() string {
	f.seq++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", f.seq)
}

func (f *FakeController) call(op string) error {
	f.mu.Lock()
	f.calls[op]++
	fail := f.Fail
	f.mu.Unlock()
	if fail != nil {
		return fail(op)
	}
	return nil
}

// Calls returns how often the call op was made.
func (f *FakeController) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// AddNode registers a node.
func (f *FakeController) AddNode(name, underlayIP string) api.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := &api.Node{Meta: api.Meta{Kind: api.KindNode, UUID: f.newUUID(), Name: name, FQName: name}, UnderlayIP: underlayIP}
	f.rev++
	n.ResourceVersion = f.rev
	f.nodes[n.UUID] = n
	return *n
}

// AddSecurityGroup creates a security group.
func (f *FakeController) AddSecurityGroup(fq string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sgs[fq] = true
}

// AddFloatingIPPool creates a floating IP pool.
func (f *FakeController) AddFloatingIPPool(fq string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pools[fq] = true
}

// AddPort stores a port the way a node agent writes one at CNI ADD, and
// reserves its addresses for "<container_id>/<interface>" on its node.
// Empty Network is the default task network; empty Name is
// "<container_id>-<interface>".
func (f *FakeController) AddPort(p api.Port) api.Port {
	f.mu.Lock()
	defer f.mu.Unlock()
	p.Kind = api.KindPort
	if p.UUID == "" {
		p.UUID = f.newUUID()
	}
	if p.Network == "" {
		p.Network = api.DefaultTaskNetwork
	}
	if p.Name == "" {
		p.Name = p.ContainerID + "-" + p.Interface
	}
	if p.Parent == "" {
		p.Parent = projectOfNetwork(p.Network)
	}
	p.FQName = p.Parent + ":" + p.Name
	if p.State == "" {
		p.State = "attached"
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = f.clock.Now().UTC()
	}
	p.UpdatedAt = p.CreatedAt
	f.rev++
	p.ResourceVersion = f.rev
	cp := clonePort(p)
	f.ports[p.UUID] = &cp
	for _, ip := range p.IPs {
		owner := ownerOf(&p)
		f.res[p.Network+" "+ip.Address] = fakeReservation{network: p.Network, address: ip.Address, owner: owner, node: p.Node}
	}
	return clonePort(p)
}

// Port returns a port by uuid.
func (f *FakeController) Port(uuid string) (api.Port, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[uuid]
	if !ok {
		return api.Port{}, false
	}
	return clonePort(*p), true
}

// AllPorts returns every port, sorted by fq_name.
func (f *FakeController) AllPorts() []api.Port {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sortedPortsLocked("")
}

// Reserved tells whether an address of a network is reserved, and for
// whom.
func (f *FakeController) Reserved(network, address string) (owner string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.res[network+" "+address]
	return r.owner, ok
}

func projectOfNetwork(network string) string {
	if i := strings.LastIndexByte(network, ':'); i > 0 && strings.Count(network, ":") == 2 {
		return network[:i]
	}
	return api.DefaultProject
}

func clonePort(p api.Port) api.Port {
	p.Labels = maps.Clone(p.Labels)
	p.IPs = slices.Clone(p.IPs)
	p.SecurityGroups = slices.Clone(p.SecurityGroups)
	p.FloatingIPs = slices.Clone(p.FloatingIPs)
	return p
}

func (f *FakeController) sortedPortsLocked(node string) []api.Port {
	out := []api.Port{}
	for _, p := range f.ports {
		if node == "" || p.Node == node {
			out = append(out, clonePort(*p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FQName < out[j].FQName })
	return out
}

// ListPorts implements Controller.
func (f *FakeController) ListPorts(ctx context.Context, node string) ([]api.Port, error) {
	if err := f.call("list_ports"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sortedPortsLocked(node), nil
}

// GetPort implements Controller.
func (f *FakeController) GetPort(ctx context.Context, uuid string) (api.Port, error) {
	if err := f.call("get_port"); err != nil {
		return api.Port{}, err
	}
	p, ok := f.Port(uuid)
	if !ok {
		return api.Port{}, api.NotFound("port %s not found", uuid)
	}
	return p, nil
}

// UpdatePort implements Controller.
func (f *FakeController) UpdatePort(ctx context.Context, p api.Port) (api.Port, error) {
	if err := f.call("update_port"); err != nil {
		return api.Port{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.ports[p.UUID]
	if !ok {
		return api.Port{}, api.NotFound("port %s not found", p.UUID)
	}
	if p.ResourceVersion != 0 && p.ResourceVersion != cur.ResourceVersion {
		return api.Port{}, api.Conflict("resource_version", "port %s changed since version %d (now %d); read it again", cur.FQName, p.ResourceVersion, cur.ResourceVersion)
	}
	if p.FQName != "" && p.FQName != cur.FQName {
		return api.Port{}, api.Invalid("fq_name", "cannot change (%s); names are immutable", cur.FQName)
	}
	for i, sg := range p.SecurityGroups {
		if !f.sgs[sg] {
			return api.Port{}, api.Invalid(fmt.Sprintf("security_groups[%d]", i), "security group %q does not exist", sg)
		}
	}
	next := clonePort(p)
	next.Kind, next.Name, next.Parent, next.FQName = api.KindPort, cur.Name, cur.Parent, cur.FQName
	next.CreatedAt = cur.CreatedAt
	next.UpdatedAt = f.clock.Now().UTC()
	f.rev++
	next.ResourceVersion = f.rev
	f.ports[p.UUID] = &next
	return clonePort(next), nil
}

// SetPortFields changes a port as another writer would (the agent), bumping
// its resource version.
func (f *FakeController) SetPortFields(uuid string, fn func(p *api.Port)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.ports[uuid]; ok {
		fn(p)
		f.rev++
		p.ResourceVersion = f.rev
	}
}

// DeletePort implements Controller.
func (f *FakeController) DeletePort(ctx context.Context, uuid string) error {
	if err := f.call("delete_port"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ports, uuid)
	return nil
}

// Release implements Controller.
func (f *FakeController) Release(ctx context.Context, req api.ReleaseRequest) error {
	if err := f.call("release"); err != nil {
		return err
	}
	if req.IP == "" && req.Owner == "" && req.Node == "" {
		return api.Invalid("owner", "release needs an ip, an owner or a node")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releaseLocked(req)
	return nil
}

func (f *FakeController) releaseLocked(req api.ReleaseRequest) {
	for k, r := range f.res {
		if (req.Network == "" || r.network == req.Network) && (req.IP == "" || r.address == req.IP) &&
			(req.Owner == "" || r.owner == req.Owner) && (req.Node == "" || r.node == req.Node) {
			delete(f.res, k)
		}
	}
}

// ListNodes implements Controller.
func (f *FakeController) ListNodes(ctx context.Context) ([]api.Node, error) {
	if err := f.call("list_nodes"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.Node{}
	for _, n := range f.nodes {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteNode implements Controller: the node's addresses are released.
func (f *FakeController) DeleteNode(ctx context.Context, uuid string) error {
	if err := f.call("delete_node"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[uuid]
	if !ok {
		return nil
	}
	f.releaseLocked(api.ReleaseRequest{Node: n.Name})
	delete(f.nodes, uuid)
	return nil
}

// Exists implements Controller for security groups, floating IP pools,
// nodes and ports.
func (f *FakeController) Exists(ctx context.Context, kind api.Kind, fq string) (bool, error) {
	if err := f.call("exists"); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch kind {
	case api.KindSecurityGroup:
		return f.sgs[fq], nil
	case api.KindFloatingIPPool:
		return f.pools[fq], nil
	case api.KindNode:
		for _, n := range f.nodes {
			if n.Name == fq {
				return true, nil
			}
		}
	case api.KindPort:
		for _, p := range f.ports {
			if p.FQName == fq {
				return true, nil
			}
		}
	}
	return false, nil
}

// ListFloatingIPs implements Controller.
func (f *FakeController) ListFloatingIPs(ctx context.Context) ([]api.FloatingIP, error) {
	if err := f.call("list_floating_ips"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.FloatingIP{}
	for _, x := range f.fips {
		c := *x
		c.Labels = maps.Clone(x.Labels)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FQName < out[j].FQName })
	return out, nil
}

// CreateFloatingIP implements Controller: the pool must exist and the
// fq_name be free.
func (f *FakeController) CreateFloatingIP(ctx context.Context, x api.FloatingIP) error {
	if err := f.call("create_floating_ip"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.pools[x.Parent] {
		return api.Invalid("parent", "floating ip pool %q does not exist", x.Parent)
	}
	x.FQName = x.Parent + ":" + x.Name
	for _, o := range f.fips {
		if o.FQName == x.FQName {
			return api.Conflict("fq_name", "floating ip %q already exists", x.FQName)
		}
	}
	x.Kind = api.KindFloatingIP
	x.UUID = f.newUUID()
	x.Labels = maps.Clone(x.Labels)
	f.fips[x.UUID] = &x
	return nil
}

// DeleteFloatingIP implements Controller.
func (f *FakeController) DeleteFloatingIP(ctx context.Context, uuid string) error {
	if err := f.call("delete_floating_ip"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.fips, uuid)
	return nil
}

// AcquireLease implements Controller with the controller's rules: free,
// expired or held by holder → taken (renewed); otherwise a conflict with
// the current lease.
func (f *FakeController) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (api.Lease, error) {
	if err := f.call("acquire_lease"); err != nil {
		return api.Lease{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now().UTC()
	secs := int((ttl + time.Second - 1) / time.Second)
	l := api.Lease{Name: name, Holder: holder, TTLSeconds: secs, AcquiredAt: now, RenewedAt: now}
	if cur, ok := f.leases[name]; ok {
		expired := now.After(cur.RenewedAt.Add(time.Duration(cur.TTLSeconds) * time.Second))
		switch {
		case cur.Holder != holder && !expired:
			return *cur, api.Conflict("holder", "lease %s is held by %s", name, cur.Holder)
		case cur.Holder == holder && !expired:
			l.AcquiredAt, l.Transitions = cur.AcquiredAt, cur.Transitions
		default:
			l.Transitions = cur.Transitions + 1
		}
	}
	f.leases[name] = &l
	return l, nil
}

// ReleaseLease implements Controller.
func (f *FakeController) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := f.call("release_lease"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.leases[name]; ok && cur.Holder == holder {
		delete(f.leases, name)
	}
	return nil
}

// LeaseHolder returns the holder of a lease that has not expired, or "".
func (f *FakeController) LeaseHolder(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.leases[name]
	if !ok || f.clock.Now().After(cur.RenewedAt.Add(time.Duration(cur.TTLSeconds)*time.Second)) {
		return ""
	}
	return cur.Holder
}

// Dump prints the fake's state, one object a line, in a stable order
// (time stamps and resource versions left out).
func (f *FakeController) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	nodes := make([]*api.Node, 0, len(f.nodes))
	for _, n := range f.nodes {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for _, n := range nodes {
		fmt.Fprintf(&b, "node %s underlay=%s\n", n.Name, n.UnderlayIP)
	}
	for _, p := range f.sortedPortsLocked("") {
		ips := make([]string, 0, len(p.IPs))
		for _, ip := range p.IPs {
			ips = append(ips, ip.Address)
		}
		fmt.Fprintf(&b, "port %s network=%s node=%s container=%s if=%s ips=%s", p.FQName, p.Network, p.Node, p.ContainerID, p.Interface, strings.Join(ips, ","))
		for _, kv := range [][2]string{{"app", p.AppID}, {"task", p.TaskID}, {"instance", p.InstanceID}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
			}
		}
		if p.SecurityGroups != nil {
			fmt.Fprintf(&b, " sgs=[%s]", strings.Join(p.SecurityGroups, ","))
		}
		if len(p.FloatingIPs) > 0 {
			fmt.Fprintf(&b, " fips=[%s]", strings.Join(p.FloatingIPs, ","))
		}
		if len(p.Labels) > 0 {
			keys := slices.Sorted(maps.Keys(p.Labels))
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = k + "=" + p.Labels[k]
			}
			fmt.Fprintf(&b, " labels={%s}", strings.Join(parts, " "))
		}
		b.WriteString("\n")
	}
	res := make([]fakeReservation, 0, len(f.res))
	for _, r := range f.res {
		res = append(res, r)
	}
	sort.Slice(res, func(i, j int) bool {
		if res[i].network != res[j].network {
			return res[i].network < res[j].network
		}
		return addrLess(res[i].address, res[j].address)
	})
	for _, r := range res {
		fmt.Fprintf(&b, "reservation %s %s owner=%s node=%s\n", r.network, r.address, r.owner, r.node)
	}
	for _, sg := range slices.Sorted(maps.Keys(f.sgs)) {
		fmt.Fprintf(&b, "security-group %s\n", sg)
	}
	for _, p := range slices.Sorted(maps.Keys(f.pools)) {
		fmt.Fprintf(&b, "floating-ip-pool %s\n", p)
	}
	fips := make([]*api.FloatingIP, 0, len(f.fips))
	for _, x := range f.fips {
		fips = append(fips, x)
	}
	sort.Slice(fips, func(i, j int) bool { return fips[i].FQName < fips[j].FQName })
	for _, x := range fips {
		fmt.Fprintf(&b, "floating-ip %s address=%s port=%s fixed=%s\n", x.FQName, x.Address, x.Port, x.FixedIP)
	}
	for _, name := range slices.Sorted(maps.Keys(f.leases)) {
		fmt.Fprintf(&b, "lease %s holder=%s\n", name, f.leases[name].Holder)
	}
	return b.String()
}

func addrLess(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return a < b
	}
	return x.Less(y)
}
