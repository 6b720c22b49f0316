package mesosmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
)

// fakeMarathonServer is an httptest Marathon: fixture-shaped JSON for
// /v2/apps, /v2/apps/{id} and /v2/pods, and an event stream with
// Marathon's framing (CRLF, event: line, attached event first, blank-line
// heartbeats) that tests feed and cut.
type fakeMarathonServer struct {
	mu      sync.Mutex
	apps    string // the JSON of the apps list, without the wrapper
	streams []chan string
	conns   int
	srv     *httptest.Server
}

func newFakeMarathonServer(t *testing.T, apps string) *fakeMarathonServer {
	f := &fakeMarathonServer{apps: apps}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/apps", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"apps":%s}`, f.apps)
	})
	mux.HandleFunc("GET /v2/apps/{id...}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var apps []map[string]any
		_ = json.Unmarshal([]byte(f.apps), &apps)
		for _, a := range apps {
			if a["id"] == "/"+r.PathValue("id") {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"app": a})
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":"App '/%s' does not exist"}`, r.PathValue("id"))
	})
	mux.HandleFunc("HEAD /v2/pods", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v2/pods/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("rest") == "::status" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "[]")
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"Pod does not exist"}`)
	})
	mux.HandleFunc("GET /v2/events", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		ch := make(chan string, 64)
		f.mu.Lock()
		f.streams = append(f.streams, ch)
		f.conns++
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream;charset=UTF-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
		fl := w.(http.Flusher)
		write := func(frame string) bool {
			if _, err := io.WriteString(w, frame); err != nil {
				return false
			}
			fl.Flush()
			return true
		}
		write("\r\n") // a heartbeat first
		write(sseFrame("event_stream_attached", fmt.Sprintf(`{"remoteAddress":%q,"eventType":"event_stream_attached","timestamp":%q}`, r.RemoteAddr, marathonTime(time.Now()))))
		for {
			select {
			case <-r.Context().Done():
				return
			case frame, ok := <-ch:
				if !ok || !write(frame) {
					return
				}
			}
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func marathonTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func sseFrame(eventType, data string) string {
	return "event: " + eventType + "\r\ndata: " + data + "\r\n\r\n"
}

// send writes an event to every open stream.
func (f *fakeMarathonServer) send(eventType, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.streams {
		ch <- sseFrame(eventType, data)
	}
}

// cut closes every open stream (leader abdication, proxy timeout).
func (f *fakeMarathonServer) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.streams {
		close(ch)
	}
	f.streams = nil
}

func (f *fakeMarathonServer) setApps(apps string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps = apps
}

// marathonApps is a Marathon 1.10 style /v2/apps?embed=apps.tasks answer
// with one app on the "weft" network.
func marathonApps(tasks ...string) string {
	return `[{"id":"/web","instances":` + fmt.Sprint(len(tasks)) + `,"cpus":0.1,"mem":32,"disk":0,"gpus":0,
"container":{"type":"MESOS","docker":{"image":"nginx","forcePullImage":false},"portMappings":[{"containerPort":80,"labels":{},"name":"http","protocol":"tcp","servicePort":10000}]},
"networks":[{"name":"weft","mode":"container","labels":{"networks":"mesos-default-pod-task","security-groups":"default-domain:default-project:web","floating-ips":"default-domain:default-project:__public__:__fip_pool_public__(10.66.77.123)"}}],
"labels":{},"version":"2024-03-01T12:00:00.000Z","versionInfo":{"lastScalingAt":"2024-03-01T12:00:00.000Z","lastConfigChangeAt":"2024-03-01T12:00:00.000Z"},
"unreachableStrategy":{"inactiveAfterSeconds":0,"expungeAfterSeconds":0},"killSelection":"YOUNGEST_FIRST",
"tasksStaged":0,"tasksRunning":` + fmt.Sprint(len(tasks)) + `,"tasksHealthy":0,"tasksUnhealthy":0,"deployments":[],
"tasks":[` + strings.Join(tasks, ",") + `]}]`
}

func marathonTask(id, host, ip string) string {
	return `{"ipAddresses":[{"ipAddress":"` + ip + `","protocol":"IPv4"}],"stagedAt":"2024-03-01T12:00:01.000Z","state":"TASK_RUNNING",
"ports":[],"startedAt":"2024-03-01T12:00:02.000Z","version":"2024-03-01T12:00:00.000Z","id":"` + id + `","appId":"/web","slaveId":"S1","host":"` + host + `"}`
}

// TestIntegrationRealController runs a replica against a real controller
// (in-memory store, served with httptest) and an httptest Marathon with an
// SSE stream: startup resync, metadata, KILLED, stream reconnect, and the
// introspection endpoints.
func TestIntegrationRealController(t *testing.T) {
	ctx := t.Context()
	ctrlURL := startController(t)
	cl := client.New(ctrlURL, nil)
	if _, _, err := cl.RegisterNode(ctx, api.Node{Meta: api.Meta{Name: "agent1"}, UnderlayIP: "198.18.0.11"}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, "security-groups", api.SecurityGroup{Meta: api.Meta{Kind: api.KindSecurityGroup, Name: "web"}, Rules: []api.SecurityGroupRule{}}, nil); err != nil {
		t.Fatal(err)
	}
	// A floating IP pool for the floating-ips label.
	if _, err := cl.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "__public__"}, Subnets: []api.Subnet{{CIDR: "10.66.77.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	pool := "default-domain:default-project:__public__:__fip_pool_public__"
	if err := cl.Create(ctx, "floating-ip-pools", api.FloatingIPPool{Meta: api.Meta{Kind: api.KindFloatingIPPool, FQName: pool}}, nil); err != nil {
		t.Fatal(err)
	}
	fips := func() []api.FloatingIP {
		t.Helper()
		items, _, err := client.ListItems[api.FloatingIP](ctx, cl, "floating-ips", nil)
		if err != nil {
			t.Fatal(err)
		}
		return items
	}
	// Ports as the agent writes them: addresses reserved for
	// "<container>/<ifname>", then the port.
	addPort := func(container string, tag func(p *api.Port)) api.Port {
		t.Helper()
		res, err := cl.Allocate(ctx, api.AllocateRequest{Network: api.DefaultTaskNetwork, Owner: container + "/eth0", Node: "agent1"})
		if err != nil {
			t.Fatal(err)
		}
		p := api.Port{Meta: api.Meta{Kind: api.KindPort, Name: container + "-eth0"}, Network: api.DefaultTaskNetwork, Node: "agent1",
			ContainerID: container, Interface: "eth0", State: "attached", IPs: []api.PortIP{{Address: res.Reservations[0].Address}}}
		if tag != nil {
			tag(&p)
		}
		var out api.Port
		if err := cl.Create(ctx, "ports", p, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	reserved := func(owner string) int {
		l, err := cl.List(ctx, "ip-reservations", url.Values{"owner": {owner}})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	getPort := func(uuid string) (api.Port, error) {
		var p api.Port
		err := cl.Get(ctx, "ports", uuid, &p)
		return p, err
	}
	live := addPort("c-live", nil)
	stale := addPort("c-stale", func(p *api.Port) {
		p.TaskID, p.AppID = "web.instance-"+uuidB+"._app.1", "/web"
		p.Labels = map[string]string{LabelManagedBy: ManagedByValue}
	})
	other := addPort("c-other", nil)
	liveTask := "web.instance-" + uuidA + "._app.1"
	mar := newFakeMarathonServer(t, marathonApps(marathonTask(liveTask, "agent1", live.IPs[0].Address)))

	cfg := testConfig()
	cfg.Marathon = []string{mar.srv.URL}
	cfg.Controller = ctrlURL
	cfg.Listen = "127.0.0.1:0"
	cfg.LeaseTTL = Duration(time.Second)
	cfg.ID = "it-replica"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, logs := testLogger(t)
	m, err := New(cfg, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(rctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	defer func() { cancel(); <-done }()

	waitFor(t, 5*time.Second, "leadership", m.IsLeader)
	waitFor(t, 5*time.Second, "startup resync", func() bool { return m.Reconciler().SyncState().ResyncCount >= 1 })
	p, err := getPort(live.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if p.TaskID != liveTask || p.AppID != "/web" || p.InstanceID != "web.instance-"+uuidA ||
		len(p.SecurityGroups) != 1 || p.SecurityGroups[0] != "default-domain:default-project:web" || p.Labels[LabelManagedBy] != ManagedByValue {
		t.Errorf("live port after the resync: %+v", p)
	}
	if len(p.FloatingIPs) != 1 || p.FloatingIPs[0] != pool+"(10.66.77.123)" {
		t.Errorf("live port floating ips %v", p.FloatingIPs)
	}
	if f := fips(); len(f) != 1 || f[0].Address != "10.66.77.123" || f[0].FixedIP != live.IPs[0].Address || f[0].Parent != pool {
		t.Errorf("floating ips %+v", f)
	}
	if _, err := getPort(stale.UUID); err == nil {
		t.Error("stale port survived the startup resync")
	}
	if n := reserved("c-stale/eth0"); n != 0 {
		t.Errorf("stale port's address still reserved (%d)", n)
	}
	if q, err := getPort(other.UUID); err != nil || q.TaskID != "" {
		t.Errorf("non-Marathon port touched: %+v %v", q, err)
	}

	// KILLED over the stream: port deleted, address released.
	mar.setApps(marathonApps())
	mar.send("status_update_event", fmt.Sprintf(`{"slaveId":"S1","taskId":%q,"taskStatus":"TASK_KILLED","message":"","appId":"/web","host":"agent1","ipAddresses":[],"ports":[],"version":"2024-03-01T12:00:00.000Z","eventType":"status_update_event","timestamp":%q}`,
		liveTask, marathonTime(time.Now())))
	waitFor(t, 5*time.Second, "killed task's port deleted", func() bool { _, err := getPort(live.UUID); return err != nil })
	// The port goes first, then its addresses.
	waitFor(t, 5*time.Second, "killed task's address released", func() bool { return reserved("c-live/eth0") == 0 })
	if f := fips(); len(f) != 0 {
		t.Errorf("floating ips of the killed task remain: %+v", f)
	}
	if le := m.Reconciler().LastEvent(); le.Type != "status_update_event" || le.Timestamp == "" {
		t.Errorf("last event %+v", le)
	}

	// The stream is cut: the client reconnects, and after the new
	// connection's first event the manager resyncs again.
	before := m.Reconciler().SyncState().ResyncCount
	mar.cut()
	waitFor(t, 10*time.Second, "resync after reconnect", func() bool {
		st := m.Reconciler().SyncState()
		return st.ResyncCount > before && st.Reconnects >= 1 && st.StreamConnected
	})

	// Introspection.
	base := "http://" + m.Addr()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	index := get("/")
	for _, e := range endpoints {
		if !strings.Contains(index, `href="`+e.Path+`"`) {
			t.Errorf("index page does not list %s", e.Path)
		}
	}
	var st Status
	if err := json.Unmarshal([]byte(get("/status")), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Leader.Leading || st.Leader.ID != "it-replica" || st.Sync.ResyncCount < 2 || st.Sync.Reconnects < 1 || st.LastEvent.Type == "" {
		t.Errorf("status %+v", st)
	}
	for _, path := range []string{"/apps", "/tasks", "/ports", "/sync", "/events/last", "/leader", "/problems", "/agents"} {
		var v any
		if err := json.Unmarshal([]byte(get(path)), &v); err != nil {
			t.Errorf("%s: not JSON: %v", path, err)
		}
	}
	metrics := get("/metrics")
	for _, name := range []string{
		`weft_mesos_manager_events_total{type="status_update_event"} 1`,
		`weft_mesos_manager_resyncs_total{reason="connected",result="ok"} 1`,
		`weft_mesos_manager_resyncs_total{reason="reconnected",result="ok"}`,
		"weft_mesos_manager_stream_reconnects_total",
		"weft_mesos_manager_event_lag_seconds_bucket",
		"weft_mesos_manager_ports_updated_total 1",
		`weft_mesos_manager_ports_released_total{reason="stale"} 1`,
		`weft_mesos_manager_ports_released_total{reason="terminal"} 1`,
		"weft_mesos_manager_leader 1",
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs.String())
	}
}
