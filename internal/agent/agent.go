// Package agent is the node agent: one per Mesos agent. It registers the
// node with the controller and receives its VTEP, follows the controller's
// networks, nodes, blocks and address reservations (list, then watch with
// resume), programs the node's data plane from that and from its local
// journal of attachments, and serves the CNI plugin on a unix socket (the
// local API of api/agent.go) and existing tooling on the Contrail-style
// port API.
//
// The attach path makes no controller call in the common case: addresses
// come from spares the agent reserved ahead of need, the attachment is
// journalled durably before the plugin gets its answer, and the controller
// learns about the port (and the spare changes hands) afterwards, with
// retries. A detach never waits for the controller either, nor for the
// kernel to destroy the interface: the interface is withdrawn (no traffic
// reaches or leaves it), the release is journalled, and the interface is
// destroyed and then the addresses released in the background, so a
// controller outage never makes DEL fail or loses a release, and an address
// is never given out again while its interface exists. An ADD of the same
// container interface waits for that release. An attachment released
// before the background work reported it costs the controller only the
// release of its address.
//
// Local endpoint changes program their own routes (Attach, Withdraw); the
// data plane is synced when networks or their remotes change, and every
// resync interval to repair drift. A network keeps its router namespace for
// routerLinger after a local endpoint of it detached, for its next
// container.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
	"github.com/weft-sdn/weft/internal/dataplane"
	"github.com/weft-sdn/weft/internal/docker"
	"github.com/weft-sdn/weft/internal/keylock"
)

// syncDebounce gathers the changes that arrive together into one sync.
const syncDebounce = 50 * time.Millisecond

// routerLinger is how long a network stays in the desired state after a
// local endpoint of it detached, with or without endpoints left: the next
// container of the network finds its router namespace, VXLAN device and
// remote routes in place instead of having them torn down and made again
// (a crash-looping task would otherwise cost that at every restart). A
// variable for tests.
var routerLinger = time.Minute

// attachReadyWait bounds how long an attach waits for the agent to become
// ready (registered, synced) before it is refused.
const attachReadyWait = 30 * time.Second

// workers finish the controller side of attachments in parallel, each a
// batch of entries at a time.
const workers = 2

// ErrNotReady is returned while the agent cannot serve a request yet.
var ErrNotReady = errors.New("agent not ready")

// Options are the agent's collaborators. Zero values pick the defaults.
type Options struct {
	// Log receives the agent's records; nil discards them.
	Log *slog.Logger
	// Client talks to the controller; nil makes one for Config.Controller.
	Client *client.Client
	// NewDataPlane builds the data plane once the node's VTEP is known;
	// nil builds the Linux data plane.
	NewDataPlane func(cfg dataplane.Config) (DataPlane, error)
	// NewOverlayDataPlane builds the overlay data plane; nil builds the
	// Linux one in the node's namespace.
	NewOverlayDataPlane func() (OverlayDataPlane, error)
	// Docker is the node's Docker engine; nil talks to Config.DockerHost
	// (none when that is empty).
	Docker docker.Engine
}

