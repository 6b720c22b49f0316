package docker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func dcosSpec() NetworkSpec {
	return NetworkSpec{Name: "dcos", BridgeName: "d-dcos", MTU: 1420, Subnet: netip.MustParsePrefix("9.0.1.128/25")}
}

func TestClientEnsureNetworkCreatesKeepsAndRefuses(t *testing.T) {
	e := newEngineServer(t)
	c := e.client(t)
	ctx := bg(t)

	created, err := EnsureNetwork(ctx, c, dcosSpec())
	if err != nil || !created {
		t.Fatalf("first EnsureNetwork = %v, %v; want created", created, err)
	}
	// The create request is DC/OS's `docker network create`.
	var req map[string]any
	e.mu.Lock()
	last := e.bodies[slices.Index(e.paths, "POST /v1.41/networks/create")]
	e.mu.Unlock()
	if err := json.Unmarshal([]byte(last), &req); err != nil {
		t.Fatal(err)
	}
	wantOpts := map[string]any{OptBridgeName: "d-dcos", OptMasquerade: "false", OptMTU: "1420"}
	if got := req["Options"].(map[string]any); !mapsEqual(got, wantOpts) {
		t.Errorf("create options = %v, want %v", got, wantOpts)
	}
	if req["Driver"] != "bridge" || req["EnableIPv6"] != false || req["CheckDuplicate"] != true {
		t.Errorf("create request = %s", last)
	}
	if got := req["IPAM"].(map[string]any)["Config"]; !strings.Contains(mustJSON(t, got), `"Subnet":"9.0.1.128/25"`) {
		t.Errorf("create IPAM config = %s", mustJSON(t, got))
	}

	n, err := c.NetworkInspect(ctx, "dcos")
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "dcos" || n.Driver != "bridge" || n.BridgeName() != "d-dcos" || n.MTU() != 1420 ||
		!slices.Equal(n.Subnets, []netip.Prefix{netip.MustParsePrefix("9.0.1.128/25")}) || len(n.ID) != 64 {
		t.Errorf("inspect = %+v", n)
	}

	created, err = EnsureNetwork(ctx, c, dcosSpec())
	if err != nil || created {
		t.Fatalf("second EnsureNetwork = %v, %v; want kept", created, err)
	}

	other := dcosSpec()
	other.Subnet = netip.MustParsePrefix("9.0.5.128/25")
	_, err = EnsureNetwork(ctx, c, other)
	const want = "docker network dcos exists with subnet 9.0.1.128/25, want 9.0.5.128/25: remove it (docker network rm dcos) or fix the overlay assignment"
	if !errors.Is(err, ErrMismatch) || err.Error() != want {
		t.Fatalf("mismatch error = %v\nwant %s", err, want)
	}

	if err := c.NetworkRemove(ctx, "dcos"); err != nil {
		t.Fatal(err)
	}
	if err := c.NetworkRemove(ctx, "dcos"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := c.NetworkInspect(ctx, "dcos"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect after remove: %v", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestClientIPv6CreateRequest(t *testing.T) {
	e := newEngineServer(t)
	c := e.client(t)
	spec := NetworkSpec{Name: "dcos6", BridgeName: "d-dcos6", MTU: 1420,
		Subnet6: netip.MustParsePrefix("fd01:b:0:0:1::/80"), Gateway6: netip.MustParseAddr("fd01:b::1:0:0:1")}
	if _, err := c.NetworkCreate(bg(t), spec); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	body := e.bodies[len(e.bodies)-1]
	e.mu.Unlock()
	if !strings.Contains(body, `"EnableIPv6":true`) ||
		!strings.Contains(body, `"Config":[{"Subnet":"fd01:b:0:0:1::/80","Gateway":"fd01:b::1:0:0:1"}]`) {
		t.Errorf("create body = %s", body)
	}
}

func TestClientNegotiatesAPIVersion(t *testing.T) {
	for _, tc := range []struct{ header, want string }{{"1.43", "1.43"}, {"", FallbackAPIVersion}, {"garbage", FallbackAPIVersion}} {
		e := newEngineServer(t)
		e.version = tc.header
		if tc.header == "garbage" {
			// The server would then expect /vgarbage; the fallback is what a
			// client can do.
			e.version = ""
			e.override = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Api-Version", "garbage")
				if r.URL.Path == "/_ping" {
					return
				}
				writeJSON(w, http.StatusNotFound, map[string]string{"message": "network x not found"})
			}
		}
		c := e.client(t)
		_, err := c.NetworkInspect(bg(t), "x")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("%q: inspect: %v", tc.header, err)
		}
		if got := c.APIVersion(); got != tc.want {
			t.Errorf("%q: version %q, want %q", tc.header, got, tc.want)
		}
		reqs := e.requests()
		if len(reqs) != 2 || reqs[0] != "GET /_ping" || reqs[1] != "GET /v"+tc.want+"/networks/x" {
			t.Errorf("%q: requests %v", tc.header, reqs)
		}
	}
}

