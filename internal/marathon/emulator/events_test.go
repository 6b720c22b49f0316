package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
)

const webApp = `{"id":"/web","instances":2,"cmd":"sleep 3600","cpus":0.1,"mem":32,
 "networks":[{"mode":"container","name":"dcos","labels":{"networks":"blue"}}],
 "container":{"type":"MESOS","portMappings":[{"containerPort":80,"hostPort":0,"name":"http","labels":{"VIP_0":"/web:80"}}]},
 "backoffSeconds":0}`

// checkPerInstance checks that the events of each instance are exactly
// want, in order, and that each app status update is directly followed
// by its instance change (both come from one Mesos update).
func checkPerInstance(t *testing.T, fs []sseFrame, ids []string, want []string) {
	t.Helper()
	for _, id := range ids {
		if got := describeAll(forInstance(fs, id)); !reflect.DeepEqual(got, want) {
			t.Errorf("instance %s events:\n got  %q\n want %q", id, got, want)
		}
	}
	for i, f := range fs {
		if id, _ := f.data["taskId"].(string); f.typ == "status_update_event" && strings.Contains(id, "._app.") {
			if i+1 >= len(fs) || fs[i+1].typ != "instance_changed_event" || !strings.HasPrefix(id, fs[i+1].data["instanceId"].(string)) {
				t.Errorf("status_update_event %d (%s) not followed by its instance_changed_event", i, describe(f))
			}
		}
	}
}

var framing = regexp.MustCompile(`^event: [a-z_]+\r\ndata: \{[^\r\n]*\}\r\n\r\n$`)