// Agent is a node agent. Make it with New, run it with Run.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	client  *client.Client
	journal *Journal
	cache   *cache
	spares  *sparePool
	queue   *workQueue
	keys    keylock.Locks
	metrics *metrics
	newDP   func(dataplane.Config) (DataPlane, error)

	spareOwner string

	// dpMu guards the data plane itself: every use holds it shared,
	// installDataPlane exclusively when it replaces it. Uses run in
	// parallel: the data plane orders its own work, and a sync computed
	// from a journal that misses an attachment still being made leaves
	// that attachment's interface alone (see dataplane.Linux.Sync).
	dpMu    sync.RWMutex
	dp      DataPlane
	dpCfg   dataplane.Config
	dpReady chan struct{}
	// lastState is the desired state last applied (nil: apply it again
	// whatever it is).
	lastState atomic.Pointer[dataplane.State]
	// lingering holds the networks whose local endpoints detached
	// recently (see routerLinger).
	lingerMu  sync.Mutex
	lingering map[string]*lingering

	stateMu sync.Mutex
	node    *api.Node
	status  string
	ready   chan struct{}
	synced  chan struct{}

	syncKick  chan struct{}
	spareKick chan struct{}
	// wantSpares lists the networks (uuid) the agent keeps spares for,
	// with the last time a local attachment used each.
	wantMu     sync.Mutex
	wantSpares map[string]time.Time

	// unwritten holds the port uuids of attachments made by this process
	// whose port nobody has tried to write to the controller yet: a
	// release need not delete them there.
	unwritten sync.Map

	// runCtx carries background work started by requests; set by Run.
	runCtx context.Context

	// The overlays: their data plane, the Docker engine, what the loop
	// last did, and its kick.
	newODP      func() (OverlayDataPlane, error)
	odp         OverlayDataPlane
	docker      docker.Engine
	ovl         overlayState
	overlayKick chan struct{}
	// ovlAllocMu serialises the local allocation of overlay addresses;
	// ovlCursor is the last address handed out per network and half.
	ovlAllocMu sync.Mutex
	ovlCursor  map[string]netip.Addr

	localLn, portLn, metricsLn net.Listener
	closeOnce                  sync.Once
}

// New prepares an agent: it loads the journal and binds the local socket
// and the port API and metrics listeners (so that the address is known
// and a second agent fails at once). It starts nothing; call Run, or Close
// when Run will not be called.
func New(cfg Config, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli := opts.Client
	if cli == nil {
		cli = client.New(cfg.Controller, nil)
	}
	newDP := opts.NewDataPlane
	if newDP == nil {
		newDP = newLinuxDataPlane
	}
	a := &Agent{
		cfg:        cfg,
		log:        log,
		client:     cli,
		cache:      newCache(),
		queue:      newWorkQueue(),
		newDP:      newDP,
		spareOwner: "spare:" + cfg.NodeName,
		dpReady:    make(chan struct{}),
		ready:      make(chan struct{}),
		synced:     make(chan struct{}),
		syncKick:   make(chan struct{}, 1),
		spareKick:  make(chan struct{}, 1),
		wantSpares: map[string]time.Time{},
		status:     "starting",
		newODP:     opts.NewOverlayDataPlane,
		docker:     opts.Docker,

		overlayKick: make(chan struct{}, 1),
		ovlCursor:   map[string]netip.Addr{},
	}
	if a.newODP == nil {
		a.newODP = func() (OverlayDataPlane, error) { return newLinuxOverlayDataPlane(cfg.NodeNetns, log) }
	}
	if a.docker == nil && cfg.DockerHost != "" {
		dc, err := docker.NewClient(cfg.DockerHost, time.Duration(cfg.DockerTimeout))
		if err != nil {
			return nil, fmt.Errorf("docker-host: %w", err)
		}
		a.docker = dc
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	j, err := OpenJournal(filepath.Join(cfg.StateDir, "ports"), log)
	if err != nil {
		return nil, err
	}
	a.journal = j
	a.metrics = newMetrics(func() float64 { return float64(j.Len()) })
	a.spares = newSparePool(func(k spareKey, n int) {
		a.metrics.spares.WithLabelValues(k.network, k.family).Set(float64(n))
	})
	if a.localLn, err = listenUnix(cfg.Socket); err != nil {
		return nil, err
	}
	if cfg.PortAPIListen != "" {
		if a.portLn, err = net.Listen("tcp", cfg.PortAPIListen); err != nil {
			a.Close()
			return nil, fmt.Errorf("port api: listen on %s: %w", cfg.PortAPIListen, err)
		}
	}
	if cfg.MetricsListen != "" {
		if a.metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			a.Close()
			return nil, fmt.Errorf("metrics: listen on %s: %w", cfg.MetricsListen, err)
		}
	}
	log.Info("journal loaded", "dir", filepath.Join(cfg.StateDir, "ports"), "entries", j.Len())
	return a, nil
}

