package mesosmanager

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/controller"
	"github.com/weft-sdn/weft/internal/store"
)

// startController serves a real controller over an in-memory store.
func startController(t testing.TB) string {
	t.Helper()
	c, err := controller.NewWithStore(t.Context(), controller.DefaultConfig(), store.NewMemory(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	srv := httptest.NewServer(c.Server)
	t.Cleanup(srv.Close)
	return srv.URL
}

// switchController fails every call while down is set: a replica cut off
// from the controller (or frozen).
type switchController struct {
	Controller
	down atomic.Bool
}

var errCutOff = errors.New("connection refused")

func (s *switchController) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (api.Lease, error) {
	if s.down.Load() {
		return api.Lease{}, errCutOff
	}
	return s.Controller.AcquireLease(ctx, name, holder, ttl)
}

func (s *switchController) ReleaseLease(ctx context.Context, name, holder string) error {
	if s.down.Load() {
		return errCutOff
	}
	return s.Controller.ReleaseLease(ctx, name, holder)
}

// replica is one manager of an election test.
type replica struct {
	m      *Manager
	ctrl   *switchController
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, url, id string) *replica {
	t.Helper()
	cfg := testConfig()
	cfg.ID = id
	cfg.Controller = url
	cfg.LeaseTTL = Duration(time.Second)
	real, err := NewHTTPController(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := &switchController{Controller: real}
	log, _ := testLogger(t)
	m, err := New(cfg, Options{Log: log.With("replica", id), Marathon: NewFakeMarathon(), Controller: sc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &replica{m: m, ctrl: sc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := m.Run(ctx); err != nil {
			t.Errorf("replica %s: %v", id, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// leaders returns the replicas that lead now.
func leaders(rs ...*replica) []*replica {
	var out []*replica
	for _, r := range rs {
		if r.m.IsLeader() {
			out = append(out, r)
		}
	}
	return out
}

// watchOverlap samples the replicas until stop is closed and counts the
// samples in which more than one led.
func watchOverlap(rs []*replica, stop <-chan struct{}) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if len(leaders(rs...)) > 1 {
				n.Add(1)
			}
		}
	}()
	return &n
}

func TestElectionOneLeaderAndHandover(t *testing.T) {
	url := startController(t)
	a := startReplica(t, url, "replica-a")
	b := startReplica(t, url, "replica-b")
	stop := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(stop) })
	overlap := watchOverlap([]*replica{a, b}, stop)

	waitFor(t, 5*time.Second, "a leader", func() bool { return len(leaders(a, b)) == 1 })
	// It stays exactly one over several renewals.
	for range 20 {
		time.Sleep(75 * time.Millisecond)
		if n := len(leaders(a, b)); n != 1 {
			t.Fatalf("%d leaders", n)
		}
	}
	first := leaders(a, b)[0]
	other := a
	if first == a {
		other = b
	}
	if st := other.m.Elector().Status(); st.Holder != first.m.cfg.ID {
		t.Errorf("standby sees holder %q, want %q", st.Holder, first.m.cfg.ID)
	}

	// The leader stops (context cancelled): the other takes over within
	// TTL + renew interval.
	ttl, renew := time.Second, time.Second/3
	stopped := time.Now()
	first.cancel()
	<-first.done
	waitFor(t, ttl+renew+500*time.Millisecond, "handover after a stop", other.m.IsLeader)
	t.Logf("handover after a stop took %s", time.Since(stopped))
	if first.m.IsLeader() {
		t.Error("stopped replica still leads")
	}
	once.Do(func() { close(stop) })
	if n := overlap.Load(); n > 0 {
		t.Errorf("two leaders at once in %d samples", n)
	}
}

func TestElectionLeaderCutOff(t *testing.T) {
	url := startController(t)
	a := startReplica(t, url, "replica-a")
	waitFor(t, 5*time.Second, "a leads", a.m.IsLeader)
	b := startReplica(t, url, "replica-b")
	stop := make(chan struct{})
	defer close(stop)
	overlap := watchOverlap([]*replica{a, b}, stop)
	time.Sleep(500 * time.Millisecond)
	if b.m.IsLeader() {
		t.Fatal("second replica leads too")
	}

	// The leader loses the controller: it cannot renew, so it stops
	// leading at once (within about one renew interval plus the renewal's
	// timeout), and the other takes over once the lease has expired:
	// within TTL + renew interval of the cut.
	ttl, renew := time.Second, time.Second/3
	cut := time.Now()
	a.ctrl.down.Store(true)
	waitFor(t, 2*renew+300*time.Millisecond, "cut-off leader stops", func() bool { return !a.m.IsLeader() })
	stoppedAfter := time.Since(cut)
	waitFor(t, ttl+renew+500*time.Millisecond, "takeover after a cut", b.m.IsLeader)
	t.Logf("cut-off leader stopped after %s, takeover after %s", stoppedAfter, time.Since(cut))
	if n := overlap.Load(); n > 0 {
		t.Errorf("two leaders at once in %d samples", n)
	}
	// Back online, the old leader stays standby.
	a.ctrl.down.Store(false)
	time.Sleep(700 * time.Millisecond)
	if a.m.IsLeader() || !b.m.IsLeader() {
		t.Errorf("after the cut healed: a=%t b=%t", a.m.IsLeader(), b.m.IsLeader())
	}
}

// TestElectorFake runs the election against the fake controller with a
// fake clock for the lease expiry.
func TestElectorFake(t *testing.T) {
	clock := newFakeClock()
	fc := NewFakeController(clock)
	log, _ := testLogger(t)
	var leading atomic.Bool
	e := NewElector(fc, "mesos-manager", "me", 3*time.Second, log, clock, func(b bool) { leading.Store(b) })
	// Someone else holds it.
	if _, err := fc.AcquireLease(bg, "mesos-manager", "other", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if e.tryAcquire(bg) {
		t.Fatal("took a lease another holds")
	}
	if st := e.Status(); st.Holder != "other" || st.Leading {
		t.Errorf("status %+v", st)
	}
	clock.Advance(3*time.Second + time.Millisecond)
	if !e.tryAcquire(bg) {
		t.Fatal("did not take an expired lease")
	}
	if got := fc.LeaseHolder("mesos-manager"); got != "me" {
		t.Errorf("holder %q", got)
	}
	if st := e.Status(); st.Transitions != 1 {
		t.Errorf("transitions %d", st.Transitions)
	}
}
