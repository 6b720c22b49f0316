package emulator

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// waitRunning waits until the app's deployment is over.
func waitDeployed(t *testing.T, h *harness) {
	t.Helper()
	eventually(t, "deployments to finish", func() bool {
		return len(h.mustJSON("GET", "/v2/deployments", "", 200).([]any)) == 0
	})
}

func TestRESTShapesMatchFixtures(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Agents[0].Region, c.Agents[0].Zone = "primary", "a"
		c.Agents = c.Agents[:1]
	})

	// A real Marathon 1.5 answer, posted back as a definition (the
	// embedded fields are not part of a definition and are ignored).
	fixture15 := decodeJSON(t, readFixture(t, "marathon-lb/marathon15_apps.json"))
	def, _ := json.Marshal(get(fixture15, "apps", 0))
	h.mustJSON("POST", "/v2/apps", string(def), 201)
	// A host-networking app, for servicePorts on /v2/tasks.
	h.mustJSON("POST", "/v2/apps", `{"id":"/frontend","cmd":"sleep 1000","portDefinitions":[{"port":0,"name":"http"}]}`, 201)
	waitDeployed(t, h)

	t.Run("apps?embed=apps.tasks", func(t *testing.T) {
		got := h.mustJSON("GET", "/v2/apps?embed=apps.tasks", "", 200)
		want := fixture15
		compareKeys(t, "body", got, want, nil, nil)
		app := get(got, "apps", 1)
		if get(app, "id") != "/pywebserver" {
			t.Fatalf("apps %v", got)
		}
		w := get(want, "apps", 0)
		compareKeys(t, "app", app, w, []string{"role"}, nil)
		for _, p := range [][]any{{"container"}, {"container", "docker"}, {"container", "portMappings", 0}, {"networks", 0},
			{"upgradeStrategy"}, {"unreachableStrategy"}, {"versionInfo"}, {"tasks", 0}, {"tasks", 0, "ipAddresses", 0}} {
			extra := []string(nil)
			if p[0] == "tasks" && len(p) == 2 {
				extra = []string{"role", "region", "zone"}
			}
			compareKeys(t, "app"+jsonPath(p), get(app, p...), get(w, p...), extra, nil)
		}
		if get(app, "container", "portMappings", 0, "servicePort") != float64(10101) || get(app, "tasks", 0, "ports", 0) == nil {
			t.Errorf("service or host port: %v", app)
		}
		for _, legacy := range []string{"ipAddress", "ports", "uris"} {
			if get(app, legacy) != nil {
				t.Errorf("1.5+ app has %s", legacy)
			}
		}
	})
	t.Run("apps/{id}/tasks", func(t *testing.T) {
		got := h.mustJSON("GET", "/v2/apps/pywebserver/tasks", "", 200)
		want := decodeJSON(t, readFixture(t, "rest-api-examples/app_tasks.json"))
		compareKeys(t, "body", got, want, nil, nil)
		compareKeys(t, "task", get(got, "tasks", 0), get(want, "tasks", 0), []string{"ipAddresses"}, nil)
		if id, _ := get(got, "tasks", 0, "id").(string); !strings.HasPrefix(id, "pywebserver.instance-") || !strings.HasSuffix(id, "._app.1") {
			t.Errorf("task id %q", id)
		}
	})
	t.Run("tasks", func(t *testing.T) {
		got := h.mustJSON("GET", "/v2/tasks", "", 200)
		want := decodeJSON(t, readFixture(t, "rest-api-examples/tasks.json"))
		compareKeys(t, "body", got, want, nil, nil)
		for i := range 2 {
			compareKeys(t, "task", get(got, "tasks", i), get(want, "tasks", 0), []string{"ipAddresses"}, nil)
		}
		if sp := get(got, "tasks", 0, "servicePorts", 0); sp != float64(10000) {
			t.Errorf("servicePorts %v", get(got, "tasks", 0))
		}
		if n := len(get(h.mustJSON("GET", "/v2/tasks?status=staging", "", 200), "tasks").([]any)); n != 0 {
			t.Errorf("%d staging tasks", n)
		}
		if n := len(get(h.mustJSON("GET", "/v2/tasks?status[]=running", "", 200), "tasks").([]any)); n != 2 {
			t.Errorf("%d running tasks", n)
		}
	})
	t.Run("info", func(t *testing.T) {
		got := h.mustJSON("GET", "/v2/info", "", 200)
		want := decodeJSON(t, readFixture(t, "rest-api-examples/info.json"))
		compareKeys(t, "info", got, want, nil, nil)
		for _, k := range []string{"marathon_config", "zookeeper_config", "http_config"} {
			compareKeys(t, k, get(got, k), get(want, k), nil, nil)
		}
		if get(got, "elected") != true || get(got, "frameworkId") == "" || !strings.HasPrefix(get(got, "version").(string), "1.10") {
			t.Errorf("info %v", got)
		}
	})
	t.Run("app_list 1.4 definition", func(t *testing.T) {
		// The docs' list shows a ≤ 1.4 app; posted back it comes out in
		// the 1.5 form: ports → portDefinitions, uris → fetch, nulls gone.
		want := get(decodeJSON(t, readFixture(t, "rest-api-examples/app_list.json")), "apps", 0)
		def, _ := json.Marshal(want)
		h.mustJSON("POST", "/v2/apps?force=true", string(def), 201)
		got := get(h.mustJSON("GET", "/v2/apps/myapp", "", 200), "app")
		var present []string
		for k, v := range want.(map[string]any) {
			if v != nil && !emptyJSON(mustMarshal(t, v)) && k != "ports" && k != "uris" {
				present = append(present, k)
			}
		}
		gotKeys := keys(got)
		for _, k := range present {
			if !contains(gotKeys, k) {
				t.Errorf("lost %s", k)
			}
		}
		if get(got, "portDefinitions", 1, "port") != float64(10015) || get(got, "fetch", 0, "uri") == nil {
			t.Errorf("translation %v", got)
		}
	})
	t.Run("deployments", func(t *testing.T) {
		gate := make(chan struct{})
		h.agents[0].HoldLaunches(gate)
		defer close(gate)
		h.mustJSON("POST", "/v2/apps", `{"id":"/held","cmd":"sleep 1"}`, 201)
		got := h.mustJSON("GET", "/v2/deployments", "", 200)
		want := decodeJSON(t, readFixture(t, "rest-api-examples/deployments.json"))
		d := get(got, 0)
		compareKeys(t, "deployment", d, get(want, 0), nil, nil)
		compareKeys(t, "step", get(d, "steps", 0), get(want, 0, "steps", 0), nil, nil)
		compareKeys(t, "action", get(d, "steps", 0, "actions", 0), get(want, 0, "steps", 0, "actions", 0), nil, nil)
		compareKeys(t, "currentAction", get(d, "currentActions", 0), get(want, 0, "currentActions", 0), nil, nil)
		if get(d, "currentStep") != float64(2) || get(d, "totalSteps") != float64(2) || get(d, "affectedApps", 0) != "/held" {
			t.Errorf("deployment %v", d)
		}
		if got := get(h.mustJSON("GET", "/v2/apps/held", "", 200), "app", "deployments", 0, "id"); got != get(d, "id") {
			t.Errorf("app deployments %v", got)
		}
	})
	t.Run("pod", func(t *testing.T) {
		body := readFixture(t, "rest-api-examples/pod.json")
		resp, b := h.do("POST", "/v2/pods", string(body))
		if resp.StatusCode != 201 {
			t.Fatalf("%s %s", resp.Status, b)
		}
		got := h.mustJSON("GET", "/v2/pods/foo", "", 200)
		want := decodeJSON(t, body)
		compareKeys(t, "pod", got, want, []string{"version"}, nil)
		compareKeys(t, "scaling", get(got, "scaling"), get(want, "scaling"), nil, nil)
		compareKeys(t, "networks", get(got, "networks", 0), get(want, "networks", 0), nil, []string{"labels"})
		list := h.mustJSON("GET", "/v2/pods", "", 200)
		if l, ok := list.([]any); !ok || len(l) != 1 {
			t.Errorf("GET /v2/pods is not a bare array of one pod: %v", list)
		}
		resp, _ = h.do("HEAD", "/v2/pods", "")
		if resp.StatusCode != 200 {
			t.Errorf("HEAD /v2/pods %s", resp.Status)
		}
		h.mustJSON("DELETE", "/v2/pods/foo?force=true", "", 202)
	})
	t.Run("pod status", func(t *testing.T) {
		h.agents[0].HoldLaunches(nil)
		h.mustJSON("POST", "/v2/pods", twoContainerPod, 201)
		waitDeployed(t, h)
		// The shape of the reference (marathon-api.md §3.7).
		want := decodeJSON(t, []byte(`{"id":"/grp/pod","spec":{},"status":"STABLE","statusSince":"…","instances":[{
  "id":"grp_pod.instance-dc6cfe60-6812-11e7-a18e-70b3d5800003","status":"STABLE",
  "agentHostname":"10.0.0.5","agentId":"…-S1",
  "networks":[{"name":"dcos","addresses":["9.0.1.5"]}],
  "containers":[{"name":"web","status":"TASK_RUNNING","containerId":"grp_pod.instance-….web.1",
     "endpoints":[{"name":"http","allocatedHostPort":31001}],"conditions":[]}],
  "specReference":"/v2/pods/grp/pod::versions/…"}]}`))
		list := h.mustJSON("GET", "/v2/pods/::status", "", 200)
		got := get(list, 0)
		compareKeys(t, "status", got, want, []string{"lastUpdated", "lastChanged"}, nil)
		compareKeys(t, "instance", get(got, "instances", 0), get(want, "instances", 0),
			[]string{"statusSince", "conditions", "resources", "lastUpdated", "lastChanged", "role", "agentRegion", "agentZone"}, nil)
		compareKeys(t, "network", get(got, "instances", 0, "networks", 0), get(want, "instances", 0, "networks", 0), nil, nil)
		compareKeys(t, "container", get(got, "instances", 0, "containers", 0), get(want, "instances", 0, "containers", 0),
			[]string{"statusSince", "resources", "lastUpdated", "lastChanged"}, nil)
		compareKeys(t, "endpoint", get(got, "instances", 0, "containers", 0, "endpoints", 0), get(want, "instances", 0, "containers", 0, "endpoints", 0), nil, nil)
		if ref, _ := get(got, "instances", 0, "specReference").(string); !strings.HasPrefix(ref, "/v2/pods/db::versions/") {
			t.Errorf("specReference %q", ref)
		}
	})
}

