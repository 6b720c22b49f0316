package dataplane

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/weft-sdn/weft/internal/kernelnet"
)

// Fake is an in-memory data plane for tests of its consumers. It follows
// the rules of Linux (names, idempotency, what Sync creates and removes)
// and its Dump prints what Linux's Dump would print for the same calls.
// It records attached endpoints and the last synced state.
type Fake struct {
	// Config is used like Linux's (names, VTEP, port); set it before the
	// first call. NewFake fills a default.
	Config Config
	// UnderlayMTU stands for the MTU of the node's underlay interface.
	UnderlayMTU int
	// AttachHook, when set, is called by Attach before any change; its
	// error fails the Attach (to test consumers' error paths).
	AttachHook func(n Network, ep Endpoint) error
	// DetachHook, when set, is called by Detach before any change; its
	// error fails the Detach.
	DetachHook func(n Network, ep Endpoint) error

	mu      sync.Mutex
	nets    map[int]*fakeNet
	changes int64
	synced  State
}

type fakeNet struct {
	n   Network
	eps map[string]*fakeEp // by HostIf
	// plan is the remote side installed by the last Sync.
	plan remotePlan
}

type fakeEp struct {
	ep Endpoint // as attached
	// routed are the addresses with a host route and neighbour entry
	// (ep's, or the desired ones after a Sync), neighMAC their MAC.
	routed   []netip.Addr
	neighMAC net.HardwareAddr
	// withdrawn: the host veth is down (Withdraw), nothing is routed.
	withdrawn bool
}

// NewFake returns an empty Fake with Config NamePrefix "weft-", underlay
// 198.18.0.1, VTEP 198.19.0.1 / 02:77:66:74:00:01, port 4789 and an
// underlay MTU of 1500.
func NewFake() *Fake {
	return &Fake{
		Config: Config{
			NamePrefix: DefaultNamePrefix,
			VXLANPort:  DefaultVXLANPort,
			Underlay:   netip.MustParseAddr("198.18.0.1"),
			VTEPIP:     netip.MustParseAddr("198.19.0.1"),
			VTEPMAC:    net.HardwareAddr{0x02, 0x77, 0x66, 0x74, 0x00, 0x01},
		},
		UnderlayMTU: 1500,
		nets:        map[int]*fakeNet{},
	}
}

func (f *Fake) cfg() (Config, error) {
	return f.Config.withDefaults()
}

func (f *Fake) netMTU(cfg Config, n Network) int {
	if n.MTU > 0 {
		return n.MTU
	}
	mtu := f.UnderlayMTU
	if mtu == 0 {
		mtu = 1500
	}
	return mtu - vxlanOverhead(cfg.Underlay)
}

// Changes returns how many changes the Fake has made, counted like
// Linux's (one per created or deleted object).
func (f *Fake) Changes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes
}

// Endpoints returns the attached endpoints, sorted by network VNI and host
// interface.
func (f *Fake) Endpoints() []Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Endpoint
	for _, vni := range slices.Sorted(maps.Keys(f.nets)) {
		fn := f.nets[vni]
		for _, h := range slices.Sorted(maps.Keys(fn.eps)) {
			out = append(out, fn.eps[h].ep)
		}
	}
	return out
}

// SyncedState returns the state of the last successful Sync.
func (f *Fake) SyncedState() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

// ensureNet returns the network, creating it (Linux: the router
// namespace, its VXLAN device and VTEP address) when missing.
func (f *Fake) ensureNet(n Network) (*fakeNet, bool) {
	if fn, ok := f.nets[n.VNI]; ok {
		if fn.n.MTU != n.MTU {
			f.changes++
		}
		fn.n = n
		return fn, false
	}
	fn := &fakeNet{n: n, eps: map[string]*fakeEp{}}
	f.nets[n.VNI] = fn
	f.changes += 5 // namespace, sysctls, lo, vxlan, address
	return fn, true
}