func TestCreateAppEventSequence(t *testing.T) {
	h := newHarness(t)
	st := h.stream("")
	att := st.attached()
	if !framing.MatchString(att.raw) || att.data["remoteAddress"] != "127.0.0.1" || att.data["eventType"] != "event_stream_attached" {
		t.Errorf("attached frame %q", att.raw)
	}
	resp, body := h.do("POST", "/v2/apps", webApp)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Marathon-Deployment-Id") == "" || resp.Header.Get("Location") != "/v2/apps/web" {
		t.Fatalf("create: %s %v %s", resp.Status, resp.Header, body)
	}
	fs := st.until(isType("deployment_success"))
	for _, f := range fs {
		if !framing.MatchString(f.raw) || f.data["eventType"] != f.typ {
			t.Errorf("bad frame %q", f.raw)
		}
		if ts, _ := f.data["timestamp"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(ts) {
			t.Errorf("timestamp %q in %s", ts, f.typ)
		}
	}
	got := describeAll(fs)
	prefix := []string{"api_post_event", "group_change_success", "deployment_info:StartApplication", "deployment_step_success:StartApplication",
		"deployment_info:ScaleApplication", "instance:Scheduled", "instance:Scheduled", "instance:Provisioned", "instance:Provisioned"}
	if len(got) < len(prefix)+2 || !reflect.DeepEqual(got[:len(prefix)], prefix) {
		t.Fatalf("sequence %q", got)
	}
	if tail := got[len(got)-2:]; !reflect.DeepEqual(tail, []string{"deployment_step_success:ScaleApplication", "deployment_success"}) {
		t.Errorf("tail %q", tail)
	}
	ids := instanceIDs(fs)
	if len(ids) != 2 {
		t.Fatalf("instances %q", ids)
	}
	checkPerInstance(t, fs[len(prefix)-4:], ids, []string{"instance:Scheduled", "instance:Provisioned", "status:TASK_STARTING", "instance:Starting", "status:TASK_RUNNING", "instance:Running"})

	// Scheduled has null agent and host; Provisioned names them.
	sched, prov := fs[5].data, fs[7].data
	if sched["agentId"] != nil || sched["host"] != nil || sched["runSpecId"] != "/web" || prov["agentId"] == nil || prov["host"] == nil {
		t.Errorf("scheduled %v provisioned %v", sched, prov)
	}
	if !regexp.MustCompile(`^web\.instance-[0-9a-f-]{36}$`).MatchString(ids[0]) {
		t.Errorf("instance id %q", ids[0])
	}
	if post := fs[0].data; post["uri"] != "/v2/apps" || get(post, "appDefinition", "id") != "/web" || post["clientIp"] != "127.0.0.1" {
		t.Errorf("api_post_event %v", post)
	}
	if gc := fs[1].data; gc["groupId"] != "/" || gc["version"] == nil {
		t.Errorf("group_change_success %v", gc)
	}
	info := fs[2].data
	if get(info, "plan", "steps", 1, "actions", 0, "action") != "ScaleApplication" || get(info, "plan", "steps", 1, "actions", 0, "app") != "/web" {
		t.Errorf("deployment_info plan %v", info["plan"])
	}
	if fs[len(fs)-1].data["id"] != resp.Header.Get("Marathon-Deployment-Id") {
		t.Errorf("deployment_success id %v, header %s", fs[len(fs)-1].data["id"], resp.Header.Get("Marathon-Deployment-Id"))
	}

	// Status updates carry the container's address and host port.
	for _, f := range fs {
		if f.typ != "status_update_event" || f.data["taskStatus"] != "TASK_RUNNING" {
			continue
		}
		d := f.data
		ip, _ := get(d, "ipAddresses", 0, "ipAddress").(string)
		if !strings.HasPrefix(ip, "10.99.") || get(d, "ipAddresses", 0, "protocol") != "IPv4" || d["appId"] != "/web" ||
			get(d, "ports", 0) != float64(31000) || d["message"] != "" || !regexp.MustCompile(`^web\.instance-[0-9a-f-]{36}\._app\.1$`).MatchString(d["taskId"].(string)) {
			t.Errorf("status_update_event %v", d)
		}
		if ag := d["slaveId"].(string); d["host"] != map[string]string{"agent-S1": "agent1", "agent-S2": "agent2"}[ag] {
			t.Errorf("host %v of agent %s", d["host"], ag)
		}
	}
	// Round robin: one instance per agent.
	for _, a := range h.agents {
		if n := len(a.Launched()); n != 1 {
			t.Errorf("agent launched %d tasks:\n%s", n, a)
		}
	}
	// The NetworkInfo Marathon sends for a container network.
	spec := h.agents[0].Launched()[0].Task
	ni, err := json.Marshal(spec.NetworkInfos)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"ip_addresses":[{"protocol":"IPv4"}],"name":"dcos","labels":{"labels":[{"key":"networks","value":"blue"}]},"port_mappings":[{"host_port":31000,"container_port":80,"protocol":"tcp"}]}]`
	if string(ni) != want {
		t.Errorf("network_infos\n got  %s\n want %s", ni, want)
	}
	if spec.FrameworkID == "" || spec.Resources.Scalars["cpus"] != 0.1 || !strings.Contains(string(spec.Discovery), `"VIP_0"`) ||
		!strings.Contains(string(spec.Discovery), `{"key":"network-scope","value":"host"}`) {
		t.Errorf("task spec %+v discovery %s", spec, spec.Discovery)
	}
	if n := len(spec.Command); n < 3 || strings.Join(spec.Command[n-3:], " ") != "sh -c sleep 3600" || spec.Command[0] != "env" {
		t.Errorf("command %q", spec.Command)
	}

	// REST view of the running app.
	app := h.mustJSON("GET", "/v2/apps/web", "", 200)
	if get(app, "app", "tasksRunning") != float64(2) || len(get(app, "app", "tasks").([]any)) != 2 {
		t.Errorf("app %v", app)
	}
	task := get(app, "app", "tasks", 0)
	if ip, _ := get(task, "ipAddresses", 0, "ipAddress").(string); !strings.HasPrefix(ip, "10.99.") || get(task, "state") != "TASK_RUNNING" {
		t.Errorf("task %v", task)
	}
}

func TestScaleAndDeleteEventSequences(t *testing.T) {
	h := newHarness(t)
	st := h.stream("")
	st.attached()
	h.mustJSON("POST", "/v2/apps", strings.Replace(webApp, `"instances":2`, `"instances":3`, 1), 201)
	created := st.until(isType("deployment_success"))
	order := instanceIDs(created) // creation order: the youngest is last

	// Scale 3 → 1: the two youngest are decommissioned and killed.
	resp, body := h.do("PUT", "/v2/apps/web", `{"instances":1}`)
	if resp.StatusCode != 200 || resp.Header.Get("Marathon-Deployment-Id") == "" {
		t.Fatalf("scale: %s %s", resp.Status, body)
	}
	var dep map[string]any
	_ = json.Unmarshal(body, &dep)
	if keys(dep)[0] != "deploymentId" || keys(dep)[1] != "version" {
		t.Errorf("scale answer %s", body)
	}
	fs := st.until(isType("deployment_success"))
	got := describeAll(fs)
	prefix := []string{"api_post_event", "group_change_success", "deployment_info:ScaleApplication", "instance:Running", "instance:Running"}
	if !reflect.DeepEqual(got[:len(prefix)], prefix) || !reflect.DeepEqual(got[len(got)-2:], []string{"deployment_step_success:ScaleApplication", "deployment_success"}) || len(got) != len(prefix)+4+2 {
		t.Fatalf("scale down sequence %q", got)
	}
	if fs[0].data["uri"] != "/v2/apps/web" || get(fs[0].data, "appDefinition", "instances") != float64(1) {
		t.Errorf("api_post_event %v", fs[0].data)
	}
	removed := instanceIDs(fs)
	if len(removed) != 2 || !contains(removed, order[1]) || !contains(removed, order[2]) {
		t.Errorf("removed %q, created %q (YOUNGEST_FIRST)", removed, order)
	}
	checkPerInstance(t, fs, removed, []string{"instance:Running", "status:TASK_KILLED", "instance:Killed"})
	launches, kills := 0, 0
	for _, a := range h.agents {
		l, k := a.Counts()
		launches, kills = launches+l, kills+k
	}
	if launches != 3 || kills != 2 {
		t.Errorf("launches %d kills %d", launches, kills)
	}
	if n := len(get(h.mustJSON("GET", "/v2/apps/web", "", 200), "app", "tasks").([]any)); n != 1 {
		t.Errorf("%d tasks after scale down", n)
	}

	// Scale 1 → 2.
	h.mustJSON("PUT", "/v2/apps/web", `{"instances":2}`, 200)
	fs = st.until(isType("deployment_success"))
	got = describeAll(fs)
	want := []string{"api_post_event", "group_change_success", "deployment_info:ScaleApplication", "instance:Scheduled", "instance:Provisioned",
		"status:TASK_STARTING", "instance:Starting", "status:TASK_RUNNING", "instance:Running", "deployment_step_success:ScaleApplication", "deployment_success"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scale up sequence\n got  %q\n want %q", got, want)
	}

	// Delete: no api_post_event; everything killed; app_terminated_event.
	resp, body = h.do("DELETE", "/v2/apps/web", "")
	if resp.StatusCode != 200 {
		t.Fatalf("delete: %s %s", resp.Status, body)
	}
	if code, _ := h.json("GET", "/v2/apps/web", ""); code != 404 {
		t.Errorf("GET after delete: %d", code)
	}
	fs = st.until(isType("deployment_success"))
	got = describeAll(fs)
	want = []string{"group_change_success", "deployment_info:StopApplication", "instance:Running", "instance:Running"}
	tail := []string{"app_terminated_event", "deployment_step_success:StopApplication", "deployment_success"}
	if len(got) != len(want)+4+len(tail) || !reflect.DeepEqual(got[:len(want)], want) || !reflect.DeepEqual(got[len(got)-3:], tail) {
		t.Fatalf("delete sequence %q", got)
	}
	checkPerInstance(t, fs, instanceIDs(fs), []string{"instance:Running", "status:TASK_KILLED", "instance:Killed"})
	if fs[len(fs)-3].data["appId"] != "/web" {
		t.Errorf("app_terminated_event %v", fs[len(fs)-3].data)
	}
	for _, a := range h.agents {
		if cs, _ := a.Containers(t.Context()); len(cs) != 0 {
			t.Errorf("containers left:\n%s", a)
		}
	}
	if apps := h.mustJSON("GET", "/v2/apps", "", 200); len(get(apps, "apps").([]any)) != 0 {
		t.Errorf("apps %v", apps)
	}
}

func TestKillTaskRelaunchesSameInstance(t *testing.T) {
	h := newHarness(t)
	st := h.stream("")
	st.attached()
	h.mustJSON("POST", "/v2/apps", strings.Replace(webApp, `"instances":2`, `"instances":1`, 1), 201)
	st.until(isType("deployment_success"))
	tasks := h.mustJSON("GET", "/v2/apps/web/tasks", "", 200)
	t1, _ := get(tasks, "tasks", 0, "id").(string)
	instance := strings.TrimSuffix(t1, "._app.1")

	killed := h.mustJSON("DELETE", "/v2/apps/web/tasks/"+t1, "", 200)
	if get(killed, "task", "id") != t1 {
		t.Errorf("kill answer %v", killed)
	}
	fs := st.until(func(f sseFrame) bool { return describe(f) == "instance:Running" })
	want := []string{"status:TASK_KILLED", "instance:Killed", "instance:Provisioned", "status:TASK_STARTING", "instance:Starting", "status:TASK_RUNNING", "instance:Running"}
	if got := describeAll(fs); !reflect.DeepEqual(got, want) {
		t.Errorf("kill/relaunch\n got  %q\n want %q", got, want)
	}
	if id := fs[0].data["taskId"]; id != t1 {
		t.Errorf("killed task %v", id)
	}
	if id := fs[3].data["taskId"]; id != instance+"._app.2" {
		t.Errorf("relaunched task %v, want incarnation 2 of %s", id, instance)
	}
	if code, _ := h.json("DELETE", "/v2/apps/web/tasks/nope._app.1", ""); code != 404 {
		t.Errorf("unknown task: %d", code)
	}

	// With scale=true the instance goes away with a deployment.
	t2 := instance + "._app.2"
	h.mustJSON("DELETE", "/v2/apps/web/tasks/"+t2+"?scale=true", "", 200)
	fs = st.until(isType("deployment_success"))
	want = []string{"group_change_success", "deployment_info:ScaleApplication", "instance:Running", "status:TASK_KILLED", "instance:Killed",
		"deployment_step_success:ScaleApplication", "deployment_success"}
	if got := describeAll(fs); !reflect.DeepEqual(got, want) {
		t.Errorf("kill with scale\n got  %q\n want %q", got, want)
	}
	if n := get(h.mustJSON("GET", "/v2/apps/web", "", 200), "app", "instances"); n != float64(0) {
		t.Errorf("instances %v", n)
	}
}

func TestLaunchFailureReportsAgentMessage(t *testing.T) {
	h := newHarness(t)
	for _, a := range h.agents {
		a.FailLaunches("Unknown CNI network 'dcos'")
	}
	st := h.stream("?event_type=status_update_event&event_type=instance_changed_event")
	h.mustJSON("POST", "/v2/apps", strings.Replace(strings.Replace(webApp, `"instances":2`, `"instances":1`, 1), `"backoffSeconds":0`, `"backoffSeconds":3600`, 1), 201)
	fs := st.until(func(f sseFrame) bool { return describe(f) == "instance:Failed" })
	want := []string{"instance:Scheduled", "instance:Provisioned", "status:TASK_FAILED", "instance:Failed"}
	if got := describeAll(fs); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if msg := fs[2].data["message"]; msg != "Failed to launch container: Unknown CNI network 'dcos'" {
		t.Errorf("message %q", msg)
	}
	app := h.mustJSON("GET", "/v2/apps/web", "", 200)
	if get(app, "app", "lastTaskFailure", "message") != "Failed to launch container: Unknown CNI network 'dcos'" ||
		get(app, "app", "tasks", 0, "state") != "TASK_FAILED" || len(get(app, "app", "deployments").([]any)) != 1 {
		t.Errorf("app after failure %v", app)
	}
	// The deployment holds the app: a change needs force.
	if code, body := h.json("PUT", "/v2/apps/web", `{"instances":2}`); code != 409 || get(body, "deployments", 0, "id") == nil ||
		!strings.HasPrefix(get(body, "message").(string), "App is locked by one or more deployments.") {
		t.Errorf("locked: %d %v", code, body)
	}
	h.mustJSON("DELETE", "/v2/apps/web?force=true", "", 200)
}

func TestLaunchRejectedByAgent(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Agents = c.Agents[:1] })
	h.agents[0].RejectLaunches(fmt.Errorf("agent closed"))
	st := h.stream("?event_type=status_update_event")
	h.mustJSON("POST", "/v2/apps", `{"id":"x","cmd":"true","backoffSeconds":3600}`, 201)
	if f := st.event(); f.data["taskStatus"] != "TASK_FAILED" || f.data["message"] != "agent closed" {
		t.Errorf("event %v", f.data)
	}
}

func TestTaskExitIsRelaunchedWithBackoff(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Agents = c.Agents[:1] })
	st := h.stream("?event_type=status_update_event")
	h.mustJSON("POST", "/v2/apps", `{"id":"x","cmd":"true","backoffSeconds":0.2,"backoffFactor":1}`, 201)
	st.until(func(f sseFrame) bool { return f.data["taskStatus"] == "TASK_RUNNING" })
	start := time.Now()
	if err := h.agents[0].End(get(h.mustJSON("GET", "/v2/apps/x/tasks", "", 200), "tasks", 0, "id").(string), mesos.TaskFailed, "Command exited with status 1"); err != nil {
		t.Fatal(err)
	}
	fs := st.until(func(f sseFrame) bool { return f.data["taskStatus"] == "TASK_RUNNING" })
	if got := describeAll(fs); !reflect.DeepEqual(got, []string{"status:TASK_FAILED", "status:TASK_STARTING", "status:TASK_RUNNING"}) {
		t.Errorf("got %q", got)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("relaunched after %v, want the 0.2 s backoff", d)
	}
	if id := fs[2].data["taskId"].(string); !strings.HasSuffix(id, "._app.2") {
		t.Errorf("relaunch task id %s", id)
	}
}

const twoContainerPod = `{"id":"/db","scaling":{"kind":"fixed","instances":1},
 "networks":[{"mode":"container","name":"dcos","labels":{"networks":"blue"}}],
 "containers":[
  {"name":"a","resources":{"cpus":0.1,"mem":32},"exec":{"command":{"shell":"sleep 1000"}},
   "endpoints":[{"name":"http","containerPort":80,"hostPort":0,"protocol":["tcp"],"labels":{"VIP_0":"/db:80"}}]},
  {"name":"b","resources":{"cpus":0.1,"mem":32},"exec":{"command":{"shell":"sleep 2000"}}}]}`

func TestPodOneInstanceOneAddress(t *testing.T) {
	h := newHarness(t)
	st := h.stream("")
	st.attached()
	resp, body := h.do("POST", "/v2/pods", twoContainerPod)
	if resp.StatusCode != 201 || resp.Header.Get("Marathon-Deployment-Id") == "" {
		t.Fatalf("create pod: %s %s", resp.Status, body)
	}
	fs := st.until(isType("deployment_success"))
	want := []string{"pod_created_event", "group_change_success", "deployment_info:StartPod", "deployment_step_success:StartPod", "deployment_info:ScalePod",
		"instance:Scheduled", "instance:Provisioned", "status:TASK_STARTING", "status:TASK_STARTING", "instance:Starting",
		"status:TASK_RUNNING", "status:TASK_RUNNING", "instance:Running", "deployment_step_success:ScalePod", "deployment_success"}
	if got := describeAll(fs); !reflect.DeepEqual(got, want) {
		t.Fatalf("pod sequence\n got  %q\n want %q", got, want)
	}
	if fs[0].data["uri"] != "/v2/pods" || fs[0].data["appDefinition"] != nil {
		t.Errorf("pod_created_event %v", fs[0].data)
	}
	instance := fs[5].data["instanceId"].(string)
	var addrs []any
	for i, c := range []string{"a", "b"} {
		f := fs[10+i].data
		if f["appId"] != "/db" || f["taskId"] != instance+"."+c+".1" {
			t.Errorf("status update %v", f)
		}
		addrs = append(addrs, f["ipAddresses"])
	}
	if !reflect.DeepEqual(addrs[0], addrs[1]) || len(addrs[0].([]any)) != 1 {
		t.Errorf("containers report addresses %v", addrs)
	}
	// One Mesos task with one NetworkInfo set for the whole pod.
	var launched int
	for _, a := range h.agents {
		for _, c := range a.Launched() {
			launched++
			if len(c.Task.NetworkInfos) != 1 || c.Task.NetworkInfos[0].Name != "dcos" || len(c.Task.NetworkInfos[0].PortMappings) != 1 {
				t.Errorf("pod task network infos %+v", c.Task.NetworkInfos)
			}
			if c.Task.TaskID != instance+".a.1" || !strings.Contains(strings.Join(c.Task.Command, " "), "sleep 2000") {
				t.Errorf("pod task %s %q", c.Task.TaskID, c.Task.Command)
			}
		}
	}
	if launched != 1 {
		t.Errorf("%d Mesos tasks for one pod instance", launched)
	}
	status := h.mustJSON("GET", "/v2/pods/db::status", "", 200)
	ip := get(addrs[0], 0, "ipAddress")
	if get(status, "status") != "STABLE" || len(get(status, "instances").([]any)) != 1 ||
		get(status, "instances", 0, "status") != "STABLE" || get(status, "instances", 0, "id") != instance ||
		!reflect.DeepEqual(get(status, "instances", 0, "networks"), []any{map[string]any{"name": "dcos", "addresses": []any{ip}}}) ||
		get(status, "instances", 0, "containers", 1, "containerId") != instance+".b.1" ||
		get(status, "instances", 0, "containers", 0, "endpoints", 0, "allocatedHostPort") != float64(31000) {
		t.Errorf("pod status %v", status)
	}
	// Pod tasks are not app tasks.
	if tasks := h.mustJSON("GET", "/v2/tasks", "", 200); len(get(tasks, "tasks").([]any)) != 0 {
		t.Errorf("/v2/tasks lists pod tasks: %v", tasks)
	}

	// Scale 1 → 2, then delete.
	h.mustJSON("PUT", "/v2/pods/db", strings.Replace(twoContainerPod, `"instances":1`, `"instances":2`, 1), 200)
	fs = st.until(isType("deployment_success"))
	if got := describeAll(fs); got[0] != "pod_updated_event" || got[2] != "deployment_info:ScalePod" {
		t.Errorf("pod scale %q", got)
	}
	resp, _ = h.do("DELETE", "/v2/pods/db", "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete pod: %s", resp.Status)
	}
	fs = st.until(isType("deployment_success"))
	got := describeAll(fs)
	if got[0] != "pod_deleted_event" || got[2] != "deployment_info:StopPod" || !reflect.DeepEqual(got[len(got)-3:], []string{"app_terminated_event", "deployment_step_success:StopPod", "deployment_success"}) {
		t.Errorf("pod delete %q", got)
	}
	for _, id := range instanceIDs(fs) {
		checkPerInstance(t, fs, []string{id}, []string{"instance:Running", "status:TASK_KILLED", "status:TASK_KILLED", "instance:Killed"})
	}
	if code, body := h.json("GET", "/v2/pods/db::status", ""); code != 404 || get(body, "message") != "Pod '/db' does not exist" {
		t.Errorf("status after delete: %d %v", code, body)
	}
}

func TestEventStreamNeedsExactAccept(t *testing.T) {
	h := newHarness(t)
	for _, accept := range [][]string{nil, {"text/event-stream, */*"}, {"application/json"}, {"text/event-stream;charset=utf-8"}} {
		var hdr []string
		for _, a := range accept {
			hdr = append(hdr, "Accept", a)
		}
		resp, body := h.do("GET", "/v2/events", "", hdr...)
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), "HTTP ERROR 405") {
			t.Errorf("Accept %q: %s %s", accept, resp.Status, body)
		}
	}
	// Several Accept headers: one exact value is enough.
	req, _ := http.NewRequest("GET", h.srv.URL+"/v2/events", nil)
	req.Header.Add("Accept", "application/json")
	req.Header.Add("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream;charset=UTF-8" || !resp.Close ||
		len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("stream response %s %v close=%v te=%v", resp.Status, resp.Header, resp.Close, resp.TransferEncoding)
	}
}

func TestEventTypeFilter(t *testing.T) {
	h := newHarness(t)
	st := h.stream("?event_type=deployment_success&event_type=api_post_event&plan-format=light&unknown=1")
	h.mustJSON("POST", "/v2/apps", webApp, 201)
	for _, want := range []string{"api_post_event", "deployment_success"} {
		if f := st.event(); f.typ != want {
			t.Fatalf("got %s, want %s", f.typ, want)
		}
	}
	// Another client attaching is filtered out too.
	other := h.stream("")
	other.attached()
	h.mustJSON("DELETE", "/v2/apps/web", "", 200)
	if f := st.event(); f.typ != "deployment_success" {
		t.Errorf("got %s", f.typ)
	}
}

func TestHeartbeats(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Heartbeat = 30 * time.Millisecond })
	st := h.stream("")
	st.attached()
	beats := 0
	for beats < 3 {
		f, ok := st.next(2 * time.Second)
		if !ok {
			t.Fatal("no heartbeat")
		}
		if !f.heartbeat || f.raw != "\r\n" {
			t.Fatalf("frame %q", f.raw)
		}
		beats++
	}
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxOutstanding = 16 })
	fast := h.stream("?event_type=test_event")
	// The slow client never reads its body.
	req, _ := http.NewRequest("GET", h.srv.URL+"/v2/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	slow, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	eventually(t, "two subscribers", func() bool {
		h.s.bus.mu.Lock()
		defer h.s.bus.mu.Unlock()
		return len(h.s.bus.subs) == 2
	})
	payload := strings.Repeat("x", 32<<10)
	subs := func() int {
		h.s.bus.mu.Lock()
		defer h.s.bus.mu.Unlock()
		return len(h.s.bus.subs)
	}
	sent := 0
	for ; sent < 5000 && subs() == 2; sent++ {
		h.s.emit(h.s.newEvent("test_event", map[string]any{"n": sent, "pad": payload, "eventType": "test_event"}))
		// Pace on the fast client: its backlog stays small.
		if f := fast.event(); f.data["n"] != float64(sent) {
			t.Fatalf("fast client got %v, want %d", f.data["n"], sent)
		}
	}
	if subs() != 1 {
		t.Fatalf("slow subscriber still attached after %d events", sent)
	}
	// The fast client goes on.
	h.s.emit(h.s.newEvent("test_event", map[string]any{"n": -1, "eventType": "test_event"}))
	if f := fast.event(); f.data["n"] != float64(-1) {
		t.Errorf("fast client after the drop: %v", f.data)
	}
	// The slow client's connection was closed: its body ends.
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, slow.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("slow body ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow client's stream was not closed")
	}
	t.Logf("slow subscriber dropped after %d events", sent)
}

func TestNotReadyAndCloseStreams(t *testing.T) {
	h := newHarness(t)
	h.s.SetEventStreamsReady(false)
	resp, body := h.do("GET", "/v2/events", "", "Accept", "text/event-stream")
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("not ready: %s %q", resp.Status, body)
	}
	h.s.SetEventStreamsReady(true)
	st := h.stream("")
	st.attached()
	h.s.CloseEventStreams()
	for {
		f, ok := st.next(5 * time.Second)
		if !ok {
			break
		}
		if f.typ != "" && f.typ != "event_stream_detached" {
			t.Errorf("unexpected %s", f.typ)
		}
	}
	if err := <-st.errc; err != io.EOF {
		t.Errorf("stream ended with %v", err)
	}
}