// listenUnix binds the local API socket: its directory is made 0700, a
// stale socket file (nobody answering) is removed, the socket is 0600.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket: chmod %s: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket: %s is served by a running agent", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket: remove stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("socket: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket: chmod %s: %w", path, err)
	}
	return ln, nil
}

// Close releases the listeners and the journal. Run closes them itself
// when it returns; Close is for an agent that is never run. Idempotent.
func (a *Agent) Close() {
	a.closeOnce.Do(func() {
		for _, ln := range []net.Listener{a.localLn, a.portLn, a.metricsLn} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		_ = a.journal.Close()
	})
}

// PortAPIAddr is the bound address of the port API, or "" when disabled.
func (a *Agent) PortAPIAddr() string {
	if a.portLn == nil {
		return ""
	}
	return a.portLn.Addr().String()
}

// MetricsAddr is the bound address of the separate metrics listener, or
// "" when metrics share the port API listener.
func (a *Agent) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// Ready is closed once the agent is registered, has followed the
// controller and has synced its data plane.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Node returns the node as registered, or nil before registration.
func (a *Agent) Node() *api.Node {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	if a.node == nil {
		return nil
	}
	n := *a.node
	return &n
}

// Status reports readiness as the local API's GET /v1/status does.
func (a *Agent) Status() api.AgentStatus {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	select {
	case <-a.ready:
		return api.AgentStatus{Ready: true, Node: a.cfg.NodeName}
	default:
		return api.AgentStatus{Ready: false, Reason: a.status, Node: a.cfg.NodeName}
	}
}

func (a *Agent) setStatus(s string) {
	a.stateMu.Lock()
	a.status = s
	a.stateMu.Unlock()
}

// Run runs the agent until ctx ends: it serves the local API and the port
// API, registers the node (retrying until the controller answers), builds
// the data plane, follows the controller, heartbeats, keeps the spare
// pools full, syncs the data plane and finishes the controller side of
// attachments. It returns after every goroutine it started has stopped;
// the error is nil when ctx ended, else what made the agent stop.
func (a *Agent) Run(ctx context.Context) error {
	defer a.Close()
	// Deferred in this order so that, on any return, ctx is cancelled
	// before the goroutines are waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.queue.close()
	a.runCtx = ctx

	a.serve(ctx, &wg)

	// A node registered before is known from the state dir: the data plane
	// comes up at once, so that detaches work while the controller is
	// unreachable.
	if saved, err := a.loadNode(); err != nil {
		a.log.Warn("saved node registration unusable; waiting for the controller", "err", err)
	} else if saved != nil {
		if err := a.installDataPlane(saved); err != nil {
			return err
		}
	}
	for range workers {
		wg.Go(func() { a.workLoop(ctx) })
	}
	for _, e := range a.journal.Entries() {
		if needsWork(e) {
			a.queue.add(e.Key())
		}
	}

	a.setStatus("registering with the controller at " + a.cfg.Controller)
	node, err := a.register(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := a.installDataPlane(node); err != nil {
		return err
	}
	wg.Go(func() { a.heartbeatLoop(ctx) })
	a.setStatus("listing networks, nodes, blocks and reservations")
	wg.Go(func() { a.follow(ctx) })
	select {
	case <-ctx.Done():
		return nil
	case <-a.synced:
	}
	a.rebuildSpares()
	a.setStatus("syncing the data plane")
	wg.Go(func() { a.syncLoop(ctx) })
	wg.Go(func() { a.spareLoop(ctx) })
	if odp, err := a.newODP(); err != nil {
		a.log.Error("overlay data plane unavailable; overlays stay unconfigured", "err", err)
	} else {
		a.odp = odp
		wg.Go(func() { a.overlayLoop(ctx) })
	}
	<-ctx.Done()
	return nil
}

// serve starts the HTTP servers; each stops when ctx ends.
func (a *Agent) serve(ctx context.Context, wg *sync.WaitGroup) {
	local := a.LocalHandler()
	var portMux *http.ServeMux
	if a.portLn != nil {
		portMux = http.NewServeMux()
		portMux.Handle("/", a.PortAPIHandler())
		portMux.Handle("/overlay-agent/overlay", a.OverlayAgentHandler())
		if a.metricsLn == nil {
			portMux.Handle("GET /metrics", a.MetricsHandler())
		}
	}
	start := func(name string, ln net.Listener, h http.Handler) {
		if ln == nil || h == nil {
			return
		}
		hs := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		}
		wg.Go(func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
				a.log.Error("server stopped", "server", name, "err", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		})
		a.log.Info("listening", "server", name, "addr", ln.Addr().String())
	}
	start("local api", a.localLn, local)
	if portMux != nil {
		start("port api", a.portLn, portMux)
	}
	if a.metricsLn != nil {
		start("metrics", a.metricsLn, a.MetricsHandler())
	}
}

