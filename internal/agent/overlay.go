package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/docker"
	"github.com/weft-sdn/weft/internal/overlay"
	"github.com/weft-sdn/weft/internal/overlaydp"
)

// The agent's part in the DC/OS-style overlays (the overlay agent module
// and dcos-net together): it programs the node's VTEP and the routes to
// every peer's subnets, bridges the Mesos half, writes a CNI
// configuration per overlay into the CNI directory, creates the Docker
// network of the Docker half when a Docker engine runs, and reports each
// overlay's status to the controller. The loop runs after every change of
// the nodes that concerns the overlays (not a heartbeat) and every overlay
// check interval, so a Docker engine that stops turns the overlay FAILED
// and one that comes back recovers it.

// OverlayDataPlane is what the agent needs of the overlay data plane; the
// Linux and fake implementations of package overlaydp provide it.
type OverlayDataPlane interface {
	Sync(ctx context.Context, s overlaydp.State) error
	Attach(ctx context.Context, ep overlaydp.Endpoint) (overlaydp.Endpoint, error)
	Detach(ctx context.Context, ep overlaydp.Endpoint) error
	Check(ctx context.Context, ep overlaydp.Endpoint) error
	Dump(ctx context.Context) (string, error)
	Teardown(ctx context.Context) error
}

// overlayState is what the overlay loop last did, for
// /overlay-agent/overlay.
type overlayState struct {
	mu       sync.Mutex
	info     overlay.AgentInfo
	attempts int
	// dockerSeen is set once a Docker engine answered: from then on an
	// engine that does not answer fails the overlays' Docker halves.
	dockerSeen    bool
	lastDockerErr error
	// last is the desired state of the last successful sync (nil: sync
	// again), lastOverlays the node's overlays the last pass worked from;
	// only the loop's goroutine uses them.
	last         *overlaydp.State
	lastOverlays []api.NodeOverlay
}

func (a *Agent) overlayKickNow() {
	select {
	case a.overlayKick <- struct{}{}:
	default:
	}
}

// dockerSeenPath marks that this node runs a Docker engine.
func (a *Agent) dockerSeenPath() string { return filepath.Join(a.cfg.StateDir, "docker-engine-seen") }

// overlayLoop keeps the overlays configured: after node changes that
// concern them, and every overlay check interval (which also retries a
// failure).
func (a *Agent) overlayLoop(ctx context.Context) {
	if _, err := os.Stat(a.dockerSeenPath()); err == nil {
		a.ovl.dockerSeen = true
	}
	t := time.NewTicker(time.Duration(a.cfg.OverlayCheckInterval))
	defer t.Stop()
	resync := time.NewTicker(time.Duration(a.cfg.ResyncInterval))
	defer resync.Stop()
	force, kicked := true, false
	for {
		a.overlayOnce(ctx, force, kicked)
		force, kicked = false, false
		select {
		case <-ctx.Done():
			return
		case <-a.overlayKick:
			if !sleepCtx(ctx, syncDebounce) {
				return
			}
			kicked = true
		case <-t.C:
		case <-resync.C:
			force = true // repair drift
		}
	}
}

// syncOverlay applies the desired overlay data plane when it changed
// since the last successful sync, or always with force. It returns the
// error of the sync.
func (a *Agent) syncOverlay(ctx context.Context, state overlaydp.State, force bool) error {
	if !force && a.ovl.last != nil && reflect.DeepEqual(*a.ovl.last, state) {
		return nil
	}
	if err := a.odp.Sync(ctx, state); err != nil {
		a.ovl.last = nil
		return err
	}
	a.ovl.last = &state
	return nil
}

