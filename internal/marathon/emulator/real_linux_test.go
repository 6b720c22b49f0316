//go:build linux

package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/kerneltest"
	mesosemu "github.com/weft-sdn/weft/internal/mesos/emulator"
)

// TestMain doubles as the CNI plugin of the real-agent test: the Mesos
// agent emulator runs plugins with CNI_COMMAND set, which `go test`
// never does.
func TestMain(m *testing.M) {
	if os.Getenv("CNI_COMMAND") != "" {
		os.Exit(cannedPlugin())
	}
	os.Exit(m.Run())
}

// cannedPlugin records its stdin next to itself and answers ADD with a
// CNI 0.2.0 result whose address depends on the container id.
func cannedPlugin() int {
	dir := filepath.Dir(os.Args[0])
	stdin, _ := io.ReadAll(os.Stdin)
	cmd, cid := os.Getenv("CNI_COMMAND"), os.Getenv("CNI_CONTAINERID")
	if err := os.WriteFile(filepath.Join(dir, "records", cmd+"-"+cid+".json"), stdin, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 99
	}
	if cmd == "ADD" {
		h := fnv.New32a()
		_, _ = h.Write([]byte(cid))
		fmt.Printf(`{"cniVersion":"0.2.0","ip4":{"ip":"10.99.7.%d/24","gateway":"10.99.7.1"}}`, 2+h.Sum32()%250)
	}
	return 0
}

