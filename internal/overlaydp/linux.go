//go:build linux

package overlaydp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/weft-sdn/weft/internal/kernelnet"
	"github.com/weft-sdn/weft/internal/keylock"
	"github.com/weft-sdn/weft/internal/netns"
)

// Options configures a Linux data plane.
type Options struct {
	// Netns is the path of the node's network namespace; "" is the
	// namespace of the calling process.
	Netns string
	// Logger receives a record per change (Info) and per skipped peer
	// (Warn); nil discards them.
	Logger *slog.Logger
	// NFTTable names the nftables table (family inet) of the NAT rules;
	// default DefaultNFTTable.
	NFTTable string
	// RuleTable is the routing table of routes to peers' underlay
	// addresses; default DefaultRuleTable (42).
	RuleTable int
}

// Linux programs the overlay data plane in one network namespace through
// netlink (one handle bound to the namespace) and nft. It is safe for
// concurrent use: Sync and Teardown exclude everything else; endpoint
// operations run in parallel, one at a time per host interface.
type Linux struct {
	opts Options
	log  *slog.Logger
	h    *netlink.Handle

	mu        sync.RWMutex
	endpoints keylock.Locks
	// Names of the last synced state, so that what it created is found
	// even without its marker.
	lastVTEP    string
	lastBridges []string
	// nft is created on first use; nftApplied is the normalised listing
	// right after the last rebuild ("" when unknown).
	nft        knftables.Interface
	nftApplied string

	changes atomic.Int64
}

var _ Interface = (*Linux)(nil)

// NewLinux opens a data plane on the namespace of opts.Netns.
func NewLinux(opts Options) (*Linux, error) {
	if opts.NFTTable == "" {
		opts.NFTTable = DefaultNFTTable
	}
	if opts.RuleTable == 0 {
		opts.RuleTable = DefaultRuleTable
	}
	if opts.RuleTable < 1 || opts.RuleTable == mainTable || opts.RuleTable == 253 || opts.RuleTable == 255 {
		return nil, fmt.Errorf("overlay data plane: invalid rule table %d", opts.RuleTable)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := netns.NewHandle(opts.Netns)
	if err != nil {
		return nil, fmt.Errorf("overlay data plane: %w", err)
	}
	return &Linux{opts: opts, log: log.With("netns", nsName(opts.Netns)), h: h}, nil
}

// Close releases the netlink handle. The data plane stays as it is.
func (l *Linux) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil {
		l.h.Close()
		l.h = nil
	}
}

// Changes counts the changes made so far (netlink, sysctl and nft
// writes); each is logged at Info.
func (l *Linux) Changes() int64 { return l.changes.Load() }

func (l *Linux) changed(ctx context.Context, msg string, args ...any) {
	l.changes.Add(1)
	l.log.InfoContext(ctx, msg, args...)
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func nsName(path string) string {
	if path == "" {
		return "(current)"
	}
	return path
}

// inNetns runs fn on a thread in the node namespace (sysctl writes and
// nft, which inherits the thread's namespace).
func (l *Linux) inNetns(fn func() error) error {
	if l.opts.Netns == "" {
		return fn()
	}
	return netns.Do(l.opts.Netns, fn)
}

// Sync reconciles the namespace with s: it creates, changes and removes
// links, addresses, neighbour and FDB entries, routes, rules, sysctls and
// the NAT table until they match s, and changes nothing when they do.
// An empty s removes everything this package created. Errors on single
// objects do not stop the others; Sync returns them joined.
func (l *Linux) Sync(ctx context.Context, s State) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h == nil {
		return errors.New("sync: data plane closed")
	}
	p, warns := makePlan(s, l.opts.RuleTable)
	for _, w := range warns {
		l.log.WarnContext(ctx, "overlay state: "+w)
	}
	if p.empty {
		if err := l.teardown(ctx); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		return nil
	}
	if err := l.sync(ctx, p); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

func (l *Linux) sync(ctx context.Context, p plan) error {
	sys := []kernelnet.Sysctl{{Key: sysctlForward4, Value: "1"}}
	if p.ipv6 {
		sys = append(sys, kernelnet.Sysctl{Key: sysctlForward6, Value: "1"})
	}
	if err := l.ensureSysctls(ctx, sys); err != nil {
		return err
	}
	vtep, err := l.ensureVTEP(ctx, p.vtep)
	if err != nil {
		return err
	}
	l.lastVTEP = p.vtep.Name
	var errs []error
	if err := l.ensureLinkAddrs(ctx, vtep, p.vtepAddrs); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, l.syncBridges(ctx, p))
	errs = append(errs, l.syncNeighs(ctx, vtep, p))
	errs = append(errs, l.syncFDB(ctx, vtep, p))
	errs = append(errs, l.syncRoutes(ctx, vtep, p))
	errs = append(errs, l.syncRules(ctx, p.rules))
	errs = append(errs, l.syncNAT(ctx, p.nat))
	return errors.Join(errs...)
}

