package mesosmanager

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

func attached() *marathon.StreamAttachmentEvent {
	e := &marathon.StreamAttachmentEvent{RemoteAddress: "10.0.0.1"}
	e.Type = marathon.EventStreamAttached
	return e
}

// TestStreamReconnectResyncs runs the leader loop over the fake stream:
// the Resync marker before a connection's first event triggers a resync;
// a KILLED event lost while disconnected is made up for by the resync
// after the reconnect, before the next event is handled.
func TestStreamReconnectResyncs(t *testing.T) {
	x := newRig(t, testConfig())
	t1 := "web.instance-" + uuidA + "._app.1"
	t2 := "web.instance-" + uuidB + "._app.1"
	x.mar.PutApp(weftApp("/web", nil,
		task(t1, "agent1", marathon.TaskRunning, "10.32.0.5"),
		task(t2, "agent1", marathon.TaskRunning, "10.32.0.6")))
	x.ctrl.AddNode("agent1", "198.18.0.11")
	p1 := x.ctrl.AddPort(agentPort("agent1", "c1", "eth0", "10.32.0.5"))
	p2 := x.ctrl.AddPort(agentPort("agent1", "c2", "eth0", "10.32.0.6"))

	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- x.r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitFor(t, 5*time.Second, "subscription", x.mar.Subscribed)

	if err := x.mar.Send(&marathon.Resync{Reason: "connected", Connection: 1}, attached()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "first resync", func() bool { return x.r.SyncState().ResyncCount == 1 })
	waitFor(t, 5*time.Second, "ports tagged", func() bool {
		a, _ := x.ctrl.Port(p1.UUID)
		b, _ := x.ctrl.Port(p2.UUID)
		return a.TaskID == t1 && b.TaskID == t2
	})
	if st := x.r.SyncState(); !st.StreamConnected {
		t.Errorf("stream not connected: %+v", st)
	}

	// The connection drops; meanwhile t2 is killed and its event lost.
	if err := x.mar.Send(&marathon.Disconnected{Err: errors.New("EOF")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "disconnect noted", func() bool { st := x.r.SyncState(); return !st.StreamConnected && st.Reconnects == 1 })
	x.mar.RemoveTask("/web", t2)

	// Reconnected: the marker, then the connection's events. The status
	// event after the marker finds the resync done.
	t3 := "web.instance-" + uuidA + "._app.2"
	if err := x.mar.PutTask("/web", task(t3, "agent1", marathon.TaskRunning, "10.32.0.7")); err != nil {
		t.Fatal(err)
	}
	p3 := x.ctrl.AddPort(agentPort("agent1", "c3", "eth0", "10.32.0.7"))
	if err := x.mar.Send(&marathon.Resync{Reason: "reconnected", Connection: 2}, attached(),
		statusEvent("/web", t3, "agent1", marathon.TaskRunning, x.clock.Now(), "10.32.0.7")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "second resync", func() bool { return x.r.SyncState().ResyncCount == 2 })
	waitFor(t, 5*time.Second, "lost kill made up for", func() bool { _, ok := x.ctrl.Port(p2.UUID); return !ok })
	waitFor(t, 5*time.Second, "new task tagged", func() bool { p, _ := x.ctrl.Port(p3.UUID); return p.TaskID == t3 })
	if _, ok := x.ctrl.Reserved(api.DefaultTaskNetwork, "10.32.0.6"); ok {
		t.Error("address of the task killed while disconnected still reserved")
	}
	if p, _ := x.ctrl.Port(p1.UUID); p.TaskID != t1 {
		t.Error("live task's port changed")
	}
	if st := x.r.SyncState(); !st.StreamConnected || st.Reconnects != 1 {
		t.Errorf("sync state %+v", st)
	}
}

func TestResyncFailureDoesNotRemove(t *testing.T) {
	x := newRig(t, testConfig())
	x.ctrl.AddNode("agent1", "198.18.0.11")
	p := agentPort("agent1", "c1", "eth0", "10.32.0.5")
	p.TaskID, p.Labels = "web.instance-"+uuidA+"._app.1", map[string]string{LabelManagedBy: ManagedByValue}
	port := x.ctrl.AddPort(p)
	x.mar.Fail = func(op string) error {
		if op == "snapshot" {
			return errors.New("502 Could not determine the current leader")
		}
		return nil
	}
	if err := x.r.Resync(bg, "connected"); err == nil {
		t.Fatal("resync succeeded without a snapshot")
	}
	if _, ok := x.ctrl.Port(port.UUID); !ok {
		t.Error("a failed snapshot removed ports")
	}
	if st := x.r.SyncState(); st.ResyncErrors != 1 || st.LastResyncError == "" || st.ResyncCount != 0 {
		t.Errorf("sync state %+v", st)
	}
}