func jsonPath(p []any) string {
	var b strings.Builder
	for _, x := range p {
		b.WriteString("/")
		switch v := x.(type) {
		case string:
			b.WriteString(v)
		default:
			b.WriteString("0")
		}
	}
	return b.String()
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestErrorBodies(t *testing.T) {
	h := newHarness(t)
	h.mustJSON("POST", "/v2/apps", `{"id":"/dup","cmd":"sleep 1"}`, 201)
	tests := []struct {
		name, method, path, body string
		code                     int
		message                  string
		detailPath               string
	}{
		{"app not found", "GET", "/v2/apps/nope", "", 404, "App '/nope' does not exist", ""},
		{"app tasks not found", "GET", "/v2/apps/grp/nope/tasks", "", 404, "App '/grp/nope' does not exist", ""},
		{"delete unknown app", "DELETE", "/v2/apps/nope", "", 404, "App '/nope' does not exist", ""},
		{"pod status not found", "GET", "/v2/pods/nope::status", "", 404, "Pod '/nope' does not exist", ""},
		{"pod delete not found", "DELETE", "/v2/pods/nope", "", 404, "Pod '/nope' does not exist", ""},
		{"pod get not found: JSON in the message", "GET", "/v2/pods/nope", "", 404, `{"message":"Pod '/nope' does not exist"}`, ""},
		{"task not found", "DELETE", "/v2/apps/dup/tasks/dup.instance-x._app.1", "", 404, "Task 'dup.instance-x._app.1' does not exist", ""},
		{"duplicate app", "POST", "/v2/apps", `{"id":"dup","cmd":"x"}`, 409, "An app with id [/dup] already exists.", ""},
		{"invalid JSON", "POST", "/v2/apps", `{"id":`, 400, "Invalid JSON", "/"},
		{"wrong JSON type", "POST", "/v2/apps", `{"id":"x","cmd":"y","instances":"two"}`, 400, "Invalid JSON", "/instances"},
		{"no id", "POST", "/v2/apps", `{"cmd":"x"}`, 422, "Object is not valid", "/id"},
		{"bad id", "POST", "/v2/apps", `{"id":"/My_App","cmd":"x"}`, 422, "Object is not valid", "/id"},
		{"negative instances", "POST", "/v2/apps", `{"id":"x","cmd":"x","instances":-1}`, 422, "Object is not valid", "/instances"},
		{"nothing to run", "POST", "/v2/apps", `{"id":"x"}`, 422, "Object is not valid", "/"},
		{"cmd and args", "POST", "/v2/apps", `{"id":"x","cmd":"a","args":["b"]}`, 422, "Object is not valid", "/"},
		{"unnamed container network", "POST", "/v2/apps", `{"id":"x","cmd":"a","networks":[{"mode":"container"}]}`, 422, "Object is not valid", "/networks(0)/name"},
		{"bad network mode", "POST", "/v2/apps", `{"id":"x","cmd":"a","networks":[{"mode":"overlay"}]}`, 422, "Object is not valid", "/networks(0)/mode"},
		{"host mixed", "POST", "/v2/apps", `{"id":"x","cmd":"a","networks":[{"mode":"host"},{"mode":"container","name":"n"}]}`, 422, "Object is not valid", "/networks"},
		{"docker without image", "POST", "/v2/apps", `{"id":"x","container":{"type":"DOCKER","docker":{}}}`, 422, "Object is not valid", "/container/docker/image"},
		{"bad container type", "POST", "/v2/apps", `{"id":"x","cmd":"a","container":{"type":"RKT"}}`, 422, "Object is not valid", "/container/type"},
		{"bad protocol", "POST", "/v2/apps", `{"id":"x","cmd":"a","portDefinitions":[{"port":0,"protocol":"sctp"}]}`, 422, "Object is not valid", "/portDefinitions(0)/protocol"},
		{"hostPort without networkNames", "POST", "/v2/apps", `{"id":"x","cmd":"a","networks":[{"name":"a"},{"name":"b"}],"container":{"type":"MESOS","portMappings":[{"containerPort":80,"hostPort":0}]}}`, 422, "Object is not valid", "/container/portMappings(0)/networkNames"},
		{"docs example mixing BRIDGE and ipAddress", "POST", "/v2/apps", string(readFixture(t, "rest-api-examples/app.json")), 422, "Object is not valid", "/ipAddress"},
		{"pod without containers", "POST", "/v2/pods", `{"id":"p","containers":[]}`, 422, "Object is not valid", "/containers"},
		{"pod bad container name", "POST", "/v2/pods", `{"id":"p","containers":[{"name":"A_b"}]}`, 422, "Object is not valid", "/containers(0)/name"},
		{"unknown route", "GET", "/v2/nothing", "", 500, "URI not found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.do(tt.method, tt.path, tt.body)
			if resp.StatusCode != tt.code {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.code, b)
			}
			body := decodeJSON(t, b)
			if get(body, "message") != tt.message {
				t.Errorf("message %q, want %q", get(body, "message"), tt.message)
			}
			if tt.detailPath == "" {
				if d := get(body, "details"); d != nil {
					t.Errorf("details %v", d)
				}
				return
			}
			var paths []string
			for _, d := range get(body, "details").([]any) {
				compareKeys(t, "detail", d, map[string]any{"path": 1, "errors": 1}, nil, nil)
				paths = append(paths, get(d, "path").(string))
			}
			if !contains(paths, tt.detailPath) {
				t.Errorf("detail paths %q, want %s: %s", paths, tt.detailPath, b)
			}
		})
	}
}

