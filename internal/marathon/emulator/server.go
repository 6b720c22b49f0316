package emulator

import (
	"compress/gzip"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// Defaults of Config.
const (
	DefaultHeartbeat       = 10 * time.Second
	DefaultMaxOutstanding  = 1024
	DefaultMesosBridgeName = "mesos-bridge"
	// Version is the Marathon version the emulator reports in /v2/info.
	Version = "1.10.26"
)

// AgentConfig is one Mesos agent the emulator schedules onto.
type AgentConfig struct {
	// Hostname is the agent's hostname (task "host", status_update_event
	// "host", pod status "agentHostname"). Required.
	Hostname string
	// ID is the agent id (task "slaveId"). Required.
	ID string
	// Region and Zone are reported on tasks when set (fault domain).
	Region, Zone string
	// PortMin and PortMax bound the host ports the agent offers
	// (default 31000-32000, as in the emulator's /state).
	PortMin, PortMax int
	// Agent launches and kills the agent's tasks. Required.
	Agent Agent
}

// Config configures a Server.
type Config struct {
	// Agents are the Mesos agents tasks are placed on.
	Agents []AgentConfig
	// FrameworkID is the Mesos framework id of the tasks and of /v2/info
	// (default: the Mesos agent emulator's DefaultFrameworkID).
	FrameworkID string
	// LeaderURL, when set, makes this node a standby of the leader at
	// that URL ("http://host:port"): /v2/events answers 302 to the leader,
	// every other request is proxied to it (S:api/LeaderProxyFilter.scala).
	// A standby does not schedule.
	LeaderURL string
	// Advertise is this node's "host:port" as reported in /v2/leader,
	// /v2/info and X-Marathon-Leader; default: the Host of each request.
	Advertise string
	// BasicAuth maps users to passwords (--http_credentials); Token is a
	// DC/OS-style token accepted as "Authorization: token=<Token>". With
	// either set every request needs credentials.
	BasicAuth map[string]string
	Token     string
	// Heartbeat is the event stream heartbeat period (default 10 s).
	Heartbeat time.Duration
	// MaxOutstanding is --event_stream_max_outstanding_messages: the
	// per-stream backlog at which a slow consumer is disconnected
	// (default 1024).
	MaxOutstanding int
	// DropSlowEvents reproduces Marathon ≤ 1.7: a full backlog drops the
	// event and keeps the connection.
	DropSlowEvents bool
	// DefaultNetworkName is --default_network_name, used by container
	// networks without a name.
	DefaultNetworkName string
	// MesosBridgeName is --mesos_bridge_name, the CNI network of
	// container/bridge networking (default "mesos-bridge").
	MesosBridgeName string
	// Log receives the emulator's log; nil discards it.
	Log *slog.Logger
	// Now is the clock of versions and event timestamps (default
	// time.Now).
	Now func() time.Time
	// Listen is where ListenAndServe listens: host:port, unix:<path> or
	// an absolute socket path.
	Listen string
}

func (c Config) withDefaults() (Config, error) {
	if c.FrameworkID == "" {
		c.FrameworkID = mesosemu.DefaultFrameworkID
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.MaxOutstanding <= 0 {
		c.MaxOutstanding = DefaultMaxOutstanding
	}
	if c.MesosBridgeName == "" {
		c.MesosBridgeName = DefaultMesosBridgeName
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LeaderURL != "" {
		u, err := url.Parse(c.LeaderURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("leader url %q: want http(s)://host:port", c.LeaderURL)
		}
		c.LeaderURL = strings.TrimRight(c.LeaderURL, "/")
	}
	seen := map[string]bool{}
	for i, a := range c.Agents {
		if a.Hostname == "" || a.ID == "" || a.Agent == nil {
			return c, fmt.Errorf("agent %d: hostname, id and agent are required", i)
		}
		if seen[a.ID] {
			return c, fmt.Errorf("agent %d: duplicate agent id %s", i, a.ID)
		}
		seen[a.ID] = true
		if a.PortMin == 0 && a.PortMax == 0 {
			c.Agents[i].PortMin, c.Agents[i].PortMax = 31000, 32000
		}
		if c.Agents[i].PortMin > c.Agents[i].PortMax || c.Agents[i].PortMin <= 0 || c.Agents[i].PortMax > 65535 {
			return c, fmt.Errorf("agent %s: bad port range %d-%d", a.ID, a.PortMin, a.PortMax)
		}
	}
	return c, nil
}

// Server is a Marathon API emulator. Create it with New, call Start
// (or Serve) with the context that bounds its goroutines, and serve
// Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	bus     *bus
	uuids   *uuidGen
	proxy   *httputil.ReverseProxy
	started atomic.Bool
	ready   atomic.Bool // event streams accept subscribers
	ctx     context.Context

	goMu     sync.Mutex
	stopping bool
	addr     string
	wg       sync.WaitGroup

	mu           sync.Mutex
	agents       []*agentState
	rr           int
	specs        map[string]*runSpec // live apps and pods by id
	instances    map[string]*instance
	tasks        map[string]*mesosTask // by Mesos task id
	deployments  []*deployment
	servicePorts map[int]bool
	seq          int64
	lastVersion  time.Time
	unknown      map[string]bool // foreign containers already killed
}

// New validates cfg and returns a server; nothing runs before Start.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Log,
		uuids:        newUUIDGen(),
		specs:        map[string]*runSpec{},
		instances:    map[string]*instance{},
		tasks:        map[string]*mesosTask{},
		servicePorts: map[int]bool{},
		unknown:      map[string]bool{},
	}
	s.bus = newBus(cfg.MaxOutstanding, cfg.DropSlowEvents, cfg.Log)
	s.ready.Store(true)
	for _, a := range cfg.Agents {
		s.agents = append(s.agents, &agentState{cfg: a, used: map[int]bool{}})
	}
	if cfg.LeaderURL != "" {
		s.proxy = s.newProxy()
	}
	return s, nil
}

