package mesosmanager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

const (
	uuidA = "11111111-2222-4333-8444-555555555555"
	uuidB = "66666666-7777-4888-8999-aaaaaaaaaaaa"
)

// dumpState prints the fake controller and the reconciler's problems.
func dumpState(x *rig) string {
	var b strings.Builder
	b.WriteString(x.ctrl.Dump())
	b.WriteString("--- problems ---\n")
	for _, p := range x.r.Problems() {
		fmt.Fprintf(&b, "task=%s app=%s label=%s: %s\n", p.Task, p.App, p.Label, p.Message)
	}
	return b.String()
}

func TestFixtureAppsPortMetadata(t *testing.T) {
	pod := func(t *testing.T) marathon.PodStatus {
		p, err := marathon.DecodePod(readFixture(t, "marathon/rest-api-examples/pod.json"))
		if err != nil {
			t.Fatal(err)
		}
		return marathon.PodStatus{ID: p.ID, Spec: p, Status: "STABLE", Instances: []marathon.PodInstanceStatus{{
			ID: "foo.instance-" + uuidB, Status: "STABLE", AgentHostname: "agent2", AgentID: "S2",
			Networks:   []marathon.PodNetworkStatus{{Name: "my-network", Addresses: []string{"10.32.0.9"}}},
			Containers: []marathon.ContainerStatus{{Name: "sleep1", Status: "TASK_RUNNING", ContainerID: "foo.instance-" + uuidB + ".sleep1.1"}},
		}}}
	}
	tests := []struct {
		name     string
		networks []string
		setup    func(t *testing.T, x *rig)
	}{
		{
			// The Contrail sample: a 1.4-style ipAddress app on
			// contrail-cni-plugin with every label. One floating IP pool
			// exists, the other does not.
			name: "contrail-example",
			setup: func(t *testing.T, x *rig) {
				app := fixtureApp(t, "contrail/contrail-controller/marathon-input-example.json")
				app.Tasks = []marathon.Task{task("app-id-1.instance-"+uuidA+"._app.1", "agent1", marathon.TaskRunning, "5.5.5.10")}
				x.mar.PutApp(app)
				x.ctrl.AddNode("agent1", "198.18.0.11")
				x.ctrl.AddSecurityGroup("default-domain:default-project:security_groups_mesos")
				x.ctrl.AddFloatingIPPool("default-domain:default-project:__public__:__fip_pool_public__")
				p := agentPort("agent1", "c-contrail", "eth0", "5.5.5.10")
				p.Network = "default-domain:default-project:blue-network"
				p.Labels = map[string]string{"networks": "blue-network", "project-name": "default-project", "domain-name": "default-domain"}
				x.ctrl.AddPort(p)
			},
		},
		{
			// pinger-container-app is on the DC/OS overlay "dcos": not
			// ours by default.
			name: "pinger-unmanaged",
			setup: func(t *testing.T, x *rig) {
				app := fixtureApp(t, "marathon/system-tests/pinger-container-app.json")
				app.Tasks = []marathon.Task{task("pinger-container-app.instance-"+uuidA+"._app.1", "agent1", marathon.TaskRunning, "9.0.1.5")}
				x.mar.PutApp(app)
				x.ctrl.AddNode("agent1", "198.18.0.11")
				x.ctrl.AddPort(agentPort("agent1", "c-pinger", "eth0", "9.0.1.5"))
			},
		},
		{
			// The same app with "dcos" among the managed networks.
			name:     "pinger-managed",
			networks: []string{"dcos"},
			setup: func(t *testing.T, x *rig) {
				app := fixtureApp(t, "marathon/system-tests/pinger-container-app.json")
				app.Tasks = []marathon.Task{task("pinger-container-app.instance-"+uuidA+"._app.1", "agent1", marathon.TaskRunning, "9.0.1.5")}
				x.mar.PutApp(app)
				x.ctrl.AddNode("agent1", "198.18.0.11")
				x.ctrl.AddPort(agentPort("agent1", "c-pinger", "eth0", "9.0.1.5"))
			},
		},
		{
			// A 1.5 bridge-networking app (marathon-lb sample): not ours.
			name: "marathon15-bridge",
			setup: func(t *testing.T, x *rig) {
				apps, err := marathon.DecodeApps(readFixture(t, "marathon/marathon-lb/marathon15_apps.json"))
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range apps {
					x.mar.PutApp(a)
				}
				x.ctrl.AddNode("10.0.2.148", "10.0.2.148")
				x.ctrl.AddPort(agentPort("10.0.2.148", "c-bridge", "eth0", "172.17.0.2"))
			},
		},
		{
			// The REST example pod on "my-network", managed; the task host
			// is the node's underlay address, not its name.
			name:     "pod-managed",
			networks: []string{"my-network"},
			setup: func(t *testing.T, x *rig) {
				ps := pod(t)
				ps.Instances[0].AgentHostname = "198.18.0.12"
				x.mar.PutPod(ps)
				x.ctrl.AddNode("agent2", "198.18.0.12")
				x.ctrl.AddPort(agentPort("agent2", "c-pod", "eth0", "10.32.0.9"))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.networks != nil {
				cfg.Networks = tc.networks
			}
			x := newRig(t, cfg)
			tc.setup(t, x)
			if err := x.r.Resync(bg, "startup"); err != nil {
				t.Fatalf("resync: %v", err)
			}
			got := dumpState(x)
			golden(t, "fixture-"+tc.name, "--- marathon ---\n"+x.mar.Dump()+"--- controller ---\n"+got)
			// A second resync changes nothing and writes nothing.
			writes := x.ctrl.Calls("update_port")
			if err := x.r.Resync(bg, "periodic"); err != nil {
				t.Fatalf("second resync: %v", err)
			}
			if again := dumpState(x); again != got {
				t.Errorf("second resync changed the state:\n%s\nthen:\n%s", got, again)
			}
			if n := x.ctrl.Calls("update_port"); n != writes {
				t.Errorf("second resync wrote %d ports", n-writes)
			}
		})
	}
}

