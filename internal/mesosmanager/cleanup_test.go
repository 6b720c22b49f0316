package mesosmanager

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

func TestParseMasterStateFixture(t *testing.T) {
	st, err := ParseMasterState(readFixture(t, "mesos/mesos-dns/fake-master-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range st.Agents {
		got = append(got, a.ID+" "+a.Hostname+" "+a.IP)
	}
	wantAgents := []string{
		"20140916-194712-631065744-5050-4798-2 1.2.3.10 1.2.3.10",
		"20140803-125133-3041283216-5050-2410-0 1.2.3.11 1.2.3.11",
		"20140827-000744-3041283216-5050-2116-1 1.2.3.12 1.2.3.12",
		"20140803-194712-3041283216-5050-2116-3 2001:db8::1 2001:db8::1",
	}
	if !slices.Equal(got, wantAgents) {
		t.Errorf("agents:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantAgents, "\n"))
	}
	if c := st.Containers["toy-store.b8db9f73-562f-11e4-a088-c20493233aa5"]; c != "da87d8aa-98f1-4fc3-a260-f92c116fc926" {
		t.Errorf("container of toy-store: %q", c)
	}
	if _, err := ParseMasterState([]byte(`{"frameworks":[]}`)); err == nil {
		t.Error("a document without slaves parsed")
	}
}

func TestDecodeOperatorEventsFixture(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(readFixture(t, "mesos/dcos-net/hello-overlay.json")))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	var types []string
	containers := map[string]string{}
	var agents []MesosAgent
	for sc.Scan() {
		ev, err := DecodeOperatorEvent(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
		if ev.Type == "SUBSCRIBED" {
			agents = ev.Agents
		}
		for k, v := range ev.Containers {
			containers[k] = v
		}
	}
	if types[0] != "SUBSCRIBED" || len(types) != 14 {
		t.Errorf("types %v", types)
	}
	if len(agents) != 2 || agents[0].Hostname != "10.0.0.49" || agents[0].ID != "c620b0f5-ce56-472b-814a-aa36b40206af-S1" || agents[0].IP != "10.0.0.49" || !agents[0].Active {
		t.Errorf("agents %+v", agents)
	}
	if c := containers["hello-world.cea59641-2bea-11e8-93f9-6a3d376ad59c"]; c != "f2a45269-8de1-4e9b-8f97-0e27addda6d9" {
		t.Errorf("container of hello-world: %q (all: %v)", c, containers)
	}
	ev, err := DecodeOperatorEvent([]byte(`{"type":"AGENT_REMOVED","agent_removed":{"agent_id":{"value":"S9"}}}`))
	if err != nil || ev.AgentID != "S9" {
		t.Errorf("AGENT_REMOVED: %+v %v", ev, err)
	}
	nested := `{"type":"TASK_UPDATED","task_updated":{"status":{"task_id":{"value":"pod.instance-x.a.1"},"container_status":{"container_id":{"value":"child","parent":{"value":"executor"}}}}}}`
	if ev, err := DecodeOperatorEvent([]byte(nested)); err != nil || ev.Containers["pod.instance-x.a.1"] != "executor" {
		t.Errorf("nested container: %+v %v", ev, err)
	}
	if _, err := DecodeOperatorEvent([]byte(`{"type":"AGENT_REMOVED"}`)); err == nil {
		t.Error("AGENT_REMOVED without an agent id decoded")
	}
}

func recordIO(records ...string) string {
	var b strings.Builder
	for _, r := range records {
		fmt.Fprintf(&b, "%d\n%s", len(r), r)
	}
	return b.String()
}

func TestRecordIOReader(t *testing.T) {
	rr := NewRecordIOReader(strings.NewReader(recordIO(`{"type":"HEARTBEAT"}`, "", "{\"a\":\"b\nc\"}")))
	var got []string
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(rec))
	}
	if !slices.Equal(got, []string{`{"type":"HEARTBEAT"}`, "", "{\"a\":\"b\nc\"}"}) {
		t.Errorf("records %q", got)
	}
	for _, bad := range []string{"x\n{}", "10\n{}", "-1\n", "99999999999\n"} {
		if _, err := NewRecordIOReader(strings.NewReader(bad)).Next(); err == nil || err == io.EOF {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

// cleanupRig is the cleanup module over fakes, seeded with the master
// state fixture.
func cleanupRig(t *testing.T, grace time.Duration) (*Cleanup, *FakeMesos, *FakeController, *fakeClock) {
	t.Helper()
	st, err := ParseMasterState(readFixture(t, "mesos/mesos-dns/fake-master-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	fm := NewFakeMesos(st.Agents...)
	fc := NewFakeController(clock)
	log, _ := testLogger(t)
	c := newCleanup(fm, nil, fc, grace, time.Second, log, clock, newMetrics())
	return c, fm, fc, clock
}

func TestCleanupDeletesNodeOnceAfterGrace(t *testing.T) {
	grace := 10 * time.Minute
	c, fm, fc, clock := cleanupRig(t, grace)
	agents, _ := fm.State(bg)
	fc.AddNode("1.2.3.10", "1.2.3.10")
	fc.AddNode("1.2.3.11", "1.2.3.11")
	fc.AddNode("agent-x", "1.2.3.12") // named otherwise; the underlay is the agent's address
	fc.AddNode("lab-node", "198.18.0.50")
	fc.AddPort(agentPort("agent-x", "c1", "eth0", "10.32.0.5"))
	fc.AddPort(agentPort("1.2.3.10", "c2", "eth0", "10.32.0.6"))
	if err := c.Poll(bg); err != nil {
		t.Fatal(err)
	}
	golden(t, "cleanup-before", fc.Dump())

	// 1.2.3.12 is removed from the master.
	fm.SetAgents(slices.DeleteFunc(slices.Clone(agents.Agents), func(a MesosAgent) bool { return a.Hostname == "1.2.3.12" })...)
	if err := c.Poll(bg); err != nil {
		t.Fatal(err)
	}
	clock.Advance(grace - time.Second)
	c.Check(bg)
	if n := fc.Calls("delete_node"); n != 0 {
		t.Fatalf("node deleted %d times before the grace period ended", n)
	}
	clock.Advance(time.Second)
	c.Check(bg)
	golden(t, "cleanup-after", fc.Dump())
	for range 3 {
		clock.Advance(time.Minute)
		_ = c.Poll(bg)
		c.Check(bg)
	}
	if n := fc.Calls("delete_node"); n != 1 {
		t.Errorf("delete_node called %d times, want once", n)
	}
	var gone *AgentView
	for _, a := range c.Agents() {
		if a.Hostname == "1.2.3.12" {
			gone = &a
		}
	}
	if gone == nil || gone.Present || !gone.Done || gone.NodeDeleted != "agent-x" {
		t.Errorf("agent view %+v", gone)
	}
}

func TestCleanupKeepsNodeOfReregisteredAgent(t *testing.T) {
	grace := time.Minute
	c, fm, fc, clock := cleanupRig(t, grace)
	st, _ := fm.State(bg)
	fc.AddNode("1.2.3.11", "1.2.3.11")
	if err := c.Poll(bg); err != nil {
		t.Fatal(err)
	}
	// The agent restarts with a new work dir: same host, new agent id.
	var agents []MesosAgent
	for _, a := range st.Agents {
		if a.Hostname == "1.2.3.11" {
			a.ID = "new-id-S7"
		}
		agents = append(agents, a)
	}
	fm.SetAgents(agents...)
	if err := c.Poll(bg); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * grace)
	c.Check(bg)
	if n := fc.Calls("delete_node"); n != 0 {
		t.Errorf("the node of a re-registered agent was deleted")
	}
	// A removal the controller refuses is retried.
	fm.SetAgents()
	_ = c.Poll(bg)
	fc.Fail = func(op string) error {
		if op == "delete_node" {
			return api.Conflict("", "busy")
		}
		return nil
	}
	clock.Advance(2 * grace)
	c.Check(bg)
	fc.Fail = nil
	c.Check(bg)
	if nodes, _ := fc.ListNodes(bg); len(nodes) != 0 {
		t.Errorf("node not deleted after the retry: %+v", nodes)
	}
}

// TestCleanupSubscribe follows an httptest master's operator API stream
// (RecordIO framing; the fixture's events, then AGENT_REMOVED).
func TestCleanupSubscribe(t *testing.T) {
	var records []string
	sc := bufio.NewScanner(bytes.NewReader(readFixture(t, "mesos/dcos-net/hello-overlay.json")))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		records = append(records, sc.Text())
	}
	records = append(records, `{"type":"HEARTBEAT"}`,
		`{"type":"AGENT_REMOVED","agent_removed":{"agent_id":{"value":"c620b0f5-ce56-472b-814a-aa36b40206af-S0"}}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1" || !strings.Contains(string(body), "SUBSCRIBE") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, recordIO(records...))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	clock := newFakeClock()
	fc := NewFakeController(clock)
	fc.AddNode("10.0.0.49", "10.0.0.49")
	fc.AddNode("10.0.4.200", "10.0.4.200")
	log, _ := testLogger(t)
	hc := &http.Client{}
	c := newCleanup(nil, func(ctx context.Context, fn func(MesosEvent)) error { return subscribeOnce(ctx, hc, srv.URL, fn) },
		fc, time.Minute, time.Second, log, clock, newMetrics())
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); c.Observe(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 5*time.Second, "agent removal", func() bool {
		for _, a := range c.Agents() {
			if a.Hostname == "10.0.4.200" && !a.Present {
				return true
			}
		}
		return false
	})
	if got := c.ContainerOf("hello-world.cea59641-2bea-11e8-93f9-6a3d376ad59c"); got != "f2a45269-8de1-4e9b-8f97-0e27addda6d9" {
		t.Errorf("container from the stream: %q", got)
	}
	clock.Advance(time.Minute)
	c.Check(bg)
	nodes, _ := fc.ListNodes(bg)
	if len(nodes) != 1 || nodes[0].Name != "10.0.0.49" {
		t.Errorf("nodes after the removal: %+v", nodes)
	}
}

func TestMesosMasterClient(t *testing.T) {
	state := readFixture(t, "mesos/mesos-dns/fake-master-state.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/state" { // an old master: /master/state is 404
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(state)
	}))
	defer srv.Close()
	st, err := NewMesosMaster(srv.URL, nil).State(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Agents) != 4 {
		t.Errorf("agents %+v", st.Agents)
	}
}