// nodePath is where the registration is kept.
func (a *Agent) nodePath() string { return filepath.Join(a.cfg.StateDir, "node.json") }

// loadNode reads the saved registration; nil when there is none or it is
// for another name or underlay address.
func (a *Agent) loadNode() (*api.Node, error) {
	b, err := os.ReadFile(a.nodePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", a.nodePath(), err)
	}
	var n api.Node
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.nodePath(), err)
	}
	if n.FQName != a.cfg.NodeName || n.UnderlayIP != a.underlay().String() {
		return nil, nil
	}
	return &n, nil
}

func (a *Agent) underlay() netip.Addr {
	u, _ := api.ParseAddr(a.cfg.UnderlayIP)
	return u
}

// register registers the node, retrying with a capped exponential backoff
// until the controller answers or ctx ends, and saves the registration.
func (a *Agent) register(ctx context.Context) (*api.Node, error) {
	role := a.cfg.OverlayRole
	req := api.Node{Meta: api.Meta{Kind: api.KindNode, Name: a.cfg.NodeName}, UnderlayIP: a.underlay().String(), OverlayRole: &role}
	for attempt := 0; ; attempt++ {
		n, created, err := a.client.RegisterNode(ctx, req)
		if err == nil {
			a.log.Info("node registered", "node", n.FQName, "created", created, "underlay", n.UnderlayIP, "vtep_ip", n.VTEPIP, "vtep_mac", n.VTEPMAC)
			b, _ := json.MarshalIndent(n, "", "  ")
			if err := writeFileAtomic(a.cfg.StateDir, "node.json", append(b, '\n')); err != nil {
				a.log.Warn("save node registration", "err", err)
			}
			a.stateMu.Lock()
			a.node = &n
			a.stateMu.Unlock()
			return &n, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, api.ErrInvalid) {
			// The controller refuses the node itself: retrying will not
			// help, but the operator may fix the controller side.
			a.log.Error("node registration refused", "node", a.cfg.NodeName, "attempt", attempt+1, "err", err)
		} else {
			a.log.Warn("node registration failed; retrying", "node", a.cfg.NodeName, "controller", a.cfg.Controller, "attempt", attempt+1, "err", err)
		}
		if !sleepCtx(ctx, retryBackoff.delay(attempt)) {
			return nil, ctx.Err()
		}
	}
}

// dataplaneConfig derives the data plane's configuration from the node.
func (a *Agent) dataplaneConfig(n *api.Node) (dataplane.Config, error) {
	vtep, err := netip.ParseAddr(n.VTEPIP)
	if err != nil {
		return dataplane.Config{}, fmt.Errorf("node %s has no usable vtep_ip %q", n.FQName, n.VTEPIP)
	}
	mac, err := net.ParseMAC(n.VTEPMAC)
	if err != nil {
		return dataplane.Config{}, fmt.Errorf("node %s has no usable vtep_mac %q", n.FQName, n.VTEPMAC)
	}
	under, err := netip.ParseAddr(n.UnderlayIP)
	if err != nil {
		under = a.underlay()
	}
	return dataplane.Config{
		NodeNetns:  a.cfg.NodeNetns,
		NamePrefix: a.cfg.RouterNSPrefix,
		VXLANPort:  a.cfg.VXLANPort,
		Underlay:   under,
		VTEPIP:     vtep,
		VTEPMAC:    mac,
		Log:        a.log,
	}, nil
}

