package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// clientSeen is one request as the fake controller received it.
type clientSeen struct {
	Method, Path, Query, ContentType, Body string
}

// clientFake is a tiny fake of the controller: each route answers with a
// fixed status and body, and every request is recorded.
type clientFake struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []clientSeen
	routes map[string]func(w http.ResponseWriter, r *http.Request) // "METHOD /path"
}

func newClientFake(t *testing.T) *clientFake {
	t.Helper()
	f := &clientFake{t: t, routes: map[string]func(http.ResponseWriter, *http.Request){}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, clientSeen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(b)})
		h := f.routes[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if h == nil {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"no route %s %s"}`, r.Method, r.URL.Path)
			return
		}
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// answer makes route answer status with body.
func (f *clientFake) answer(route string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func (f *clientFake) handle(route string, h func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
}

func (f *clientFake) requests() []clientSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]clientSeen(nil), f.seen...)
}

func (f *clientFake) client() *Client { return New(f.srv.URL, nil) }

const clientTestUUID = "0b7c6f5e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"

func TestClientCalls(t *testing.T) {
	ctx := context.Background()
	netJSON := `{"kind":"network","uuid":"` + clientTestUUID + `","name":"blue","fq_name":"default-domain:default-project:blue","subnets":[{"cidr":"10.0.0.0/24"}],"vni":7}`
	wantNet := api.Network{
		Meta:    api.Meta{Kind: api.KindNetwork, UUID: clientTestUUID, Name: "blue", FQName: "default-domain:default-project:blue"},
		Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}},
		VNI:     7,
	}
	tests := []struct {
		name   string
		routes map[string]string // route -> 200 body
		call   func(c *Client) (any, error)
		want   any
		seen   []clientSeen
	}{{
		name:   "create",
		routes: map[string]string{"POST /v1/networks": netJSON},
		call: func(c *Client) (any, error) {
			var out api.Network
			err := c.Create(ctx, "networks", api.Network{Meta: api.Meta{Kind: api.KindNetwork, Name: "blue"}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24"}}}, &out)
			return out, err
		},
		want: wantNet,
		seen: []clientSeen{{"POST", "/v1/networks", "", "application/json", `{"kind":"network","name":"blue","subnets":[{"cidr":"10.0.0.0/24"}]}`}},
	}, {
		name:   "get",
		routes: map[string]string{"GET /v1/networks/" + clientTestUUID: netJSON},
		call: func(c *Client) (any, error) {
			var out api.Network
			err := c.Get(ctx, "networks", clientTestUUID, &out)
			return out, err
		},
		want: wantNet,
		seen: []clientSeen{{Method: "GET", Path: "/v1/networks/" + clientTestUUID}},
	}, {
		name:   "get by fq_name, object answer",
		routes: map[string]string{"GET /v1/networks": netJSON},
		call: func(c *Client) (any, error) {
			var out api.Network
			err := c.GetByFQName(ctx, "networks", "default-domain:default-project:blue", &out)
			return out, err
		},
		want: wantNet,
		seen: []clientSeen{{Method: "GET", Path: "/v1/networks", Query: "fq_name=default-domain%3Adefault-project%3Ablue"}},
	}, {
		name:   "get by fq_name, list answer",
		routes: map[string]string{"GET /v1/networks": `{"kind":"network","revision":9,"items":[` + netJSON + `]}`},
		call: func(c *Client) (any, error) {
			var out api.Network
			err := c.GetByFQName(ctx, "networks", "default-domain:default-project:blue", &out)
			return out, err
		},
		want: wantNet,
		seen: []clientSeen{{Method: "GET", Path: "/v1/networks", Query: "fq_name=default-domain%3Adefault-project%3Ablue"}},
	}, {
		name:   "list with query",
		routes: map[string]string{"GET /v1/ports": `{"kind":"port","revision":12,"items":[{"kind":"port","name":"p1"}]}`},
		call: func(c *Client) (any, error) {
			return c.List(ctx, "ports", url.Values{"network": {"default-domain:default-project:blue"}})
		},
		want: api.List{Kind: api.KindPort, Revision: 12, Items: []json.RawMessage{json.RawMessage(`{"kind":"port","name":"p1"}`)}},
		seen: []clientSeen{{Method: "GET", Path: "/v1/ports", Query: "network=default-domain%3Adefault-project%3Ablue"}},
	}, {
		name:   "update",
		routes: map[string]string{"PUT /v1/networks/" + clientTestUUID: netJSON},
		call: func(c *Client) (any, error) {
			var out api.Network
			err := c.Update(ctx, "networks", clientTestUUID, map[string]any{"vni": 7, "resource_version": 3}, &out)
			return out, err
		},
		want: wantNet,
		seen: []clientSeen{{"PUT", "/v1/networks/" + clientTestUUID, "", "application/json", `{"resource_version":3,"vni":7}`}},
	}, {
		name:   "delete",
		routes: map[string]string{"DELETE /v1/networks/" + clientTestUUID: ``},
		call:   func(c *Client) (any, error) { return nil, c.Delete(ctx, "networks", clientTestUUID) },
		seen:   []clientSeen{{Method: "DELETE", Path: "/v1/networks/" + clientTestUUID}},
	}, {
		name:   "create network sets kind",
		routes: map[string]string{"POST /v1/networks": netJSON},
		call: func(c *Client) (any, error) {
			return c.CreateNetwork(ctx, api.Network{Meta: api.Meta{Name: "blue", Parent: api.DefaultProject}, Subnets: []api.Subnet{{CIDR: "10.0.0.0/24", Gateway: "10.0.0.254"}}})
		},
		want: wantNet,
		seen: []clientSeen{{"POST", "/v1/networks", "", "application/json", `{"kind":"network","name":"blue","parent":"default-domain:default-project","subnets":[{"cidr":"10.0.0.0/24","gateway":"10.0.0.254"}]}`}},
	}, {
		name:   "get network by uuid",
		routes: map[string]string{"GET /v1/networks/" + clientTestUUID: netJSON},
		call:   func(c *Client) (any, error) { return c.GetNetwork(ctx, clientTestUUID) },
		want:   wantNet,
		seen:   []clientSeen{{Method: "GET", Path: "/v1/networks/" + clientTestUUID}},
	}, {
		name:   "get network by fq_name",
		routes: map[string]string{"GET /v1/networks": netJSON},
		call:   func(c *Client) (any, error) { return c.GetNetwork(ctx, "default-domain:default-project:blue") },
		want:   wantNet,
		seen:   []clientSeen{{Method: "GET", Path: "/v1/networks", Query: "fq_name=default-domain%3Adefault-project%3Ablue"}},
	}, {
		name:   "get network by short name, completed by the controller",
		routes: map[string]string{"GET /v1/networks": netJSON},
		call:   func(c *Client) (any, error) { return c.GetNetwork(ctx, "blue") },
		want:   wantNet,
		seen:   []clientSeen{{Method: "GET", Path: "/v1/networks", Query: "fq_name=blue"}},
	}, {
		name:   "get by fq_name keeps the matching item of a list",
		routes: map[string]string{"GET /v1/networks": `{"kind":"network","revision":9,"items":[{"fq_name":"default-domain:default-project:red"},` + netJSON + `,{"name":"x"}]}`},
		call:   func(c *Client) (any, error) { return c.GetNetwork(ctx, "default-domain:default-project:blue") },
		want:   wantNet,
		seen:   []clientSeen{{Method: "GET", Path: "/v1/networks", Query: "fq_name=default-domain%3Adefault-project%3Ablue"}},
	}, {
		name:   "list networks",
		routes: map[string]string{"GET /v1/networks": `{"kind":"network","revision":3,"items":[` + netJSON + `,` + netJSON + `]}`},
		call:   func(c *Client) (any, error) { return c.ListNetworks(ctx) },
		want:   []api.Network{wantNet, wantNet},
		seen:   []clientSeen{{Method: "GET", Path: "/v1/networks"}},
	}, {
		name: "delete network by fq_name resolves the uuid",
		routes: map[string]string{
			"GET /v1/networks":                      netJSON,
			"DELETE /v1/networks/" + clientTestUUID: ``,
		},
		call: func(c *Client) (any, error) { return nil, c.DeleteNetwork(ctx, "default-domain:default-project:blue") },
		seen: []clientSeen{
			{Method: "GET", Path: "/v1/networks", Query: "fq_name=default-domain%3Adefault-project%3Ablue"},
			{Method: "DELETE", Path: "/v1/networks/" + clientTestUUID},
		},
	}, {
		name:   "delete network by uuid",
		routes: map[string]string{"DELETE /v1/networks/" + clientTestUUID: ``},
		call:   func(c *Client) (any, error) { return nil, c.DeleteNetwork(ctx, clientTestUUID) },
		seen:   []clientSeen{{Method: "DELETE", Path: "/v1/networks/" + clientTestUUID}},
	}, {
		name:   "allocate",
		routes: map[string]string{"POST /v1/ipam/allocate": `{"reservations":[{"kind":"ip_reservation","name":"10.0.0.5","network":"d:p:blue","address":"10.0.0.5","owner":"c1"}]}`},
		call: func(c *Client) (any, error) {
			return c.Allocate(ctx, api.AllocateRequest{Network: "d:p:blue", Owner: "c1", Family: "ipv4", Labels: map[string]string{"a": "b"}})
		},
		want: api.AllocateResponse{Reservations: []api.IPReservation{{Meta: api.Meta{Kind: api.KindIPReservation, Name: "10.0.0.5"}, Network: "d:p:blue", Address: "10.0.0.5", Owner: "c1"}}},
		seen: []clientSeen{{"POST", "/v1/ipam/allocate", "", "application/json", `{"network":"d:p:blue","owner":"c1","family":"ipv4","labels":{"a":"b"}}`}},
	}, {
		name:   "release",
		routes: map[string]string{"POST /v1/ipam/release": `{"released":[{"kind":"ip_reservation","name":"10.0.0.5","network":"d:p:blue","address":"10.0.0.5","owner":"c1"}]}`},
		call:   func(c *Client) (any, error) { return c.Release(ctx, api.ReleaseRequest{Owner: "c1"}) },
		want:   api.ReleaseResponse{Released: []api.IPReservation{{Meta: api.Meta{Kind: api.KindIPReservation, Name: "10.0.0.5"}, Network: "d:p:blue", Address: "10.0.0.5", Owner: "c1"}}},
		seen:   []clientSeen{{"POST", "/v1/ipam/release", "", "application/json", `{"owner":"c1"}`}},
	}, {
		name:   "lease block",
		routes: map[string]string{"POST /v1/ipam/blocks": `{"kind":"block","name":"10.0.0.64-26","network":"d:p:blue","cidr":"10.0.0.64/26","node":"n1"}`},
		call: func(c *Client) (any, error) {
			return c.LeaseBlock(ctx, api.BlockRequest{Network: "d:p:blue", Node: "n1"})
		},
		want: api.Block{Meta: api.Meta{Kind: api.KindBlock, Name: "10.0.0.64-26"}, Network: "d:p:blue", CIDR: "10.0.0.64/26", Node: "n1"},
		seen: []clientSeen{{"POST", "/v1/ipam/blocks", "", "application/json", `{"network":"d:p:blue","node":"n1"}`}},
	}, {
		name:   "release block",
		routes: map[string]string{"POST /v1/ipam/blocks/release": `{}`},
		call: func(c *Client) (any, error) {
			return nil, c.ReleaseBlock(ctx, api.BlockRequest{Network: "d:p:blue", Node: "n1", CIDR: "10.0.0.64/26"})
		},
		seen: []clientSeen{{"POST", "/v1/ipam/blocks/release", "", "application/json", `{"network":"d:p:blue","node":"n1","cidr":"10.0.0.64/26"}`}},
	}, {
		name:   "version",
		routes: map[string]string{"GET /v1/version": `{"version":"v0.1.0","go_version":"go1.26.8"}`},
		call:   func(c *Client) (any, error) { return c.Version(ctx) },
		want:   api.Version{Version: "v0.1.0", GoVersion: "go1.26.8"},
		seen:   []clientSeen{{Method: "GET", Path: "/v1/version"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newClientFake(t)
			for route, body := range tt.routes {
				status := http.StatusOK
				if strings.HasPrefix(route, "DELETE") {
					status = http.StatusNoContent
				}
				f.answer(route, status, body)
			}
			got, err := tt.call(f.client())
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result:\n got %#v\nwant %#v", got, tt.want)
			}
			if seen := f.requests(); !reflect.DeepEqual(seen, tt.seen) {
				t.Errorf("requests:\n got %+v\nwant %+v", seen, tt.seen)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		sentinel error // nil: none of them
		field    string
		text     string // err.Error()
	}{
		{"invalid with field", 400, `{"error":"invalid CIDR \"10.0.0/24\"","field":"subnets[0].cidr"}`, api.ErrInvalid, "subnets[0].cidr", `subnets[0].cidr: invalid CIDR "10.0.0/24"`},
		{"unprocessable", 422, `{"error":"bad"}`, api.ErrInvalid, "", "bad"},
		{"not found", 404, `{"error":"network d:p:x not found"}`, api.ErrNotFound, "", "network d:p:x not found"},
		{"conflict", 409, `{"error":"address 10.0.0.5 in use","field":"ip"}`, api.ErrConflict, "ip", "ip: address 10.0.0.5 in use"},
		{"gone", 410, `{"error":"revision 3 compacted"}`, api.ErrGone, "", "revision 3 compacted"},
		{"server error", 500, `{"error":"etcd unavailable"}`, nil, "", "etcd unavailable"},
		{"not JSON", 502, "<html>\n  <body>Bad   gateway</body>\n</html>\n", nil, "", "HTTP 502 Bad Gateway: <html> <body>Bad gateway</body> </html>"},
		{"not JSON 404", 404, "404 page not found\n", api.ErrNotFound, "", "HTTP 404 Not Found: 404 page not found"},
		{"JSON without error", 503, `{"message":"busy"}`, nil, "", `HTTP 503 Service Unavailable: {"message":"busy"}`},
		{"empty body", 503, ``, nil, "", "HTTP 503 Service Unavailable"},
	}
	sentinels := []error{api.ErrInvalid, api.ErrNotFound, api.ErrConflict, api.ErrGone, api.ErrExhausted, api.ErrInUse}
	calls := []struct {
		name string
		call func(c *Client) error
	}{
		{"Get", func(c *Client) error { return c.Get(context.Background(), "networks", clientTestUUID, &api.Network{}) }},
		{"Create", func(c *Client) error { return c.Create(context.Background(), "networks", api.Network{}, nil) }},
		{"Delete", func(c *Client) error { return c.Delete(context.Background(), "networks", clientTestUUID) }},
		{"Allocate", func(c *Client) error { _, err := c.Allocate(context.Background(), api.AllocateRequest{}); return err }},
	}
	for _, tt := range tests {
		for _, call := range calls {
			t.Run(tt.name+"/"+call.name, func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
				}))
				defer srv.Close()
				err := call.call(New(srv.URL, nil))
				if err == nil {
					t.Fatal("no error")
				}
				var ae *api.Error
				if !errors.As(err, &ae) {
					t.Fatalf("error %T %v is not an *Error", err, err)
				}
				if ae.Code != tt.status || ae.Field != tt.field || err.Error() != tt.text {
					t.Errorf("got code %d field %q text %q, want %d %q %q", ae.Code, ae.Field, err.Error(), tt.status, tt.field, tt.text)
				}
				for _, s := range sentinels {
					if got, want := errors.Is(err, s), s == tt.sentinel; got != want {
						t.Errorf("errors.Is(err, %v) = %v, want %v", s, got, want)
					}
				}
			})
		}
	}
}

func TestClientGetByFQNameListAnswers(t *testing.T) {
	tests := []struct {
		name, body string
		notFound   bool
	}{
		{"empty list", `{"kind":"network","revision":1,"items":[]}`, true},
		{"no item matches", `{"kind":"network","revision":1,"items":[{"fq_name":"d:p:b"},{"name":"a"}]}`, true},
		{"two items match", `{"kind":"network","revision":1,"items":[{"fq_name":"d:p:a"},{"fq_name":"d:p:a"}]}`, false},
		{"not an object", `[1]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newClientFake(t)
			f.answer("GET /v1/networks", 200, tt.body)
			var n api.Network
			err := f.client().GetByFQName(context.Background(), "networks", "d:p:a", &n)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, api.ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
		})
	}
}

