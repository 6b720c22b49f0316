package overlaydp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/weft-sdn/weft/internal/kernelnet"
)

// Fake is an in-memory data plane for tests of its consumers. Sync
// validates and records the state; Dump prints what Linux's Dump prints
// for the same state on a fresh namespace (Linux's kernel-made details,
// such as IPv6 link-local addresses, are not part of either).
type Fake struct {
	// NFTTable and RuleTable are Options' fields (defaults applied by
	// NewFake).
	NFTTable  string
	RuleTable int

	mu        sync.Mutex
	err       error
	state     State
	synced    bool
	ipv6Fwd   bool // sticky, like the sysctl
	endpoints map[string]Endpoint
	syncs     int
}

var _ Interface = (*Fake)(nil)

// NewFake returns an empty Fake with the default table names.
func NewFake() *Fake {
	return &Fake{NFTTable: DefaultNFTTable, RuleTable: DefaultRuleTable, endpoints: map[string]Endpoint{}}
}

// SetError makes every later Sync fail with err (nil: succeed again).
func (f *Fake) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// State returns the state of the last successful Sync.
func (f *Fake) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// Syncs counts successful Syncs.
func (f *Fake) Syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// Endpoints returns the attached endpoints sorted by host interface.
func (f *Fake) Endpoints() []Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Endpoint, 0, len(f.endpoints))
	for _, ep := range f.endpoints {
		out = append(out, ep)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.HostIf, b.HostIf) })
	return out
}

// Sync validates s and records it, unless SetError set an error.
func (f *Fake) Sync(ctx context.Context, s State) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return fmt.Errorf("sync: %w", f.err)
	}
	f.state = s
	f.synced = !s.Empty()
	p, _ := makePlan(s, f.RuleTable)
	if p.ipv6 {
		f.ipv6Fwd = true
	}
	f.syncs++
	return nil
}

// Teardown forgets the state and the endpoints.
func (f *Fake) Teardown(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = State{}
	f.synced = false
	clear(f.endpoints)
	return nil
}

// Dump prints the recorded state in Linux's Dump format.
func (f *Fake) Dump(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.synced {
		return "", nil
	}
	p, _ := makePlan(f.state, f.RuleTable)
	d := planDump(p, f.NFTTable, f.RuleTable)
	fwd6 := "0"
	if f.ipv6Fwd {
		fwd6 = "1"
	}
	d.sysctls = []string{kernelnet.Sysctl{Key: sysctlForward4, Value: "1"}.String(), kernelnet.Sysctl{Key: sysctlForward6, Value: fwd6}.String()}
	return d.String(), nil
}

// planDump is the dump of a freshly applied plan (without sysctls).
func planDump(p plan, nftTable string, ruleTable int) *dumpText {
	d := &dumpText{}
	if p.empty {
		return d
	}
	v := p.vtep
	mtu := v.MTU
	if mtu == 0 {
		mtu = DefaultVXLANMTU
	}
	d.links = append(d.links, fmtVXLAN(v.Name, v.VNI, v.Port, v.Underlay, true, 0, v.MAC, mtu, Marker, true))
	for _, a := range p.vtepAddrs {
		d.addrs = append(d.addrs, fmtAddr(v.Name, a))
	}
	for _, b := range p.bridges {
		mtu := b.mtu
		if mtu == 0 {
			mtu = 1500
		}
		d.links = append(d.links, fmtBridge(b.name, mtu, Marker, true))
		for _, a := range b.addrs {
			d.addrs = append(d.addrs, fmtAddr(b.name, a))
		}
	}
	for ip, mac := range p.neighs {
		d.neighs = append(d.neighs, fmtNeigh(ip, v.Name, mac))
	}
	for key, dst := range p.fdb {
		d.fdb = append(d.fdb, fmtFDB(p.macs[key], v.Name, dst))
	}
	for _, r := range p.routes {
		d.routes = append(d.routes, fmtRoute(r.table, r.dst, r.via, v.Name))
	}
	for _, r := range p.rules {
		d.rules = append(d.rules, fmtRule(RulePriority, r, ruleTable))
	}
	d.nft = natListing(nftTable, p.nat)
	return d
}

// Attach records ep on a bridge of the synced state.
func (f *Fake) Attach(ctx context.Context, ep Endpoint) (Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	mtu, ok := f.bridgeMTU(ep.Bridge)
	if !ok {
		return ep, fmt.Errorf("attach: bridge %q: not part of the synced state", ep.Bridge)
	}
	ep, err := ep.normalize(mtu)
	if err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	if have, ok := f.endpoints[ep.HostIf]; ok {
		if d := endpointDiff(have, ep); d != "" {
			return ep, fmt.Errorf("attach %s/%s: already attached with a different configuration: %s", ep.ContainerID, ep.IfName, d)
		}
		return have, nil
	}
	f.endpoints[ep.HostIf] = ep
	return ep, nil
}

// Detach forgets ep; unknown endpoints succeed.
func (f *Fake) Detach(ctx context.Context, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	ep, err := ep.withNames()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.endpoints, ep.HostIf)
	return nil
}

// Check reports whether ep is attached as given.
func (f *Fake) Check(ctx context.Context, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	mtu, ok := f.bridgeMTU(ep.Bridge)
	if !ok {
		mtu = 1500
	}
	macGiven, mtuGiven := len(ep.MAC) > 0, ep.MTU > 0
	ep, err := ep.normalize(mtu)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	have, ok := f.endpoints[ep.HostIf]
	if !ok {
		return fmt.Errorf("check %s/%s: %w: missing host interface %s", ep.ContainerID, ep.IfName, ErrIncomplete, ep.HostIf)
	}
	if !macGiven {
		ep.MAC = have.MAC
	}
	if !mtuGiven {
		ep.MTU = have.MTU
	}
	if d := endpointDiff(have, ep); d != "" {
		return fmt.Errorf("check %s/%s: %w: %s", ep.ContainerID, ep.IfName, ErrIncomplete, d)
	}
	return nil
}

func (f *Fake) bridgeMTU(name string) (int, bool) {
	if !f.synced {
		return 0, false
	}
	for _, o := range f.state.Overlays {
		if o.MesosBridge == name && name != "" {
			if o.MTU == 0 {
				return 1500, true
			}
			return o.MTU, true
		}
	}
	return 0, false
}

func endpointDiff(have, want Endpoint) string {
	var d []string
	if have.Netns != want.Netns {
		d = append(d, fmt.Sprintf("netns %s, want %s", have.Netns, want.Netns))
	}
	if have.Bridge != want.Bridge {
		d = append(d, fmt.Sprintf("bridge %s, want %s", have.Bridge, want.Bridge))
	}
	if have.MAC.String() != want.MAC.String() {
		d = append(d, fmt.Sprintf("mac %s, want %s", have.MAC, want.MAC))
	}
	if have.MTU != want.MTU {
		d = append(d, fmt.Sprintf("mtu %d, want %d", have.MTU, want.MTU))
	}
	if !slices.Equal(have.IPs, want.IPs) {
		d = append(d, fmt.Sprintf("ips %v, want %v", have.IPs, want.IPs))
	}
	return strings.Join(d, "; ")
}