// ensureSysctls applies settings inside the namespace, writing only the
// values that differ.
func (l *Linux) ensureSysctls(ctx context.Context, settings []kernelnet.Sysctl) error {
	var written []kernelnet.Sysctl
	err := l.inNetns(func() (err error) {
		written, err = kernelnet.EnsureSysctls(settings)
		return err
	})
	for _, w := range written {
		l.changed(ctx, "set sysctl", "sysctl", w.Key+"="+w.Value)
	}
	return err
}

// vtepDiff describes how the existing VXLAN device differs in what can
// only be changed by re-creating it ("" when it does not).
func vtepDiff(vx *netlink.Vxlan, v VTEP) string {
	var d []string
	if vx.VxlanId != v.VNI {
		d = append(d, fmt.Sprintf("vni %d, want %d", vx.VxlanId, v.VNI))
	}
	if vx.Port != v.Port {
		d = append(d, fmt.Sprintf("port %d, want %d", vx.Port, v.Port))
	}
	if vx.HardwareAddr.String() != v.MAC.String() {
		d = append(d, fmt.Sprintf("mac %s, want %s", vx.HardwareAddr, v.MAC))
	}
	if v.MTU != 0 && vx.MTU != v.MTU {
		d = append(d, fmt.Sprintf("mtu %d, want %d", vx.MTU, v.MTU))
	}
	if local := kernelnet.AddrOf(vx.SrcAddr); local != v.Underlay {
		d = append(d, fmt.Sprintf("local %s, want %s", addrOrNone(local), addrOrNone(v.Underlay)))
	}
	if !vx.Learning {
		d = append(d, "learning off")
	}
	if vx.TTL != 0 {
		d = append(d, fmt.Sprintf("ttl %d, want 0", vx.TTL))
	}
	if len(vx.Group) > 0 && !net.IP(vx.Group).IsUnspecified() {
		d = append(d, fmt.Sprintf("group %s, want none", vx.Group))
	}
	if vx.VtepDevIndex != 0 {
		d = append(d, "bound to a device")
	}
	return strings.Join(d, "; ")
}