// overlayOnce configures the overlays once and reports their status;
// force syncs the data plane even when the desired state is unchanged.
// kicked (woken by a node change) does nothing when neither the desired
// state nor the node's overlays changed since the last pass: nodes change
// with every heartbeat, and the check interval looks at the rest (the
// Docker engine, the CNI files).
func (a *Agent) overlayOnce(ctx context.Context, force, kicked bool) {
	if a.odp == nil {
		return
	}
	snap := a.cache.Snapshot()
	self := snap.Nodes[a.cfg.NodeName]
	if self == nil || self.OverlayBackend == nil {
		return
	}
	state, err := DesiredOverlayState(self, snap.Nodes, a.underlay(), a.cfg.overlayOptions())
	if kicked && err == nil && a.ovl.last != nil && reflect.DeepEqual(*a.ovl.last, state) && reflect.DeepEqual(a.ovl.lastOverlays, self.Overlays) {
		return
	}
	a.ovl.lastOverlays = self.Overlays
	status := map[string][]string{}
	fail := func(name string, err error) { status[name] = append(status[name], err.Error()) }
	if err == nil {
		err = a.syncOverlay(ctx, state, force)
	}
	if err != nil {
		a.log.Warn("overlay data plane sync failed", "err", err)
		for _, o := range self.Overlays {
			fail(o.Name, fmt.Errorf("data plane: %w", err))
		}
	}
	engineUp := a.checkDocker(ctx, self)
	infos := overlay.NodeAgentInfo(self, nil)
	var rep api.OverlayStatusReport
	for i, o := range self.Overlays {
		if o.Subnet == "" && o.Subnet6 == "" {
			continue // the controller's failure, reported by the controller
		}
		if err := a.writeOverlayCNI(o, infos.Overlays[i]); err != nil {
			fail(o.Name, err)
		}
		if err := a.ensureDockerNetwork(ctx, o, engineUp); err != nil {
			fail(o.Name, err)
		}
		s := api.OverlayStatus{Name: o.Name, Status: api.OverlayOK}
		if errs := status[o.Name]; len(errs) > 0 {
			s.Status, s.Error = api.OverlayFailed, strings.Join(errs, "; ")
		}
		rep.Overlays = append(rep.Overlays, s)
		infos.Overlays[i].State = &overlay.OverlayState{Status: overlay.DCOSStatus(s.Status), Error: s.Error}
	}
	if overlayReportNeeded(self, rep) {
		if _, err := a.client.ReportOverlayStatus(ctx, a.cfg.NodeName, rep); err != nil && ctx.Err() == nil {
			a.log.Warn("report overlay status", "err", err)
		} else {
			for _, s := range rep.Overlays {
				a.log.Info("overlay status", "overlay", s.Name, "status", s.Status, "error", s.Error)
			}
		}
	}
	a.ovl.mu.Lock()
	a.ovl.attempts++
	infos.ConfigurationAttempts = a.ovl.attempts
	a.ovl.info = infos
	a.ovl.mu.Unlock()
}

// overlayReportNeeded reports whether the controller's view of the
// node's overlays differs from rep.
func overlayReportNeeded(self *api.Node, rep api.OverlayStatusReport) bool {
	for _, s := range rep.Overlays {
		i := slices.IndexFunc(self.Overlays, func(o api.NodeOverlay) bool { return o.Name == s.Name })
		if i < 0 || self.Overlays[i].Status != s.Status || self.Overlays[i].Error != s.Error {
			return true
		}
	}
	return false
}

// overlayOptions are the agent settings DesiredOverlayState needs.
type overlayOptions struct {
	MTU  int
	IPv6 bool
}

func (c Config) overlayOptions() overlayOptions {
	return overlayOptions{MTU: c.OverlayMTU, IPv6: c.OverlayIPv6}
}