// TestRealMesosAgentEmulator runs the emulator against a real Mesos
// agent emulator (internal/mesos/emulator) over its unix socket: tasks
// are real processes in their own network namespaces, attached by a
// canned CNI plugin.
func TestRealMesosAgentEmulator(t *testing.T) {
	kerneltest.RequireRoot(t) // the Mesos agent emulator needs root
	base := t.TempDir()
	conf, plugins, root := filepath.Join(base, "conf"), filepath.Join(base, "plugins"), filepath.Join(base, "root")
	for _, d := range []string{conf, filepath.Join(plugins, "records")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(plugins, "canned-cni")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "dcos.conf"), []byte(`{"cniVersion":"0.2.0","name":"dcos","type":"canned-cni"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	agent, err := mesosemu.New(mesosemu.Config{NetworkCNIConfigDir: conf, NetworkCNIPluginsDir: plugins, RootDir: root,
		AgentID: "real-S0", Hostname: "node1", AgentIP: "198.18.0.9", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	sock := filepath.Join(base, "agent.sock")
	ln, err := mesosemu.Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- agent.Serve(ctx, ln) }()
	t.Cleanup(func() {
		for _, c := range agent.Containers() {
			_, _ = agent.Kill(context.Background(), c.ID)
		}
		cancel()
		<-served
		_ = agent.Close()
		if err := mesosemu.ReleaseRoot(root); err != nil {
			t.Errorf("release root: %v", err)
		}
	})

	ha := NewHTTPAgent(sock, testLogger(t))
	ha.SetPollInterval(50 * time.Millisecond)
	info, err := ha.Describe(ctx)
	if err != nil || info.ID != "real-S0" {
		t.Fatalf("describe: %+v %v", info, err)
	}
	s, err := New(Config{Agents: []AgentConfig{{Hostname: "node1", ID: info.ID, Agent: ha}}, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	if err := s.Start(sctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { stop(); srv.Close(); s.Wait() })
	h := &harness{t: t, s: s, srv: srv, client: srv.Client()}
	st := h.stream("")
	st.attached()

	h.mustJSON("POST", "/v2/apps", `{"id":"/web","cmd":"sleep 3600","instances":2,"networks":[{"mode":"container","name":"dcos","labels":{"networks":"blue"}}],
 "container":{"type":"MESOS","portMappings":[{"containerPort":80,"hostPort":0,"name":"http"}]}}`, 201)
	fs := st.until(isType("deployment_success"))
	ids := instanceIDs(fs)
	checkPerInstance(t, fs, ids, []string{"instance:Scheduled", "instance:Provisioned", "status:TASK_STARTING", "instance:Starting", "status:TASK_RUNNING", "instance:Running"})
	addrs := map[string]bool{}
	for _, f := range fs {
		if f.data["taskStatus"] == "TASK_RUNNING" {
			ip, _ := get(f.data, "ipAddresses", 0, "ipAddress").(string)
			if !strings.HasPrefix(ip, "10.99.7.") || len(f.data["ipAddresses"].([]any)) != 1 || f.data["host"] != "node1" || f.data["slaveId"] != "real-S0" {
				t.Errorf("running status %v", f.data)
			}
			addrs[ip] = true
		}
	}
	t.Logf("task addresses %v", addrs)

	// What the plugin got: Marathon's NetworkInfo, injected by the agent.
	recs, _ := filepath.Glob(filepath.Join(plugins, "records", "ADD-*.json"))
	if len(recs) != 2 {
		t.Fatalf("%d ADD calls", len(recs))
	}
	var stdin struct {
		Args map[string]struct {
			NetworkInfo any `json:"network_info"`
		} `json:"args"`
	}
	data, _ := os.ReadFile(recs[0])
	if err := json.Unmarshal(data, &stdin); err != nil {
		t.Fatal(err)
	}
	var want any
	_ = json.Unmarshal([]byte(`{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[{"key":"networks","value":"blue"}]},"name":"dcos",
	 "port_mappings":[{"container_port":80,"host_port":31000,"protocol":"tcp"}]}`), &want)
	got := stdin.Args["org.apache.mesos"].NetworkInfo
	if !reflect.DeepEqual(got, want) {
		// The second instance has the second port.
		_ = json.Unmarshal([]byte(strings.Replace(string(mustMarshal(t, want)), "31000", "31001", 1)), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("network_info given to the plugin:\n got  %v\n want %v", got, want)
		}
	}
	tasks := h.mustJSON("GET", "/v2/apps/web/tasks", "", 200)
	for i := range 2 {
		if ip, _ := get(tasks, "tasks", i, "ipAddresses", 0, "ipAddress").(string); !addrs[ip] || get(tasks, "tasks", i, "state") != "TASK_RUNNING" {
			t.Errorf("task %v", get(tasks, "tasks", i))
		}
	}

	// A launch the agent refuses reports its message.
	h.mustJSON("POST", "/v2/apps", `{"id":"/bad","cmd":"sleep 3600","backoffSeconds":3600,"networks":[{"mode":"container","name":"nope"}]}`, 201)
	f := st.until(func(f sseFrame) bool { return f.data["taskStatus"] == "TASK_FAILED" })
	if msg := f[len(f)-1].data["message"]; msg != "Failed to launch container: Unknown CNI network 'nope'" {
		t.Errorf("failure message %q", msg)
	}
	h.mustJSON("DELETE", "/v2/apps/bad?force=true", "", 200)
	st.until(isType("deployment_success"))

	// A pod: one Mesos container, one address for both containers.
	h.mustJSON("POST", "/v2/pods", twoContainerPod, 201)
	fs = st.until(isType("deployment_success"))
	var podIPs []any
	for _, f := range fs {
		if f.data["taskStatus"] == "TASK_RUNNING" && f.data["appId"] == "/db" {
			podIPs = append(podIPs, f.data["ipAddresses"])
		}
	}
	if len(podIPs) != 2 || !reflect.DeepEqual(podIPs[0], podIPs[1]) {
		t.Errorf("pod addresses %v", podIPs)
	}
	status := h.mustJSON("GET", "/v2/pods/db::status", "", 200)
	if n := len(get(status, "instances", 0, "networks", 0, "addresses").([]any)); n != 1 || get(status, "status") != "STABLE" {
		t.Errorf("pod status %v", status)
	}

	// Delete: every task is killed (and its network detached).
	h.mustJSON("DELETE", "/v2/apps/web", "", 200)
	fs = st.until(isType("deployment_success"))
	if got := describeAll(fs); got[len(got)-3] != "app_terminated_event" {
		t.Errorf("delete %q", got)
	}
	resp, _ := h.do("DELETE", "/v2/pods/db", "")
	if resp.StatusCode != 202 {
		t.Errorf("delete pod: %s", resp.Status)
	}
	st.until(isType("deployment_success"))
	eventually(t, "the agent to be empty", func() bool { return len(agent.Containers()) == 0 })
	if dels, _ := filepath.Glob(filepath.Join(plugins, "records", "DEL-*.json")); len(dels) != 3 {
		t.Errorf("%d DEL calls, want 3", len(dels))
	}
}
