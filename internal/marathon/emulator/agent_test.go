package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// stubAgent serves the Mesos agent emulator's HTTP API from a map of
// containers, on a unix socket.
type stubAgent struct {
	mu         sync.Mutex
	containers map[string]*mesosemu.Container
	order      []string
	killFails  bool
}

func (a *stubAgent) status(c *mesosemu.Container, st mesos.TaskState, msg string) {
	s := mesos.TaskStatus{TaskID: c.Task.TaskID, State: st, Message: msg, AgentID: "stub-S0",
		ContainerStatus: &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{{Name: "dcos", IPAddresses: []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: "10.1.2.3"}}}}}}
	c.Statuses = append(c.Statuses, s)
	c.Status, c.State = s, st
}

func (a *stubAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == "/state":
		reply(200, map[string]any{"id": "stub-S0", "hostname": "stub"})
	case r.URL.Path == "/launch":
		var spec mesosemu.TaskSpec
		_ = json.NewDecoder(r.Body).Decode(&spec)
		for _, c := range a.containers {
			if c.Task.TaskID == spec.TaskID {
				reply(409, map[string]string{"error": "task " + spec.TaskID + " is already running"})
				return
			}
		}
		c := &mesosemu.Container{ID: "c-" + spec.TaskID, Task: spec}
		a.containers[c.ID], a.order = c, append(a.order, c.ID)
		a.status(c, mesos.TaskStarting, "")
		a.status(c, mesos.TaskRunning, "")
		reply(200, c)
	case r.URL.Path == "/kill":
		var req struct {
			ContainerID string `json:"container_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		c, ok := a.containers[req.ContainerID]
		if !ok {
			reply(404, map[string]string{"error": "container not found: " + req.ContainerID})
			return
		}
		a.status(c, mesos.TaskKilled, "Command terminated with signal Killed")
		if a.killFails {
			reply(500, map[string]any{"error": "The CNI plugin failed to detach", "container": c})
			return
		}
		c.Destroyed = true
		reply(200, c)
	case r.URL.Path == "/containers":
		list := []*mesosemu.Container{}
		for _, id := range a.order {
			if c := a.containers[id]; !c.Destroyed {
				list = append(list, c)
			}
		}
		reply(200, list)
	case strings.HasPrefix(r.URL.Path, "/containers/"):
		if c, ok := a.containers[strings.TrimPrefix(r.URL.Path, "/containers/")]; ok {
			reply(200, c)
			return
		}
		reply(404, map[string]string{"error": "container not found"})
	default:
		reply(404, map[string]string{"error": "no route"})
	}
}

func TestHTTPAgent(t *testing.T) {
	stub := &stubAgent{containers: map[string]*mesosemu.Container{}}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: stub}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a := NewHTTPAgent("unix:"+sock, testLogger(t))
	a.SetPollInterval(10 * time.Millisecond)
	info, err := a.Describe(ctx)
	if err != nil || info.ID != "stub-S0" || info.Hostname != "stub" {
		t.Fatalf("describe %+v %v", info, err)
	}
	updates := make(chan mesosemu.Container, 100)
	done := make(chan error, 1)
	go func() { done <- a.Watch(ctx, func(c mesosemu.Container) { updates <- c }) }()
	next := func() mesosemu.Container {
		t.Helper()
		select {
		case c := <-updates:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no update")
			return mesosemu.Container{}
		}
	}

	c, err := a.Launch(ctx, mesosemu.TaskSpec{TaskID: "t1", NetworkInfos: []mesos.NetworkInfo{{Name: "dcos"}}})
	if err != nil || c.ID != "c-t1" || c.State != mesos.TaskRunning || len(ipAddressesOf(c.Status)) != 1 {
		t.Fatalf("launch %+v %v", c, err)
	}
	if u := next(); u.ID != "c-t1" || len(u.Statuses) != 2 {
		t.Errorf("first update %+v", u)
	}
	if _, err := a.Launch(ctx, mesosemu.TaskSpec{TaskID: "t1"}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("duplicate launch: %v", err)
	}
	// A kill destroys the container: it leaves /containers, and Watch
	// fetches it once more for its final status.
	k, err := a.Kill(ctx, "c-t1")
	if err != nil || k.State != mesos.TaskKilled {
		t.Errorf("kill %+v %v", k, err)
	}
	if u := next(); u.ID != "c-t1" || u.State != mesos.TaskKilled || len(u.Statuses) != 3 {
		t.Errorf("kill update %+v", u)
	}
	if _, err := a.Kill(ctx, "nope"); !errors.Is(err, ErrContainerNotFound) {
		t.Errorf("kill unknown: %v", err)
	}
	if _, err := a.Launch(ctx, mesosemu.TaskSpec{TaskID: "t2"}); err != nil {
		t.Fatal(err)
	}
	next()
	stub.mu.Lock()
	stub.killFails = true
	stub.mu.Unlock()
	if k, err := a.Kill(ctx, "c-t2"); err == nil || k.ID != "c-t2" || k.State != mesos.TaskKilled {
		t.Errorf("failed cleanup: %+v %v", k, err)
	}
	if cs, err := a.Containers(ctx); err != nil || len(cs) != 1 {
		t.Errorf("containers %v %v", cs, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}
	select {
	case u := <-updates:
		if u.State != mesos.TaskKilled {
			t.Errorf("late update %+v", u)
		}
	default:
	}
}

func TestServerKillsUnknownMarathonTasks(t *testing.T) {
	leftover := NewFakeAgent(FakeAgentConfig{ID: "a-S0"})
	foreign := mesosemu.TaskSpec{TaskID: "web.instance-0a1b2c3d-0000-1000-8000-000000000000._app.1", FrameworkID: DefaultFrameworkIDForTests}
	lab := mesosemu.TaskSpec{TaskID: "lab-task", FrameworkID: DefaultFrameworkIDForTests}
	for _, s := range []mesosemu.TaskSpec{foreign, lab} {
		if _, err := leftover.Launch(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{Agents: []AgentConfig{{Hostname: "a", ID: "a-S0", Agent: leftover}}, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); s.Wait() }()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the leftover Marathon task to be killed", func() bool {
		cs, _ := leftover.Containers(ctx)
		return len(cs) == 1 && cs[0].Task.TaskID == "lab-task"
	})
}

// DefaultFrameworkIDForTests is the framework of the emulator's tasks by
// default.
const DefaultFrameworkIDForTests = mesosemu.DefaultFrameworkID

func TestKillWhileLaunchingAndForcedDelete(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Agents = c.Agents[:1] })
	gate := make(chan struct{})
	h.agents[0].HoldLaunches(gate)
	st := h.stream("")
	st.attached()
	h.mustJSON("POST", "/v2/apps", `{"id":"/slow","cmd":"sleep 1","instances":1}`, 201)
	st.until(func(f sseFrame) bool { return describe(f) == "instance:Provisioned" })
	if code, body := h.json("DELETE", "/v2/apps/slow", ""); code != 409 {
		t.Fatalf("delete during deployment: %d %v", code, body)
	}
	h.mustJSON("DELETE", "/v2/apps/slow?force=true", "", 200)
	close(gate)
	fs := st.until(func(f sseFrame) bool { return f.typ == "deployment_success" })
	got := describeAll(fs)
	// The goal change re-emits the current condition (Provisioned).
	want := []string{"deployment_failed", "group_change_success", "deployment_info:StopApplication", "instance:Provisioned",
		"status:TASK_STARTING", "instance:Starting", "status:TASK_RUNNING", "instance:Running", "status:TASK_KILLED", "instance:Killed",
		"app_terminated_event", "deployment_step_success:StopApplication", "deployment_success"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("forced delete during launch\n got  %q\n want %q", got, want)
	}
	if cs, _ := h.agents[0].Containers(t.Context()); len(cs) != 0 {
		t.Errorf("left running:\n%s", h.agents[0])
	}
}

func TestNoAgentKeepsInstanceScheduled(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Agents = c.Agents[:1]
		c.Agents[0].PortMin, c.Agents[0].PortMax = 31000, 31000
	})
	st := h.stream("?event_type=instance_changed_event")
	h.mustJSON("POST", "/v2/apps", `{"id":"/a","cmd":"sleep 1","instances":2}`, 201)
	// One port on the agent: the second instance waits, Scheduled.
	fs := []sseFrame{st.event(), st.event(), st.event()}
	if got := describeAll(fs); strings.Join(got, ",") != "instance:Scheduled,instance:Scheduled,instance:Provisioned" {
		t.Fatalf("got %q", got)
	}
	st.until(func(f sseFrame) bool { return describe(f) == "instance:Running" })
	if deps := h.mustJSON("GET", "/v2/deployments", "", 200).([]any); len(deps) != 1 {
		t.Errorf("deployments %v", deps)
	}
	// Scaling down frees nothing but drops the waiting instance first.
	h.mustJSON("PUT", "/v2/apps/a?force=true", `{"instances":1}`, 200)
	eventually(t, "the deployment to finish", func() bool { return len(h.mustJSON("GET", "/v2/deployments", "", 200).([]any)) == 0 })
	if tasks := get(h.mustJSON("GET", "/v2/apps/a", "", 200), "app", "tasks").([]any); len(tasks) != 1 || get(tasks, 0, "state") != "TASK_RUNNING" {
		t.Errorf("tasks %v", tasks)
	}
}