func TestClientTransportAndDecodeErrors(t *testing.T) {
	f := newClientFake(t)
	f.answer("GET /v1/version", 200, `{"version":`)
	c := f.client()
	if _, err := c.Version(context.Background()); err == nil || !strings.Contains(err.Error(), "decode response") {
		t.Errorf("truncated body: got %v, want a decode error", err)
	}
	url := f.srv.URL
	f.srv.Close()
	_, err := New(url, nil).Version(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/v1/version") {
		t.Errorf("closed server: got %v, want an error naming the URL", err)
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		t.Errorf("closed server: transport error %v should not be an *Error", err)
	}
}

func TestNewClientServer(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8082":   "http://127.0.0.1:8082",
		"http://127.0.0.1:8082/":  "http://127.0.0.1:8082",
		"127.0.0.1:8082":          "http://127.0.0.1:8082",
		" https://weft:443/api/ ": "https://weft:443/api",
	} {
		if got := New(in, nil).Server(); got != want {
			t.Errorf("New(%q).Server() = %q, want %q", in, got, want)
		}
	}
	if got := New("x", nil).hc.Timeout; got != DefaultTimeout {
		t.Errorf("default timeout %v, want %v", got, DefaultTimeout)
	}
}

func TestClientWatch(t *testing.T) {
	lines := strings.Join([]string{
		`{"kind":"network","type":"ADDED","object":{"name":"blue"},"revision":5}`,
		``,
		`{"kind":"port","type":"MODIFIED","object":{"name":"p1"},"revision":6}`,
		`{"kind":"network","type":"DELETED","object":{"name":"blue"},"revision":7}`,
	}, "\n") + "\n"
	f := newClientFake(t)
	f.handle("GET /v1/watch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, lines)
	})
	var got []api.WatchEvent
	err := f.client().Watch(context.Background(), 4, func(ev api.WatchEvent) error {
		got = append(got, ev)
		return nil
	})
	if !errors.Is(err, io.EOF) {
		t.Errorf("Watch returned %v, want an error wrapping io.EOF", err)
	}
	if err != nil && !strings.Contains(err.Error(), "revision 7") {
		t.Errorf("Watch error %q should name the last revision, 7", err)
	}
	want := []api.WatchEvent{
		{Kind: api.KindNetwork, Type: api.EventAdded, Object: json.RawMessage(`{"name":"blue"}`), Revision: 5},
		{Kind: api.KindPort, Type: api.EventModified, Object: json.RawMessage(`{"name":"p1"}`), Revision: 6},
		{Kind: api.KindNetwork, Type: api.EventDeleted, Object: json.RawMessage(`{"name":"blue"}`), Revision: 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
	if seen := f.requests(); len(seen) != 1 || seen[0].Query != "since=4" {
		t.Errorf("requests %+v, want one with since=4", seen)
	}
}

func TestClientWatchGone(t *testing.T) {
	f := newClientFake(t)
	f.answer("GET /v1/watch", http.StatusGone, `{"error":"revision 4 has been compacted"}`)
	called := false
	err := f.client().Watch(context.Background(), 4, func(api.WatchEvent) error { called = true; return nil })
	if !errors.Is(err, api.ErrGone) {
		t.Errorf("Watch returned %v, want ErrGone", err)
	}
	if called {
		t.Error("fn called on a 410")
	}
}

func TestClientWatchStops(t *testing.T) {
	ev := `{"kind":"node","type":"ADDED","object":{},"revision":2}` + "\n"
	stream := func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, ev)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	t.Run("fn error", func(t *testing.T) {
		f := newClientFake(t)
		f.handle("GET /v1/watch", stream)
		stop := errors.New("stop")
		if err := f.client().Watch(context.Background(), 0, func(api.WatchEvent) error { return stop }); err != stop {
			t.Errorf("Watch returned %v, want fn's error as is", err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		f := newClientFake(t)
		f.handle("GET /v1/watch", stream)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		err := f.client().Watch(ctx, 0, func(api.WatchEvent) error { n++; cancel(); return nil })
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Errorf("Watch returned %v after %d events, want context.Canceled after 1", err, n)
		}
	})
	t.Run("ignores client timeout", func(t *testing.T) {
		f := newClientFake(t)
		f.handle("GET /v1/watch", func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			time.Sleep(150 * time.Millisecond)
			io.WriteString(w, ev)
		})
		c := New(f.srv.URL, &http.Client{Timeout: 20 * time.Millisecond})
		n := 0
		err := c.Watch(context.Background(), 0, func(api.WatchEvent) error { n++; return nil })
		if !errors.Is(err, io.EOF) || n != 1 {
			t.Errorf("Watch returned %v after %d events, want io.EOF after 1", err, n)
		}
	})
	t.Run("malformed line", func(t *testing.T) {
		f := newClientFake(t)
		f.handle("GET /v1/watch", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, ev+"{not json}\n"+ev)
		})
		n := 0
		err := f.client().Watch(context.Background(), 0, func(api.WatchEvent) error { n++; return nil })
		if err == nil || errors.Is(err, io.EOF) || n != 1 || !strings.Contains(err.Error(), "after revision 2") {
			t.Errorf("Watch returned %v after %d events, want a decode error after 1", err, n)
		}
	})
	t.Run("truncated last line", func(t *testing.T) {
		f := newClientFake(t)
		f.handle("GET /v1/watch", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, ev+ev[:20])
		})
		err := f.client().Watch(context.Background(), 0, func(api.WatchEvent) error { return nil })
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("Watch returned %v, want a decode error", err)
		}
	})
}