func TestLegacyDefinitionIsTranslated(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultNetworkName = "dcos" })
	resp, b := h.do("POST", "/v2/apps", string(readFixture(t, "system-tests/pinger-container-app.json")))
	if resp.StatusCode != 201 {
		t.Fatalf("%s %s", resp.Status, b)
	}
	app := decodeJSON(t, b)
	if get(app, "ipAddress") != nil || get(app, "networks", 0, "mode") != "container" || get(app, "networks", 0, "name") != "dcos" ||
		get(app, "container", "type") != "MESOS" || get(app, "container", "portMappings", 0, "containerPort") != float64(7777) ||
		get(app, "container", "portMappings", 0, "name") != "my-port" || get(app, "container", "portMappings", 0, "hostPort") != nil ||
		get(app, "portDefinitions") != nil || get(app, "fetch", 0, "uri") != "http://master.mesos:7777/pinger.py" {
		t.Errorf("translated app %s", b)
	}
	// A port without host port: discovery names the container port on
	// the container network.
	waitDeployed(t, h)
	var spec string
	for _, a := range h.agents {
		for _, c := range a.Launched() {
			spec = string(c.Task.Discovery)
		}
	}
	if !strings.Contains(spec, `"number":7777`) || !strings.Contains(spec, `{"key":"network-scope","value":"container"},{"key":"network-name","value":"dcos"}`) ||
		!strings.Contains(spec, `"name":"pinger-container-app"`) {
		t.Errorf("discovery %s", spec)
	}
}

