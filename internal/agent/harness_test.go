package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
	"github.com/weft-sdn/weft/internal/controller"
	"github.com/weft-sdn/weft/internal/dataplane"
	"github.com/weft-sdn/weft/internal/docker"
	"github.com/weft-sdn/weft/internal/overlaydp"
	"github.com/weft-sdn/weft/internal/store"
)

func TestMain(m *testing.M) {
	// Fast retries keep the tests short.
	retryBackoff = backoff{base: 10 * time.Millisecond, max: 200 * time.Millisecond}
	os.Exit(m.Run())
}

// testLogger logs to stderr with WEFT_TEST_LOG=1, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("WEFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// ctrlProxy sits in front of the controller: it records the allocation
// requests and can pretend the controller is down, or one of an earlier
// version (no port sync, no allocation count).
type ctrlProxy struct {
	h    http.Handler
	down atomic.Bool
	old  atomic.Bool

	mu     sync.Mutex
	allocs []api.AllocateRequest
	counts map[string]int
}

func (p *ctrlProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.down.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"controller down (test)"}`)
		return
	}
	p.mu.Lock()
	p.counts[r.Method+" "+r.URL.Path]++
	p.mu.Unlock()
	if r.Method == http.MethodPost && r.URL.Path == "/v1/ipam/allocate" {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var req api.AllocateRequest
		if json.Unmarshal(b, &req) == nil {
			p.mu.Lock()
			p.allocs = append(p.allocs, req)
			p.mu.Unlock()
		}
		if p.old.Load() && req.Count != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"unknown field \"count\"","field":"count"}`)
			return
		}
	}
	if p.old.Load() && strings.HasSuffix(r.URL.Path, "/port-sync") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"no such endpoint; see docs/api.md"}`)
		return
	}
	p.h.ServeHTTP(w, r)
}

// allocsNotSpare counts the allocations made for a container (not for the
// spare pool).
func (p *ctrlProxy) allocsNotSpare() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.allocs {
		if !strings.HasPrefix(r.Owner, "spare:") {
			n++
		}
	}
	return n
}

// harness is a controller served in-process and a client of it.
type harness struct {
	t      *testing.T
	kv     *store.Memory
	ctrl   *controller.Controller
	proxy  *ctrlProxy
	srv    *httptest.Server
	client *client.Client
}

func newHarness(t *testing.T, mods ...func(*controller.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	cfg := controller.DefaultConfig()
	cfg.TaskSubnets = []string{"10.32.0.0/16"}
	cfg.Quarantine = -1 // released addresses are free at once
	for _, m := range mods {
		m(&cfg)
	}
	kv := store.NewMemory()
	c, err := controller.NewWithStore(ctx, cfg, kv, testLogger())
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	h := &harness{t: t, kv: kv, ctrl: c, proxy: &ctrlProxy{h: c.Server, counts: map[string]int{}}}
	h.srv = httptest.NewServer(h.proxy)
	t.Cleanup(func() {
		h.srv.CloseClientConnections()
		h.srv.Close()
	})
	h.client = client.New(h.srv.URL, nil)
	return h
}

// network creates a network with the subnets.
func (h *harness) network(name string, subnets ...string) api.Network {
	h.t.Helper()
	n := api.Network{Meta: api.Meta{Name: name}}
	for _, s := range subnets {
		n.Subnets = append(n.Subnets, api.Subnet{CIDR: s})
	}
	out, err := h.client.CreateNetwork(context.Background(), n)
	if err != nil {
		h.t.Fatalf("create network %s: %v", name, err)
	}
	return out
}

// reservations lists every reservation straight from the registry (it
// works while the proxy pretends to be down), as sorted strings.
func (h *harness) reservations() []string {
	h.t.Helper()
	objs, _, err := h.ctrl.Registry.List(context.Background(), api.KindIPReservation, nil)
	if err != nil {
		h.t.Fatalf("list reservations: %v", err)
	}
	var out []string
	for _, o := range objs {
		r := o.(*api.IPReservation)
		out = append(out, fmt.Sprintf("%s %s owner=%s node=%s", r.Network, r.Address, r.Owner, r.Node))
	}
	slices.Sort(out)
	return out
}

// reservation finds the reservation of an address.
func (h *harness) reservation(addr string) (api.IPReservation, bool) {
	objs, _, err := h.ctrl.Registry.List(context.Background(), api.KindIPReservation, nil)
	if err != nil {
		h.t.Fatalf("list reservations: %v", err)
	}
	for _, o := range objs {
		if r := o.(*api.IPReservation); r.Address == addr {
			return *r, true
		}
	}
	return api.IPReservation{}, false
}

// ports lists the controller's ports.
func (h *harness) ports() []api.Port {
	objs, _, err := h.ctrl.Registry.List(context.Background(), api.KindPort, nil)
	if err != nil {
		h.t.Fatalf("list ports: %v", err)
	}
	var out []api.Port
	for _, o := range objs {
		out = append(out, *o.(*api.Port))
	}
	return out
}

// agentRun is a running agent.
type agentRun struct {
	t      *testing.T
	a      *Agent
	dp     *dataplane.Fake
	odp    *overlaydp.Fake
	sock   string
	cfg    Config
	cancel context.CancelFunc
	done   chan error
	hc     *http.Client
}

// agentOpts tweak an agent of the harness.
type agentOpts struct {
	name     string
	underlay string
	stateDir string
	dp       *dataplane.Fake
	odp      *overlaydp.Fake
	docker   docker.Engine
	cniDir   string
	spares   int
	resync   time.Duration
	// overlayCheck is the overlay check interval (default 50 ms).
	overlayCheck time.Duration
	noWait       bool
}

// startAgent starts an agent against the harness's controller and waits
// until it is ready.
func (h *harness) startAgent(o agentOpts) *agentRun {
	t := h.t
	t.Helper()
	if o.name == "" {
		o.name = "node1"
	}
	if o.underlay == "" {
		o.underlay = "198.18.0.1"
	}
	if o.stateDir == "" {
		o.stateDir = t.TempDir()
	}
	if o.dp == nil {
		o.dp = dataplane.NewFake()
	}
	// Unix socket paths are short; t.TempDir() may be too long.
	sockDir, err := os.MkdirTemp("", "wa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg := DefaultConfig()
	cfg.NodeName = o.name
	cfg.UnderlayIP = o.underlay
	cfg.Controller = h.srv.URL
	cfg.StateDir = o.stateDir
	cfg.Socket = filepath.Join(sockDir, "s", "agent.sock")
	cfg.PortAPIListen = "127.0.0.1:0"
	cfg.Spares = o.spares
	cfg.HeartbeatInterval = Duration(100 * time.Millisecond)
	if o.resync > 0 {
		cfg.ResyncInterval = Duration(o.resync)
	}
	cfg.DockerHost = ""
	cfg.CNIDir = o.cniDir
	cfg.OverlayCheckInterval = Duration(cmp.Or(o.overlayCheck, 50*time.Millisecond))
	fake := o.dp
	if o.odp == nil {
		o.odp = overlaydp.NewFake()
	}
	a, err := New(cfg, Options{
		Log:    testLogger().With("agent", o.name),
		Client: client.New(h.srv.URL, nil),
		NewDataPlane: func(c dataplane.Config) (DataPlane, error) {
			fake.Config = c
			return fake, nil
		},
		NewOverlayDataPlane: func() (OverlayDataPlane, error) { return o.odp, nil },
		Docker:              o.docker,
	})
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &agentRun{t: t, a: a, dp: fake, odp: o.odp, sock: cfg.Socket, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	r.hc = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", r.sock)
		}},
	}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(r.stop)
	if !o.noWait {
		select {
		case <-a.Ready():
		case err := <-r.done:
			t.Fatalf("agent stopped before it was ready: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("agent not ready: %+v", a.Status())
		}
	}
	return r
}

// stop stops the agent and waits for Run to return. Idempotent.
func (r *agentRun) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("agent run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Errorf("agent did not stop")
	}
	r.hc.CloseIdleConnections()
}

// call makes a local API request; out (when not nil) receives a 2xx body.
func (r *agentRun) call(method, path string, in, out any) (int, api.Error) {
	r.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			r.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://agent"+path, body)
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ae api.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &ae); err != nil {
			r.t.Fatalf("%s %s: %d with a body that is not an error: %q", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			r.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, ae
}

// attach attaches and fails the test on error.
func (r *agentRun) attach(req api.AttachRequest) api.AttachResult {
	r.t.Helper()
	var res api.AttachResult
	if code, ae := r.call("POST", "/v1/attach", req, &res); code != http.StatusOK {
		r.t.Fatalf("attach %s/%s: %d %v", req.ContainerID, req.IfName, code, ae.Message)
	}
	return res
}

// detach detaches and fails the test on error.
func (r *agentRun) detach(containerID, ifName string) {
	r.t.Helper()
	req := api.DetachRequest{ContainerID: containerID, IfName: ifName, Netns: "/run/netns/" + containerID}
	if code, ae := r.call("POST", "/v1/detach", req, nil); code != http.StatusNoContent {
		r.t.Fatalf("detach %s/%s: %d %v", containerID, ifName, code, ae.Message)
	}
}

// dump is the fake data plane's dump.
func (r *agentRun) dump() string {
	r.t.Helper()
	s, err := r.dp.Dump(context.Background())
	if err != nil {
		r.t.Fatalf("dump: %v", err)
	}
	return s
}

// settle waits until the agent has no controller work left and its data
// plane is synced with the desired state.
func (r *agentRun) settle() {
	r.t.Helper()
	eventually(r.t, 10*time.Second, func() (bool, string) {
		if n := r.a.queue.pending(); n > 0 {
			return false, fmt.Sprintf("%d journal entries with controller work", n)
		}
		last := r.a.lastState.Load()
		want := r.a.desiredState()
		if last == nil || !statesEqual(*last, want) {
			return false, "data plane not synced with the desired state"
		}
		return true, ""
	})
}

// statesEqual reports whether two desired states are the same.
func statesEqual(a, b dataplane.State) bool { return reflect.DeepEqual(a, b) }

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// attachReq is a request for container id on eth0.
func attachReq(id string) api.AttachRequest {
	return api.AttachRequest{ContainerID: id, IfName: "eth0", Netns: "/run/netns/" + id, CNINetwork: "weft"}
}

var errTestHook = errors.New("injected data-plane failure")