// ensureVTEP creates the VXLAN device or re-creates it when its identity
// differs (as dcos-net does), marks it and sets it up.
func (l *Linux) ensureVTEP(ctx context.Context, v VTEP) (netlink.Link, error) {
	link, err := l.h.LinkByName(v.Name)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return nil, fmt.Errorf("find %s: %w", v.Name, err)
	}
	if link != nil {
		vx, ok := link.(*netlink.Vxlan)
		if !ok {
			return nil, fmt.Errorf("vtep %s: exists and is a %s, not a vxlan device", v.Name, link.Type())
		}
		if d := vtepDiff(vx, v); d != "" {
			if err := l.h.LinkDel(link); err != nil && !kernelnet.IsLinkNotFound(err) {
				return nil, fmt.Errorf("delete %s to re-create it (%s): %w", v.Name, d, err)
			}
			l.changed(ctx, "deleted vtep to re-create it", "link", v.Name, "diff", d)
			link = nil
		}
	}
	if link == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: v.Name, MTU: v.MTU, HardwareAddr: v.MAC, TxQLen: -1},
			VxlanId:   v.VNI,
			Port:      v.Port,
			Learning:  true,
			TTL:       0,
		}
		if v.Underlay.IsValid() {
			vx.SrcAddr = v.Underlay.AsSlice()
		}
		if err := l.h.LinkAdd(vx); err != nil {
			return nil, fmt.Errorf("add vxlan %s vni %d port %d: %w", v.Name, v.VNI, v.Port, err)
		}
		l.changed(ctx, "created vtep", "link", v.Name, "vni", v.VNI, "port", v.Port, "mac", v.MAC.String(), "local", v.Underlay)
		if link, err = l.h.LinkByName(v.Name); err != nil {
			return nil, fmt.Errorf("find new %s: %w", v.Name, err)
		}
	}
	if err := l.ensureMarkedUp(ctx, link); err != nil {
		return nil, err
	}
	if v.IP6.IsValid() {
		if err := l.ensureSysctls(ctx, []kernelnet.Sysctl{{Key: "ipv6/conf/" + v.Name + "/disable_ipv6", Value: "0"}}); err != nil {
			return nil, err
		}
	}
	return link, nil
}

func (l *Linux) ensureMarkedUp(ctx context.Context, link netlink.Link) error {
	name := link.Attrs().Name
	if link.Attrs().Alias != Marker {
		if err := l.h.LinkSetAlias(link, Marker); err != nil {
			return fmt.Errorf("set alias of %s: %w", name, err)
		}
		l.changed(ctx, "marked link", "link", name, "alias", Marker)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := l.h.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
		l.changed(ctx, "set link up", "link", name)
	}
	return nil
}