func TestPingInfoLeaderHeaders(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Advertise = "marathon.lab:8080" })
	tests := []struct {
		accept, body, ctype string
		code                int
	}{
		{"", "pong", "text/plain", 200},
		{"*/*", "pong", "text/plain", 200},
		{"application/json", `"pong"`, "application/json", 200},
		{"image/png", "", "", 204},
	}
	for _, tt := range tests {
		var hdr []string
		if tt.accept != "" {
			hdr = []string{"Accept", tt.accept}
		}
		resp, b := h.do("GET", "/ping", "", hdr...)
		if resp.StatusCode != tt.code || string(b) != tt.body || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
			t.Errorf("ping Accept %q: %s %q %s", tt.accept, resp.Status, b, resp.Header.Get("Content-Type"))
		}
	}
	resp, b := h.do("GET", "/v2/leader", "")
	if string(b) != `{"leader":"marathon.lab:8080"}` {
		t.Errorf("leader %s", b)
	}
	for k, v := range map[string]string{"X-Marathon-Leader": "http://marathon.lab:8080", "X-Frame-Options": "DENY",
		"X-XSS-Protection": "1; mode=block", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"} {
		if resp.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	if info := h.mustJSON("GET", "/v2/info", "", 200); get(info, "leader") != "marathon.lab:8080" || get(info, "http_config", "http_port") != float64(8080) {
		t.Errorf("info %v", info)
	}
	// Gzip for clients that accept it (not for the event stream).
	h.mustJSON("POST", "/v2/apps", `{"id":"/z","cmd":"sleep 1","labels":{"a":"`+strings.Repeat("b", 500)+`"}}`, 201)
	req, _ := http.NewRequest("GET", h.srv.URL+"/v2/apps", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !strings.Contains(string(b), `"/z"`) {
		t.Errorf("gzipped body %s", b)
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		header  string
		code    int
		challng string
	}{
		{"basic: none", func(c *Config) { c.BasicAuth = map[string]string{"ops": "s3cret"} }, "", 401, `basic realm="Mesosphere"`},
		{"basic: wrong password", func(c *Config) { c.BasicAuth = map[string]string{"ops": "s3cret"} }, "Basic b3BzOm5vcGU=", 401, `basic realm="Mesosphere"`},
		{"basic: good", func(c *Config) { c.BasicAuth = map[string]string{"ops": "s3cret"} }, "Basic b3BzOnMzY3JldA==", 200, ""},
		{"token: good", func(c *Config) { c.Token = "abc" }, "token=abc", 200, ""},
		{"token: wrong", func(c *Config) { c.Token = "abc" }, "token=abd", 401, "acsjwt"},
		{"token: basic given", func(c *Config) { c.Token = "abc" }, "Basic b3BzOnMzY3JldA==", 401, "acsjwt"},
		{"both: token", func(c *Config) { c.Token = "abc"; c.BasicAuth = map[string]string{"ops": "s3cret"} }, "token=abc", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			for _, path := range []string{"/ping", "/v2/apps", "/v2/events"} {
				hdr := []string{"Accept", "text/plain"}
				if path == "/v2/events" {
					hdr = []string{"Accept", "text/event-stream"}
				}
				if tt.header != "" {
					hdr = append(hdr, "Authorization", tt.header)
				}
				if path == "/v2/events" && tt.code == 200 {
					openStream(t, h.srv.URL+path, http.Header{"Authorization": {tt.header}}).attached()
					continue
				}
				resp, b := h.do("GET", path, "", hdr...)
				if resp.StatusCode != tt.code || resp.Header.Get("WWW-Authenticate") != tt.challng {
					t.Errorf("%s: %s %q %s", path, resp.Status, resp.Header.Get("WWW-Authenticate"), b)
				}
				if tt.code == 401 && !strings.Contains(string(b), "HTTP ERROR 401") {
					t.Errorf("%s: body %s", path, b)
				}
			}
		})
	}
}

