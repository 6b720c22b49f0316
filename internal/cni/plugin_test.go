package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// run is one in-process plugin run.
type run struct {
	code           int
	stdout, stderr string
}

// runMain runs Main with a Mesos-like environment (no CNI_ARGS).
func runMain(t *testing.T, env map[string]string, stdin string) run {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), Invocation{
		Program: ProgramName,
		Getenv:  func(k string) string { return env[k] },
		Stdin:   strings.NewReader(stdin),
		Stdout:  &out,
		Stderr:  &errOut,
	})
	return run{code: code, stdout: out.String(), stderr: errOut.String()}
}

// mesosEnv is the environment Mesos gives a plugin (mesos-cni.md §3).
func mesosEnv(cmd string) map[string]string {
	return map[string]string{
		"CNI_COMMAND":     cmd,
		"CNI_CONTAINERID": "5baff64c-d028-47ba-864e-a5ee679fc069",
		"CNI_PATH":        "/opt/mesosphere/active/cni",
		"CNI_IFNAME":      "eth0",
		"CNI_NETNS":       "/var/run/mesos/isolators/network/cni/5baff64c-d028-47ba-864e-a5ee679fc069/ns",
		"PATH":            "/usr/sbin:/usr/bin:/sbin:/bin",
	}
}

// cniError decodes the error JSON of a failed run.
func cniError(t *testing.T, r run) errorJSON {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit status %d, want 1; stdout %s", r.code, r.stdout)
	}
	var e errorJSON
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
		t.Fatalf("stdout is not an error JSON: %q: %v", r.stdout, err)
	}
	return e
}

// weftConf is a config pointing at socket.
func weftConf(version, socket, extra string) string {
	v := ""
	if version != "-" {
		v = fmt.Sprintf(`"cniVersion":%q,`, version)
	}
	return fmt.Sprintf(`{%s"name":"weft","type":"weft-cni","weft":{"socket":%q%s}}`, v, socket, extra)
}

func TestMainAddMesos(t *testing.T) {
	fa := startFakeAgent(t)
	ni := `{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[{"key":"networks","value":"blue"},{"key":"security-groups","value":"d:p:web"}]},"name":"weft","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}`
	stdin := injectMesosArgs(t, []byte(weftConf("-", fa.socket, `,"mtu":1400`)), ni)
	env := mesosEnv("ADD")
	r := runMain(t, env, string(stdin))
	if r.code != 0 {
		t.Fatalf("ADD failed: %s", r.stdout)
	}
	// Mesos' shape, with cniVersion 0.2.0 for a config without one.
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	ip4, _ := out["ip4"].(map[string]any)
	if out["cniVersion"] != "0.2.0" || ip4["ip"] != "10.32.0.5/12" || ip4["gateway"] != "10.32.0.1" {
		t.Errorf("stdout = %s", r.stdout)
	}
	want := api.AttachRequest{
		ContainerID: env["CNI_CONTAINERID"], IfName: "eth0", Netns: env["CNI_NETNS"], CNINetwork: "weft",
		Network: "blue", Project: DefaultProject, Families: []string{"ipv4"}, SecurityGroups: []string{"d:p:web"},
		Labels: map[string]string{"networks": "blue", "security-groups": "d:p:web"}, MTU: 1400,
	}
	if got := fa.LastAttach(t); !reflect.DeepEqual(got, want) {
		t.Errorf("agent got\n %+v\nwant %+v", got, want)
	}
	if r.stderr != "" {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestMainEnvAndConfigErrors(t *testing.T) {
	fa := startFakeAgent(t)
	good := weftConf("1.0.0", fa.socket, "")
	tests := []struct {
		name  string
		env   map[string]string
		stdin string
		code  uint
		msg   string
	}{
		{"unknown command", map[string]string{"CNI_COMMAND": "GET"}, good, CodeInvalidEnv, "unknown CNI_COMMAND"},
		{"add without netns", without(mesosEnv("ADD"), "CNI_NETNS"), good, CodeInvalidEnv, "CNI_NETNS"},
		{"add without ifname and container", without(mesosEnv("ADD"), "CNI_IFNAME", "CNI_CONTAINERID"), good, CodeInvalidEnv, "CNI_CONTAINERID, CNI_IFNAME"},
		{"bad container id", with(mesosEnv("ADD"), "CNI_CONTAINERID", "a/b"), good, CodeInvalidEnv, "CNI_CONTAINERID"},
		{"bad ifname", with(mesosEnv("DEL"), "CNI_IFNAME", "eth 0"), good, CodeInvalidEnv, "CNI_IFNAME"},
		{"broken json", mesosEnv("ADD"), `{"cniVersion":"0.2.0","name":`, CodeDecodingFailure, "not a JSON object"},
		{"empty stdin", mesosEnv("ADD"), ``, CodeDecodingFailure, "not a JSON object"},
		{"unsupported version", mesosEnv("ADD"), weftConf("0.5.0", fa.socket, ""), CodeIncompatibleVersion, "incompatible CNI versions"},
		{"check on 0.3.1", mesosEnv("CHECK"), weftConf("0.3.1", fa.socket, ""), CodeIncompatibleVersion, "does not allow CHECK"},
		{"gc on 1.0.0", map[string]string{"CNI_COMMAND": "GC"}, good, CodeIncompatibleVersion, "does not allow GC"},
		{"status on 0.4.0", map[string]string{"CNI_COMMAND": "STATUS"}, weftConf("0.4.0", fa.socket, ""), CodeIncompatibleVersion, "does not allow STATUS"},
		{"bad label on add", mesosEnv("ADD"), string(injectMesosArgs(t, []byte(good), `{"labels":{"labels":[{"key":"network-subnets","value":"10.0.0.0/8,x"}]}}`)),
			CodeInvalidConfig, NetworkInfoPath + ".labels.labels[0].value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := cniError(t, runMain(t, tt.env, tt.stdin))
			if e.Code != tt.code || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("error = %+v, want code %d with %q", e, tt.code, tt.msg)
			}
		})
	}
	if n := len(fa.Calls()); n != 0 {
		t.Errorf("the agent got %d calls for invalid invocations", n)
	}
}