// DesiredOverlayState computes the overlay data plane of node self: its
// VTEP, its overlays (the Mesos half bridged when the role has it) and
// every other node with a VTEP and overlay subnets as a peer.
func DesiredOverlayState(self *api.Node, nodes map[string]*api.Node, underlay netip.Addr, opts overlayOptions) (overlaydp.State, error) {
	var st overlaydp.State
	b := self.OverlayBackend
	if b == nil {
		return st, nil
	}
	vtep4, err := netip.ParseAddr(self.VTEPIP)
	if err != nil {
		return st, fmt.Errorf("node %s has no usable vtep_ip %q", self.FQName, self.VTEPIP)
	}
	mac, err := net.ParseMAC(self.VTEPMAC)
	if err != nil {
		return st, fmt.Errorf("node %s has no usable vtep_mac %q", self.FQName, self.VTEPMAC)
	}
	st.VTEP = overlaydp.VTEP{Name: b.VTEPName, VNI: b.VNI, Port: b.Port, MTU: b.MTU, MAC: mac, IP: netip.PrefixFrom(vtep4, b.VTEPPrefix), Underlay: underlay}
	if a, err := netip.ParseAddr(self.VTEPIP6); err == nil && opts.IPv6 {
		st.VTEP.IP6 = netip.PrefixFrom(a, b.VTEPPrefix6)
	}
	for _, o := range self.Overlays {
		if o.Subnet == "" && o.Subnet6 == "" {
			continue
		}
		ov := overlaydp.Overlay{Name: o.Name, MTU: opts.MTU, NAT: true}
		ov.Subnet, ov.AgentSubnet = parsePrefixOrZero(o.OverlaySubnet), parsePrefixOrZero(o.Subnet)
		if opts.IPv6 {
			ov.Subnet6, ov.AgentSubnet6 = parsePrefixOrZero(o.OverlaySubnet6), parsePrefixOrZero(o.Subnet6)
		}
		if m := o.MesosBridge; m != nil {
			ov.MesosBridge = m.Name
			ov.MesosHalf = parsePrefixOrZero(m.IP)
			if opts.IPv6 {
				ov.MesosHalf6 = parsePrefixOrZero(m.IP6)
			}
		}
		st.Overlays = append(st.Overlays, ov)
	}
	for _, n := range nodes {
		if n.FQName == self.FQName || n.OverlayBackend == nil {
			continue
		}
		p := overlaydp.Peer{Node: n.FQName}
		var err1, err2, err3 error
		p.Underlay, err1 = netip.ParseAddr(n.UnderlayIP)
		p.VTEPIP, err2 = netip.ParseAddr(n.VTEPIP)
		p.MAC, err3 = net.ParseMAC(n.VTEPMAC)
		if err1 != nil || err2 != nil || err3 != nil || p.Underlay == underlay {
			continue
		}
		if a, err := netip.ParseAddr(n.VTEPIP6); err == nil && opts.IPv6 {
			p.VTEPIP6 = a
		}
		for _, o := range n.Overlays {
			if s := parsePrefixOrZero(o.Subnet); s.IsValid() {
				p.Subnets = append(p.Subnets, s)
			}
			if s := parsePrefixOrZero(o.Subnet6); s.IsValid() && p.VTEPIP6.IsValid() {
				p.Subnets = append(p.Subnets, s)
			}
		}
		if len(p.Subnets) == 0 {
			continue
		}
		st.Peers = append(st.Peers, p)
	}
	slices.SortFunc(st.Peers, func(x, y overlaydp.Peer) int { return strings.Compare(x.Node, y.Node) })
	return st, nil
}

func parsePrefixOrZero(s string) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// writeOverlayCNI writes <cni_dir>/<overlay>.conf for an overlay with a
// Mesos half, when the content changed.
func (a *Agent) writeOverlayCNI(o api.NodeOverlay, aoi overlay.AgentOverlayInfo) error {
	if a.cfg.CNIDir == "" || o.MesosBridge == nil {
		return nil
	}
	data, err := overlay.MesosCNIConfig(overlay.CNIOptions{
		Mode:        overlay.CNIMode(a.cfg.OverlayCNI),
		Overlay:     aoi,
		MTU:         a.cfg.OverlayMTU,
		DataDir:     a.cfg.CNIDataDir,
		DisableIPv6: !a.cfg.OverlayIPv6,
		Socket:      a.cfg.Socket,
		Network:     o.Network,
	})
	if errors.Is(err, overlay.ErrNoMesosNetwork) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cni config: %w", err)
	}
	data = append(data, '\n')
	name := overlay.CNIFileName(o.Name)
	if cur, err := os.ReadFile(filepath.Join(a.cfg.CNIDir, name)); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	if err := os.MkdirAll(a.cfg.CNIDir, 0o755); err != nil {
		return fmt.Errorf("failed to write CNI config: %w", err)
	}
	if err := writeFileAtomic(a.cfg.CNIDir, name, data); err != nil {
		return fmt.Errorf("failed to write CNI config: %w", err)
	}
	a.log.Info("overlay CNI config written", "overlay", o.Name, "path", filepath.Join(a.cfg.CNIDir, name), "mode", a.cfg.OverlayCNI)
	return nil
}

