package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/api/client"
	"github.com/weft-sdn/weft/internal/store"
)

var (
	etcdOnce sync.Once
	etcdSrv  *store.Embedded
	etcdErr  error
)

// cleanups run after every test and benchmark of the binary, last first.
var cleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if etcdSrv != nil {
		etcdSrv.Close()
		_ = os.RemoveAll(etcdDir)
	}
	os.Exit(code)
}

var etcdDir string

// sharedEtcd starts one embedded etcd for the test binary.
func sharedEtcd(t testing.TB) *store.Embedded {
	t.Helper()
	etcdOnce.Do(func() {
		etcdDir, etcdErr = os.MkdirTemp("", "weft-controller-test-")
		if etcdErr != nil {
			return
		}
		etcdSrv, etcdErr = store.StartEmbedded(context.Background(), store.EmbedConfig{
			DataDir: etcdDir, ClientURL: "http://127.0.0.1:0", UnsafeNoFsync: true,
		})
	})
	if etcdErr != nil {
		t.Fatalf("start embedded etcd: %v", etcdErr)
	}
	return etcdSrv
}

// etcdKV returns a client of the shared etcd, with a fresh key space: the
// test's keys are wiped before and after.
func etcdKV(t testing.TB) store.KV {
	t.Helper()
	kv, err := sharedEtcd(t).Client(context.Background())
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	wipe := func() {
		kvs, _, err := kv.List(context.Background(), keyPrefix)
		if err != nil {
			t.Fatalf("wipe: %v", err)
		}
		var ops []store.Op
		for _, x := range kvs {
			ops = append(ops, store.Delete(x.Key))
			if len(ops) == 100 {
				if _, err := kv.Txn(context.Background(), nil, ops); err != nil {
					t.Fatalf("wipe: %v", err)
				}
				ops = nil
			}
		}
		if _, err := kv.Txn(context.Background(), nil, ops); err != nil {
			t.Fatalf("wipe: %v", err)
		}
	}
	wipe()
	t.Cleanup(func() { wipe(); _ = kv.Close() })
	return kv
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Quarantine = Duration(time.Minute)
	return cfg
}

type testEnv struct {
	net string // the benchmarks' network
	c   *Controller
	ts  *httptest.Server
	cli *client.Client
	kv  store.KV
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHTTPTestServer(t testing.TB, c *Controller) *httptest.Server {
	ts := httptest.NewServer(c.Server)
	t.Cleanup(ts.Close)
	return ts
}

func newEnv(t *testing.T, kv store.KV) *testEnv {
	t.Helper()
	c, err := NewWithStore(context.Background(), testConfig(), kv, discardLog())
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	ts := newHTTPTestServer(t, c)
	return &testEnv{c: c, ts: ts, cli: client.New(ts.URL, nil), kv: kv}
}

func (e *testEnv) do(t *testing.T, method, path, body string) (int, api.Error, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ae api.Error
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &ae); err != nil {
			t.Fatalf("%s %s: error body is not JSON: %q", method, path, b)
		}
		if ae.Message == "" {
			t.Fatalf("%s %s: error body without message: %q", method, path, b)
		}
	}
	return resp.StatusCode, ae, b
}