// TestMainErrorVersion checks the cniVersion of error output: the
// config's own (0.2.0 for 0.1.0 and none) once it names a supported
// version, also when the config fails to parse or the version does not
// allow the command; the plugin's newest otherwise.
func TestMainErrorVersion(t *testing.T) {
	fa := startFakeAgent(t)
	current := SupportedVersions[len(SupportedVersions)-1]
	for _, tt := range []struct {
		name  string
		env   map[string]string
		stdin string
		want  string
	}{
		{"env error before stdin", without(mesosEnv("ADD"), "CNI_NETNS"), weftConf("0.4.0", fa.socket, ""), current},
		{"broken json", mesosEnv("ADD"), `{"cniVersion":"0.4.0","name":`, current},
		{"unsupported version", mesosEnv("ADD"), weftConf("0.5.0", fa.socket, ""), current},
		{"bad value, 0.4.0", mesosEnv("ADD"), weftConf("0.4.0", fa.socket, `,"mtu":"x"`), "0.4.0"},
		{"bad value, no version", mesosEnv("ADD"), weftConf("-", fa.socket, `,"mtu":"x"`), "0.2.0"},
		{"check on 0.3.1", mesosEnv("CHECK"), weftConf("0.3.1", fa.socket, ""), "0.3.1"},
		{"gc on 1.0.0", map[string]string{"CNI_COMMAND": "GC"}, weftConf("1.0.0", fa.socket, ""), "1.0.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if e := cniError(t, runMain(t, tt.env, tt.stdin)); e.CNIVersion != tt.want {
				t.Errorf("error %+v: cniVersion %q, want %q", e, e.CNIVersion, tt.want)
			}
		})
	}
	if n := len(fa.Calls()); n != 0 {
		t.Errorf("the agent got %d calls for invalid invocations", n)
	}
}

func without(env map[string]string, keys ...string) map[string]string {
	for _, k := range keys {
		delete(env, k)
	}
	return env
}

func with(env map[string]string, k, v string) map[string]string {
	env[k] = v
	return env
}