func TestClientParseWatchEvent(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
	}{
		{`{"kind":"network","type":"ADDED","object":{"name":"a"},"revision":1}`, true},
		{`{"type":"BOOKMARK","revision":9}`, true},
		{`{"kind":"network","object":{},"revision":1}`, false},
		{`{"type":"ADDED"} {"type":"ADDED"}`, false},
		{`{"type":"ADDED"`, false},
		{`[]`, false},
		{`null`, false},
		{`{"type":"ADDED","revision":"x"}`, false},
	}
	for _, tt := range tests {
		_, err := clientParseWatchEvent([]byte(tt.line))
		if (err == nil) != tt.ok {
			t.Errorf("clientParseWatchEvent(%s) error %v, want ok=%v", tt.line, err, tt.ok)
		}
	}
}

func FuzzClientParseWatchEvent(f *testing.F) {
	f.Add([]byte(`{"kind":"network","type":"ADDED","object":{"name":"a"},"revision":1}`))
	f.Add([]byte(`{"type":"DELETED","object":null}`))
	f.Add([]byte(`{"type":"ADDED"} x`))
	f.Add([]byte(`{"type":""}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := clientParseWatchEvent(line)
		if err != nil {
			return
		}
		if ev.Type == "" {
			t.Fatalf("accepted %q without a type", line)
		}
		// An accepted event survives a round trip unchanged.
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal %+v: %v", ev, err)
		}
		again, err := clientParseWatchEvent(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		b2, _ := json.Marshal(again)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed %s into %s", b, b2)
		}
	})
}

// RegisterNode tells a new node (201) from one registered before (200).
func TestClientRegisterNode(t *testing.T) {
	const node = `{"kind":"node","name":"n1","fq_name":"n1","underlay_ip":"198.18.0.1","vtep_ip":"44.128.0.1","vtep_mac":"70:b3:d5:80:00:01"}`
	for _, tc := range []struct {
		status  int
		created bool
	}{{http.StatusCreated, true}, {http.StatusOK, false}} {
		f := newClientFake(t)
		f.answer("POST /v1/nodes/register", tc.status, node)
		n, created, err := f.client().RegisterNode(context.Background(), api.Node{Meta: api.Meta{Name: "n1"}, UnderlayIP: "198.18.0.1"})
		if err != nil || created != tc.created || n.VTEPIP != "44.128.0.1" || n.VTEPMAC != "70:b3:d5:80:00:01" {
			t.Errorf("status %d: %+v created=%v err=%v", tc.status, n, created, err)
		}
		if seen := f.requests(); len(seen) != 1 || seen[0].Body != `{"kind":"node","name":"n1","underlay_ip":"198.18.0.1"}` {
			t.Errorf("status %d: requests %+v", tc.status, seen)
		}
	}
	f := newClientFake(t)
	f.answer("POST /v1/nodes/register", http.StatusBadRequest, `{"error":"bad underlay","field":"underlay_ip"}`)
	if _, created, err := f.client().RegisterNode(context.Background(), api.Node{}); !errors.Is(err, api.ErrInvalid) || created {
		t.Errorf("refused registration: created=%v err=%v, want ErrInvalid", created, err)
	}
}

// WatchKinds names the kinds it wants; none is every kind, as Watch.
func TestClientWatchKinds(t *testing.T) {
	f := newClientFake(t)
	f.handle("GET /v1/watch", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"kind":"node","type":"MODIFIED","object":{},"revision":8}`+"\n")
	})
	for _, kinds := range [][]api.Kind{{api.KindNetwork, api.KindNode}, nil} {
		n := 0
		err := f.client().WatchKinds(context.Background(), 7, kinds, func(api.WatchEvent) error { n++; return nil })
		if !errors.Is(err, io.EOF) || n != 1 {
			t.Errorf("kinds %v: %v after %d events, want io.EOF after 1", kinds, err, n)
		}
	}
	seen := f.requests()
	if len(seen) != 2 || seen[0].Query != "kind=network%2Cnode&since=7" || seen[1].Query != "since=7" {
		t.Errorf("requests %+v", seen)
	}
}
