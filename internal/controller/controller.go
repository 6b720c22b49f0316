// Package controller is Weft's source of truth: the /v1 resource API over
// etcd, the IPAM server endpoints, the watch stream agents follow, and the
// operational endpoints (/healthz, /readyz, /metrics).
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/weft-sdn/weft/internal/ipam"
	"github.com/weft-sdn/weft/internal/store"
)

// Controller is a running controller: its store, registry and API server.
type Controller struct {
	cfg      Config
	log      *slog.Logger
	embedded *store.Embedded
	kv       store.KV
	Registry *Registry
	Server   *Server
	am       addressManager
	listener net.Listener
	unix     net.Listener
}

// New opens the store (starting the embedded etcd unless endpoints are
// configured), creates the defaults and binds the API listener.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Controller, error) {
	c := &Controller{cfg: cfg, log: log}
	var err error
	if len(cfg.EtcdEndpoints) > 0 {
		c.kv, err = store.DialEtcd(ctx, cfg.EtcdEndpoints, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("connect to etcd %v: %w", cfg.EtcdEndpoints, err)
		}
		log.Info("using external etcd", "endpoints", cfg.EtcdEndpoints)
	} else {
		c.embedded, err = store.StartEmbedded(ctx, store.EmbedConfig{DataDir: filepath.Join(cfg.DataDir, "etcd"), ClientURL: cfg.EtcdListen})
		if err != nil {
			return nil, fmt.Errorf("start embedded etcd: %w", err)
		}
		c.kv = c.embedded.LocalClient()
		log.Info("embedded etcd started", "data_dir", cfg.DataDir, "endpoints", c.embedded.Endpoints())
	}
	c2, err := NewWithStore(ctx, cfg, c.kv, log)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.Registry, c.Server, c.am = c2.Registry, c2.Server, c2.am
	c.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if cfg.ListenUnix != "" {
		_ = os.Remove(cfg.ListenUnix) // a stale socket of an earlier run
		if c.unix, err = net.Listen("unix", cfg.ListenUnix); err != nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: %w", cfg.ListenUnix, err)
		}
		if err := os.Chmod(cfg.ListenUnix, 0o600); err != nil {
			c.Close()
			return nil, fmt.Errorf("restrict %s: %w", cfg.ListenUnix, err)
		}
	}
	return c, nil
}

// NewWithStore builds the registry and the API over an open store and
// creates the defaults; it binds no listener (tests serve Server with
// httptest).
func NewWithStore(ctx context.Context, cfg Config, kv store.KV, log *slog.Logger) (*Controller, error) {
	vteps, err := ParseVTEPPool(cfg.VTEPSubnet, cfg.VTEPMACOUI)
	if err != nil {
		return nil, err
	}
	ocfg, err := cfg.Overlay()
	if err != nil {
		return nil, err
	}
	var plan *overlayPlan
	if ocfg != nil {
		if plan, vteps, err = newOverlayPlan(*ocfg); err != nil {
			return nil, fmt.Errorf("overlay configuration: %w", err)
		}
	}
	am := ipam.New(kv, ipam.Config{Quarantine: time.Duration(cfg.Quarantine)})
	reg := NewRegistry(kv, am, vteps, nil, log)
	reg.overlay = plan
	if err := reg.EnsureDefaults(ctx, toSubnets(cfg.TaskSubnets), toSubnets(cfg.FabricSubnets)); err != nil {
		return nil, err
	}
	if err := reg.EnsureOverlayNetworks(ctx); err != nil {
		return nil, err
	}
	srv := NewServer(reg, am, kv, log)
	srv.SetReady(true)
	return &Controller{cfg: cfg, log: log, kv: kv, Registry: reg, Server: srv, am: am}, nil
}

// Addr is the bound API address.
func (c *Controller) Addr() string { return c.listener.Addr().String() }

// EtcdEndpoints are the client URLs of the store (embedded or external).
func (c *Controller) EtcdEndpoints() []string {
	if c.embedded != nil {
		return c.embedded.Endpoints()
	}
	return c.cfg.EtcdEndpoints
}

// Serve answers API requests until ctx is done, then shuts down
// gracefully: readiness goes false, open watch streams end, in-flight
// requests finish within the shutdown timeout.
func (c *Controller) Serve(ctx context.Context) error {
	streams, endStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer endStreams()
	hs := &http.Server{
		Handler:           c.Server,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return streams },
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(c.listener) }()
	if c.unix != nil {
		go func() { errc <- hs.Serve(c.unix) }()
		c.log.Info("controller API listening", "addr", c.cfg.ListenUnix)
	}
	loops, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	go c.pruneLoop(loops)
	if c.cfg.NodeGrace > 0 {
		go c.nodeGCLoop(loops)
	}
	c.log.Info("controller API listening", "addr", c.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	c.log.Info("shutting down")
	c.Server.SetReady(false)
	endStreams()
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.cfg.ShutdownTimeout))
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// pruneLoop drops expired quarantine records now and then, so that large
// IPv6 subnets do not pile them up. Every replica may run it: deletes are
// conditional and idempotent.
func (c *Controller) pruneLoop(ctx context.Context) {
	every := max(time.Duration(c.cfg.Quarantine), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := c.am.PruneQuarantine(ctx, ""); err != nil {
			c.log.Warn("prune quarantine", "err", err)
		} else if n > 0 {
			c.log.Debug("pruned quarantine records", "count", n)
		}
	}
}

// nodeGCLoop deletes nodes gone longer than the grace period, freeing
// their VTEPs, overlay subnets and addresses. Every replica may run it:
// each delete is conditional, so a node is freed once.
func (c *Controller) nodeGCLoop(ctx context.Context) {
	grace := time.Duration(c.cfg.NodeGrace)
	every := min(max(grace/10, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.Registry.CollectGoneNodes(ctx, grace); err != nil {
			c.log.Warn("collect gone nodes", "err", err)
		}
	}
}

// Close releases the store and stops the embedded etcd. Idempotent.
func (c *Controller) Close() {
	if c.listener != nil {
		_ = c.listener.Close()
	}
	if c.unix != nil {
		_ = c.unix.Close()
	}
	if c.kv != nil {
		_ = c.kv.Close()
		c.kv = nil
	}
	if c.embedded != nil {
		c.embedded.Close()
	}
}