// installDataPlane builds the data plane for the node, or rebuilds it when
// the node's VTEP changed.
func (a *Agent) installDataPlane(n *api.Node) error {
	cfg, err := a.dataplaneConfig(n)
	if err != nil {
		return err
	}
	a.dpMu.Lock()
	defer a.dpMu.Unlock()
	if a.dp != nil {
		if a.dpCfg.VTEPIP == cfg.VTEPIP && a.dpCfg.VTEPMAC.String() == cfg.VTEPMAC.String() && a.dpCfg.Underlay == cfg.Underlay {
			return nil
		}
		a.log.Warn("node VTEP changed since the data plane was built; rebuilding it",
			"old_vtep_ip", a.dpCfg.VTEPIP, "new_vtep_ip", cfg.VTEPIP, "old_vtep_mac", a.dpCfg.VTEPMAC, "new_vtep_mac", cfg.VTEPMAC)
	}
	dp, err := a.newDP(cfg)
	if err != nil {
		return fmt.Errorf("build data plane: %w", err)
	}
	first := a.dp == nil
	a.dp, a.dpCfg = dp, cfg
	a.lastState.Store(nil)
	if first {
		close(a.dpReady)
	} else {
		a.kickSync()
	}
	return nil
}

// waitDataPlane waits up to wait for the data plane to be built.
func (a *Agent) waitDataPlane(ctx context.Context, wait time.Duration) error {
	select {
	case <-a.dpReady:
		return nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-a.dpReady:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%w: %s", ErrNotReady, a.Status().Reason)
	}
}

// waitReady waits up to wait for the agent to be ready.
func (a *Agent) waitReady(ctx context.Context, wait time.Duration) error {
	select {
	case <-a.ready:
		return nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-a.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %s", ErrNotReady, a.Status().Reason)
	case <-t.C:
		return fmt.Errorf("%w: %s", ErrNotReady, a.Status().Reason)
	}
}

// heartbeatLoop tells the controller the node is alive. A node the
// controller forgot is registered again.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(a.cfg.HeartbeatInterval))
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := a.client.Heartbeat(ctx, a.cfg.NodeName)
		if errors.Is(err, api.ErrNotFound) && ctx.Err() == nil {
			a.log.Warn("the controller no longer knows this node; registering again", "node", a.cfg.NodeName)
			n, rerr := a.register(ctx)
			if rerr == nil {
				if ierr := a.installDataPlane(n); ierr != nil {
					a.log.Error("rebuild data plane after registering again", "err", ierr)
				}
				a.kickSpares()
			}
			err = rerr
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			a.log.Warn("heartbeat failing", "controller", a.cfg.Controller, "err", err)
		case err != nil:
			a.log.Debug("heartbeat failed", "err", err)
		case failing:
			failing = false
			a.log.Info("heartbeat recovered")
		}
	}
}