func TestStatusRunningSetsMetadata(t *testing.T) {
	x := newRig(t, testConfig())
	labels := map[string]string{"networks": "web-net", "security-groups": "default-domain:default-project:web"}
	x.mar.PutApp(weftApp("/web", labels))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	x.ctrl.AddSecurityGroup("default-domain:default-project:web")
	p := agentPort("agent1", "c1", "eth0", "10.32.0.5")
	p.Network = "default-domain:default-project:web-net"
	p.Labels = map[string]string{"networks": "web-net"}
	port := x.ctrl.AddPort(p)

	taskID := "web.instance-" + uuidA + "._app.1"
	// STARTING without addresses: nothing to match yet, no retry.
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskStarting, x.clock.Now()))
	if got, _ := x.ctrl.Port(port.UUID); got.TaskID != "" {
		t.Fatalf("port tagged before the task had addresses: %+v", got)
	}
	if tv := x.r.Tasks(); len(tv) != 1 || !tv[0].NextRetry.IsZero() {
		t.Fatalf("tasks %+v", tv)
	}
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	got, _ := x.ctrl.Port(port.UUID)
	if got.AppID != "/web" || got.TaskID != taskID || got.InstanceID != "web.instance-"+uuidA {
		t.Errorf("metadata: app=%q task=%q instance=%q", got.AppID, got.TaskID, got.InstanceID)
	}
	if got.Labels[LabelManagedBy] != ManagedByValue || got.Labels[LabelMarathonHost] != "agent1" || got.Labels[LabelMesosAgentID] != "agent-agent1" || got.Labels["networks"] != "web-net" {
		t.Errorf("labels %v", got.Labels)
	}
	if len(got.SecurityGroups) != 1 || got.SecurityGroups[0] != "default-domain:default-project:web" {
		t.Errorf("security groups %v", got.SecurityGroups)
	}
	if got.MAC != p.MAC || len(got.IPs) != 1 || got.Node != "agent1" {
		t.Errorf("agent fields changed: %+v", got)
	}
	if len(x.r.Problems()) != 0 {
		t.Errorf("problems %+v", x.r.Problems())
	}
	// A health flip repeats TASK_RUNNING: nothing to write.
	writes := x.ctrl.Calls("update_port")
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	if n := x.ctrl.Calls("update_port"); n != writes {
		t.Errorf("a repeated RUNNING wrote the port again")
	}
	if st := x.r.LastEvent(); st.Type != marathon.EventStatusUpdate {
		t.Errorf("last event %+v", st)
	}
}

func TestPortWrittenLateIsRetried(t *testing.T) {
	x := newRig(t, testConfig())
	x.mar.PutApp(weftApp("/web", nil))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	taskID := "web.instance-" + uuidA + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	tv := x.r.Tasks()
	if len(tv) != 1 || tv[0].Synced || tv[0].NextRetry.IsZero() {
		t.Fatalf("task not pending: %+v", tv)
	}
	if n := x.r.SyncState().Pending; n != 1 {
		t.Errorf("pending = %d, want 1", n)
	}
	// The agent writes the port after the attach.
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	x.r.Sweep(bg) // not due yet
	if got, _ := x.ctrl.Port(port.UUID); got.TaskID != "" {
		t.Fatal("retried before its time")
	}
	x.clock.Advance(time.Second)
	x.r.Sweep(bg)
	if got, _ := x.ctrl.Port(port.UUID); got.TaskID != taskID {
		t.Fatalf("retry did not tag the port: %+v", got)
	}
	if tv := x.r.Tasks(); !tv[0].Synced || !tv[0].NextRetry.IsZero() || x.r.SyncState().Pending != 0 {
		t.Errorf("task after retry: %+v", tv[0])
	}
}

