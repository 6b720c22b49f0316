package marathon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMarathon is a minimal Marathon REST server backed by fixtures.
type fakeMarathon struct {
	t      *testing.T
	srv    *httptest.Server
	hits   atomic.Int64
	noPods bool

	mu    sync.Mutex
	auths []string // Authorization headers seen
}

func newFakeMarathon(t *testing.T) *fakeMarathon {
	f := &fakeMarathon{t: t}
	apps := readFixture(t, "marathon/marathon-lb/marathon15_apps.json")
	info := readFixture(t, "marathon/rest-api-examples/info.json")
	tasks := readFixture(t, "marathon/rest-api-examples/tasks.json")
	pod := readFixture(t, "marathon/rest-api-examples/pod.json")
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") })
	mux.HandleFunc("/v2/leader", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"leader":"m1:8080"}`) })
	mux.HandleFunc("/v2/info", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(info) })
	mux.HandleFunc("/v2/tasks", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(tasks) })
	mux.HandleFunc("/v2/apps", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query()["embed"]; len(got) != 1 || got[0] != "apps.tasks" {
			t.Errorf("embed = %v", got)
		}
		_, _ = w.Write(apps)
	})
	mux.HandleFunc("/v2/apps/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/apps/pywebserver" {
			var list struct{ Apps []json.RawMessage }
			if err := json.Unmarshal(apps, &list); err != nil {
				t.Error(err)
			}
			fmt.Fprintf(w, `{"app":%s}`, list.Apps[0])
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":"App '%s' does not exist"}`, strings.TrimPrefix(r.URL.Path, "/v2/apps"))
	})
	mux.HandleFunc("/v2/pods", func(w http.ResponseWriter, r *http.Request) {
		if f.noPods {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		fmt.Fprintf(w, "[%s]", pod)
	})
	mux.HandleFunc("/v2/pods/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case f.noPods:
			w.WriteHeader(http.StatusNotFound)
		case r.URL.Path == "/v2/pods/::status":
			fmt.Fprintf(w, "[%s]", podStatusJSON)
		case r.URL.Path == "/v2/pods/grp/pod::status":
			fmt.Fprint(w, podStatusJSON)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Pod '/x' does not exist"}`)
		}
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.Header().Set("X-Marathon-Leader", "http://m1:8080")
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMarathon) lastAuth() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.auths) == 0 {
		return ""
	}
	return f.auths[len(f.auths)-1]
}