// ensureLinkAddrs makes want the global addresses of link: missing ones
// are added (IPv6 without DAD), others removed. Link-local addresses are
// left alone.
func (l *Linux) ensureLinkAddrs(ctx context.Context, link netlink.Link, want []netip.Prefix) error {
	name := link.Attrs().Name
	have, err := kernelnet.Retry(func() ([]netlink.Addr, error) { return l.h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	var errs []error
	var kept []netip.Prefix
	for _, a := range have {
		p, ok := kernelnet.PrefixOf(a.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if slices.Contains(want, p) {
			kept = append(kept, p)
			continue
		}
		if err := l.h.AddrDel(link, &a); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete address %s from %s: %w", p, name, err))
			continue
		}
		l.changed(ctx, "deleted address", "link", name, "addr", p)
	}
	for _, p := range want {
		if slices.Contains(kept, p) {
			continue
		}
		a := &netlink.Addr{IPNet: kernelnet.IPNetOf(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := l.h.AddrAdd(link, a); err != nil {
			errs = append(errs, fmt.Errorf("add address %s to %s: %w", p, name, err))
			continue
		}
		l.changed(ctx, "added address", "link", name, "addr", p)
	}
	return errors.Join(errs...)
}

// ourBridge reports whether link is a Mesos bridge this package made.
func (l *Linux) ourBridge(link netlink.Link) bool {
	if link.Type() != "bridge" {
		return false
	}
	a := link.Attrs()
	return (a.Alias == Marker && strings.HasPrefix(a.Name, BridgePrefix)) || slices.Contains(l.lastBridges, a.Name)
}

// ourVTEP reports whether link is a VXLAN device this package made.
func (l *Linux) ourVTEP(link netlink.Link) bool {
	if link.Type() != "vxlan" {
		return false
	}
	a := link.Attrs()
	return a.Alias == Marker || (l.lastVTEP != "" && a.Name == l.lastVTEP)
}

func (l *Linux) syncBridges(ctx context.Context, p plan) error {
	var errs []error
	for _, b := range p.bridges {
		if err := l.ensureBridge(ctx, b); err != nil {
			errs = append(errs, err)
		}
	}
	want := p.bridgeNames()
	links, err := kernelnet.Retry(l.h.LinkList)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list links: %w", err))...)
	}
	for _, link := range links {
		if !l.ourBridge(link) || slices.Contains(want, link.Attrs().Name) {
			continue
		}
		if err := l.h.LinkDel(link); err != nil && !kernelnet.IsLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w", link.Attrs().Name, err))
			continue
		}
		l.changed(ctx, "deleted bridge", "link", link.Attrs().Name)
	}
	l.lastBridges = want
	return errors.Join(errs...)
}

// ensureBridge creates, adopts (marks) and configures one Mesos bridge.
func (l *Linux) ensureBridge(ctx context.Context, b planBridge) error {
	link, err := l.h.LinkByName(b.name)
	if err != nil && !kernelnet.IsLinkNotFound(err) {
		return fmt.Errorf("find %s: %w", b.name, err)
	}
	if link == nil {
		br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
		br.Name = b.name
		br.MTU = b.mtu
		if err := l.h.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge %s: %w", b.name, err)
		}
		l.changed(ctx, "created bridge", "link", b.name, "mtu", b.mtu)
		if link, err = l.h.LinkByName(b.name); err != nil {
			return fmt.Errorf("find new %s: %w", b.name, err)
		}
	} else if link.Type() != "bridge" {
		return fmt.Errorf("bridge %s: exists and is a %s", b.name, link.Type())
	}
	if b.mtu != 0 && link.Attrs().MTU != b.mtu {
		if err := l.h.LinkSetMTU(link, b.mtu); err != nil {
			return fmt.Errorf("set mtu of %s to %d: %w", b.name, b.mtu, err)
		}
		l.changed(ctx, "set bridge mtu", "link", b.name, "mtu", b.mtu)
	}
	if err := l.ensureMarkedUp(ctx, link); err != nil {
		return err
	}
	if slices.ContainsFunc(b.addrs, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		if err := l.ensureSysctls(ctx, []kernelnet.Sysctl{{Key: "ipv6/conf/" + b.name + "/disable_ipv6", Value: "0"}}); err != nil {
			return err
		}
	}
	return l.ensureLinkAddrs(ctx, link, b.addrs)
}

// syncNeighs makes the permanent neighbour entries on the VTEP exactly
// the peers' VTEP addresses.
func (l *Linux) syncNeighs(ctx context.Context, vtep netlink.Link, p plan) error {
	name, idx := vtep.Attrs().Name, vtep.Attrs().Index
	have := map[netip.Addr]bool{}
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		neighs, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return l.h.NeighList(idx, fam) })
		if err != nil {
			return fmt.Errorf("list neighbours of %s: %w", name, err)
		}
		for _, nb := range neighs {
			if nb.State&netlink.NUD_PERMANENT == 0 {
				continue
			}
			ip := kernelnet.AddrOf(nb.IP)
			if mac, ok := p.neighs[ip]; ok && mac.String() == nb.HardwareAddr.String() {
				have[ip] = true
				continue
			}
			if _, ok := p.neighs[ip]; ok {
				continue // replaced below
			}
			if err := l.h.NeighDel(&nb); err != nil && !kernelnet.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("delete neighbour %s dev %s: %w", ip, name, err))
				continue
			}
			l.changed(ctx, "deleted neighbour", "link", name, "ip", ip, "lladdr", nb.HardwareAddr.String())
		}
	}
	for _, ip := range sortedAddrs(p.neighs) {
		if have[ip] {
			continue
		}
		mac := p.neighs[ip]
		fam := netlink.FAMILY_V4
		if ip.Is6() {
			fam = netlink.FAMILY_V6
		}
		nb := &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
		if err := l.h.NeighSet(nb); err != nil {
			errs = append(errs, fmt.Errorf("set neighbour %s lladdr %s dev %s: %w", ip, mac, name, err))
			continue
		}
		l.changed(ctx, "set neighbour", "link", name, "ip", ip, "lladdr", mac.String())
	}
	return errors.Join(errs...)
}