// follow keeps the cache in step with the controller: list every watched
// kind, then watch from the list's revision; a broken stream resumes from
// the last revision seen, a compacted one (410) lists again.
func (a *Agent) follow(ctx context.Context) {
	var since int64
	relist := true
	failures := 0
	syncedOnce := false
	for ctx.Err() == nil {
		if relist {
			l, err := a.listAll(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("list from the controller failed; retrying", "attempt", failures+1, "err", err)
				sleepCtx(ctx, retryBackoff.delay(failures))
				failures++
				continue
			}
			since = a.cache.replace(l)
			relist = false
			a.log.Info("controller state listed", "networks", len(l.networks), "nodes", len(l.nodes),
				"blocks", len(l.blocks), "reservations", len(l.reservations), "watch_from", since)
			if syncedOnce {
				a.rebuildSpares()
			} else {
				syncedOnce = true
				close(a.synced)
			}
			a.kickSync()
		}
		err := a.client.WatchKinds(ctx, since, watchedKinds, func(ev api.WatchEvent) error {
			failures = 0
			since = max(since, ev.Revision)
			changed, err := a.cache.apply(ev)
			if err != nil {
				a.log.Warn("skip undecodable watch event", "kind", ev.Kind, "revision", ev.Revision, "err", err)
				return nil
			}
			if changed {
				a.onEvent(ev)
			}
			return nil
		})
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, api.ErrGone):
			a.log.Info("watch revision compacted; listing again", "since", since)
			a.metrics.watchRestarts.WithLabelValues("relist").Inc()
			relist = true
		default:
			a.metrics.watchRestarts.WithLabelValues("resume").Inc()
			if failures == 0 {
				a.log.Info("watch stream ended; resuming", "since", since, "err", err)
			} else {
				a.log.Warn("watch failed; resuming", "since", since, "attempt", failures+1, "err", err)
			}
			sleepCtx(ctx, retryBackoff.delay(failures))
			failures++
		}
	}
}

// listAll lists every watched kind.
func (a *Agent) listAll(ctx context.Context) (listed, error) {
	var l listed
	var err error
	l.revs = map[api.Kind]int64{}
	var rev int64
	if l.networks, rev, err = client.ListItems[api.Network](ctx, a.client, api.KindNetwork.Plural(), nil); err != nil {
		return l, fmt.Errorf("list networks: %w", err)
	}
	l.revs[api.KindNetwork] = rev
	if l.nodes, rev, err = client.ListItems[api.Node](ctx, a.client, api.KindNode.Plural(), nil); err != nil {
		return l, fmt.Errorf("list nodes: %w", err)
	}
	l.revs[api.KindNode] = rev
	if l.blocks, rev, err = client.ListItems[api.Block](ctx, a.client, api.KindBlock.Plural(), nil); err != nil {
		return l, fmt.Errorf("list blocks: %w", err)
	}
	l.revs[api.KindBlock] = rev
	if l.reservations, rev, err = client.ListItems[api.IPReservation](ctx, a.client, api.KindIPReservation.Plural(), nil); err != nil {
		return l, fmt.Errorf("list ip reservations: %w", err)
	}
	l.revs[api.KindIPReservation] = rev
	return l, nil
}

// onEvent reacts to a change the cache applied: spares that went away
// (released, or handed to another owner) leave the pool; the data plane
// is synced.
func (a *Agent) onEvent(ev api.WatchEvent) {
	if ev.Kind == api.KindIPReservation {
		var r api.IPReservation
		if json.Unmarshal(ev.Object, &r) == nil &&
			(ev.Type == api.EventDeleted && r.Owner == a.spareOwner || ev.Type == api.EventModified && r.Owner != a.spareOwner) {
			addr, err := netip.ParseAddr(r.Address)
			if n := a.cache.Network(r.Network); err == nil && n != nil {
				a.spares.remove(n.UUID, addr)
			}
		}
	}
	if ev.Kind == api.KindNode {
		a.overlayKickNow()
	}
	if ev.Kind == api.KindNetwork && ev.Type == api.EventDeleted {
		var n api.Network
		if json.Unmarshal(ev.Object, &n) == nil {
			a.wantMu.Lock()
			delete(a.wantSpares, n.UUID)
			a.wantMu.Unlock()
		}
	}
	a.kickSync()
}

func (a *Agent) kickSync() {
	select {
	case a.syncKick <- struct{}{}:
	default:
	}
}

// lingering is a network kept in the desired state until a time, and the
// timer that has a sync run then.
type lingering struct {
	until time.Time
	end   *time.Timer
}