func TestStandbyRedirectsEventsAndProxiesTheRest(t *testing.T) {
	leader := newHarness(t, func(c *Config) { c.BasicAuth = map[string]string{"ops": "pw"} })
	leader.auth = "Basic b3BzOnB3"
	standby, err := New(Config{LeaderURL: leader.srv.URL, Log: testLogger(t), BasicAuth: map[string]string{"ops": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := standby.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(standby.Handler())
	defer srv.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", srv.URL+"/v2/events?event_type=status_update_event&event_type=app_terminated_event", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.SetBasicAuth("ops", "pw")
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != leader.srv.URL+"/v2/events?event_type=status_update_event&event_type=app_terminated_event" {
		t.Errorf("events on standby: %s Location %q", resp.Status, resp.Header.Get("Location"))
	}
	// Without credentials the standby answers 401 before redirecting.
	req.Header.Del("Authorization")
	if resp, err = noFollow.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("standby without credentials: %v %v", resp.Status, err)
	}

	// Everything else is proxied to the leader.
	leader.mustJSON("POST", "/v2/apps", `{"id":"/web","cmd":"sleep 1"}`, 201)
	req, _ = http.NewRequest("GET", srv.URL+"/v2/apps/web", nil)
	req.SetBasicAuth("ops", "pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	leaderHost := strings.TrimPrefix(leader.srv.URL, "http://")
	if resp.StatusCode != 200 || get(decodeJSON(t, b), "app", "id") != "/web" || resp.Header.Get("X-Marathon-Leader") != "http://"+leaderHost ||
		resp.Header.Get("X-Marathon-Via") != "1.1 "+strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("proxied: %s %v %s", resp.Status, resp.Header, b)
	}
	// A request that already went through this standby is a loop.
	req, _ = http.NewRequest("GET", srv.URL+"/ping", nil)
	req.SetBasicAuth("ops", "pw")
	req.Header.Set("X-Marathon-Via", "1.1 "+strings.TrimPrefix(srv.URL, "http://"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(b), "Detected proxying loop.") {
		t.Errorf("loop: %s %s", resp.Status, b)
	}

	// A client that follows the redirect by hand, re-sending credentials.
	st := openStream(t, resp.Request.URL.Scheme+"://"+leaderHost+"/v2/events", http.Header{"Authorization": {"Basic b3BzOnB3"}})
	st.attached()

	// With the leader gone the standby answers 502.
	dead, _ := New(Config{LeaderURL: "http://127.0.0.1:1", Log: testLogger(t)})
	_ = dead.Start(t.Context())
	rec := httptest.NewRecorder()
	dead.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v2/apps", nil))
	if rec.Code != 502 || !strings.Contains(rec.Body.String(), "Connection to leader refused.") {
		t.Errorf("dead leader: %d %s", rec.Code, rec.Body)
	}
}

func TestPartialUpdateAndRestart(t *testing.T) {
	h := newHarness(t)
	st := h.stream("")
	st.attached()
	h.mustJSON("POST", "/v2/apps", `{"id":"/web","cmd":"sleep 1","instances":1,"labels":{"a":"1"}}`, 201)
	st.until(isType("deployment_success"))
	v1 := get(h.mustJSON("GET", "/v2/apps/web", "", 200), "app", "versionInfo", "lastConfigChangeAt")

	// A config change replaces the instance: new one first, then the
	// old one is killed.
	h.mustJSON("PUT", "/v2/apps/web", `{"cmd":"sleep 2"}`, 200)
	fs := st.until(isType("deployment_success"))
	got := describeAll(fs)
	want := []string{"api_post_event", "group_change_success", "deployment_info:RestartApplication", "instance:Scheduled", "instance:Provisioned",
		"status:TASK_STARTING", "instance:Starting", "status:TASK_RUNNING", "instance:Running",
		"instance:Running", "status:TASK_KILLED", "instance:Killed", "deployment_step_success:RestartApplication", "deployment_success"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("restart\n got  %q\n want %q", got, want)
	}
	app := get(h.mustJSON("GET", "/v2/apps/web", "", 200), "app")
	if get(app, "cmd") != "sleep 2" || get(app, "labels", "a") != "1" || get(app, "versionInfo", "lastConfigChangeAt") == v1 ||
		get(app, "tasks", 0, "version") != get(app, "version") || len(get(app, "tasks").([]any)) != 1 {
		t.Errorf("updated app %v", app)
	}
	// POST /restart does the same.
	h.mustJSON("POST", "/v2/apps/web/restart", "", 200)
	if got := describeAll(st.until(isType("deployment_success"))); got[1] != "deployment_info:RestartApplication" {
		t.Errorf("restart endpoint %q", got)
	}
	// PUT on a missing app creates it.
	resp, b := h.do("PUT", "/v2/apps/new", `{"cmd":"sleep 1","instances":0}`)
	if resp.StatusCode != 201 || get(decodeJSON(t, b), "deploymentId") == nil {
		t.Errorf("PUT create %s %s", resp.Status, b)
	}
	// Label selectors and id filters.
	for q, n := range map[string]int{"?label=a": 1, "?label=a==1": 1, "?label=a!=1": 1, "?label=a+in+(1,2)": 1, "?label=a+notin+(1)": 1, "?id=WE": 1, "?cmd=sleep+2": 1, "?label=b": 0} {
		if got := len(get(h.mustJSON("GET", "/v2/apps"+q, "", 200), "apps").([]any)); got != n {
			t.Errorf("%s: %d apps, want %d", q, got, n)
		}
	}
	if code, _ := h.json("GET", "/v2/apps?label=a+in+1", ""); code != 400 {
		t.Errorf("bad selector %d", code)
	}
}

func TestTaskAndInstanceKillEndpoints(t *testing.T) {
	h := newHarness(t)
	st := h.stream("")
	st.attached()
	h.mustJSON("POST", "/v2/apps", `{"id":"/grp/a","cmd":"sleep 1","instances":2}`, 201)
	h.mustJSON("POST", "/v2/apps", `{"id":"/grp/b","cmd":"sleep 1","instances":1}`, 201)
	h.mustJSON("POST", "/v2/apps", `{"id":"/other","cmd":"sleep 1","instances":0}`, 201)
	waitDeployed(t, h)
	if g := h.mustJSON("GET", "/v2/apps/grp/*", "", 200); len(get(g, "*").([]any)) != 2 {
		t.Errorf("group listing %v", g)
	}
	a := get(h.mustJSON("GET", "/v2/apps/grp/a/tasks", "", 200), "tasks").([]any)
	b := get(h.mustJSON("GET", "/v2/apps/grp/b/tasks", "", 200), "tasks").([]any)
	ids := []string{get(a, 0, "id").(string), get(b, 0, "id").(string), "unknown._app.1"}
	body, _ := json.Marshal(map[string]any{"ids": ids})

	// Kill and scale: one deployment per app, the instances go away.
	resp, out := h.do("POST", "/v2/tasks/delete?scale=true", string(body))
	if resp.StatusCode != 200 || get(decodeJSON(t, out), "deploymentId") == nil {
		t.Fatalf("tasks/delete: %s %s", resp.Status, out)
	}
	waitDeployed(t, h)
	if n := get(h.mustJSON("GET", "/v2/apps/grp/a", "", 200), "app", "instances"); n != float64(1) {
		t.Errorf("/grp/a instances %v", n)
	}
	if n := get(h.mustJSON("GET", "/v2/apps/grp/b", "", 200), "app", "instances"); n != float64(0) {
		t.Errorf("/grp/b instances %v", n)
	}
	// Kill with wipe: a new instance replaces the old one.
	old := get(h.mustJSON("GET", "/v2/apps/grp/a/tasks", "", 200), "tasks", 0, "id").(string)
	body, _ = json.Marshal(map[string]any{"ids": []string{old}})
	if killed := h.mustJSON("POST", "/v2/tasks/delete?wipe=true", string(body), 200); get(killed, "tasks", 0, "id") != old {
		t.Errorf("killed %v", killed)
	}
	eventually(t, "a replacement instance", func() bool {
		id, _ := get(h.mustJSON("GET", "/v2/apps/grp/a/tasks", "", 200), "tasks", 0, "id").(string)
		state, _ := get(h.mustJSON("GET", "/v2/apps/grp/a/tasks", "", 200), "tasks", 0, "state").(string)
		return id != "" && !strings.HasPrefix(id, strings.TrimSuffix(old, "._app.1")) && state == "TASK_RUNNING"
	})

	// Pod instance kill without wipe: same instance, next incarnation.
	h.mustJSON("POST", "/v2/pods", twoContainerPod, 201)
	waitDeployed(t, h)
	inst := get(h.mustJSON("GET", "/v2/pods/db::status", "", 200), "instances", 0, "id").(string)
	if st := h.mustJSON("DELETE", "/v2/pods/db::instances/"+inst, "", 200); get(st, "id") != inst {
		t.Errorf("kill pod instance %v", st)
	}
	eventually(t, "the pod instance to run again", func() bool {
		s := h.mustJSON("GET", "/v2/pods/db::status", "", 200)
		return get(s, "instances", 0, "id") == inst && get(s, "instances", 0, "containers", 0, "containerId") == inst+".a.2" &&
			get(s, "instances", 0, "status") == "STABLE"
	})
	if code, _ := h.json("DELETE", "/v2/pods/db::instances/nope", ""); code != 404 {
		t.Errorf("unknown instance: %d", code)
	}
}
