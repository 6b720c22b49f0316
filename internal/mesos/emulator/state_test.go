package emulator

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/weft-sdn/weft/internal/mesos"
)

// goldenState is the /state document of TestStateGolden: one framework
// with a running task on network dcos (labels as bare arrays inside
// statuses and task, {"labels":[…]} inside container and discovery) and a
// completed one whose launch failed.
const goldenState = `{"version":"1.11.0","build_date":"weft-emulator","build_time":0.0,"build_user":"weft","start_time":1600000000.5,` +
	`"id":"a1-S0","pid":"slave(1)@198.18.0.1:5051","hostname":"node1",` +
	`"resources":{"cpus":2.0,"gpus":0.0,"mem":1024.0,"disk":0.0,"ports":"[31000-32000]"},"attributes":{},` +
	`"frameworks":[{"id":"f-0001","name":"marathon","user":"root","failover_timeout":604800.0,"checkpoint":true,"hostname":"node1","role":"*",` +
	`"executors":[{"id":"web.1","name":"Command Executor (Task: web.1) (Command: [sleep, infinity])","source":"web.1","container":"c-web","directory":"",` +
	`"resources":{"cpus":0.1,"gpus":0.0,"mem":32.0,"disk":0.0,"ports":"[31845-31845]"},"role":"*",` +
	`"tasks":[{"id":"web.1","name":"web","framework_id":"f-0001","executor_id":"","slave_id":"a1-S0","state":"TASK_RUNNING",` +
	`"resources":{"cpus":0.1,"gpus":0.0,"mem":32.0,"disk":0.0,"ports":"[31845-31845]"},"role":"*",` +
	`"statuses":[{"state":"TASK_STARTING","timestamp":1600000001.0},` +
	`{"state":"TASK_RUNNING","timestamp":1600000001.25,"container_status":{"container_id":{"value":"c-web"},` +
	`"network_infos":[{"labels":[{"key":"networks","value":"blue"}],"ip_addresses":[{"protocol":"IPv4","ip_address":"9.0.1.2"},{"protocol":"IPv6","ip_address":"fd01::2\/64"}],` +
	`"name":"dcos","port_mappings":[{"host_port":31845,"container_port":80,"protocol":"tcp"}]}]}}],` +
	`"labels":[{"key":"HAPROXY_GROUP","value":"external"}],` +
	`"discovery":{"visibility":"FRAMEWORK","name":"web","ports":{"ports":[{"number":31845,"name":"http","protocol":"tcp","labels":{"labels":[{"key":"VIP_0","value":"\/web:80"}]}}]}},` +
	`"container":{"type":"MESOS","hostname":"web-1","network_infos":[{"ip_addresses":[{"protocol":"IPv4"}],"name":"dcos","labels":{"labels":[{"key":"networks","value":"blue"}]},` +
	`"port_mappings":[{"host_port":31845,"container_port":80,"protocol":"tcp"}]}]}}],` +
	`"queued_tasks":[],"completed_tasks":[]}],` +
	`"completed_executors":[{"id":"bad.1","name":"Command Executor (Task: bad.1) (Command: [sleep, infinity])","source":"bad.1","container":"c-bad","directory":"",` +
	`"resources":{"cpus":0.0,"gpus":0.0,"mem":0.0,"disk":0.0},"role":"*","tasks":[],"queued_tasks":[],` +
	`"completed_tasks":[{"id":"bad.1","name":"bad.1","framework_id":"f-0001","executor_id":"","slave_id":"a1-S0","state":"TASK_FAILED",` +
	`"resources":{"cpus":0.0,"gpus":0.0,"mem":0.0,"disk":0.0},"role":"*",` +
	`"statuses":[{"state":"TASK_FAILED","timestamp":1600000002.0}],` +
	`"container":{"type":"MESOS","network_infos":[{"name":"nope"}]}}]}]}],` +
	`"completed_frameworks":[],` +
	`"flags":{"hostname":"node1","isolation":"network\/cni","network_cni_config_dir":"\/etc\/mesos\/cni","network_cni_plugins_dir":"\/usr\/libexec\/mesos\/cni"}}`