// TestPendingCount checks the pending count that putInst and dropInst
// keep by difference against a recount, through replacements and drops.
func TestPendingCount(t *testing.T) {
	x := newRig(t, testConfig())
	r := x.r
	later := x.clock.Now().Add(time.Minute)
	check := func(want int) {
		t.Helper()
		r.mu.Lock()
		recount := 0
		for _, i := range r.insts {
			if !i.NextRetry.IsZero() {
				recount++
			}
		}
		r.mu.Unlock()
		if got := r.SyncState().Pending; got != want || recount != want {
			t.Errorf("pending = %d (recount %d), want %d", got, recount, want)
		}
	}
	r.putInst(&instance{Key: "a", NextRetry: later})
	r.putInst(&instance{Key: "b", NextRetry: later})
	r.putInst(&instance{Key: "c"})
	check(2)
	r.putInst(&instance{Key: "a", NextRetry: later}) // pending stays pending
	check(2)
	r.putInst(&instance{Key: "b"}) // retried and done
	check(1)
	r.putInst(&instance{Key: "c", NextRetry: later})
	check(2)
	r.dropInst("a")
	r.dropInst("b")
	r.dropInst("missing")
	check(1)
	r.reset()
	check(0)
}

func TestConcurrentAgentWriteIsMerged(t *testing.T) {
	x := newRig(t, testConfig())
	x.mar.PutApp(weftApp("/web", nil))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	// The agent changes the port between the manager's read and write.
	once := false
	x.ctrl.Fail = func(op string) error {
		if op == "update_port" && !once {
			once = true
			x.ctrl.SetPortFields(port.UUID, func(p *api.Port) { p.MAC = "02:00:00:00:00:99" })
		}
		return nil
	}
	taskID := "web.instance-" + uuidA + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	got, _ := x.ctrl.Port(port.UUID)
	if got.TaskID != taskID || got.MAC != "02:00:00:00:00:99" {
		t.Errorf("after a concurrent write: task=%q mac=%q", got.TaskID, got.MAC)
	}
	if x.ctrl.Calls("get_port") != 1 {
		t.Errorf("the port was not read again after the conflict")
	}
}

func TestKilledReleasesPort(t *testing.T) {
	for _, agentFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("agent_deleted_first=%t", agentFirst), func(t *testing.T) {
			x := newRig(t, testConfig())
			x.mar.PutApp(weftApp("/web", nil))
			x.ctrl.AddNode("agent1", "198.18.0.11")
			port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
			other := x.ctrl.AddPort(agentPort("agent1", "c2", "eth0", "10.32.0.6"))
			taskID := "web.instance-" + uuidA + "._app.1"
			x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
			if agentFirst {
				// CNI DEL got there first.
				_ = x.ctrl.DeletePort(bg, port.UUID)
				_ = x.ctrl.Release(bg, api.ReleaseRequest{Owner: "c1/eth0"})
			}
			x.clock.Advance(time.Second)
			x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskKilled, x.clock.Now()))
			if _, ok := x.ctrl.Port(port.UUID); ok {
				t.Error("port of a killed task still exists")
			}
			if owner, ok := x.ctrl.Reserved(api.DefaultTaskNetwork, "10.32.0.5"); ok {
				t.Errorf("address still reserved for %s", owner)
			}
			if _, ok := x.ctrl.Port(other.UUID); !ok {
				t.Error("another container's port was deleted")
			}
			if _, ok := x.ctrl.Reserved(api.DefaultTaskNetwork, "10.32.0.6"); !ok {
				t.Error("another container's address was released")
			}
			if len(x.r.Tasks()) != 0 {
				t.Errorf("killed task still followed: %+v", x.r.Tasks())
			}
			// The event again (a duplicate) is harmless.
			x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskKilled, x.clock.Now()))
		})
	}
}

func TestKilledBeforeTaggingReleasesByAddress(t *testing.T) {
	x := newRig(t, testConfig())
	x.mar.PutApp(weftApp("/web", nil))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	taskID := "web.instance-" + uuidA + "._app.1"
	// The manager missed RUNNING; the terminal status carries the address.
	x.clock.Advance(time.Second)
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskFailed, x.clock.Now(), "10.32.0.5"))
	if _, ok := x.ctrl.Port(port.UUID); ok {
		t.Error("port of a failed task still exists")
	}
	// A port created after the task ended (the address given out again)
	// is not taken for it.
	x.clock.Advance(time.Minute)
	fresh := x.ctrl.AddPort(agentPort("agent1", "c9", "eth0", "10.32.0.7"))
	x.r.HandleEvent(bg, statusEvent("/web", "web.instance-"+uuidB+"._app.1", "agent1", marathon.TaskFailed, x.clock.Now().Add(-30*time.Second), "10.32.0.7"))
	if _, ok := x.ctrl.Port(fresh.UUID); !ok {
		t.Error("a port younger than the task's end was released")
	}
}

