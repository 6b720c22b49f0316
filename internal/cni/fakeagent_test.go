package cni

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
)

// recordedCall is one request the fake agent received.
type recordedCall struct {
	Method string
	Path   string
	Body   json.RawMessage
}

// agentReply is a canned error answer.
type agentReply struct {
	Status int
	Body   string
}

// fakeAgent implements the agent's local API on a unix socket, records
// every request and keeps attachments in memory.
type fakeAgent struct {
	socket string
	srv    *httptest.Server

	mu       sync.Mutex
	calls    []recordedCall
	attached map[string]api.AttachRequest // container_id/ifname
	// replies overrides the answer of a path ("/v1/attach") with an error.
	replies map[string]agentReply
	// status is the answer of GET /v1/status.
	status api.AgentStatus
	// hang makes every handler wait for the client to give up.
	hang bool
}

// shortTempDir returns a directory for a unix socket: t.TempDir() unless
// its path is too long for sun_path (108 bytes).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("", "weftcni")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startFakeAgent serves the fake agent on a socket in a temporary directory.
func startFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	fa := &fakeAgent{
		socket:   filepath.Join(shortTempDir(t), "agent.sock"),
		attached: map[string]api.AttachRequest{},
		replies:  map[string]agentReply{},
		status:   api.AgentStatus{Ready: true, Node: "node-1"},
	}
	l, err := net.Listen("unix", fa.socket)
	if err != nil {
		t.Fatalf("listen on %s: %v", fa.socket, err)
	}
	fa.srv = httptest.NewUnstartedServer(http.HandlerFunc(fa.serve))
	fa.srv.Listener.Close()
	fa.srv.Listener = l
	fa.srv.Start()
	t.Cleanup(fa.srv.Close)
	return fa
}

// Calls returns the recorded requests.
func (fa *fakeAgent) Calls() []recordedCall {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	return slices.Clone(fa.calls)
}

// CallsTo returns the recorded requests to path.
func (fa *fakeAgent) CallsTo(path string) []recordedCall {
	var out []recordedCall
	for _, c := range fa.Calls() {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// LastAttach returns the last AttachRequest received.
func (fa *fakeAgent) LastAttach(t *testing.T) api.AttachRequest {
	t.Helper()
	calls := fa.CallsTo(pathAttach)
	if len(calls) == 0 {
		t.Fatalf("the agent received no attach request")
	}
	var req api.AttachRequest
	if err := json.Unmarshal(calls[len(calls)-1].Body, &req); err != nil {
		t.Fatalf("decode attach request: %v", err)
	}
	return req
}

// Reply makes path answer with an error.
func (fa *fakeAgent) Reply(path string, status int, body string) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	fa.replies[path] = agentReply{Status: status, Body: body}
}

// ClearReply makes path answer normally again.
func (fa *fakeAgent) ClearReply(path string) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	delete(fa.replies, path)
}

// SetStatus sets the answer of GET /v1/status.
func (fa *fakeAgent) SetStatus(st api.AgentStatus) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	fa.status = st
}

// SetHang makes the agent accept connections and never answer.
func (fa *fakeAgent) SetHang(h bool) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	fa.hang = h
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (fa *fakeAgent) serve(w http.ResponseWriter, r *http.Request) {
	var body json.RawMessage
	if r.Body != nil {
		_ = json.NewDecoder(r.Body).Decode(&body)
	}
	fa.mu.Lock()
	fa.calls = append(fa.calls, recordedCall{Method: r.Method, Path: r.URL.Path, Body: body})
	reply, hasReply := fa.replies[r.URL.Path]
	hang := fa.hang
	fa.mu.Unlock()

	if hang {
		<-r.Context().Done()
		return
	}
	if hasReply {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reply.Status)
		_, _ = w.Write([]byte(reply.Body))
		return
	}

	fa.mu.Lock()
	defer fa.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == pathAttach:
		var req api.AttachRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: err.Error()})
			return
		}
		fa.attached[req.ContainerID+"/"+req.IfName] = req
		writeJSON(w, http.StatusOK, fakeResult(req))
	case r.Method == http.MethodPost && (r.URL.Path == pathDetach || r.URL.Path == pathCheck):
		var req api.DetachRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: err.Error()})
			return
		}
		key := req.ContainerID + "/" + req.IfName
		if _, ok := fa.attached[key]; !ok {
			writeJSON(w, http.StatusNotFound, api.Error{Message: "no attachment " + key})
			return
		}
		if r.URL.Path == pathDetach {
			delete(fa.attached, key)
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && r.URL.Path == pathGC:
		var req api.GCRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: err.Error()})
			return
		}
		valid := map[string]bool{}
		for _, v := range req.Valid {
			valid[v.ContainerID+"/"+v.IfName] = true
		}
		for key, a := range fa.attached {
			if a.CNINetwork == req.CNINetwork && !valid[key] {
				delete(fa.attached, key)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && r.URL.Path == pathStatus:
		writeJSON(w, http.StatusOK, fa.status)
	default:
		writeJSON(w, http.StatusNotFound, api.Error{Message: "unknown path " + r.URL.Path})
	}
}

// Attached reports whether container/ifname is attached.
func (fa *fakeAgent) Attached(containerID, ifName string) bool {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	_, ok := fa.attached[containerID+"/"+ifName]
	return ok
}

// fakeResult is the agent's answer to an attach: 10.32.0.5/12 (or the first
// explicit IPv4), plus fd00::5/64 when IPv6 is asked for.
func fakeResult(req api.AttachRequest) api.AttachResult {
	v4 := "10.32.0.5"
	v6 := ""
	for _, ip := range req.IPs {
		if net.ParseIP(ip).To4() != nil {
			v4 = ip
		} else if v6 == "" {
			v6 = ip
		}
	}
	if v6 == "" && slices.Contains(req.Families, "ipv6") {
		v6 = "fd00::5"
	}
	res := api.AttachResult{
		Port:      "93c2c386-6e79-485e-bfa4-b9daa713133b",
		Network:   "default-domain:mesos-default:mesos-default-pod-task-network",
		Interface: req.IfName,
		MAC:       "02:93:c2:c3:86:6e",
		HostIf:    "weft93c2c386",
		Sandbox:   req.Netns,
		MTU:       1450,
		IPs:       []api.AttachedIP{{Address: v4 + "/12", Gateway: "10.32.0.1"}},
		Routes:    []api.AttachedRoute{{Dst: "0.0.0.0/0", GW: "10.32.0.1"}},
		DNS:       api.DNSConfig{Nameservers: []string{"10.32.0.2"}, Search: []string{"mesos"}},
	}
	if v6 != "" {
		res.IPs = append(res.IPs, api.AttachedIP{Address: v6 + "/64", Gateway: "fd00::1"})
		res.Routes = append(res.Routes, api.AttachedRoute{Dst: "::/0", GW: "fd00::1"})
	}
	return res
}