// syncFDB makes the permanent FDB entries on the VTEP exactly the peers'
// MAC -> underlay entries.
func (l *Linux) syncFDB(ctx context.Context, vtep netlink.Link, p plan) error {
	name, idx := vtep.Attrs().Name, vtep.Attrs().Index
	fdb, err := kernelnet.Retry(func() ([]netlink.Neigh, error) { return l.h.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("list fdb of %s: %w", name, err)
	}
	var errs []error
	have := map[string]bool{}
	for _, e := range fdb {
		if e.State&netlink.NUD_PERMANENT == 0 || e.LinkIndex != idx {
			continue
		}
		key := e.HardwareAddr.String()
		dst := kernelnet.AddrOf(e.IP)
		if want, ok := p.fdb[key]; ok && want == dst {
			have[key] = true
			continue
		}
		if err := l.h.NeighDel(&e); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete fdb %s dst %s dev %s: %w", key, dst, name, err))
			continue
		}
		l.changed(ctx, "deleted fdb entry", "link", name, "mac", key, "dst", dst)
	}
	keys := make([]string, 0, len(p.fdb))
	for k := range p.fdb {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if have[key] {
			continue
		}
		dst := p.fdb[key]
		e := &netlink.Neigh{
			LinkIndex:    idx,
			Family:       unix.AF_BRIDGE,
			State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
			Flags:        netlink.NTF_SELF,
			IP:           dst.AsSlice(),
			HardwareAddr: p.macs[key],
		}
		if err := l.h.NeighSet(e); err != nil {
			errs = append(errs, fmt.Errorf("set fdb %s dst %s dev %s: %w", key, dst, name, err))
			continue
		}
		l.changed(ctx, "set fdb entry", "link", name, "mac", key, "dst", dst)
	}
	return errors.Join(errs...)
}

// vtepRoutes lists the routes on the VTEP in the main and rule tables
// that Sync manages: not the kernel's (connected, link-local, multicast).
func (l *Linux) vtepRoutes(vtep netlink.Link) ([]netlink.Route, error) {
	var out []netlink.Route
	for _, table := range []int{mainTable, l.opts.RuleTable} {
		routes, err := kernelnet.Retry(func() ([]netlink.Route, error) {
			return l.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: vtep.Attrs().Index, Table: table}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, fmt.Errorf("list routes of %s in table %d: %w", vtep.Attrs().Name, table, err)
		}
		for _, rt := range routes {
			dst, ok := kernelnet.PrefixOf(rt.Dst)
			if !ok || rt.Protocol == unix.RTPROT_KERNEL || dst.Addr().IsLinkLocalUnicast() || dst.Addr().IsMulticast() {
				continue
			}
			out = append(out, rt)
		}
	}
	return out, nil
}

func (l *Linux) syncRoutes(ctx context.Context, vtep netlink.Link, p plan) error {
	name := vtep.Attrs().Name
	routes, err := l.vtepRoutes(vtep)
	if err != nil {
		return err
	}
	type key struct {
		table int
		dst   netip.Prefix
	}
	want := map[key]netip.Addr{}
	for _, r := range p.routes {
		t := r.table
		if t == 0 {
			t = mainTable
		}
		want[key{t, r.dst}] = r.via
	}
	var errs []error
	// First the routes to keep (one per key), then the others go, except
	// a route with a desired destination and another next hop, which is
	// replaced below.
	have := map[key]bool{}
	keep := make([]bool, len(routes))
	for i, rt := range routes {
		dst, _ := kernelnet.PrefixOf(rt.Dst)
		k := key{rt.Table, dst}
		if via, ok := want[k]; ok && via == kernelnet.AddrOf(rt.Gw) && !have[k] {
			have[k], keep[i] = true, true
		}
	}
	for i, rt := range routes {
		dst, _ := kernelnet.PrefixOf(rt.Dst)
		k := key{rt.Table, dst}
		if _, ok := want[k]; keep[i] || (ok && !have[k]) {
			continue
		}
		if err := l.h.RouteDel(&rt); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete route %s table %d dev %s: %w", dst, rt.Table, name, err))
			continue
		}
		l.changed(ctx, "deleted route", "route", fmtRoute(rt.Table, dst, kernelnet.AddrOf(rt.Gw), name))
	}
	for _, r := range p.routes {
		t := r.table
		if t == 0 {
			t = mainTable
		}
		if have[key{t, r.dst}] {
			continue
		}
		rt := &netlink.Route{
			LinkIndex: vtep.Attrs().Index,
			Dst:       kernelnet.IPNetOf(r.dst),
			Gw:        r.via.AsSlice(),
			Table:     t,
			Protocol:  unix.RTPROT_STATIC,
		}
		// Replace only a route of ours (on the VTEP); one on another
		// device makes the add fail.
		op := l.h.RouteAdd
		if slices.ContainsFunc(routes, func(x netlink.Route) bool { d, _ := kernelnet.PrefixOf(x.Dst); return x.Table == t && d == r.dst }) {
			op = l.h.RouteReplace
		}
		if err := op(rt); err != nil {
			errs = append(errs, fmt.Errorf("add route %s: %w", fmtRoute(t, r.dst, r.via, name), err))
			continue
		}
		l.changed(ctx, "set route", "route", fmtRoute(t, r.dst, r.via, name))
	}
	return errors.Join(errs...)
}