func TestUnreachableReleasedAfterGrace(t *testing.T) {
	cfg := testConfig()
	cfg.UnreachableGrace = Duration(5 * time.Minute)
	x := newRig(t, cfg)
	x.mar.PutApp(weftApp("/web", nil))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	back := x.ctrl.AddPort(agentPort("agent1", "c2", "eth0", "10.32.0.6"))
	t1 := "web.instance-" + uuidA + "._app.1"
	t2 := "web.instance-" + uuidB + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/web", t1, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	x.r.HandleEvent(bg, statusEvent("/web", t2, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.6"))
	x.r.HandleEvent(bg, statusEvent("/web", t1, "agent1", marathon.TaskUnreachable, x.clock.Now()))
	x.r.HandleEvent(bg, statusEvent("/web", t2, "agent1", marathon.TaskUnknown, x.clock.Now()))

	x.clock.Advance(4*time.Minute + 59*time.Second)
	x.r.Sweep(bg)
	if _, ok := x.ctrl.Port(port.UUID); !ok {
		t.Fatal("released before the grace period ended")
	}
	// t2 comes back within the grace period.
	x.r.HandleEvent(bg, statusEvent("/web", t2, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.6"))
	x.clock.Advance(time.Second)
	x.r.Sweep(bg)
	if _, ok := x.ctrl.Port(port.UUID); ok {
		t.Error("unreachable task's port kept after the grace period")
	}
	if _, ok := x.ctrl.Reserved(api.DefaultTaskNetwork, "10.32.0.5"); ok {
		t.Error("unreachable task's address kept after the grace period")
	}
	if _, ok := x.ctrl.Port(back.UUID); !ok {
		t.Error("the port of a task that came back was released")
	}
	// t1 comes back after its release: a problem, loudly, and no write.
	writes := x.ctrl.Calls("update_port")
	x.r.HandleEvent(bg, statusEvent("/web", t1, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	probs := x.r.Problems()
	if len(probs) != 1 || probs[0].Task != t1 || !strings.Contains(probs[0].Message, "came back") {
		t.Errorf("problems %+v", probs)
	}
	if x.ctrl.Calls("update_port") != writes {
		t.Error("ports written for a task whose addresses were released")
	}
	if !strings.Contains(x.logs.String(), "level=ERROR") {
		t.Error("the return of a released task was not logged as an error")
	}
}

func TestPortNeverWrittenStopsRetrying(t *testing.T) {
	x := newRig(t, testConfig())
	x.mar.PutApp(weftApp("/web", nil))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	taskID := "web.instance-" + uuidA + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	for range 2 * maxPortWaits {
		x.clock.Advance(2 * time.Minute)
		x.r.Sweep(bg)
	}
	tv := x.r.Tasks()
	if len(tv) != 1 || tv[0].Retries != maxPortWaits || !tv[0].NextRetry.IsZero() {
		t.Fatalf("task %+v", tv)
	}
	if n := x.ctrl.Calls("list_ports"); n != maxPortWaits+1 {
		t.Errorf("%d port listings, want %d", n, maxPortWaits+1)
	}
	if probs := x.r.Problems(); len(probs) != 1 || !strings.Contains(probs[0].Message, "no port on node") {
		t.Errorf("problems %+v", probs)
	}
	// The next status update tries again.
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	if p, _ := x.ctrl.Port(port.UUID); p.TaskID != taskID {
		t.Errorf("not matched after a new status update: %+v", p)
	}
	if len(x.r.Problems()) != 0 {
		t.Errorf("problems remain: %+v", x.r.Problems())
	}
}

func TestInstanceChangedUnreachableAndPodKilled(t *testing.T) {
	cfg := testConfig()
	x := newRig(t, cfg)
	podSpec := &marathon.Pod{ID: "/db", Networks: []marathon.Network{{Mode: marathon.NetworkModeContainer, Name: "weft"}}}
	inst := "db.instance-" + uuidA
	x.mar.PutPod(marathon.PodStatus{ID: "/db", Spec: podSpec, Status: "STABLE", Instances: []marathon.PodInstanceStatus{{
		ID: inst, Status: "STABLE", AgentHostname: "agent1",
		Networks:   []marathon.PodNetworkStatus{{Name: "weft", Addresses: []string{"10.32.0.8"}}},
		Containers: []marathon.ContainerStatus{{Name: "a", ContainerID: inst + ".a.1", Status: "TASK_RUNNING"}, {Name: "b", ContainerID: inst + ".b.1", Status: "TASK_RUNNING"}},
	}}})
	x.ctrl.AddNode("agent1", "198.18.0.11")
	port := x.ctrl.AddPort(agentPort("agent1", "exec1", "eth0", "10.32.0.8"))
	if err := x.r.Resync(bg, "startup"); err != nil {
		t.Fatal(err)
	}
	got, _ := x.ctrl.Port(port.UUID)
	if got.InstanceID != inst || got.TaskID != inst+".a.1" || got.AppID != "/db" {
		t.Fatalf("pod port metadata %+v", got)
	}
	ev := func(cond string) *marathon.InstanceChangedEvent {
		e := &marathon.InstanceChangedEvent{InstanceID: inst, Condition: cond, RunSpecID: "/db", Host: "agent1"}
		e.Type = marathon.EventInstanceChanged
		return e
	}
	// One container ends: the instance still runs.
	x.r.HandleEvent(bg, statusEvent("/db", inst+".b.1", "agent1", marathon.TaskFinished, x.clock.Now()))
	x.r.HandleEvent(bg, ev(marathon.ConditionUnreachable))
	x.clock.Advance(time.Minute)
	x.r.HandleEvent(bg, ev(marathon.ConditionRunning))
	x.clock.Advance(10 * time.Minute)
	x.r.Sweep(bg)
	if _, ok := x.ctrl.Port(port.UUID); !ok {
		t.Fatal("pod port released though the instance came back")
	}
	x.r.HandleEvent(bg, ev(marathon.ConditionKilled))
	if _, ok := x.ctrl.Port(port.UUID); ok {
		t.Error("port of a killed pod instance still exists")
	}
	if _, ok := x.ctrl.Reserved(api.DefaultTaskNetwork, "10.32.0.8"); ok {
		t.Error("address of a killed pod instance still reserved")
	}
}

func TestStartupResyncRemovesStalePorts(t *testing.T) {
	x := newRig(t, testConfig())
	live := "web.instance-" + uuidA + "._app.1"
	x.mar.PutApp(weftApp("/web", map[string]string{"networks": "mesos-default-pod-task"},
		task(live, "agent1", marathon.TaskRunning, "10.32.0.5")))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	x.ctrl.AddNode("agent2", "198.18.0.12")
	tagged := func(p api.Port, app, task string) api.Port {
		p.AppID, p.TaskID = app, task
		p.InstanceID, _ = marathon.InstanceIDFromTaskID(task)
		p.Labels = map[string]string{LabelManagedBy: ManagedByValue}
		return p
	}
	// Live task, port already tagged by a previous manager.
	x.ctrl.AddPort(tagged(agentPort("agent1", "c-live", "eth0", "10.32.0.5"), "/web", live))
	// A task Marathon no longer has.
	x.ctrl.AddPort(tagged(agentPort("agent2", "c-gone", "eth0", "10.32.0.6"), "/web", "web.instance-"+uuidB+"._app.1"))
	// A task of an app Marathon no longer has.
	x.ctrl.AddPort(tagged(agentPort("agent2", "c-gone-app", "eth0", "10.32.0.7"), "/old", "old.instance-"+uuidB+"._app.3"))
	// A container Marathon never ran (never tagged): left alone.
	x.ctrl.AddPort(agentPort("agent2", "c-other", "eth0", "10.32.0.8"))
	// A port with a task id the manager did not set: left alone.
	foreign := agentPort("agent2", "c-foreign", "eth0", "10.32.0.9")
	foreign.TaskID = "set-by-an-operator"
	x.ctrl.AddPort(foreign)
	golden(t, "resync-before", x.ctrl.Dump())
	if err := x.r.Resync(bg, "startup"); err != nil {
		t.Fatal(err)
	}
	golden(t, "resync-after", x.ctrl.Dump())
	st := x.r.SyncState()
	if st.ResyncCount != 1 || st.PortsReleased != 2 || st.LastResync.IsZero() {
		t.Errorf("sync state %+v", st)
	}
	if len(x.r.Ports()) != 1 || x.r.Ports()[0].TaskID != live {
		t.Errorf("ports view %+v", x.r.Ports())
	}
}

func TestBadLabelDoesNotStopOthers(t *testing.T) {
	x := newRig(t, testConfig())
	bad := map[string]string{
		"floating-ips":    "not-a-pool(1.2.3.4)",
		"security-groups": "default-domain:default-project:missing-sg",
		"networks":        "a,b",
	}
	x.mar.PutApp(weftApp("/bad", bad))
	x.mar.PutApp(weftApp("/good", map[string]string{"security-groups": "default-domain:default-project:web"}))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	x.ctrl.AddSecurityGroup("default-domain:default-project:web")
	badPort := x.ctrl.AddPort(agentPort("agent1", "c-bad", "eth0", "10.32.0.5"))
	goodPort := x.ctrl.AddPort(agentPort("agent1", "c-good", "eth0", "10.32.0.6"))
	badTask := "bad.instance-" + uuidA + "._app.1"
	goodTask := "good.instance-" + uuidB + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/bad", badTask, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	x.r.HandleEvent(bg, statusEvent("/good", goodTask, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.6"))

	if p, _ := x.ctrl.Port(goodPort.UUID); p.TaskID != goodTask || len(p.SecurityGroups) != 1 {
		t.Errorf("good task's port: %+v", p)
	}
	// The bad task still gets its identity; the bad labels are skipped.
	p, _ := x.ctrl.Port(badPort.UUID)
	if p.TaskID != badTask || p.AppID != "/bad" {
		t.Errorf("bad task's port lost its metadata: %+v", p)
	}
	if len(p.SecurityGroups) != 0 || len(p.FloatingIPs) != 0 {
		t.Errorf("bad labels applied: sgs=%v fips=%v", p.SecurityGroups, p.FloatingIPs)
	}
	labels := map[string]bool{}
	for _, pr := range x.r.Problems() {
		if pr.Task != badTask || pr.App != "/bad" {
			t.Errorf("problem of the wrong task: %+v", pr)
		}
		labels[pr.Label] = true
	}
	for _, l := range []string{"floating-ips", "security-groups", "networks"} {
		if !labels[l] {
			t.Errorf("no problem recorded for label %s: %+v", l, x.r.Problems())
		}
		if !strings.Contains(x.logs.String(), "label="+l) {
			t.Errorf("no log line names label %s", l)
		}
	}
	if !strings.Contains(x.logs.String(), "task="+badTask) {
		t.Error("the log line does not name the task")
	}
	// Logged once, not on every retry.
	n := strings.Count(x.logs.String(), "label=floating-ips")
	x.r.HandleEvent(bg, statusEvent("/bad", badTask, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	if strings.Count(x.logs.String(), "label=floating-ips") != n {
		t.Error("the same bad label was logged again")
	}
	// The task ends: its problems go.
	x.r.HandleEvent(bg, statusEvent("/bad", badTask, "agent1", marathon.TaskKilled, x.clock.Now()))
	if len(x.r.Problems()) != 0 {
		t.Errorf("problems of a finished task remain: %+v", x.r.Problems())
	}
}

func TestControllerFailureIsRetried(t *testing.T) {
	x := newRig(t, testConfig())
	x.mar.PutApp(weftApp("/web", nil))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	down := true
	x.ctrl.Fail = func(op string) error {
		if down && (op == "update_port" || op == "delete_port") {
			return errors.New("connection refused")
		}
		return nil
	}
	taskID := "web.instance-" + uuidA + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskKilled, x.clock.Now()))
	if _, ok := x.ctrl.Port(port.UUID); !ok {
		t.Fatal("deleted while the controller was down?")
	}
	if tv := x.r.Tasks(); len(tv) != 1 || tv[0].Releasing == "" {
		t.Fatalf("failed release not pending: %+v", tv)
	}
	down = false
	x.clock.Advance(time.Minute)
	x.r.Sweep(bg)
	if _, ok := x.ctrl.Port(port.UUID); ok {
		t.Error("release not retried")
	}
	if len(x.r.Tasks()) != 0 {
		t.Errorf("task still followed: %+v", x.r.Tasks())
	}
}

func TestAppTerminatedReleasesTaggedPorts(t *testing.T) {
	x := newRig(t, testConfig())
	t1 := "web.instance-" + uuidA + "._app.1"
	x.mar.PutApp(weftApp("/web", nil, task(t1, "agent1", marathon.TaskRunning, "10.32.0.5")))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	if err := x.r.Resync(bg, "startup"); err != nil {
		t.Fatal(err)
	}
	x.mar.RemoveApp("/web")
	e := &marathon.AppTerminatedEvent{AppID: "/web"}
	e.Type = marathon.EventAppTerminated
	x.r.HandleEvent(bg, e)
	if _, ok := x.ctrl.Port(port.UUID); ok {
		t.Error("port of a terminated app still exists")
	}
	if len(x.r.Apps()) != 0 {
		t.Errorf("terminated app still cached: %+v", x.r.Apps())
	}
}

func TestFloatingIPObjects(t *testing.T) {
	x := newRig(t, testConfig())
	pool := "default-domain:default-project:__public__:__fip_pool_public__"
	x.mar.PutApp(weftApp("/web", map[string]string{"floating-ips": pool + "(10.66.77.123)," + pool}))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	x.ctrl.AddFloatingIPPool(pool)
	port := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	taskID := "web.instance-" + uuidA + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	fips, _ := x.ctrl.ListFloatingIPs(bg)
	if len(fips) != 2 || fips[0].Address != "10.66.77.123" || fips[0].FixedIP != "10.32.0.5" || fips[0].Port != port.FQName || fips[1].Address != "" {
		t.Fatalf("floating ips %+v", fips)
	}
	if p, _ := x.ctrl.Port(port.UUID); len(p.FloatingIPs) != 2 {
		t.Errorf("port floating ips %v", p.FloatingIPs)
	}
	// Again: nothing new.
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	if n := x.ctrl.Calls("create_floating_ip"); n != 2 {
		t.Errorf("%d floating ip creations, want 2", n)
	}
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskKilled, x.clock.Now()))
	if fips, _ := x.ctrl.ListFloatingIPs(bg); len(fips) != 0 {
		t.Errorf("floating ips of a released port remain: %+v", fips)
	}
}