// Attach records ep on n following Linux's rules.
func (f *Fake) Attach(ctx context.Context, n Network, ep Endpoint) (Endpoint, error) {
	if err := n.validate(); err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg, err := f.cfg()
	if err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	macGiven, mtuGiven := len(ep.MAC) > 0, ep.MTU > 0
	ep, _, err = ep.normalize(n, f.netMTU(cfg, n))
	if err != nil {
		return ep, fmt.Errorf("attach: %w", err)
	}
	what := ep.ContainerID + "/" + ep.IfName
	if ep.Netns == "" {
		return ep, fmt.Errorf("attach %s: missing netns", what)
	}
	if f.AttachHook != nil {
		if err := f.AttachHook(n, ep); err != nil {
			return ep, fmt.Errorf("attach %s: %w", what, err)
		}
	}
	// Another attachment holding the interface name in that netns.
	for _, fn := range f.nets {
		for h, fe := range fn.eps {
			if h != ep.HostIf && fe.ep.Netns == ep.Netns && fe.ep.IfName == ep.IfName {
				return ep, fmt.Errorf("attach %s: interface %s already exists in %s", what, ep.IfName, ep.Netns)
			}
		}
	}
	fn, created := f.ensureNet(n)
	if fe, ok := fn.eps[ep.HostIf]; ok && fe.ep.Netns == ep.Netns {
		if !macGiven {
			ep.MAC = fe.ep.MAC
		}
		if !mtuGiven {
			ep.MTU = fe.ep.MTU
		}
		if diff := fakeDiff(fe.ep, ep); diff != "" {
			return ep, fmt.Errorf("attach %s: %s in %s is already attached with a different configuration: %s", what, ep.IfName, ep.Netns, diff)
		}
		if fe.withdrawn {
			// Up again, with its routes and neighbour entries.
			fe.withdrawn, fe.routed, fe.neighMAC = false, nil, fe.ep.MAC
			for _, ip := range fe.ep.IPs {
				fe.routed = append(fe.routed, ip.Addr())
			}
			f.changes += int64(1 + 2*len(fe.ep.IPs))
		}
		return fe.ep, nil
	}
	if _, ok := fn.eps[ep.HostIf]; ok {
		delete(fn.eps, ep.HostIf) // stale: its sandbox is gone
		f.changes++
	}
	for _, fe := range fn.eps {
		for _, ip := range ep.IPs {
			if slices.Contains(fe.routed, ip.Addr()) {
				if created {
					delete(f.nets, n.VNI)
				}
				return ep, fmt.Errorf("attach %s: address %s already in use by %s in %s", what, ip.Addr(), fe.ep.HostIf, RouterNamespace(cfg.NamePrefix, n.VNI))
			}
		}
	}
	fe := &fakeEp{ep: ep, neighMAC: ep.MAC}
	for _, ip := range ep.IPs {
		fe.routed = append(fe.routed, ip.Addr())
	}
	fn.eps[ep.HostIf] = fe
	f.changes += int64(1 + 2*len(ep.IPs))
	return ep, nil
}

func fakeDiff(have, want Endpoint) string {
	var d []string
	if have.MAC.String() != want.MAC.String() {
		d = append(d, fmt.Sprintf("mac %s, want %s", have.MAC, want.MAC))
	}
	if have.MTU != want.MTU {
		d = append(d, fmt.Sprintf("mtu %d, want %d", have.MTU, want.MTU))
	}
	h, w := slices.Clone(have.IPs), slices.Clone(want.IPs)
	slices.SortFunc(h, netip.Prefix.Compare)
	slices.SortFunc(w, netip.Prefix.Compare)
	if !slices.Equal(h, w) {
		d = append(d, fmt.Sprintf("addresses %v, want %v", h, w))
	}
	return strings.Join(d, "; ")
}

// Withdraw marks ep withdrawn like Linux's: down, nothing routed; Sync
// leaves it alone and Attach brings it back. Unknown endpoints and
// networks succeed.
func (f *Fake) Withdraw(ctx context.Context, n Network, ep Endpoint) error {
	ep, err := endpointHostIf("withdraw", n, ep)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fn, ok := f.nets[n.VNI]; ok {
		if fe, ok := fn.eps[ep.HostIf]; ok && !fe.withdrawn {
			fe.withdrawn, fe.routed = true, nil
			f.changes++
		}
	}
	return nil
}