// ourRules lists the rules pointing at the rule table with our priority.
func (l *Linux) ourRules() ([]netlink.Rule, error) {
	rules, err := kernelnet.Retry(func() ([]netlink.Rule, error) {
		return l.h.RuleListFiltered(netlink.FAMILY_ALL, &netlink.Rule{Table: l.opts.RuleTable, Priority: RulePriority}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PRIORITY)
	})
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	return rules, nil
}

func (l *Linux) syncRules(ctx context.Context, want []netip.Prefix) error {
	rules, err := l.ourRules()
	if err != nil {
		return err
	}
	var errs []error
	var have []netip.Prefix
	for _, ru := range rules {
		src, ok := kernelnet.PrefixOf(ru.Src)
		if ok && slices.Contains(want, src) && !slices.Contains(have, src) && ru.Dst == nil && ru.IifName == "" && ru.OifName == "" && ru.Mark == 0 && !ru.Invert {
			have = append(have, src)
			continue
		}
		if err := l.h.RuleDel(&ru); err != nil && !kernelnet.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete rule from %v lookup %d: %w", ru.Src, ru.Table, err))
			continue
		}
		l.changed(ctx, "deleted rule", "from", ru.Src.String(), "table", ru.Table)
	}
	for _, src := range want {
		if slices.Contains(have, src) {
			continue
		}
		ru := netlink.NewRule()
		ru.Family = netlink.FAMILY_V4
		if src.Addr().Is6() {
			ru.Family = netlink.FAMILY_V6
		}
		ru.Src = kernelnet.IPNetOf(src)
		ru.Table = l.opts.RuleTable
		ru.Priority = RulePriority
		if err := l.h.RuleAdd(ru); err != nil {
			errs = append(errs, fmt.Errorf("add rule from %s lookup %d: %w", src, l.opts.RuleTable, err))
			continue
		}
		l.changed(ctx, "added rule", "from", src, "table", l.opts.RuleTable, "priority", RulePriority)
	}
	return errors.Join(errs...)
}

// listNAT returns the normalised listing of the NAT table, nil when it
// does not exist.
func (l *Linux) listNAT(ctx context.Context) ([]string, error) {
	var out []byte
	var stderr bytes.Buffer
	err := l.inNetns(func() error {
		cmd := exec.CommandContext(ctx, "nft", "list", "table", "inet", l.opts.NFTTable)
		cmd.Stderr = &stderr
		var err error
		out, err = cmd.Output()
		return err
	})
	if err != nil {
		if strings.Contains(stderr.String(), "No such file or directory") {
			return nil, nil
		}
		return nil, fmt.Errorf("nft list table inet %s: %w: %s", l.opts.NFTTable, err, strings.TrimSpace(stderr.String()))
	}
	return normalizeNFT(string(out)), nil
}