func TestContainerIDFallback(t *testing.T) {
	x := newRig(t, testConfig())
	x.r.containerOf = func(taskID string) string {
		if strings.HasPrefix(taskID, "web.") {
			return "mesos-container-1"
		}
		return ""
	}
	x.mar.PutApp(weftApp("/web", nil))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	port := x.ctrl.AddPort(agentPort("agent1", "mesos-container-1", "eth0", "10.32.0.5"))
	taskID := "web.instance-" + uuidA + "._app.1"
	// No addresses reached Marathon (a plugin result Mesos did not parse).
	x.r.HandleEvent(bg, statusEvent("/web", taskID, "agent1", marathon.TaskRunning, x.clock.Now()))
	if p, _ := x.ctrl.Port(port.UUID); p.TaskID != taskID {
		t.Errorf("port not matched by container id: %+v", p)
	}
}

func TestRunSpecEvents(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"/v2/pods", ""}, {"/v2/pods/", ""}, {"/v2/pods/db", "/db"}, {"/v2/pods/grp/db::status", "/grp/db"}, {"/v2/apps/x", ""},
	} {
		if got := podIDFromURI(tc.uri); got != tc.want {
			t.Errorf("podIDFromURI(%q) = %q, want %q", tc.uri, got, tc.want)
		}
	}
	x := newRig(t, testConfig())
	// api_post_event carries the new app: no fetch needed for its tasks.
	app := weftApp("/new", map[string]string{"floating-ips": "bad"})
	post := &marathon.APIPostEvent{URI: "/v2/apps", AppDefinition: &app}
	post.Type = marathon.EventAPIPost
	x.r.HandleEvent(bg, post)
	if apps := x.r.Apps(); len(apps) != 1 || apps[0].ID != "/new" || len(apps[0].Managed) != 1 || len(apps[0].Managed[0].LabelErrors) != 1 {
		t.Fatalf("apps %+v", apps)
	}
	x.r.HandleEvent(bg, statusEvent("/new", "new.instance-"+uuidA+"._app.1", "agent1", marathon.TaskStaging, x.clock.Now()))
	if n := x.mar.Calls("app"); n != 0 {
		t.Errorf("app fetched %d times", n)
	}
	// pod_updated_event: the pod is read again.
	x.mar.PutPod(marathon.PodStatus{ID: "/db", Spec: &marathon.Pod{ID: "/db", Networks: []marathon.Network{{Mode: marathon.NetworkModeContainer, Name: "weft"}}}})
	pe := &marathon.PodEvent{URI: "/v2/pods/db"}
	pe.Type = marathon.EventPodUpdated
	x.r.HandleEvent(bg, pe)
	if apps := x.r.Apps(); len(apps) != 2 || apps[0].ID != "/db" || apps[0].Kind != "pod" {
		t.Errorf("apps after pod_updated_event %+v", apps)
	}
	// A task of an app not cached is read from Marathon; an unmanaged one
	// is not followed.
	x.mar.PutApp(marathon.App{ID: "/host-app"})
	x.r.HandleEvent(bg, statusEvent("/host-app", "host-app.instance-"+uuidA+"._app.1", "agent1", marathon.TaskRunning, x.clock.Now(), "198.18.0.11"))
	if n := x.mar.Calls("app"); n != 1 {
		t.Errorf("app fetched %d times, want 1", n)
	}
	for _, tv := range x.r.Tasks() {
		if tv.AppID == "/host-app" {
			t.Errorf("host-networking task followed: %+v", tv)
		}
	}
	// Unknown event types are counted and ignored.
	raw := &marathon.RawEvent{}
	raw.Type = "brand_new_event"
	x.r.HandleEvent(bg, raw)
	if le := x.r.LastEvent(); le.Type != "brand_new_event" {
		t.Errorf("last event %+v", le)
	}
}

