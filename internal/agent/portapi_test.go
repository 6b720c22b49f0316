package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// portAPI makes a request to the agent's port API.
func (r *agentRun) portAPI(method, path, body string) (int, string, []byte) {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+r.a.PortAPIAddr()+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func TestPortAPI(t *testing.T) {
	h := newHarness(t)
	r := h.startAgent(agentOpts{})
	res0 := r.attach(attachReq("5baff6a0-1111-4222-8333-444455556666"))
	second := attachReq("5baff6a0-1111-4222-8333-444455556666")
	second.IfName = "eth1"
	res1 := r.attach(second)
	const vm = "5baff6a0-1111-4222-8333-444455556666"
	const external = `{"ip-address": "10.32.250.3", "tx-vlan-id": -1, "display-name": "vm1", "id": "93c2c386-6e79-485e-bfa4-b9daa713133b", "instance-id": "69ce06bd-6d1e-43d0-8e48-a30043a49ed8", "ip6-address": "None", "rx-vlan-id": -1, "system-name": "tap93c2c386-6e", "vn-id": "%VN%", "vm-project-id": "9970147c-33b1-4bf7-8944-8968e708d430", "type": 0, "mac-address": "02:93:c2:c3:86:6e"}`
	vn := r.a.cache.Network("default-domain:default-project:mesos-default-pod-task").UUID

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		code   int
		check  func(t *testing.T, body []byte)
	}{
		{name: "vm-cfg by name", method: "GET", path: "/vm-cfg/" + vm, code: 200, check: func(t *testing.T, b []byte) {
			var got []map[string]any
			mustJSON(t, b, &got)
			if len(got) != 2 {
				t.Fatalf("want 2 interfaces, got %s", b)
			}
			for i, res := range []string{res0.Port, res1.Port} {
				o := got[i]
				if o["id"] != res || o["vm-uuid"] != vm || o["vn-id"] != vn || o["vn-name"] != "default-domain:default-project:mesos-default-pod-task" {
					t.Errorf("object %d: %v", i, o)
				}
				ann, _ := o["annotations"].([]any)
				if len(ann) == 0 || ann[0] != []string{"{index:0/2}", "{index:1/2}"}[i] {
					t.Errorf("object %d annotations %v", i, ann)
				}
				if o["ip-address"] == "" || o["plen"] != float64(16) || o["gateway"] != "10.32.0.1" || o["mac-address"] == "" || o["system-name"] == "" {
					t.Errorf("object %d: %v", i, o)
				}
			}
		}},
		{name: "vm by uuid", method: "GET", path: "/vm/" + vm, code: 200, check: func(t *testing.T, b []byte) {
			var got []contrailPort
			mustJSON(t, b, &got)
			if len(got) != 2 || got[0].InstanceID != vm || got[0].RxVLANID != 0xFFFF || got[0].SystemName != res0.HostIf {
				t.Fatalf("got %s", b)
			}
		}},
		{name: "vm by uuid and vmi", method: "GET", path: "/vm/" + vm + "/" + res1.Port, code: 200, check: func(t *testing.T, b []byte) {
			var got []contrailPort
			mustJSON(t, b, &got)
			if len(got) != 1 || got[0].ID != res1.Port || got[0].IPAddress+"/16" != res1.IPs[0].Address {
				t.Fatalf("got %s", b)
			}
		}},
		{name: "port by uuid", method: "GET", path: "/port/" + res0.Port, code: 200, check: func(t *testing.T, b []byte) {
			var got contrailPort
			mustJSON(t, b, &got)
			if got.ID != res0.Port || got.MACAddress != res0.MAC || got.Author == "" || got.Time == "" {
				t.Fatalf("got %s", b)
			}
		}},
		{name: "unknown port", method: "GET", path: "/port/00000000-0000-4000-8000-000000000000", code: 404, check: wantError("{ Not Found }")},
		{name: "port not a uuid", method: "GET", path: "/port/xyz", code: 404, check: wantError("{ Not Found }")},
		{name: "unknown vm-cfg", method: "GET", path: "/vm-cfg/nobody", code: 404, check: wantError("{ Not Found }")},
		{name: "unknown vm", method: "GET", path: "/vm/nobody", code: 404, check: wantError("{ Not Found }")},
		{name: "unknown path", method: "GET", path: "/nope", code: 404, check: wantError("Unknown Request")},
		{name: "wrong method", method: "PATCH", path: "/port/" + res0.Port, code: 404, check: wantError("Unknown Request")},
		{name: "post port missing field", method: "POST", path: "/port", body: `{"id":"93c2c386-6e79-485e-bfa4-b9daa713133b"}`, code: 500, check: wantError("{ Invalid or missing data for instance-id }")},
		{name: "post port bad mac", method: "POST", path: "/port", body: strings.ReplaceAll(strings.ReplaceAll(external, "%VN%", vn), "02:93:c2:c3:86:6e", "zz"), code: 500, check: wantError("{ Invalid MAC, Use xx:xx:xx:xx:xx:xx format }")},
		{name: "post port array all or none", method: "POST", path: "/port", body: "[" + strings.ReplaceAll(external, "%VN%", vn) + `,{"id":"x"}]`, code: 500, check: wantError("{ Invalid or missing data for id }")},
		{name: "nothing registered by the refused array", method: "GET", path: "/port/93c2c386-6e79-485e-bfa4-b9daa713133b", code: 404, check: wantError("{ Not Found }")},
		{name: "post port", method: "POST", path: "/port", body: strings.ReplaceAll(external, "%VN%", vn), code: 200, check: wantBody("{}")},
		{name: "external port", method: "GET", path: "/port/93c2c386-6e79-485e-bfa4-b9daa713133b", code: 200, check: func(t *testing.T, b []byte) {
			var got contrailPort
			mustJSON(t, b, &got)
			if got.IPAddress != "10.32.250.3" || got.Plen != 16 || got.SystemName != "tap93c2c386-6e" || got.InstanceID != "69ce06bd-6d1e-43d0-8e48-a30043a49ed8" || got.RxVLANID != -1 || got.DisplayName != "vm1" {
				t.Fatalf("got %s", b)
			}
		}},
		{name: "post vm", method: "POST", path: "/vm", body: `{"vm-uuid":"69ce06bd-6d1e-43d0-8e48-a30043a49ed8","vm-name":"task-1","host-ifname":"tap93c2c386-6e","vn-uuid":"` + vn + `","vmi-uuid":"93c2c386-6e79-485e-bfa4-b9daa713133b","vm-ifname":"eth0"}`, code: 200, check: wantBody("{}")},
		{name: "post vm missing field", method: "POST", path: "/vm", body: `{"vm-uuid":"69ce06bd-6d1e-43d0-8e48-a30043a49ed8"}`, code: 500, check: wantErrorPrefix("{ Invalid or missing data for ")},
		{name: "vm-cfg of external by name", method: "GET", path: "/vm-cfg/task-1", code: 200, check: func(t *testing.T, b []byte) {
			var got []contrailPort
			mustJSON(t, b, &got)
			if len(got) != 1 || got[0].ID != "93c2c386-6e79-485e-bfa4-b9daa713133b" || got[0].Annotations[0] != "{index:0/1}" {
				t.Fatalf("got %s", b)
			}
		}},
		{name: "delete vm", method: "DELETE", path: "/vm/69ce06bd-6d1e-43d0-8e48-a30043a49ed8", code: 200, check: wantBody("{}")},
		{name: "external gone", method: "GET", path: "/port/93c2c386-6e79-485e-bfa4-b9daa713133b", code: 404, check: wantError("{ Not Found }")},
		{name: "delete own port is ignored", method: "DELETE", path: "/port/" + res0.Port, code: 200, check: wantBody("{}")},
		{name: "own port still there", method: "GET", path: "/port/" + res0.Port, code: 200},
		{name: "syncports", method: "POST", path: "/syncports", code: 200, check: wantBody("{}")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, ct, body := r.portAPI(tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.code)
			}
			if ct != "application/json; charset=UTF-8" {
				t.Fatalf("content type %q", ct)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
	// Metrics are on the port API listener.
	code, _, body := r.portAPI("GET", "/metrics", "")
	if code != 200 || !strings.Contains(string(body), `weft_agent_attaches_total{result="ok"} 2`) || !strings.Contains(string(body), "weft_agent_attach_duration_seconds_bucket") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	// A detached container disappears from the port API.
	r.detach(vm, "eth0")
	eventually(t, 5*time.Second, func() (bool, string) {
		code, _, _ := r.portAPI("GET", "/port/"+res0.Port, "")
		return code == 404, "port still shown"
	})
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func wantError(msg string) func(*testing.T, []byte) {
	return func(t *testing.T, b []byte) {
		t.Helper()
		var e map[string]string
		mustJSON(t, b, &e)
		if e["error"] != msg || len(e) != 1 {
			t.Fatalf("body %s, want error %q", b, msg)
		}
	}
}

func wantErrorPrefix(prefix string) func(*testing.T, []byte) {
	return func(t *testing.T, b []byte) {
		t.Helper()
		var e map[string]string
		mustJSON(t, b, &e)
		if !strings.HasPrefix(e["error"], prefix) {
			t.Fatalf("body %s, want an error starting %q", b, prefix)
		}
	}
}

func wantBody(s string) func(*testing.T, []byte) {
	return func(t *testing.T, b []byte) {
		t.Helper()
		if strings.TrimSpace(string(b)) != s {
			t.Fatalf("body %q, want %q", b, s)
		}
	}
}