// Detach forgets ep; unknown endpoints and networks succeed.
func (f *Fake) Detach(ctx context.Context, n Network, ep Endpoint) error {
	ep, err := endpointHostIf("detach", n, ep)
	if err != nil {
		return err
	}
	if f.DetachHook != nil {
		if err := f.DetachHook(n, ep); err != nil {
			return fmt.Errorf("detach %s: %w", ep.HostIf, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fn, ok := f.nets[n.VNI]; ok {
		if _, ok := fn.eps[ep.HostIf]; ok {
			delete(fn.eps, ep.HostIf)
			f.changes++
		}
	}
	return nil
}

// Check reports whether ep is attached to n as given.
func (f *Fake) Check(ctx context.Context, n Network, ep Endpoint) error {
	if err := n.validate(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg, err := f.cfg()
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	macGiven, mtuGiven := len(ep.MAC) > 0, ep.MTU > 0
	ep, _, err = ep.normalize(n, f.netMTU(cfg, n))
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	what := ep.ContainerID + "/" + ep.IfName
	fn, ok := f.nets[n.VNI]
	if !ok {
		return fmt.Errorf("check %s: %w: missing router namespace %s", what, ErrIncomplete, RouterNamespace(cfg.NamePrefix, n.VNI))
	}
	fe, ok := fn.eps[ep.HostIf]
	if !ok || fe.ep.Netns != ep.Netns {
		return fmt.Errorf("check %s: %w: missing host interface %s", what, ErrIncomplete, ep.HostIf)
	}
	if !macGiven {
		ep.MAC = fe.ep.MAC
	}
	if !mtuGiven {
		ep.MTU = fe.ep.MTU
	}
	if d := fakeDiff(fe.ep, ep); d != "" {
		return fmt.Errorf("check %s: %w: %s", what, ErrIncomplete, d)
	}
	return nil
}

// Sync applies s like Linux's Sync and records it.
func (f *Fake) Sync(ctx context.Context, s State) error {
	if err := validateState(s); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg, err := f.cfg()
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	want := map[int]bool{}
	for _, ns := range s.Networks {
		n := ns.Network
		want[n.VNI] = true
		fn, _ := f.ensureNet(n)
		plan, _ := planRemotes(ns, cfg)
		f.changes += int64(planDiff(fn.plan, plan))
		fn.plan = plan
		claimed := map[netip.Addr]bool{}
		for _, ep := range ns.Endpoints {
			ep, _, err := ep.normalize(n, f.netMTU(cfg, n))
			if err != nil {
				continue
			}
			fe, ok := fn.eps[ep.HostIf]
			if !ok || fe.withdrawn {
				continue
			}
			var routed []netip.Addr
			for _, ip := range ep.IPs {
				if !claimed[ip.Addr()] {
					claimed[ip.Addr()] = true
					routed = append(routed, ip.Addr())
				}
			}
			if !slices.Equal(routed, fe.routed) || fe.neighMAC.String() != ep.MAC.String() {
				f.changes++
			}
			fe.routed, fe.neighMAC = routed, ep.MAC
		}
	}
	for vni, fn := range f.nets {
		if !want[vni] && len(fn.eps) == 0 {
			delete(f.nets, vni)
			f.changes += 2
		}
	}
	f.synced = s
	return nil
}

// planDiff counts the entries that differ between two remote plans.
func planDiff(a, b remotePlan) int {
	d := 0
	count := func(x, y map[string]string) {
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				d++
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				d++
			}
		}
	}
	count(a.strings(), b.strings())
	return d
}

func (p remotePlan) strings() map[string]string {
	m := map[string]string{}
	for k, v := range p.routes {
		m["route "+k.String()] = v.String()
	}
	for k, v := range p.neighs {
		m["neigh "+k.String()] = v.String()
	}
	for k, v := range p.fdb {
		m["fdb "+k] = v.String()
	}
	return m
}

// Dump prints the fake state in Linux's Dump format.
func (f *Fake) Dump(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg, err := f.cfg()
	if err != nil {
		return "", fmt.Errorf("dump: %w", err)
	}
	var b strings.Builder
	for _, vni := range slices.Sorted(maps.Keys(f.nets)) {
		fn := f.nets[vni]
		f.render(cfg, fn).write(&b)
	}
	return b.String(), nil
}

func (f *Fake) render(cfg Config, fn *fakeNet) *nsDump {
	vx := VXLANName(fn.n.VNI)
	d := &nsDump{name: RouterNamespace(cfg.NamePrefix, fn.n.VNI)}
	d.sysctls = []string{
		kernelnet.Sysctl{Key: "ipv4/ip_forward", Value: "1"}.String(),
		kernelnet.Sysctl{Key: "ipv6/conf/all/forwarding", Value: "1"}.String(),
	}
	d.links = []string{
		fmtLinkLine("lo", "device", "", nil, 65536, true),
		fmtLinkLine(vx, "vxlan", fmtVXLANExtra(fn.n.VNI, cfg.Underlay, cfg.VXLANPort, false), cfg.VTEPMAC, f.netMTU(cfg, fn.n), true),
	}
	d.addrs = []string{fmt.Sprintf("addr %s %s", vx, hostPrefix(cfg.VTEPIP))}
	for pre, via := range fn.plan.routes {
		d.routes = append(d.routes, fmtRoute(pre, via, vx, "global", true, defaultMetric(pre), "static"))
	}
	for ip, mac := range fn.plan.neighs {
		d.neighs = append(d.neighs, fmtNeigh(ip, vx, mac, "permanent"))
	}
	for key, dst := range fn.plan.fdb {
		d.fdb = append(d.fdb, fmtFDB(fn.plan.macs[key], vx, dst, true, "permanent"))
	}
	for _, fe := range fn.eps {
		ep := fe.ep
		d.links = append(d.links, fmtLinkLine(ep.HostIf, "veth", "", hostMAC(ep.ContainerID, ep.IfName), ep.MTU, !fe.withdrawn))
		for _, ip := range fe.routed {
			scope := "global"
			if ip.Is4() {
				scope = "link"
			}
			d.routes = append(d.routes, fmtRoute(hostPrefix(ip), netip.Addr{}, ep.HostIf, scope, false, defaultMetric(hostPrefix(ip)), "static"))
			d.neighs = append(d.neighs, fmtNeigh(ip, ep.HostIf, fe.neighMAC, "permanent"))
		}
	}
	return d
}

// Teardown forgets everything.
func (f *Fake) Teardown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for vni, fn := range f.nets {
		f.changes += int64(2 + len(fn.eps))
		delete(f.nets, vni)
	}
	return nil
}