func (e *testEnv) mustCreate(t *testing.T, plural, body string) map[string]any {
	t.Helper()
	code, ae, b := e.do(t, http.MethodPost, "/v1/"+plural, body)
	if code != http.StatusCreated {
		t.Fatalf("create %s %s: %d %s (field %q)", plural, body, code, ae.Message, ae.Field)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAPIValidation(t *testing.T) {
	e := newEnv(t, store.NewMemory())
	e.mustCreate(t, "networks", `{"name":"blue","subnets":[{"cidr":"10.1.0.0/24"}]}`)
	e.mustCreate(t, "nodes", `{"name":"agent-1","underlay_ip":"198.18.0.1"}`)
	blueWithPort := e.mustCreate(t, "networks", `{"name":"busy","subnets":[{"cidr":"10.2.0.0/24"}]}`)
	e.mustCreate(t, "ports", `{"name":"p1","network":"busy"}`)
	reserved := e.mustCreate(t, "networks", `{"name":"held","subnets":[{"cidr":"10.3.0.0/24"}]}`)
	if code, ae, _ := e.do(t, "POST", "/v1/ipam/allocate", `{"network":"held","owner":"task-1"}`); code != http.StatusCreated {
		t.Fatalf("allocate: %d %v", code, ae)
	}

	tests := []struct {
		name, method, path, body string
		code                     int
		field                    string
		msg                      string // substring of the message
	}{
		{"empty body", "POST", "/v1/networks", ``, 400, "", "empty"},
		{"broken json", "POST", "/v1/networks", `{"name":`, 400, "", "malformed JSON"},
		{"trailing data", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"10.9.0.0/24"}]} {}`, 400, "", "after the JSON"},
		{"unknown field", "POST", "/v1/networks", `{"name":"x","colour":"red","subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "colour", "unknown field"},
		{"wrong type", "POST", "/v1/networks", `{"name":"x","subnets":"10.9.0.0/24"}`, 400, "subnets", "must be"},
		{"wrong kind", "POST", "/v1/networks", `{"kind":"port","name":"x","subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "kind", "does not match"},
		{"missing name", "POST", "/v1/networks", `{"subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "name", "required"},
		{"name with colon", "POST", "/v1/networks", `{"name":"a:b","subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "name", "':'"},
		{"fq_name depth", "POST", "/v1/networks", `{"fq_name":"a:b","subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "fq_name", "has 2 parts"},
		{"name disagrees with fq_name", "POST", "/v1/networks", `{"name":"y","fq_name":"default-domain:default-project:x","subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "name", "does not match"},
		{"no subnet", "POST", "/v1/networks", `{"name":"x"}`, 400, "subnets", "at least one"},
		{"bad cidr", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"10.9.0.0/33"}]}`, 400, "subnets[0].cidr", "not a CIDR"},
		{"host bits", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"10.9.0.5/24"}]}`, 400, "subnets[0].cidr", "10.9.0.0/24"},
		{"overlap", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"10.9.0.0/16"},{"cidr":"10.9.3.0/24"}]}`, 400, "subnets[1].cidr", "overlaps"},
		{"gateway outside", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"10.9.0.0/24","gateway":"10.8.0.1"}]}`, 400, "subnets[0].gateway", "outside"},
		{"gateway is broadcast", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"10.9.0.0/24","gateway":"10.9.0.255"}]}`, 400, "subnets[0].gateway", "broadcast"},
		{"block prefix shorter", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"10.9.0.0/24","block_prefix":16}]}`, 400, "subnets[0].block_prefix", "shorter than the subnet"},
		{"v6 block prefix too long", "POST", "/v1/networks", `{"name":"x","subnets":[{"cidr":"fd00::/64","block_prefix":129}]}`, 400, "subnets[0].block_prefix", "longer"},
		{"network kind", "POST", "/v1/networks", `{"name":"x","network_kind":"flat","subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "network_kind", "flat"},
		{"vni range", "POST", "/v1/networks", `{"name":"x","vni":16777216,"subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "vni", "out of range"},
		{"unknown parent", "POST", "/v1/networks", `{"name":"x","parent":"default-domain:nope","subnets":[{"cidr":"10.9.0.0/24"}]}`, 400, "parent", "does not exist"},
		{"project unknown domain", "POST", "/v1/projects", `{"fq_name":"nodomain:p"}`, 400, "parent", "does not exist"},
		{"duplicate", "POST", "/v1/networks", `{"name":"blue","subnets":[{"cidr":"10.9.0.0/24"}]}`, 409, "fq_name", "already exists"},
		{"port without network", "POST", "/v1/ports", `{"name":"p"}`, 400, "network", "required"},
		{"port unknown network", "POST", "/v1/ports", `{"name":"p","network":"green"}`, 400, "network", "green"},
		{"port bad mac", "POST", "/v1/ports", `{"name":"p","network":"blue","mac":"zz"}`, 400, "mac", "MAC"},
		{"port bad ip", "POST", "/v1/ports", `{"name":"p","network":"blue","ips":[{"address":"10.1.0.300"}]}`, 400, "ips[0].address", "not an IP"},
		{"port unknown sg", "POST", "/v1/ports", `{"name":"p","network":"blue","security_groups":["default-domain:default-project:nosg"]}`, 400, "security_groups[0]", "does not exist"},
		{"node without underlay", "POST", "/v1/nodes", `{"name":"n"}`, 400, "underlay_ip", "required"},
		{"sg direction", "POST", "/v1/security-groups", `{"name":"sg","rules":[{"direction":"up"}]}`, 400, "rules[0].direction", "ingress or egress"},
		{"sg ports without proto", "POST", "/v1/security-groups", `{"name":"sg","rules":[{"direction":"ingress","port_min":80}]}`, 400, "rules[0].port_min", "protocol"},
		{"sg cidr family", "POST", "/v1/security-groups", `{"name":"sg","rules":[{"direction":"ingress","ethertype":"IPv6","remote_cidr":"10.0.0.0/8"}]}`, 400, "rules[0].remote_cidr", "ethertype"},
		{"policy unknown network", "POST", "/v1/network-policies", `{"name":"np","rules":[{"source":"blue","destination":"nowhere"}]}`, 400, "rules[0].destination", "does not exist"},
		{"service port", "POST", "/v1/services", `{"name":"svc","port":70000}`, 400, "port", "out of range"},
		{"service backend", "POST", "/v1/services", `{"name":"svc","port":80,"backends":[{"address":"x","port":80}]}`, 400, "backends[0].address", "not an IP"},
		{"fip pool without parent", "POST", "/v1/floating-ip-pools", `{"name":"pool"}`, 400, "parent", "required"},
		{"unknown collection", "GET", "/v1/widgets", ``, 404, "", "unknown collection"},
		{"bad uuid", "GET", "/v1/networks/not-a-uuid", ``, 400, "uuid", "not a uuid"},
		{"missing uuid", "GET", "/v1/networks/7b0c1d8e-0000-4000-8000-000000000000", ``, 404, "", "not found"},
		{"missing fq_name", "GET", "/v1/networks?fq_name=default-domain:default-project:none", ``, 404, "", "not found"},
		{"reservation via crud", "POST", "/v1/ip-reservations", `{"name":"10.1.0.9","network":"blue","address":"10.1.0.9","owner":"x"}`, 400, "kind", "/v1/ipam"},
		{"allocate without owner", "POST", "/v1/ipam/allocate", `{"network":"blue"}`, 400, "owner", ""},
		{"allocate unknown network", "POST", "/v1/ipam/allocate", `{"network":"green","owner":"t"}`, 400, "network", "green"},
		{"allocate bad ip", "POST", "/v1/ipam/allocate", `{"network":"blue","owner":"t","ip":"10.1.0.999"}`, 400, "ip", ""},
		{"allocate ip outside", "POST", "/v1/ipam/allocate", `{"network":"blue","owner":"t","ip":"10.7.0.9"}`, 400, "ip", "blue"},
		{"allocate unknown node", "POST", "/v1/ipam/allocate", `{"network":"blue","owner":"t","node":"ghost"}`, 400, "node", "not registered"},
		{"allocate unknown family", "POST", "/v1/ipam/allocate", `{"network":"blue","owner":"t","family":"ipv6"}`, 400, "family", ""},
		{"release nothing", "POST", "/v1/ipam/release", `{}`, 400, "", "say what"},
		{"release ip without network", "POST", "/v1/ipam/release", `{"ip":"10.1.0.5"}`, 400, "network", "required"},
		{"block without node", "POST", "/v1/ipam/blocks", `{"network":"blue"}`, 400, "node", "required"},
		{"watch bad since", "GET", "/v1/watch?since=abc", ``, 400, "since", "revision"},
		{"delete network with port", "DELETE", "/v1/networks/" + blueWithPort["uuid"].(string), ``, 409, "", "port default-domain:default-project:p1"},
		{"delete network with reservation", "DELETE", "/v1/networks/" + reserved["uuid"].(string), ``, 409, "", "1 ip reservation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, ae, body := e.do(t, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d (body %s)", code, tc.code, body)
			}
			if code < 400 {
				return
			}
			if ae.Field != tc.field {
				t.Errorf("field %q, want %q (message %q)", ae.Field, tc.field, ae.Message)
			}
			if !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("message %q does not mention %q", ae.Message, tc.msg)
			}
		})
	}

	// A refused delete leaves the network whole and usable.
	if _, err := e.cli.GetNetwork(context.Background(), "busy"); err != nil {
		t.Fatalf("network after refused delete: %v", err)
	}
	e.mustCreate(t, "ports", `{"name":"p2","network":"busy"}`)

	// Deleting a project that still has networks is refused and names them.
	var proj api.Project
	if err := e.cli.GetByFQName(context.Background(), "projects", api.DefaultProject, &proj); err != nil {
		t.Fatal(err)
	}
	code, ae, _ := e.do(t, "DELETE", "/v1/projects/"+proj.UUID, "")
	if code != http.StatusConflict || !strings.Contains(ae.Message, "network default-domain:default-project:blue") {
		t.Fatalf("delete busy project: %d %q", code, ae.Message)
	}
}

func TestDefaultsAndFQNameLookup(t *testing.T) {
	ctx := context.Background()
	kv := store.NewMemory()
	e := newEnv(t, kv)
	for _, ref := range []struct {
		plural, fq string
	}{
		{"domains", api.DefaultDomain},
		{"projects", api.DefaultProject},
		{"networks", api.DefaultTaskNetwork},
		{"networks", api.FabricNetwork},
	} {
		var m api.Meta
		if err := e.cli.GetByFQName(ctx, ref.plural, ref.fq, &m); err != nil {
			t.Fatalf("default %s %s: %v", ref.plural, ref.fq, err)
		}
		if m.FQName != ref.fq || m.UUID == "" {
			t.Fatalf("default %s: got %+v", ref.fq, m)
		}
	}
	// A second controller on the same store creates nothing twice.
	before := kv.Dump()
	if _, err := NewWithStore(ctx, testConfig(), kv, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if after := kv.Dump(); after != before {
		t.Fatalf("second start changed the store:\n%s\n---\n%s", before, after)
	}

	created, err := e.cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "blue"}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}, {CIDR: "fd00:b::/64"}}})
	if err != nil {
		t.Fatal(err)
	}
	if created.FQName != "default-domain:default-project:blue" || created.VNI < firstAutoVN || created.Subnets[0].Gateway != "10.0.0.1" || created.Subnets[1].Gateway != "fd00:b::1" {
		t.Fatalf("created network: %+v", created)
	}
	for _, ref := range []string{"blue", "default-domain:default-project:blue", created.UUID} {
		got, err := e.cli.GetNetwork(ctx, ref)
		if err != nil {
			t.Fatalf("get %q: %v", ref, err)
		}
		if got.UUID != created.UUID {
			t.Fatalf("get %q: uuid %s, want %s", ref, got.UUID, created.UUID)
		}
	}
	// The same short name in another project is another network.
	if err := e.cli.Create(ctx, "projects", api.Project{Meta: api.Meta{FQName: "default-domain:other"}}, nil); err != nil {
		t.Fatal(err)
	}
	other, err := e.cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{FQName: "default-domain:other:blue"}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}}})
	if err != nil {
		t.Fatalf("same subnet in another network must be allowed: %v", err)
	}
	if other.UUID == created.UUID || other.VNI == created.VNI {
		t.Fatalf("networks share identity: %+v %+v", created, other)
	}
	// Ports name their network by any reference; it is stored as fq_name.
	var port api.Port
	if err := e.cli.Create(ctx, "ports", api.Port{Meta: api.Meta{Name: "p"}, Network: other.UUID}, &port); err != nil {
		t.Fatal(err)
	}
	if port.Network != "default-domain:other:blue" {
		t.Fatalf("port network %q", port.Network)
	}
	l, err := e.cli.List(ctx, "ports", map[string][]string{"network": {"default-domain:other:blue"}})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("ports of network: %v %d", err, len(l.Items))
	}
	// Update with a stale resource_version is refused; a fresh one works.
	port.Labels = map[string]string{"app": "web"}
	stale := port
	var updated api.Port
	if err := e.cli.Update(ctx, "ports", port.UUID, port, &updated); err != nil {
		t.Fatal(err)
	}
	if err := e.cli.Update(ctx, "ports", port.UUID, stale, nil); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale update: %v, want conflict", err)
	}
	// Deletes are idempotent and free the name.
	for range 2 {
		if err := e.cli.Delete(ctx, "ports", port.UUID); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.cli.Delete(ctx, "networks", other.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.GetNetwork(ctx, "default-domain:other:blue"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("deleted network: %v", err)
	}
}

// watchCollector follows the watch stream with resume, recording events.
type watchCollector struct {
	mu     sync.Mutex
	events []api.WatchEvent
	last   int64
}

func (w *watchCollector) add(ev api.WatchEvent) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, ev)
	w.last = ev.Revision
	return nil
}

func (w *watchCollector) snapshot() ([]api.WatchEvent, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]api.WatchEvent(nil), w.events...), w.last
}

func TestWatchResumeAcrossDisconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newEnv(t, etcdKV(t))
	// The watcher talks to its own listener, so that cutting its
	// connections leaves the writer's alone.
	wts := httptest.NewServer(e.c.Server)
	defer wts.Close()
	wcli := client.New(wts.URL, nil)
	l, err := e.cli.List(ctx, "networks", nil)
	if err != nil {
		t.Fatal(err)
	}
	col := &watchCollector{last: l.Revision}
	const total = 60
	// The watcher reconnects from its last revision whenever the stream
	// breaks; the server cuts every connection several times meanwhile.
	watchDone := make(chan struct{})
	reconnects := 0
	go func() {
		defer close(watchDone)
		for ctx.Err() == nil {
			_, since := col.snapshot()
			err := wcli.Watch(ctx, since, col.add)
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, api.ErrGone) {
				t.Errorf("watch from %d: %v", since, err)
				return
			}
			reconnects++
		}
	}()
	uuids := make(map[string]bool)
	for i := range total {
		var n api.Network
		body := api.Network{Meta: api.Meta{Name: "net-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}}}
		if err := e.cli.Create(ctx, "networks", body, &n); err != nil {
			t.Fatal(err)
		}
		uuids[n.UUID] = true
		if i%10 == 5 {
			wts.CloseClientConnections()
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, _ := col.snapshot()
		if len(evs) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Anything more would be a duplicate: give it a moment to show up.
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-watchDone
	evs, _ := col.snapshot()
	seen := make(map[string]int)
	var prev int64
	for _, ev := range evs {
		if ev.Kind != api.KindNetwork || ev.Type != api.EventAdded {
			t.Fatalf("unexpected event %s %s", ev.Kind, ev.Type)
		}
		if ev.Revision <= prev {
			t.Fatalf("revisions out of order: %d after %d", ev.Revision, prev)
		}
		prev = ev.Revision
		var m api.Meta
		if err := json.Unmarshal(ev.Object, &m); err != nil {
			t.Fatal(err)
		}
		if m.ResourceVersion != ev.Revision {
			t.Fatalf("object resource_version %d, event revision %d", m.ResourceVersion, ev.Revision)
		}
		seen[m.UUID]++
	}
	for id := range uuids {
		if seen[id] != 1 {
			t.Errorf("network %s seen %d times, want once", id, seen[id])
		}
	}
	if len(evs) != total {
		t.Errorf("%d events, want %d", len(evs), total)
	}
	if reconnects < 3 {
		t.Errorf("only %d reconnects; the test did not exercise resume", reconnects)
	}
	t.Logf("%d events across %d reconnects", len(evs), reconnects)
}

func TestWatchCompactedAnswers410ThenRelistWorks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv := etcdKV(t)
	e := newEnv(t, kv)
	l, err := e.cli.List(ctx, "networks", nil)
	if err != nil {
		t.Fatal(err)
	}
	old := l.Revision
	for _, name := range []string{"a", "b", "c"} {
		if _, err := e.cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: name}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}}}); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := kv.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	code, ae, _ := e.do(t, "GET", "/v1/watch?since="+itoa(old), "")
	if code != http.StatusGone || !strings.Contains(ae.Message, "compacted") {
		t.Fatalf("watch below compaction: %d %q", code, ae.Message)
	}
	err = e.cli.Watch(ctx, old, func(api.WatchEvent) error { return nil })
	if !errors.Is(err, api.ErrGone) {
		t.Fatalf("client watch below compaction: %v, want ErrGone", err)
	}
	// Re-list, then watch from the list's revision: the three networks are
	// in the list, and the next change arrives on the stream.
	l, err = e.cli.List(ctx, "networks", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 5 { // two defaults + a, b, c
		t.Fatalf("re-list has %d networks, want 5", len(l.Items))
	}
	got := make(chan api.WatchEvent, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		_ = e.cli.Watch(wctx, l.Revision, func(ev api.WatchEvent) error { got <- ev; wcancel(); return nil })
	}()
	time.Sleep(100 * time.Millisecond)
	d, err := e.cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "d"}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		var m api.Meta
		_ = json.Unmarshal(ev.Object, &m)
		if ev.Type != api.EventAdded || m.UUID != d.UUID {
			t.Fatalf("event after re-list: %s %s", ev.Type, m.FQName)
		}
	case <-ctx.Done():
		t.Fatal("no event after re-list")
	}
}

func TestWatchEventTypesAndKindFilter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := newEnv(t, store.NewMemory())
	l, err := e.cli.List(ctx, "networks", nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.cli.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "blue"}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.Allocate(ctx, api.AllocateRequest{Network: "blue", Owner: "t1", IP: "10.0.0.7"}); err != nil {
		t.Fatal(err)
	}
	n.Labels = map[string]string{"tier": "web"}
	if err := e.cli.Update(ctx, "networks", n.UUID, n, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.Release(ctx, api.ReleaseRequest{Network: "blue", IP: "10.0.0.7"}); err != nil {
		t.Fatal(err)
	}
	if err := e.cli.Delete(ctx, "networks", n.UUID); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.ts.URL + "/v1/watch?kind=network,ip_reservation&since=" + itoa(l.Revision))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []string
	dec := json.NewDecoder(resp.Body)
	for len(got) < 5 {
		var ev api.WatchEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, string(ev.Kind)+" "+string(ev.Type))
	}
	want := "network ADDED|ip_reservation ADDED|network MODIFIED|ip_reservation DELETED|network DELETED"
	if g := strings.Join(got, "|"); g != want {
		t.Fatalf("events:\n got %s\nwant %s", g, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Concurrent deletes of one object all succeed once it is gone: a delete
// that meets another's mark waits for it, and one whose object went
// meanwhile is done.
func TestConcurrentDeletesSucceed(t *testing.T) {
	e := newEnv(t, store.NewMemory())
	for i := range 40 {
		obj := e.mustCreate(t, "networks", fmt.Sprintf(`{"name":"n%d","subnets":[{"cidr":"10.9.%d.0/24"}]}`, i, i))
		id := obj["uuid"].(string)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if code, ae, _ := e.do(t, http.MethodDelete, "/v1/networks/"+id, ""); code != http.StatusNoContent {
					t.Errorf("delete n%d: %d %+v", i, code, ae)
				}
			})
		}
		wg.Wait()
		if code, _, _ := e.do(t, http.MethodGet, "/v1/networks/"+id, ""); code != http.StatusNotFound {
			t.Fatalf("n%d after the deletes: %d, want 404", i, code)
		}
	}
}