func (l *Linux) nftInterface() (knftables.Interface, error) {
	if l.nft != nil {
		return l.nft, nil
	}
	err := l.inNetns(func() error {
		var err error
		l.nft, err = knftables.New(knftables.InetFamily, l.opts.NFTTable)
		return err
	})
	if err != nil {
		l.nft = nil
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return l.nft, nil
}

// syncNAT rebuilds the NAT table in one transaction unless it already
// holds n: its comment carries n's digest and, when this Linux rebuilt
// it before, its listing is unchanged since.
func (l *Linux) syncNAT(ctx context.Context, n natPlan) error {
	cur, err := l.listNAT(ctx)
	if err != nil {
		return err
	}
	comment := fmt.Sprintf("comment %q", n.comment())
	if cur != nil && slices.Contains(cur, comment) && (l.nftApplied == "" || l.nftApplied == strings.Join(cur, "\n")) {
		l.nftApplied = strings.Join(cur, "\n")
		return nil
	}
	nft, err := l.nftInterface()
	if err != nil {
		return err
	}
	tx := nft.NewTransaction()
	natTransaction(tx, n)
	if err := l.inNetns(func() error { return nft.Run(ctx, tx) }); err != nil {
		return fmt.Errorf("rebuild nft table inet %s: %w", l.opts.NFTTable, err)
	}
	l.changed(ctx, "rebuilt nft table", "table", "inet "+l.opts.NFTTable, "digest", n.digest(),
		"overlays4", n.overlays4, "overlays6", n.overlays6, "masq4", n.masq4, "masq6", n.masq6)
	if cur, err = l.listNAT(ctx); err != nil {
		return err
	}
	l.nftApplied = strings.Join(cur, "\n")
	return nil
}

// Teardown removes what this package created: the NAT table, the rules
// to the rule table, the VTEP's routes, the marked bridges and the VTEP.
// It is idempotent and leaves sysctls as they are.
func (l *Linux) Teardown(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h == nil {
		return errors.New("teardown: data plane closed")
	}
	if err := l.teardown(ctx); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	return nil
}

func (l *Linux) teardown(ctx context.Context) error {
	var errs []error
	cur, err := l.listNAT(ctx)
	switch {
	case err != nil:
		errs = append(errs, err)
	case cur != nil:
		nft, err := l.nftInterface()
		if err != nil {
			errs = append(errs, err)
			break
		}
		tx := nft.NewTransaction()
		natDeleteTransaction(tx)
		if err := l.inNetns(func() error { return nft.Run(ctx, tx) }); err != nil {
			errs = append(errs, fmt.Errorf("delete nft table inet %s: %w", l.opts.NFTTable, err))
		} else {
			l.changed(ctx, "deleted nft table", "table", "inet "+l.opts.NFTTable)
		}
	}
	l.nftApplied = ""
	errs = append(errs, l.syncRules(ctx, nil))
	links, err := kernelnet.Retry(l.h.LinkList)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list links: %w", err))...)
	}
	for _, link := range links {
		kind := ""
		switch {
		case l.ourVTEP(link):
			kind = "vtep"
			// Its routes, neighbour and FDB entries go with it; table
			// routes too, but say so.
			if routes, err := l.vtepRoutes(link); err == nil {
				for _, rt := range routes {
					dst, _ := kernelnet.PrefixOf(rt.Dst)
					l.log.DebugContext(ctx, "route goes with the vtep", "route", fmtRoute(rt.Table, dst, kernelnet.AddrOf(rt.Gw), link.Attrs().Name))
				}
			}
		case l.ourBridge(link):
			kind = "bridge"
		default:
			continue
		}
		if err := l.h.LinkDel(link); err != nil && !kernelnet.IsLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", kind, link.Attrs().Name, err))
			continue
		}
		l.changed(ctx, "deleted "+kind, "link", link.Attrs().Name)
	}
	l.lastBridges = nil
	l.lastVTEP = ""
	return errors.Join(errs...)
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}