// downURL returns the URL of a server that is no longer listening.
func downURL(t *testing.T) string {
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientEndpoints(t *testing.T) {
	f := newFakeMarathon(t)
	c := newTestClient(t, Config{URLs: []string{f.srv.URL + "/"}})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if l, err := c.Leader(ctx); err != nil || l != "m1:8080" {
		t.Errorf("Leader = %q, %v", l, err)
	}
	if c.LeaderHint() != "http://m1:8080" {
		t.Errorf("LeaderHint = %q", c.LeaderHint())
	}
	if info, err := c.Info(ctx); err != nil || info.Version != "1.5.0-SNAPSHOT" {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if apps, err := c.Apps(ctx); err != nil || len(apps) != 1 || len(apps[0].Tasks) != 1 {
		t.Errorf("Apps = %+v, %v", apps, err)
	}
	if app, err := c.App(ctx, "/pywebserver"); err != nil || app.ID != "/pywebserver" {
		t.Errorf("App = %+v, %v", app, err)
	}
	if _, err := c.App(ctx, "/nope"); !IsNotFound(err) || !strings.Contains(err.Error(), "App '/nope' does not exist") {
		t.Errorf("App(/nope) = %v", err)
	}
	if tasks, err := c.Tasks(ctx); err != nil || len(tasks) != 2 {
		t.Errorf("Tasks = %+v, %v", tasks, err)
	}
	if ok, err := c.PodsSupported(ctx); err != nil || !ok {
		t.Errorf("PodsSupported = %v, %v", ok, err)
	}
	if pods, err := c.Pods(ctx); err != nil || len(pods) != 1 || pods[0].ID != "/foo" {
		t.Errorf("Pods = %+v, %v", pods, err)
	}
	if ss, err := c.PodsStatus(ctx); err != nil || len(ss) != 1 {
		t.Errorf("PodsStatus = %+v, %v", ss, err)
	}
	if s, err := c.PodStatus(ctx, "/grp/pod"); err != nil || s.ID != "/grp/pod" {
		t.Errorf("PodStatus = %+v, %v", s, err)
	}
	if _, err := c.PodStatus(ctx, "/x"); !IsNotFound(err) {
		t.Errorf("PodStatus(/x) = %v", err)
	}
}

func TestClientSnapshot(t *testing.T) {
	f := newFakeMarathon(t)
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	c := newTestClient(t, Config{URLs: []string{f.srv.URL}, Clock: fixedClock{now}})
	s, err := c.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s.PodsSupported || len(s.Apps) != 1 || len(s.Pods) != 1 || len(s.Instances) != 2 || !s.Taken.Equal(now) {
		t.Errorf("snapshot = %+v", s)
	}
	f.noPods = true
	s, err = c.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.PodsSupported || len(s.Pods) != 0 || len(s.Instances) != 1 {
		t.Errorf("snapshot without pods = %+v", s)
	}
}

// fixedClock is a Clock whose Now never moves; its timers are real.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                 { return c.t }
func (c fixedClock) NewTimer(d time.Duration) Timer { return SystemClock{}.NewTimer(d) }

func TestClientFailover(t *testing.T) {
	good := newFakeMarathon(t)
	var badHits atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><head><title>Error 502 Could not determine the current leader</title></head><body>x</body></html>")
	}))
	defer bad.Close()
	c := newTestClient(t, Config{URLs: []string{downURL(t), bad.URL, good.srv.URL}})
	ctx := context.Background()
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("Info with failover: %v", err)
	}
	if badHits.Load() != 1 || good.hits.Load() != 1 {
		t.Errorf("hits: bad %d good %d", badHits.Load(), good.hits.Load())
	}
	if c.URL() != good.srv.URL {
		t.Errorf("current URL = %s", c.URL())
	}
	// The last good URL is remembered: the next call goes straight to it.
	if _, err := c.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if badHits.Load() != 1 || good.hits.Load() != 2 {
		t.Errorf("hits after second call: bad %d good %d", badHits.Load(), good.hits.Load())
	}

	// All URLs failing: one error naming them, with the 502 inside.
	c = newTestClient(t, Config{URLs: []string{downURL(t), bad.URL}})
	_, err := c.Info(ctx)
	var ae *APIError
	if err == nil || !strings.Contains(err.Error(), "all 2 marathon URLs failed") || !errors.As(err, &ae) ||
		ae.StatusCode != http.StatusBadGateway || ae.Message != "Error 502 Could not determine the current leader" {
		t.Errorf("err = %v", err)
	}
}

