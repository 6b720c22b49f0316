package mesosmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

// fixtures is shared/fixtures, read-only test data.
const fixtures = "../../../shared/fixtures/"

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeClock is a Clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger logs into a buffer that is printed when the test fails.
func testLogger(t testing.TB) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("MESOSMANAGER_TEST_LOGS") != "" {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// testConfig is a valid Config for tests.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Marathon = []string{"http://marathon.test:8080"}
	cfg.Listen = ""
	cfg.ID = "test"
	cfg.RetryInterval = Duration(time.Second)
	return cfg
}

// rig is a Reconciler over fakes.
type rig struct {
	r     *Reconciler
	ctrl  *FakeController
	mar   *FakeMarathon
	clock *fakeClock
	logs  *syncBuffer
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	clock := newFakeClock()
	log, buf := testLogger(t)
	ctrl := NewFakeController(clock)
	mar := NewFakeMarathon()
	r := newReconciler(cfg, ctrl, mar, log, clock, newMetrics())
	return &rig{r: r, ctrl: ctrl, mar: mar, clock: clock, logs: buf}
}

// readFixture reads a file of shared/fixtures.
func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, rel))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// fixtureApp decodes the first JSON value of a fixture as a Marathon app
// (the Contrail example has notes after its JSON).
func fixtureApp(t testing.TB, rel string) marathon.App {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readFixture(t, rel)))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("fixture %s: %v", rel, err)
	}
	app, err := marathon.DecodeApp(raw)
	if err != nil {
		t.Fatalf("fixture %s: %v", rel, err)
	}
	if !strings.HasPrefix(app.ID, "/") {
		app.ID = "/" + app.ID
	}
	return *app
}

// golden compares got with testdata/<name>.golden (rewritten with
// -update).
func golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run with -update to create it)", path, err)
	}
	if string(want) != got {
		t.Errorf("state differs from %s\n--- got ---\n%s--- want ---\n%s", path, got, want)
	}
}

// agentPort is a port as the agent writes it at CNI ADD.
func agentPort(node, container, ifname string, ips ...string) api.Port {
	p := api.Port{Node: node, ContainerID: container, Interface: ifname, MAC: "02:00:00:00:00:01"}
	for _, ip := range ips {
		p.IPs = append(p.IPs, api.PortIP{Address: ip})
	}
	return p
}

// task is a running app task on host with addresses.
func task(id, host, state string, ips ...string) marathon.Task {
	t := marathon.Task{ID: id, Host: host, SlaveID: "agent-" + host, State: state}
	for _, ip := range ips {
		t.IPAddresses = append(t.IPAddresses, marathon.TaskIPAddress{IPAddress: ip, Protocol: "IPv4"})
	}
	return t
}

// weftApp is a 1.5-style app on the Marathon network "weft" with labels.
func weftApp(id string, labels map[string]string, tasks ...marathon.Task) marathon.App {
	app := marathon.App{ID: id, Instances: len(tasks), Version: "2024-03-01T12:00:00.000Z",
		Networks: []marathon.Network{{Mode: marathon.NetworkModeContainer, Name: "weft", Labels: labels}}}
	for _, t := range tasks {
		t.AppID = id
		app.Tasks = append(app.Tasks, t)
	}
	return app
}

// statusEvent is a status_update_event.
func statusEvent(appID, taskID, host, state string, at time.Time, ips ...string) *marathon.StatusUpdateEvent {
	e := &marathon.StatusUpdateEvent{AppID: appID, TaskID: taskID, Host: host, SlaveID: "agent-" + host, TaskStatus: state}
	e.Type = marathon.EventStatusUpdate
	e.Timestamp = at.UTC().Format("2006-01-02T15:04:05.000Z")
	for _, ip := range ips {
		e.IPAddresses = append(e.IPAddresses, marathon.TaskIPAddress{IPAddress: ip, Protocol: "IPv4"})
	}
	return e
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var bg = context.Background()