func TestStandbyIntrospection(t *testing.T) {
	clock := newFakeClock()
	fc := NewFakeController(clock)
	if _, err := fc.AcquireLease(bg, DefaultLeaseName, "the-leader", 6*time.Second); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.ID = "standby-1"
	m, err := New(cfg, Options{Marathon: NewFakeMarathon(), Controller: fc, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if m.Elector().tryAcquire(bg) {
		t.Fatal("took a held lease")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "standby (leader: the-leader)") || !strings.Contains(body, `href="/problems"`) {
		t.Errorf("index page %d:\n%s", rec.Code, body)
	}
	rec = httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/leader", nil))
	if !strings.Contains(rec.Body.String(), `"holder": "the-leader"`) || !strings.Contains(rec.Body.String(), `"leading": false`) {
		t.Errorf("/leader: %s", rec.Body.String())
	}
}

func TestTwoManagedNetworks(t *testing.T) {
	x := newRig(t, testConfig())
	app := marathon.App{ID: "/multi", Networks: []marathon.Network{
		{Mode: marathon.NetworkModeContainer, Name: "weft", Labels: map[string]string{"networks": "front", "security-groups": "web"}},
		{Mode: marathon.NetworkModeContainer, Name: "contrail-cni-plugin", Labels: map[string]string{"networks": "back"}},
	}}
	x.mar.PutApp(app)
	x.ctrl.AddNode("agent1", "198.18.0.11")
	x.ctrl.AddSecurityGroup("default-domain:default-project:web")
	front := agentPort("agent1", "c1", "eth0", "10.1.0.5")
	front.Network = "default-domain:default-project:front"
	back := agentPort("agent1", "c1", "eth1", "10.2.0.5")
	back.Network = "default-domain:default-project:back"
	pf, pb := x.ctrl.AddPort(front), x.ctrl.AddPort(back)
	taskID := "multi.instance-" + uuidA + "._app.1"
	x.r.HandleEvent(bg, statusEvent("/multi", taskID, "agent1", marathon.TaskRunning, x.clock.Now(), "10.1.0.5", "10.2.0.5"))
	gf, _ := x.ctrl.Port(pf.UUID)
	gb, _ := x.ctrl.Port(pb.UUID)
	if gf.TaskID != taskID || gb.TaskID != taskID {
		t.Fatalf("ports not tagged: %+v %+v", gf, gb)
	}
	if gf.Labels["networks"] != "front" || len(gf.SecurityGroups) != 1 || gb.Labels["networks"] != "back" || len(gb.SecurityGroups) != 0 {
		t.Errorf("labels crossed: front %v %v, back %v %v", gf.Labels, gf.SecurityGroups, gb.Labels, gb.SecurityGroups)
	}
	if len(x.r.Problems()) != 0 {
		t.Errorf("problems %+v", x.r.Problems())
	}
	x.r.HandleEvent(bg, statusEvent("/multi", taskID, "agent1", marathon.TaskFinished, x.clock.Now()))
	if len(x.ctrl.AllPorts()) != 0 {
		t.Errorf("ports left: %+v", x.ctrl.AllPorts())
	}
}

// TestManagerCleanupWiring runs a whole replica with the cleanup module
// over the fake master: the leader deletes the node of a removed agent
// and the ports left on it.
func TestManagerCleanupWiring(t *testing.T) {
	cfg := testConfig()
	cfg.MesosMaster = "http://master.test:5050"
	cfg.AgentGrace = Duration(200 * time.Millisecond)
	cfg.MesosPollInterval = Duration(50 * time.Millisecond)
	cfg.LeaseTTL = Duration(time.Second)
	fc := NewFakeController(nil)
	fc.AddNode("agent1", "198.18.0.11")
	fc.AddNode("agent2", "198.18.0.12")
	fc.AddPort(agentPort("agent2", "c1", "eth0", "10.32.0.5"))
	fm := NewFakeMesos(MesosAgent{ID: "S1", Hostname: "agent1", Active: true}, MesosAgent{ID: "S2", Hostname: "agent2", Active: true})
	log, _ := testLogger(t)
	m, err := New(cfg, Options{Log: log, Marathon: NewFakeMarathon(), Controller: fc, Mesos: fm})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 5*time.Second, "leader and first poll", func() bool { return m.IsLeader() && len(m.Cleanup().Agents()) == 2 })
	golden(t, "mesos-fake", fm.Dump())
	fm.SetAgents(MesosAgent{ID: "S1", Hostname: "agent1", Active: true})
	waitFor(t, 5*time.Second, "node deleted", func() bool { nodes, _ := fc.ListNodes(bg); return len(nodes) == 1 })
	waitFor(t, 5*time.Second, "ports of the node deleted", func() bool { return len(fc.AllPorts()) == 0 })
	if _, ok := fc.Reserved(api.DefaultTaskNetwork, "10.32.0.5"); ok {
		t.Error("address on the deleted node still reserved")
	}
	time.Sleep(300 * time.Millisecond)
	if n := fc.Calls("delete_node"); n != 1 {
		t.Errorf("delete_node called %d times", n)
	}
}

func TestNetworkMismatch(t *testing.T) {
	for _, tc := range []struct {
		labels  map[string]string
		network string
		want    bool
	}{
		{nil, "d:p:any", false},
		{map[string]string{"networks": ""}, "d:p:any", false},
		{map[string]string{"networks": "blue"}, "other-domain:other-project:blue", false},
		{map[string]string{"networks": "blue"}, "default-domain:default-project:red", true},
		{map[string]string{"networks": "blue", "project-name": "p"}, "default-domain:p:blue", false},
		{map[string]string{"networks": "blue", "project-name": "p"}, "default-domain:q:blue", true},
		{map[string]string{"networks": "d:p:blue"}, "d:p:blue", false},
		{map[string]string{"networks": "d:p:blue"}, "d:p:red", true},
		{map[string]string{"networks": "6f1c1f3e-1111-4222-8333-444455556666"}, "d:p:red", false},
		{map[string]string{"networks": "a,b"}, "d:p:red", false},
	} {
		spec, _ := ParseNetworkLabels(tc.labels)
		if got := networkMismatch(spec, tc.network); got != tc.want {
			t.Errorf("labels %v on %s: mismatch %t, want %t", tc.labels, tc.network, got, tc.want)
		}
	}
}

// panickyController panics on port listing: a bug somewhere below.
type panickyController struct{ *FakeController }

func (panickyController) ListPorts(context.Context, string) ([]api.Port, error) { panic("boom") }

func TestPanicIsContained(t *testing.T) {
	x := newRig(t, testConfig())
	x.r.ctrl = panickyController{x.ctrl}
	x.mar.PutApp(weftApp("/web", nil, task("web.instance-"+uuidA+"._app.1", "agent1", marathon.TaskRunning, "10.32.0.5")))
	x.r.HandleEvent(bg, statusEvent("/web", "web.instance-"+uuidA+"._app.1", "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.5"))
	if err := x.r.Resync(bg, "startup"); err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("resync: %v", err)
	}
	x.r.Sweep(bg)
	if !strings.Contains(x.logs.String(), "bug: handling panicked") {
		t.Error("panic not logged")
	}
}