func TestClientNoFailoverOn4xx(t *testing.T) {
	var hits [2]atomic.Int64
	mk := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"There is no leader"}`)
		}))
	}
	a, b := mk(0), mk(1)
	defer a.Close()
	defer b.Close()
	c := newTestClient(t, Config{URLs: []string{a.URL, b.URL}})
	_, err := c.Leader(context.Background())
	if !errors.Is(err, ErrNoLeader) || !IsNotFound(err) {
		t.Errorf("err = %v", err)
	}
	if hits[0].Load() != 1 || hits[1].Load() != 0 {
		t.Errorf("hits = %d, %d", hits[0].Load(), hits[1].Load())
	}
}

func TestClientRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	good := newFakeMarathon(t)
	c := newTestClient(t, Config{URLs: []string{slow.URL, good.srv.URL}, RequestTimeout: 100 * time.Millisecond})
	start := time.Now()
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	// The caller's context still rules: canceled means no failover.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Ping = %v", err)
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		msg         string
		details     int
		deployments int
	}{
		{"app not found", 404, `{"message":"App '/foo' does not exist"}`, "App '/foo' does not exist", 0, 0},
		{"pod message inside message", 404, `{"message":"{\"message\":\"Pod '/foo' does not exist\"}"}`, "Pod '/foo' does not exist", 0, 0},
		{"validation", 422, `{"message":"Object is not valid","details":[{"path":"/id","errors":["error.path.missing"]}]}`, "Object is not valid", 1, 0},
		{"locked", 409, `{"message":"App is locked by one or more deployments. Override with the option '?force=true'.","deployments":[{"id":"d1"}]}`, "App is locked by one or more deployments. Override with the option '?force=true'.", 0, 1},
		{"basic auth", 401, "<html><head><title>Error 401 Unauthorized</title></head></html>", "Error 401 Unauthorized", 0, 0},
		{"concurrency limit", 503, "Too many concurrent requests! Allowed: 1.", "Too many concurrent requests! Allowed: 1.", 0, 0},
		{"empty", 403, "", "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			c := newTestClient(t, Config{URLs: []string{srv.URL}})
			_, err := c.Apps(context.Background())
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v", err)
			}
			if ae.StatusCode != tc.status || ae.Message != tc.msg || len(ae.Details) != tc.details || len(ae.Deployments) != tc.deployments {
				t.Errorf("APIError = %+v", ae)
			}
			if StatusCode(err) != tc.status || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
				t.Errorf("error text %q", err)
			}
		})
	}
}

func TestClientAuth(t *testing.T) {
	basic := "Basic " + "dXNlcjpwYXNz" // user:pass
	var tokens atomic.Int64
	tests := []struct {
		name string
		cfg  func(u string) Config
		want string
	}{
		{"basic in config", func(u string) Config { return Config{URLs: []string{u}, Username: "user", Password: "pass"} }, basic},
		{"basic in URL", func(u string) Config {
			p, _ := url.Parse(u)
			p.User = url.UserPassword("user", "pass")
			return Config{URLs: []string{p.String()}}
		}, basic},
		{"token", func(u string) Config { return Config{URLs: []string{u}, Token: "tok"} }, "token=tok"},
		{"token source", func(u string) Config {
			return Config{URLs: []string{u}, TokenSource: func(context.Context) (string, error) {
				return fmt.Sprintf("t%d", tokens.Add(1)), nil
			}}
		}, "token=t2"},
		{"none", func(u string) Config { return Config{URLs: []string{u}} }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMarathon(t)
			c := newTestClient(t, tc.cfg(f.srv.URL))
			for range 2 {
				if err := c.Ping(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if got := f.lastAuth(); got != tc.want {
				t.Errorf("Authorization = %q, want %q", got, tc.want)
			}
			if strings.Contains(c.URL(), "pass") {
				t.Errorf("URL() leaks the password: %s", c.URL())
			}
		})
	}
}

func TestClientRESTRedirectKeepsCredentials(t *testing.T) {
	leader := newFakeMarathon(t)
	lu, _ := url.Parse(leader.srv.URL)
	lu.Host = "localhost:" + lu.Port() // another host name: net/http would drop Authorization
	standby := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, lu.String()+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer standby.Close()
	c := newTestClient(t, Config{URLs: []string{standby.URL}, Token: "secret"})
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := leader.lastAuth(); got != "token=secret" {
		t.Errorf("leader saw Authorization %q", got)
	}
}

func TestClientRedirectLimits(t *testing.T) {
	var loop *httptest.Server
	loop = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer loop.Close()
	c := newTestClient(t, Config{URLs: []string{loop.URL}})
	if err := c.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("redirect loop: %v", err)
	}
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.invalid/ping", http.StatusFound)
	}))
	defer tls.Close()
	c = newTestClient(t, Config{URLs: []string{tls.URL}, Token: "t", HTTPClient: tls.Client()})
	if err := c.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "refusing redirect from https") {
		t.Errorf("https→http: %v", err)
	}
}

func TestNewClientErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no URL", Config{}},
		{"bad scheme", Config{URLs: []string{"ftp://m1"}}},
		{"no host", Config{URLs: []string{"http://"}}},
		{"query", Config{URLs: []string{"http://m1:8080/?a=b"}}},
		{"token and basic", Config{URLs: []string{"http://m1"}, Token: "t", Username: "u"}},
		{"token and URL basic", Config{URLs: []string{"http://u:p@m1"}, Token: "t"}},
	}
	for _, tc := range tests {
		if _, err := NewClient(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestClientBasePath(t *testing.T) {
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		fmt.Fprint(w, "[]")
	}))
	defer srv.Close()
	c := newTestClient(t, Config{URLs: []string{srv.URL + "/service/marathon/"}})
	if _, err := c.PodsStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := path.Load(); got != "/service/marathon/v2/pods/::status" {
		t.Errorf("path = %v", got)
	}
}