func TestStateGolden(t *testing.T) {
	web := marathonNetworkInfo("dcos")
	running := mesos.TaskStatus{
		TaskID: "web.1", State: mesos.TaskRunning, Source: mesos.SourceExecutor, AgentID: "a1-S0", ExecutorID: "web.1", Timestamp: 1600000001.25,
		ContainerStatus: &mesos.ContainerStatus{
			ContainerID: &mesos.ContainerID{Value: "c-web"},
			NetworkInfos: []mesos.NetworkInfo{{
				IPAddresses:  []mesos.IPAddress{{Protocol: mesos.IPv4, IPAddress: "9.0.1.2"}, {Protocol: mesos.IPv6, IPAddress: "fd01::2/64"}},
				Name:         "dcos",
				Labels:       web.Labels,
				PortMappings: web.PortMappings,
			}},
			ExecutorPID: 4242,
		},
	}
	live := []Container{{
		ID:          "c-web",
		FrameworkID: "f-0001",
		State:       mesos.TaskRunning,
		Task: TaskSpec{
			TaskID: "web.1", Name: "web", FrameworkID: "f-0001", Command: []string{"sleep", "infinity"},
			NetworkInfos: []mesos.NetworkInfo{web}, Hostname: "web-1", Role: "*",
			Labels:    mesos.NewLabels("HAPROXY_GROUP", "external"),
			Resources: mesos.Resources{Scalars: map[string]float64{"cpus": 0.1, "mem": 32}, Ranges: map[string][]mesos.Range{"ports": {{Begin: 31845, End: 31845}}}},
			Discovery: json.RawMessage(`{"visibility":"FRAMEWORK","name":"web","ports":{"ports":[{"number":31845,"name":"http","protocol":"tcp","labels":{"labels":[{"key":"VIP_0","value":"/web:80"}]}}]}}`),
		},
		Statuses: []mesos.TaskStatus{{TaskID: "web.1", State: mesos.TaskStarting, Timestamp: 1600000001}, running},
	}}
	completed := []Container{{
		ID:          "c-bad",
		FrameworkID: "f-0001",
		State:       mesos.TaskFailed,
		Task: TaskSpec{TaskID: "bad.1", Name: "bad.1", FrameworkID: "f-0001", Command: []string{"sleep", "infinity"}, Role: "*",
			NetworkInfos: []mesos.NetworkInfo{{Name: "nope"}}},
		Statuses: []mesos.TaskStatus{{TaskID: "bad.1", State: mesos.TaskFailed, Timestamp: 1600000002, Message: "Failed to launch container: Unknown CNI network 'nope'"}},
	}}
	info := agentInfo{
		ID: "a1-S0", Hostname: "node1", IP: "198.18.0.1", StartTime: time.Unix(1600000000, 500000000),
		Resources: mesos.Resources{Scalars: map[string]float64{"cpus": 2, "mem": 1024}, Ranges: map[string][]mesos.Range{"ports": {{Begin: 31000, End: 32000}}}},
		Flags: map[string]string{"network_cni_plugins_dir": "/usr/libexec/mesos/cni", "network_cni_config_dir": "/etc/mesos/cni",
			"hostname": "node1", "isolation": "network/cni"},
		FrameworkName: "marathon",
	}
	got, err := mesos.MarshalStout(buildState(info, live, completed))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != goldenState {
		t.Errorf("state:\n got  %s\n want %s", got, goldenState)
	}
	if !json.Valid(got) {
		t.Error("invalid JSON")
	}

	// With no live task, the framework moves to completed_frameworks.
	var doc struct {
		Frameworks          []json.RawMessage `json:"frameworks"`
		CompletedFrameworks []json.RawMessage `json:"completed_frameworks"`
	}
	only, err := mesos.MarshalStout(buildState(info, nil, completed))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(only, &doc); err != nil || len(doc.Frameworks) != 0 || len(doc.CompletedFrameworks) != 1 {
		t.Errorf("completed framework: %v %s", err, only)
	}
}