func TestClientNotFoundCarriesMessage(t *testing.T) {
	e := newEngineServer(t)
	c := e.client(t)
	_, err := c.NetworkInspect(bg(t), "nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Message != "network nope not found" {
		t.Fatalf("err = %#v", err)
	}
	if want := "docker engine: GET /networks/nope: 404 Not Found: network nope not found"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestClientEngineErrorsCarryMessage(t *testing.T) {
	e := newEngineServer(t)
	c := e.client(t)
	ctx := bg(t)
	if _, err := c.NetworkCreate(ctx, dcosSpec()); err != nil {
		t.Fatal(err)
	}
	_, err := c.NetworkCreate(ctx, dcosSpec())
	if !IsConflict(err) || !strings.Contains(err.Error(), "network with name dcos already exists") {
		t.Errorf("duplicate create: %v", err)
	}
	overlap := NetworkSpec{Name: "other", Subnet: netip.MustParsePrefix("9.0.1.0/24")}
	_, err = c.NetworkCreate(ctx, overlap)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden || ae.Message != "Pool overlaps with other one on this address space" {
		t.Errorf("overlapping create: %v", err)
	}
	// EnsureNetwork names the network and keeps the engine's words.
	_, err = EnsureNetwork(ctx, c, overlap)
	if err == nil || !strings.HasPrefix(err.Error(), "create docker network other: ") || !strings.Contains(err.Error(), "Pool overlaps") {
		t.Errorf("EnsureNetwork overlap: %v", err)
	}
	// A non-JSON error body is passed on as text.
	e.override = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" {
			return
		}
		http.Error(w, "plain failure", http.StatusInternalServerError)
	}
	_, err = c.NetworkInspect(ctx, "dcos")
	if !errors.As(err, &ae) || ae.Message != "plain failure" || errors.Is(err, ErrUnavailable) {
		t.Errorf("plain error: %v", err)
	}
}

func TestClientInspectIDPrefixMatchIsNotFound(t *testing.T) {
	e := newEngineServer(t)
	c := e.client(t)
	e.override = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" {
			return
		}
		writeJSON(w, http.StatusOK, engineJSON(Network{ID: "abc123", Name: "other", Driver: "bridge"}))
	}
	if _, err := c.NetworkInspect(bg(t), "abc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestClientUnavailable(t *testing.T) {
	ctx := bg(t)
	socket := filepath.Join(shortTempDir(t), "missing.sock")
	c, err := NewClient("unix://"+socket, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Ping(ctx)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "unix://"+socket) {
		t.Fatalf("ping on missing socket: %v", err)
	}
	t.Logf("ping error: %v", err)
	if _, err := c.NetworkInspect(ctx, "dcos"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("inspect on missing socket: %v", err)
	}
	if _, err := EnsureNetwork(ctx, c, dcosSpec()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("EnsureNetwork on missing socket: %v", err)
	}

	// An engine that went away after the client negotiated.
	e := newEngineServer(t)
	c = e.client(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e.srv.Close()
	if err := c.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ping after the engine stopped: %v", err)
	}
	if _, err := c.NetworkInspect(ctx, "dcos"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("inspect after the engine stopped: %v", err)
	}
}

func TestClientPingServerErrorIsUnavailable(t *testing.T) {
	e := newEngineServer(t)
	c := e.client(t)
	e.override = func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "engine is starting", http.StatusInternalServerError)
	}
	err := c.Ping(bg(t))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v", err)
	}
}

func TestClientTimeoutAndCancel(t *testing.T) {
	e := newEngineServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e.override = func(http.ResponseWriter, *http.Request) { <-release }
	c, err := NewClient(e.host(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Ping(bg(t))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung engine: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	// The caller's own cancellation is not the engine's fault.
	ctx, cancel := context.WithCancel(bg(t))
	cancel()
	err = c.Ping(ctx)
	if errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestNewClientHost(t *testing.T) {
	c, err := NewClient("", 0)
	if err != nil || c.Host() != DefaultHost {
		t.Fatalf("default: %v %v", c, err)
	}
	for _, h := range []string{"tcp://1.2.3.4:2375", "unix://", "unix://relative.sock", "/var/run/docker.sock"} {
		if _, err := NewClient(h, 0); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
}