func TestMainAgentDown(t *testing.T) {
	dir := shortTempDir(t)
	missing := filepath.Join(dir, "agent.sock")
	for _, cmd := range []string{"ADD", "DEL", "CHECK"} {
		t.Run(cmd+" socket missing", func(t *testing.T) {
			start := time.Now()
			e := cniError(t, runMain(t, mesosEnv(cmd), weftConf("1.0.0", missing, "")))
			if time.Since(start) > time.Second {
				t.Errorf("took %v, want a fast failure", time.Since(start))
			}
			if e.Code != CodeTryAgainLater || !strings.Contains(e.Msg, missing) || !strings.Contains(e.Msg, "weft agent") {
				t.Errorf("error = %+v", e)
			}
			if cmd == "DEL" && !strings.Contains(e.Msg, "retries") {
				t.Errorf("DEL message does not say it will be retried: %q", e.Msg)
			}
		})
	}
	t.Run("stale socket file refuses", func(t *testing.T) {
		// A socket file with no listener (agent died): ECONNREFUSED.
		sock := filepath.Join(dir, "stale.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		start := time.Now()
		e := cniError(t, runMain(t, mesosEnv("ADD"), weftConf("0.2.0", sock, "")))
		if e.Code != CodeTryAgainLater || !strings.Contains(e.Details, "refused") || time.Since(start) > time.Second {
			t.Errorf("error = %+v after %v", e, time.Since(start))
		}
	})
	t.Run("STATUS socket missing is 50", func(t *testing.T) {
		e := cniError(t, runMain(t, map[string]string{"CNI_COMMAND": "STATUS"}, weftConf("1.1.0", missing, "")))
		if e.Code != CodePluginNotAvailable || !strings.Contains(e.Msg, missing) {
			t.Errorf("error = %+v", e)
		}
	})
	t.Run("hung agent times out", func(t *testing.T) {
		fa := startFakeAgent(t)
		fa.SetHang(true)
		start := time.Now()
		e := cniError(t, runMain(t, mesosEnv("ADD"), weftConf("0.2.0", fa.socket, `,"timeout":"300ms"`)))
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Errorf("took %v, want about 300ms", d)
		}
		if e.Code != CodeTryAgainLater || !strings.Contains(e.Msg, "did not answer within 300ms") {
			t.Errorf("error = %+v", e)
		}
	})
}

func TestMainAgentErrors(t *testing.T) {
	tests := []struct {
		name   string
		cmd    string
		path   string
		status int
		body   string
		code   uint
		msg    string
	}{
		{"invalid with field", "ADD", pathAttach, 400, `{"error":"no such subnet in network blue","field":"subnets[0]"}`, CodeAgentRejected, "subnets[0]: no such subnet in network blue"},
		{"not found", "ADD", pathAttach, 404, `{"error":"network default-domain:default-project:blue not found","field":"network"}`, CodeNotFound, "network: network default-domain:default-project:blue not found"},
		{"exhausted", "ADD", pathAttach, 409, `{"error":"no free address in 10.32.0.0/12","field":"network"}`, CodeConflict, "no free address"},
		{"not ready", "ADD", pathAttach, 503, `{"error":"not synced with the controller yet"}`, CodeTryAgainLater, "not ready"},
		{"server error without json", "ADD", pathAttach, 500, `boom`, CodeAgentFailed, "HTTP 500 Internal Server Error: boom"},
		{"del server error", "DEL", pathDetach, 500, `{"error":"netns busy"}`, CodeAgentFailed, "netns busy"},
		{"check drift", "CHECK", pathCheck, 409, `{"error":"address 10.32.0.5/12 missing in the container","field":"ips[0]"}`, CodeCheckFailed, "ips[0]: address"},
		{"check unknown", "CHECK", pathCheck, 404, `{"error":"no attachment"}`, CodeCheckFailed, "no attachment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := startFakeAgent(t)
			fa.Reply(tt.path, tt.status, tt.body)
			e := cniError(t, runMain(t, mesosEnv(tt.cmd), weftConf("1.0.0", fa.socket, "")))
			if e.Code != tt.code || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("error = %+v, want code %d with %q", e, tt.code, tt.msg)
			}
			if e.CNIVersion != "1.0.0" {
				t.Errorf("error cniVersion = %q", e.CNIVersion)
			}
		})
	}
}

func TestMainDel(t *testing.T) {
	fa := startFakeAgent(t)
	conf := weftConf("0.2.0", fa.socket, "")
	if r := runMain(t, mesosEnv("ADD"), conf); r.code != 0 {
		t.Fatalf("ADD: %s", r.stdout)
	}
	// DEL after a reboot: no CNI_NETNS. Twice: the second finds nothing.
	for i := range 2 {
		r := runMain(t, without(mesosEnv("DEL"), "CNI_NETNS"), conf)
		if r.code != 0 || r.stdout != "" {
			t.Fatalf("DEL %d: status %d stdout %q", i+1, r.code, r.stdout)
		}
	}
	dels := fa.CallsTo(pathDetach)
	if len(dels) != 2 {
		t.Fatalf("%d detach calls", len(dels))
	}
	var req api.DetachRequest
	_ = json.Unmarshal(dels[0].Body, &req)
	want := api.DetachRequest{ContainerID: "5baff64c-d028-47ba-864e-a5ee679fc069", IfName: "eth0", CNINetwork: "weft"}
	if req != want {
		t.Errorf("detach = %+v", req)
	}
	// DEL with the stdin of an ADD that failed on a bad label still
	// reaches the agent.
	bad := injectMesosArgs(t, []byte(conf), `{"ip_addresses":[{"protocol":"IPv5"}]}`)
	if r := runMain(t, mesosEnv("DEL"), string(bad)); r.code != 0 {
		t.Errorf("DEL with a bad label: %s", r.stdout)
	}
}