// checkDocker pings the node's Docker engine when any overlay has a
// Docker half; it reports whether the engine answered.
func (a *Agent) checkDocker(ctx context.Context, self *api.Node) bool {
	if a.docker == nil || !slices.ContainsFunc(self.Overlays, func(o api.NodeOverlay) bool { return o.DockerBridge != nil }) {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := a.docker.Ping(pctx)
	a.ovl.mu.Lock()
	defer a.ovl.mu.Unlock()
	if err != nil {
		a.ovl.lastDockerErr = err
		return false
	}
	a.ovl.lastDockerErr = nil
	if !a.ovl.dockerSeen {
		a.ovl.dockerSeen = true
		if err := os.WriteFile(a.dockerSeenPath(), []byte(a.cfg.DockerHost+"\n"), 0o600); err != nil {
			a.log.Warn("remember the docker engine", "err", err)
		}
		a.log.Info("docker engine found", "host", a.cfg.DockerHost)
	}
	return true
}

// ensureDockerNetwork creates the overlay's Docker network when the
// engine runs. An engine that ran on this node once and no longer answers
// fails the overlay; a node that never ran one has nothing to do.
func (a *Agent) ensureDockerNetwork(ctx context.Context, o api.NodeOverlay, engineUp bool) error {
	if a.docker == nil || o.DockerBridge == nil {
		return nil
	}
	if !engineUp {
		a.ovl.mu.Lock()
		seen, lastErr := a.ovl.dockerSeen, a.ovl.lastDockerErr
		a.ovl.mu.Unlock()
		if !seen {
			return nil
		}
		return fmt.Errorf("docker engine at %s is not running (%v): the Docker network %s cannot be checked or created", a.cfg.DockerHost, lastErr, o.Name)
	}
	spec := docker.NetworkSpec{
		Name:       o.Name,
		BridgeName: o.DockerBridge.Name,
		MTU:        a.cfg.OverlayMTU,
		Subnet:     parsePrefixOrZero(o.DockerBridge.IP),
		Labels:     map[string]string{"io.weft.overlay": o.Name},
	}
	if a.cfg.OverlayIPv6 {
		spec.Subnet6 = parsePrefixOrZero(o.DockerBridge.IP6)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.DockerTimeout))
	defer cancel()
	created, err := docker.EnsureNetwork(cctx, a.docker, spec)
	if err != nil {
		return fmt.Errorf("docker network %s: %w", o.Name, err)
	}
	if created {
		a.log.Info("docker network created", "network", o.Name, "bridge", spec.BridgeName, "subnet", spec.Subnet, "subnet6", spec.Subnet6, "mtu", spec.MTU)
	}
	return nil
}

// OverlayAgentHandler serves DC/OS's GET /overlay-agent/overlay: the
// node's overlays with their status (and error). Like DC/OS, it answers
// 415 to a client that accepts neither application/json nor
// application/x-protobuf; it answers JSON only.
func (a *Agent) OverlayAgentHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if !acceptsJSON(r.Header.Values("Accept")) {
			http.Error(w, "Client needs to support either application/json or application/x-protobuf", http.StatusUnsupportedMediaType)
			return
		}
		a.ovl.mu.Lock()
		info := a.ovl.info
		a.ovl.mu.Unlock()
		if info.IP == "" {
			info = overlay.AgentInfo{IP: a.underlay().String(), Overlays: []overlay.AgentOverlayInfo{}}
		}
		writeLocalJSON(w, http.StatusOK, info)
	})
}

// acceptsJSON reports whether Accept headers allow a JSON answer (no
// header allows anything).
func acceptsJSON(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
			switch strings.ToLower(mt) {
			case "application/json", "application/*", "*/*", "application/x-protobuf":
				return true
			}
		}
	}
	return false
}
