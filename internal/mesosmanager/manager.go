package mesosmanager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// Options are the parts of a Manager that tests (or an embedding program)
// replace. Zero values build the real ones from the Config.
type Options struct {
	// Log receives the manager's logs. Default: discard.
	Log *slog.Logger
	// Marathon is the Marathon source. Default: NewMarathonSource.
	Marathon MarathonSource
	// Controller is the controller. Default: NewHTTPController.
	Controller Controller
	// Mesos is the Mesos master source of the cleanup module. Default:
	// NewMesosMaster when Config.MesosMaster is set, else no cleanup.
	Mesos MesosSource
	// MesosSubscribe, if set, replaces the operator API stream the cleanup
	// follows with Config.MesosSubscribe.
	MesosSubscribe func(ctx context.Context, fn func(MesosEvent)) error
	// Clock is the time source of grace periods and time stamps. Default:
	// the system clock.
	Clock Clock
}

// Manager is a running `weft mesos-manager` replica: the election, the
// reconciler the leader runs, the optional cleanup module and the
// introspection server.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	rec     *Reconciler
	elector *Elector
	cleanup *Cleanup
	m       *metrics
	handler http.Handler

	mu       sync.Mutex
	listener net.Listener
}

// New builds a Manager from a validated Config.
func New(cfg Config, opts Options) (*Manager, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := opts.Clock
	if clock == nil {
		clock = systemClock{}
	}
	var err error
	src := opts.Marathon
	if src == nil {
		if src, err = NewMarathonSource(cfg, log.With("component", "marathon")); err != nil {
			return nil, err
		}
	}
	ctrl := opts.Controller
	if ctrl == nil {
		if ctrl, err = NewHTTPController(cfg.Controller, nil); err != nil {
			return nil, err
		}
	}
	m := newMetrics()
	mgr := &Manager{cfg: cfg, log: log, m: m}
	mgr.rec = newReconciler(cfg, ctrl, src, log.With("component", "reconciler"), clock, m)
	mesos := opts.Mesos
	subscribe := opts.MesosSubscribe
	if cfg.MesosMaster != "" {
		if cfg.MesosSubscribe && subscribe == nil {
			hc := &http.Client{} // a stream: no overall timeout
			base := cfg.MesosMaster
			subscribe = func(ctx context.Context, fn func(MesosEvent)) error { return subscribeOnce(ctx, hc, base, fn) }
		}
		if !cfg.MesosSubscribe {
			subscribe = nil
			if mesos == nil {
				mesos = NewMesosMaster(cfg.MesosMaster, nil)
			}
		}
	}
	if mesos != nil || subscribe != nil {
		mgr.cleanup = newCleanup(mesos, subscribe, ctrl, time.Duration(cfg.AgentGrace), time.Duration(cfg.MesosPollInterval),
			log.With("component", "cleanup"), clock, m)
		mgr.rec.containerOf = mgr.cleanup.ContainerOf
		mgr.cleanup.releasePort = func(ctx context.Context, p api.Port) error {
			return mgr.rec.releasePort(ctx, p, "agent_removed: node "+p.Node)
		}
	}
	mgr.elector = NewElector(ctrl, cfg.LeaseName, cfg.ID, time.Duration(cfg.LeaseTTL), log.With("component", "election"), clock, mgr.leadershipChanged)
	mgr.handler = mgr.routes()
	return mgr, nil
}

// Reconciler returns the manager's reconciler.
func (m *Manager) Reconciler() *Reconciler { return m.rec }

// Elector returns the manager's elector.
func (m *Manager) Elector() *Elector { return m.elector }

// Cleanup returns the cleanup module, nil without a Mesos master.
func (m *Manager) Cleanup() *Cleanup { return m.cleanup }

// IsLeader tells whether this replica leads now.
func (m *Manager) IsLeader() bool { return m.elector.IsLeader() }

// Handler serves the introspection page, its JSON endpoints and /metrics.
func (m *Manager) Handler() http.Handler { return m.handler }

// Addr is the bound introspection address ("" before Run binds it, or
// when Listen is empty).
func (m *Manager) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listener == nil {
		return ""
	}
	return m.listener.Addr().String()
}

func (m *Manager) leadershipChanged(leading bool) {
	m.m.leaderChanges.Inc()
	if leading {
		m.m.leader.Set(1)
	} else {
		m.m.leader.Set(0)
	}
	m.rec.mu.Lock()
	m.rec.sync.Leader = leading
	m.rec.mu.Unlock()
}

// lead is one leadership term: follow Marathon and, with a Mesos master,
// delete the nodes of removed agents. It returns when the term ends.
func (m *Manager) lead(ctx context.Context) {
	var wg sync.WaitGroup
	if m.cleanup != nil {
		wg.Go(func() { m.cleanup.RunDeletes(ctx) })
	}
	if err := m.rec.Run(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("leader loop stopped; giving the lead up", "err", err)
	}
	wg.Wait()
	// The next term (here or elsewhere) starts from a resync.
	m.rec.reset()
}

// Run runs the replica until ctx ends: the introspection server, the
// observation of the Mesos master, and the election, leading when elected.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if m.cfg.Listen != "" {
		ln, err := net.Listen("tcp", m.cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", m.cfg.Listen, err)
		}
		m.mu.Lock()
		m.listener = ln
		m.mu.Unlock()
		srv := &http.Server{Handler: m.handler, ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error("introspection server stopped", "err", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		})
		m.log.Info("introspection listening", "addr", ln.Addr().String())
	}
	if m.cleanup != nil {
		wg.Go(func() { m.cleanup.Observe(ctx) })
	}
	m.log.Info("mesos-manager started", "id", m.cfg.ID, "marathon", redactList(m.cfg.Marathon), "controller", m.cfg.Controller,
		"networks", m.cfg.Networks, "lease", m.cfg.LeaseName, "lease_ttl", time.Duration(m.cfg.LeaseTTL),
		"mesos_master", redactURL(m.cfg.MesosMaster))
	m.elector.Run(ctx, m.lead)
	return nil
}

func redactList(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return out
}

// Main is `weft mesos-manager`: it parses args (without the program and
// subcommand names), logs to stderr at the configured level, and runs a
// replica until ctx ends. A --help request returns flag.ErrHelp.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := ParseConfig(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.Level()}))
	m, err := New(cfg, Options{Log: log})
	if err != nil {
		return err
	}
	return m.Run(ctx)
}
