package controller

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/store"
)

func TestLeaseElection(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	reg := NewRegistry(store.NewMemory(), nil, VTEPPool{}, func() time.Time { return now }, discardLog())
	req := func(holder string) api.LeaseRequest { return api.LeaseRequest{Holder: holder, TTLSeconds: 5} }

	steps := []struct {
		name        string
		advance     time.Duration
		holder      string
		wantHolder  string
		wantErr     bool
		transitions int
	}{
		{"a takes the free lease", 0, "a", "a", false, 0},
		{"b is refused while a holds it", time.Second, "b", "a", true, 0},
		{"a renews", 3 * time.Second, "a", "a", false, 0},
		{"b still refused: the renewal counts", 4 * time.Second, "b", "a", true, 0},
		{"a stops renewing: b takes over after the ttl", 2 * time.Second, "b", "b", false, 1},
		{"a comes back and is refused", 0, "a", "b", true, 1},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		l, err := reg.AcquireLease(ctx, "mesos-manager", req(s.holder))
		if (err != nil) != s.wantErr || l.Holder != s.wantHolder || l.Transitions != s.transitions {
			t.Fatalf("%s: lease %+v, err %v", s.name, l, err)
		}
		if s.wantErr && (!errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), s.wantHolder)) {
			t.Fatalf("%s: refusal %v does not name the holder", s.name, err)
		}
	}
	// Release by a non-holder does nothing; by the holder frees it.
	if err := reg.ReleaseLease(ctx, "mesos-manager", "a"); err != nil {
		t.Fatal(err)
	}
	if l, _ := reg.GetLease(ctx, "mesos-manager"); l.Holder != "b" {
		t.Fatalf("release by a non-holder changed the lease: %+v", l)
	}
	if err := reg.ReleaseLease(ctx, "mesos-manager", "b"); err != nil {
		t.Fatal(err)
	}
	if l, err := reg.AcquireLease(ctx, "mesos-manager", req("a")); err != nil || l.Holder != "a" {
		t.Fatalf("after release: %+v %v", l, err)
	}
	for _, bad := range []api.LeaseRequest{{TTLSeconds: 5}, {Holder: "x"}, {Holder: "x", TTLSeconds: 4000}} {
		if _, err := reg.AcquireLease(ctx, "m", bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("bad request %+v: %v", bad, err)
		}
	}
}

func TestLeaseAPI(t *testing.T) {
	e := newEnv(t, store.NewMemory())
	code, ae, _ := e.do(t, http.MethodPut, "/v1/leases/mm", `{"holder":"m1","ttl_seconds":10}`)
	if code != http.StatusOK {
		t.Fatalf("acquire: %d %v", code, ae)
	}
	code, ae, body := e.do(t, http.MethodPut, "/v1/leases/mm", `{"holder":"m2","ttl_seconds":10}`)
	if code != http.StatusConflict || ae.Field != "holder" || !strings.Contains(string(body), `"holder": "m1"`) {
		t.Fatalf("second holder: %d %v %s", code, ae, body)
	}
	if code, _, _ := e.do(t, http.MethodGet, "/v1/leases/mm", ""); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	if code, _, _ := e.do(t, http.MethodDelete, "/v1/leases/mm?holder=m1", ""); code != http.StatusNoContent {
		t.Fatalf("release: %d", code)
	}
	if code, _, _ := e.do(t, http.MethodGet, "/v1/leases/mm", ""); code != http.StatusNotFound {
		t.Fatalf("get after release: %d", code)
	}
}
