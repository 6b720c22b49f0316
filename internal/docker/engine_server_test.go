package docker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// engineServer is a fake Docker engine speaking the Engine API over a unix
// socket, backed by a Fake. It answers in the JSON shapes Docker 20.10 uses.
type engineServer struct {
	t       *testing.T
	fake    *Fake
	srv     *httptest.Server
	socket  string
	version string // API-Version header; "" sends none

	mu       sync.Mutex
	paths    []string
	bodies   []string
	override http.HandlerFunc // when set, answers everything
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wdk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func newEngineServer(t *testing.T) *engineServer {
	t.Helper()
	e := &engineServer{t: t, fake: NewFake(), version: "1.41"}
	e.socket = filepath.Join(shortTempDir(t), "docker.sock")
	l, err := net.Listen("unix", e.socket)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Listener = l
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *engineServer) host() string { return "unix://" + e.socket }

func (e *engineServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(e.host(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (e *engineServer) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.paths...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *APIError
	if errors.As(err, &ae) {
		writeJSON(w, ae.StatusCode, map[string]string{"message": ae.Message})
		return
	}
	writeJSON(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
}

// engineJSON renders a network as the engine does.
func engineJSON(n Network) map[string]any {
	var cfg []map[string]string
	for _, p := range n.Subnets {
		cfg = append(cfg, map[string]string{"Subnet": p.String()})
	}
	return map[string]any{
		"Name": n.Name, "Id": n.ID, "Created": "2026-11-21T07:42:27.290528805Z", "Scope": "local",
		"Driver": n.Driver, "EnableIPv6": n.EnableIPv6,
		"IPAM":     map[string]any{"Driver": "default", "Options": map[string]string{}, "Config": cfg},
		"Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": map[string]string{"Network": ""},
		"ConfigOnly": false, "Containers": map[string]any{}, "Options": n.Options, "Labels": n.Labels,
	}
}

func (e *engineServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.paths = append(e.paths, r.Method+" "+r.URL.Path)
	e.bodies = append(e.bodies, string(body))
	override := e.override
	e.mu.Unlock()
	if override != nil {
		override(w, r)
		return
	}
	if e.version != "" {
		w.Header().Set("Api-Version", e.version)
	}
	ctx := r.Context()
	if err := e.fake.Ping(ctx); err != nil {
		// A stopped engine: drop the connection without an answer.
		if conn, _, herr := http.NewResponseController(w).Hijack(); herr == nil {
			_ = conn.Close()
		}
		return
	}
	if r.URL.Path == "/_ping" {
		_, _ = io.WriteString(w, "OK")
		return
	}
	prefix := "/v" + e.version
	if e.version == "" {
		prefix = "/v" + FallbackAPIVersion
	}
	path, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "unexpected version in " + r.URL.Path})
		return
	}
	switch {
	case r.Method == http.MethodPost && path == "/networks/create":
		var req createRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
			return
		}
		spec := NetworkSpec{Name: req.Name, BridgeName: req.Options[OptBridgeName], Labels: req.Labels,
			Masquerade: req.Options[OptMasquerade] == "true"}
		spec.MTU = Network{Options: req.Options}.MTU()
		for _, c := range req.IPAM.Config {
			p := netip.MustParsePrefix(c.Subnet)
			if p.Addr().Is4() {
				spec.Subnet = p
			} else {
				spec.Subnet6 = p
			}
		}
		id, err := e.fake.NetworkCreate(ctx, spec)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"Id": id, "Warning": ""})
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/networks/"):
		n, err := e.fake.NetworkInspect(ctx, strings.TrimPrefix(path, "/networks/"))
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, engineJSON(n))
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/networks/"):
		name := strings.TrimPrefix(path, "/networks/")
		if _, err := e.fake.NetworkInspect(ctx, name); err != nil {
			writeErr(w, err)
			return
		}
		if err := e.fake.NetworkRemove(ctx, name); err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "page not found"})
	}
}

func bg(t *testing.T) context.Context {
	t.Helper()
	return t.Context()
}