// desiredState is DesiredState for this node, keeping the networks that
// linger.
func (a *Agent) desiredState() dataplane.State {
	now := time.Now()
	var keep []string
	a.lingerMu.Lock()
	for uuid, l := range a.lingering {
		if now.Before(l.until) {
			keep = append(keep, uuid)
		} else {
			delete(a.lingering, uuid)
		}
	}
	a.lingerMu.Unlock()
	return DesiredState(a.cfg.NodeName, a.cache.Snapshot(), a.journal.Entries(), keep...)
}

// linger keeps the network in the desired state for routerLinger, and
// has a sync run when that ends.
func (a *Agent) linger(networkUUID string) {
	a.lingerMu.Lock()
	defer a.lingerMu.Unlock()
	if a.lingering == nil {
		a.lingering = map[string]*lingering{}
	}
	if l, ok := a.lingering[networkUUID]; ok {
		l.until = time.Now().Add(routerLinger)
		l.end.Reset(routerLinger + syncDebounce)
		return
	}
	a.lingering[networkUUID] = &lingering{until: time.Now().Add(routerLinger), end: time.AfterFunc(routerLinger+syncDebounce, a.kickSync)}
}

// syncAfterDestroy asks for a sync after an interface of the network was
// destroyed: when the network has left the desired state, the last sync
// kept its router namespace for that interface, and this one removes it
// (a sync is forced: the desired state itself has not changed).
func (a *Agent) syncAfterDestroy(networkUUID string) {
	if last := a.lastState.Load(); last != nil && !slices.ContainsFunc(last.Networks, func(ns dataplane.NetworkState) bool {
		return ns.Network.UUID == networkUUID
	}) {
		a.lastState.Store(nil)
	}
	a.kickSync()
}

func (a *Agent) kickSpares() {
	select {
	case a.spareKick <- struct{}{}:
	default:
	}
}

// syncLoop applies the desired state to the data plane: after changes
// (gathered for syncDebounce) that need it, every resync interval to
// repair drift, and again after a failure.
func (a *Agent) syncLoop(ctx context.Context) {
	resync := time.NewTicker(time.Duration(a.cfg.ResyncInterval))
	defer resync.Stop()
	var retry <-chan time.Time
	failures := 0
	force := true // the first sync always runs
	for {
		if err := a.syncOnce(ctx, force); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("data-plane sync failed", "attempt", failures+1, "err", err)
			retry = time.After(retryBackoff.delay(failures))
			failures++
		} else {
			retry, failures = nil, 0
		}
		select {
		case <-ctx.Done():
			return
		case <-a.syncKick:
			force = false
			if !sleepCtx(ctx, syncDebounce) {
				return
			}
			select {
			case <-a.syncKick:
			default:
			}
		case <-resync.C:
			force = true
		case <-retry:
			force = true
		}
	}
}

// syncOnce computes the desired state and applies it when it changed (or
// always, with force). A change of local endpoints alone needs no sync:
// Attach and Withdraw program an endpoint's own routes and neighbour
// entries; only networks appearing or going and changes of their remotes
// do (and the periodic forced sync repairs drift).
func (a *Agent) syncOnce(ctx context.Context, force bool) error {
	a.dpMu.RLock()
	defer a.dpMu.RUnlock()
	if a.dp == nil || !a.cache.Synced() {
		return nil
	}
	state := a.desiredState()
	if last := a.lastState.Load(); !force && last != nil && remotesEqual(*last, state) {
		a.lastState.Store(&state)
		return nil
	}
	if err := a.dp.Sync(ctx, state); err != nil {
		a.metrics.syncs.WithLabelValues("error").Inc()
		a.lastState.Store(nil)
		a.setStatus("data-plane sync failed: " + err.Error())
		return fmt.Errorf("sync data plane: %w", err)
	}
	a.metrics.syncs.WithLabelValues("ok").Inc()
	a.lastState.Store(&state)
	select {
	case <-a.ready:
	default:
		a.stateMu.Lock()
		a.status = ""
		close(a.ready)
		a.stateMu.Unlock()
		a.log.Info("agent ready", "node", a.cfg.NodeName, "networks", len(state.Networks))
	}
	return nil
}