func TestMainStatusGC(t *testing.T) {
	fa := startFakeAgent(t)
	env := map[string]string{"CNI_COMMAND": "STATUS"}
	if r := runMain(t, env, weftConf("1.1.0", fa.socket, "")); r.code != 0 || r.stdout != "" {
		t.Errorf("STATUS ready: %d %q", r.code, r.stdout)
	}
	fa.SetStatus(api.AgentStatus{Ready: false, Reason: "controller unreachable", Node: "node-1"})
	e := cniError(t, runMain(t, env, weftConf("1.1.0", fa.socket, "")))
	if e.Code != CodePluginNotAvailable || e.Msg != "weft agent on node node-1 is not ready: controller unreachable" {
		t.Errorf("STATUS not ready: %+v", e)
	}

	gc := `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","weft":{"socket":"` + fa.socket + `"},` +
		`"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`
	if r := runMain(t, map[string]string{"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"}, gc); r.code != 0 {
		t.Fatalf("GC: %s", r.stdout)
	}
	calls := fa.CallsTo(pathGC)
	var req api.GCRequest
	if len(calls) != 1 || json.Unmarshal(calls[0].Body, &req) != nil {
		t.Fatalf("gc calls = %v", calls)
	}
	want := api.GCRequest{CNINetwork: "weft", Valid: []api.DetachRequest{{ContainerID: "a", IfName: "eth0", CNINetwork: "weft"}}}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("gc = %+v", req)
	}
}

func TestMainVersionAndUsage(t *testing.T) {
	r := runMain(t, map[string]string{"CNI_COMMAND": "VERSION"}, "")
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || !reflect.DeepEqual(v.SupportedVersions, SupportedVersions) {
		t.Errorf("VERSION: %d %q", r.code, r.stdout)
	}
	r = runMain(t, map[string]string{}, "")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "CNI protocol versions supported") {
		t.Errorf("usage: %+v", r)
	}
}

func TestMainLogFile(t *testing.T) {
	fa := startFakeAgent(t)
	logFile := filepath.Join(t.TempDir(), "log", "cni.log")
	conf := fmt.Sprintf(`{"cniVersion":"0.2.0","name":"contrail-cni-plugin","type":"contrail-cni-plugin","weft":{"socket":%q},`+
		`"contrail":{"log-file":%q,"log-level":"4","poll-timeout":1,"poll-retries":2}}`, fa.socket, logFile)
	r := runMain(t, mesosEnv("ADD"), conf)
	if r.code != 0 {
		t.Fatalf("ADD: %s", r.stdout)
	}
	if !json.Valid([]byte(r.stdout)) {
		t.Errorf("stdout is not only the result: %q", r.stdout)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"asking the agent to attach", "level=DEBUG", "attached", "cni command done", "command=ADD"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
	// A failure is logged too, and an unwritable log file only warns.
	fa.Reply(pathAttach, http.StatusNotFound, `{"error":"network blue not found","field":"network"}`)
	cniError(t, runMain(t, mesosEnv("ADD"), conf))
	b, _ = os.ReadFile(logFile)
	if !strings.Contains(string(b), "cni command failed") {
		t.Errorf("failure not logged:\n%s", b)
	}
	// A config refused for a bad label is logged as well.
	bad := injectMesosArgs(t, []byte(conf), `{"labels":{"labels":[{"key":"networks","value":"a:b"}]}}`)
	e := cniError(t, runMain(t, mesosEnv("ADD"), string(bad)))
	b, _ = os.ReadFile(logFile)
	if e.Code != CodeInvalidConfig || !strings.Contains(string(b), "labels.labels[0].value") {
		t.Errorf("refused config not logged (%+v):\n%s", e, b)
	}
	unwritable := strings.Replace(conf, logFile, "/proc/weft-cni-test/cni.log", 1)
	fa.ClearReply(pathAttach)
	r = runMain(t, mesosEnv("ADD"), unwritable)
	if r.code != 0 || !strings.Contains(r.stderr, "logging disabled") {
		t.Errorf("unwritable log: %+v", r)
	}
}