// Standby reports whether this node is a standby (LeaderURL set).
func (s *Server) Standby() bool { return s.cfg.LeaderURL != "" }

// Start starts the server's goroutines (agent watchers and the
// relaunch timer); they stop when ctx is done. Call Wait after that.
func (s *Server) Start(ctx context.Context) error {
	if s.started.Load() {
		return errors.New("marathon emulator already started")
	}
	s.ctx = ctx
	s.started.Store(true)
	if s.Standby() {
		return nil
	}
	for _, ag := range s.agents {
		s.spawn(func(ctx context.Context) { s.watchAgent(ctx, ag) })
	}
	s.spawn(s.timerLoop)
	s.log.Info("marathon emulator started", "agents", len(s.agents), "framework_id", s.cfg.FrameworkID)
	return nil
}

// Wait waits for the goroutines started by Start to stop (after its
// context is done).
func (s *Server) Wait() {
	s.goMu.Lock()
	s.stopping = true
	s.goMu.Unlock()
	s.wg.Wait()
}

// spawn runs fn in a goroutine owned by the server.
func (s *Server) spawn(fn func(ctx context.Context)) {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	if s.stopping || !s.started.Load() || s.ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

func (s *Server) watchAgent(ctx context.Context, ag *agentState) {
	for {
		err := ag.cfg.Agent.Watch(ctx, func(c mesosemu.Container) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.observeLocked(ag, c)
			s.advanceLocked()
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("agent watch ended; restarting", "agent", ag.cfg.ID, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// timerLoop relaunches instances whose backoff expired and places
// instances that found no agent yet.
func (s *Server) timerLoop(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		s.tickLocked(time.Now())
		s.advanceLocked()
		s.mu.Unlock()
	}
}

// Serve starts the server, serves its API on ln until ctx is done, then
// shuts down (event streams are closed) and waits for its goroutines.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	s.goMu.Lock()
	s.addr = ln.Addr().String()
	s.goMu.Unlock()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	s.Wait()
	return err
}

// ListenAndServe listens on Config.Listen and serves like Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := mesosemu.Listen(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Addr returns the listener address of a server started by
// ListenAndServe or Serve; empty before.
func (s *Server) Addr() string {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	return s.addr
}

// Handler returns the HTTP API: authentication, then standby handling
// (redirect or proxy to the leader), then Marathon's endpoints.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// LabCloseStreamsPath is the emulator's own (non-Marathon) endpoint that
// cuts every open event stream at once, as a leader loss or a network
// fault would: POST it to test a client's reconnect and resync.
const LabCloseStreamsPath = "/lab/v1/close-event-streams"

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == LabCloseStreamsPath && r.Method == http.MethodPost {
		s.CloseEventStreams()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h := w.Header()
	if !s.Standby() || r.URL.Path == "/v2/events" {
		// Proxied answers carry the leader's headers.
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Pragma", "no-cache")
		h.Set("Expires", "0")
	}
	if !s.authorized(r) {
		if len(s.cfg.BasicAuth) > 0 {
			h.Set("WWW-Authenticate", `basic realm="Mesosphere"`)
		} else {
			h.Set("WWW-Authenticate", "acsjwt")
		}
		htmlError(w, r, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if !s.started.Load() {
		s.writeJSON(w, r, http.StatusServiceUnavailable, ErrorBody{Message: "Marathon emulator not started"})
		return
	}
	if s.Standby() {
		s.serveStandby(w, r)
		return
	}
	h.Set("X-Marathon-Leader", "http://"+s.self(r))
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-XSS-Protection", "1; mode=block")
	s.route(w, r)
}

// self is this node's host:port.
func (s *Server) self(r *http.Request) string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	return r.Host
}

func (s *Server) authorized(r *http.Request) bool {
	if len(s.cfg.BasicAuth) == 0 && s.cfg.Token == "" {
		return true
	}
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "token="); ok && s.cfg.Token != "" {
		return subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if want, ok := s.cfg.BasicAuth[user]; ok {
			return subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1
		}
	}
	return false
}

// serveStandby answers /v2/events with a 302 to the leader (query
// string kept) and proxies everything else, adding X-Marathon-Via.
func (s *Server) serveStandby(w http.ResponseWriter, r *http.Request) {
	via := "1.1 " + s.self(r)
	for _, v := range r.Header.Values("X-Marathon-Via") {
		for _, hop := range strings.Split(v, ",") {
			if strings.TrimSpace(hop) == via {
				htmlError(w, r, http.StatusBadGateway, "Detected proxying loop.")
				return
			}
		}
	}
	if r.URL.Path == "/v2/events" {
		w.Header().Set("Location", s.cfg.LeaderURL+r.URL.RequestURI())
		w.WriteHeader(http.StatusFound)
		return
	}
	s.proxy.ServeHTTP(w, r)
}

func (s *Server) newProxy() *httputil.ReverseProxy {
	leader, _ := url.Parse(s.cfg.LeaderURL)
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(leader)
			pr.Out.Header.Add("X-Marathon-Via", "1.1 "+s.self(pr.In))
		},
		ModifyResponse: func(resp *http.Response) error {
			if via := resp.Request.Header.Values("X-Marathon-Via"); len(via) > 0 {
				resp.Header.Add("X-Marathon-Via", via[len(via)-1])
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("proxying to the leader failed", "leader", s.cfg.LeaderURL, "err", err)
			w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
			htmlError(w, r, http.StatusBadGateway, "Connection to leader refused.")
		},
	}
}

// writeJSON writes v (or a pre-rendered []byte) as JSON, gzipped when
// the client accepts it (Marathon's --http_compression default).
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, ok := v.([]byte)
	if !ok {
		var err error
		if body, err = marshal(v); err != nil {
			s.log.Error("encode response", "err", err)
			code = http.StatusInternalServerError
			body = []byte(`{"message":"internal error"}`)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if len(body) >= 256 && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		w.WriteHeader(code)
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(body)
		_ = zw.Close()
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// CloseEventStreams closes every event stream, as a leader that loses
// leadership does (event_stream_detached is published for each).
func (s *Server) CloseEventStreams() { s.bus.closeAll() }

// SetEventStreamsReady toggles the "not ready" state in which new event
// stream connections get 200 followed by EOF (a node elected but not yet
// ready).
func (s *Server) SetEventStreamsReady(ready bool) { s.ready.Store(ready) }
