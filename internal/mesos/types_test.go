package mesos

import (
	"bufio"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// refNetworkInfo is the network_info of the reference's §3.1 example: a
// Marathon UCR app on network dcos with one host-port mapping and a
// network label.
const refNetworkInfo = `{
  "ip_addresses": [{"protocol": "IPv4"}],
  "labels": {"labels": [{"key": "networks", "value": "blue"}]},
  "name": "dcos",
  "port_mappings": [{"container_port": 80, "host_port": 31845, "protocol": "tcp"}]
}`

func TestParseNetworkInfo(t *testing.T) {
	blue := &Labels{Labels: []Label{{Key: "networks", Value: "blue"}}}
	tests := []struct {
		name    string
		in      string
		want    NetworkInfo
		wantErr string
	}{
		{"reference §3.1", refNetworkInfo, NetworkInfo{
			IPAddresses:  []IPAddress{{Protocol: IPv4}},
			Name:         "dcos",
			Labels:       blue,
			PortMappings: []PortMapping{{HostPort: 31845, ContainerPort: 80, Protocol: "tcp"}},
		}, ""},
		{"groups and a requested address", `{"name":"dcos","groups":["prod"],"ip_addresses":[{"ip_address":"9.0.1.7"}]}`,
			NetworkInfo{Name: "dcos", Groups: []string{"prod"}, IPAddresses: []IPAddress{{IPAddress: "9.0.1.7"}}}, ""},
		{"unset IPAddress ({}) as in Mesos 1.4 state", `{"ip_addresses":[{}]}`, NetworkInfo{IPAddresses: []IPAddress{{}}}, ""},
		{"unknown protocol name keeps the default", `{"ip_addresses":[{"protocol":"IPv5","ip_address":"1.2.3.4"}]}`,
			NetworkInfo{IPAddresses: []IPAddress{{IPAddress: "1.2.3.4"}}}, ""},
		{"unknown keys and nulls ignored", `{"name":"n","foo":{"bar":1},"labels":null,"ip_address":"1.2.3.4"}`, NetworkInfo{Name: "n"}, ""},
		{"label without value", `{"labels":{"labels":[{"key":"k"},{"key":"e","value":""}]}}`,
			NetworkInfo{Labels: &Labels{Labels: []Label{{Key: "k", NoValue: true}, {Key: "e"}}}}, ""},
		{"empty labels", `{"labels":{}}`, NetworkInfo{Labels: &Labels{}}, ""},
		{"single group as a string", `{"groups":"prod"}`, NetworkInfo{Groups: []string{"prod"}}, ""},
		{"port as double is truncated", `{"port_mappings":[{"host_port":8080.9,"container_port":80}]}`,
			NetworkInfo{PortMappings: []PortMapping{{HostPort: 8080, ContainerPort: 80}}}, ""},
		{"port mapping without host_port", `{"port_mappings":[{"container_port":80}]}`, NetworkInfo{},
			"Missing required fields: port_mappings[0].host_port"},
		{"port as string", `{"port_mappings":[{"host_port":"80","container_port":80}]}`, NetworkInfo{},
			"Not expecting a JSON string for field 'host_port'"},
		{"protocol as number", `{"ip_addresses":[{"protocol":1}]}`, NetworkInfo{}, "Not expecting a JSON number for field 'protocol'"},
		{"label without key", `{"labels":{"labels":[{"value":"v"}]}}`, NetworkInfo{}, "Missing required fields: labels.labels[0].key"},
		{"bare label array is not protobuf JSON", `{"labels":[{"key":"a","value":"b"}]}`, NetworkInfo{}, "Not expecting a JSON array for field 'labels'"},
		{"name as object", `{"name":{}}`, NetworkInfo{}, "Not expecting a JSON object for field 'name'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNetworkInfo([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNetworkInfoRendering(t *testing.T) {
	ni, err := ParseNetworkInfo([]byte(refNetworkInfo))
	if err != nil {
		t.Fatal(err)
	}
	proto, err := json.Marshal(ni)
	if err != nil {
		t.Fatal(err)
	}
	// Protobuf JSON, declaration order (as in the v1 operator API).
	if want := `{"ip_addresses":[{"protocol":"IPv4"}],"name":"dcos","labels":{"labels":[{"key":"networks","value":"blue"}]},"port_mappings":[{"host_port":31845,"container_port":80,"protocol":"tcp"}]}`; string(proto) != want {
		t.Errorf("protobuf JSON:\n got  %s\n want %s", proto, want)
	}
	// The network_info Mesos injects into a CNI config: sorted.
	sorted, err := MarshalSorted(ni.ProtoObject())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ip_addresses":[{"protocol":"IPv4"}],"labels":{"labels":[{"key":"networks","value":"blue"}]},"name":"dcos","port_mappings":[{"container_port":80,"host_port":31845,"protocol":"tcp"}]}`; string(sorted) != want {
		t.Errorf("sorted:\n got  %s\n want %s", sorted, want)
	}
	// /state: bare label array, http.cpp field order.
	ni.IPAddresses = []IPAddress{{Protocol: IPv4, IPAddress: "9.0.1.2"}}
	state, err := MarshalStout(ni.StateObject())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"labels":[{"key":"networks","value":"blue"}],"ip_addresses":[{"protocol":"IPv4","ip_address":"9.0.1.2"}],"name":"dcos","port_mappings":[{"host_port":31845,"container_port":80,"protocol":"tcp"}]}`; string(state) != want {
		t.Errorf("state:\n got  %s\n want %s", state, want)
	}
	// UnmarshalJSON takes both label encodings back.
	for _, doc := range [][]byte{proto, state} {
		var back NetworkInfo
		if err := json.Unmarshal(doc, &back); err != nil {
			t.Fatal(err)
		}
		if back.Labels == nil || !reflect.DeepEqual(back.Labels.Labels, []Label{{Key: "networks", Value: "blue"}}) {
			t.Errorf("round trip of %s: labels %+v", doc, back.Labels)
		}
	}
}

// TestFixtureNetworkInfos decodes every network_infos of the operator-API
// stream and of the master /state fixtures.
func TestFixtureNetworkInfos(t *testing.T) {
	f, err := os.Open(fixtures + "mesos/dcos-net/hello-overlay.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var statuses []TaskStatus
	for sc.Scan() {
		var ev struct {
			Type        string `json:"type"`
			TaskUpdated struct {
				Status TaskStatus `json:"status"`
			} `json:"task_updated"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "TASK_UPDATED" {
			statuses = append(statuses, ev.TaskUpdated.Status)
		}
	}
	var vip *TaskStatus
	for i := range statuses {
		if statuses[i].TaskID == "hello-overlay-vip-0-server__3b071c4d-ef05-4344-9910-867431def3d7" && statuses[i].State == TaskRunning {
			vip = &statuses[i]
		}
	}
	if vip == nil {
		t.Fatal("hello-overlay-vip TASK_RUNNING not found")
	}
	cs := vip.ContainerStatus
	if cs == nil || cs.ContainerID == nil || cs.ContainerID.String() != "7f0cfb5b-58a8-4933-8b1e-ef1952005cc7.4789961f-732e-4e60-a32c-398b9fbda407" {
		t.Fatalf("container status %+v", cs)
	}
	want := NetworkInfo{IPAddresses: []IPAddress{{Protocol: IPv4, IPAddress: "9.0.2.3"}}, Name: "dcos", Labels: NewLabels("key0", "val0", "key1", "val1")}
	if len(cs.NetworkInfos) != 1 || !reflect.DeepEqual(cs.NetworkInfos[0], want) {
		t.Errorf("network_infos = %+v, want %+v", cs.NetworkInfos, want)
	}
	if vip.AgentID != "c620b0f5-ce56-472b-814a-aa36b40206af-S1" || cs.ExecutorPID != 12080 {
		t.Errorf("agent %q pid %d", vip.AgentID, cs.ExecutorPID)
	}

	data, err := os.ReadFile(fixtures + "mesos/mesos-dns/fake-master-state.json")
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Frameworks []struct {
			Tasks []struct {
				ID       string       `json:"id"`
				Labels   *Labels      `json:"labels"`
				Statuses []TaskStatus `json:"statuses"`
			} `json:"tasks"`
		} `json:"frameworks"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatal(err)
	}
	var dual []NetworkInfo
	for _, fw := range state.Frameworks {
		for _, task := range fw.Tasks {
			if task.ID == "toy-store.b8db9f73-562f-11e4-a088-c20493233aa5" {
				dual = task.Statuses[0].ContainerStatus.NetworkInfos
			}
		}
	}
	if len(dual) != 2 || !reflect.DeepEqual(dual[1].IPAddresses, []IPAddress{{Protocol: IPv4, IPAddress: "12.0.1.2"}, {Protocol: IPv6, IPAddress: "fd01:b::1:8000:2"}}) {
		t.Errorf("dcos6 network_infos = %+v", dual)
	}
}

func TestTaskStatusRendering(t *testing.T) {
	healthy := true
	st := TaskStatus{
		TaskID:     "web.1",
		State:      TaskRunning,
		Source:     SourceExecutor,
		AgentID:    "a-S0",
		ExecutorID: "web.1",
		Timestamp:  1600000000.1,
		Healthy:    &healthy,
		Labels:     NewLabels("foo", "bar"),
		ContainerStatus: &ContainerStatus{
			ContainerID: &ContainerID{Value: "c1"},
			NetworkInfos: []NetworkInfo{{
				Name:        "dcos",
				Labels:      NewLabels("networks", "blue"),
				IPAddresses: []IPAddress{{Protocol: IPv4, IPAddress: "9.0.1.2"}, {Protocol: IPv6, IPAddress: "fd00::2/64"}},
			}},
			ExecutorPID: 42,
		},
	}
	state, err := MarshalStout(st.StateObject())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"state":"TASK_RUNNING","timestamp":1600000000.1,"labels":[{"key":"foo","value":"bar"}],"container_status":{"container_id":{"value":"c1"},"network_infos":[{"labels":[{"key":"networks","value":"blue"}],"ip_addresses":[{"protocol":"IPv4","ip_address":"9.0.1.2"},{"protocol":"IPv6","ip_address":"fd00::2\/64"}],"name":"dcos"}]},"healthy":true}`; string(state) != want {
		t.Errorf("state:\n got  %s\n want %s", state, want)
	}
	proto, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"task_id":{"value":"web.1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","agent_id":{"value":"a-S0"},"executor_id":{"value":"web.1"},"timestamp":1600000000.1,"healthy":true,"labels":{"labels":[{"key":"foo","value":"bar"}]},"container_status":{"container_id":{"value":"c1"},"network_infos":[{"ip_addresses":[{"protocol":"IPv4","ip_address":"9.0.1.2"},{"protocol":"IPv6","ip_address":"fd00::2\/64"}],"name":"dcos","labels":{"labels":[{"key":"networks","value":"blue"}]}}],"executor_pid":42}}`; string(proto) != want {
		t.Errorf("protobuf:\n got  %s\n want %s", proto, want)
	}
	var back TaskStatus
	if err := json.Unmarshal(proto, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Errorf("round trip:\n got  %+v\n want %+v", back, st)
	}
}

func TestTaskStateObject(t *testing.T) {
	task := Task{
		ID: "web.1", Name: "web", FrameworkID: "f-0001", AgentID: "a-S1", State: TaskRunning, Role: "*",
		Resources: Resources{Scalars: map[string]float64{"cpus": 0.1, "mem": 32}, Ranges: map[string][]Range{"ports": {{31845, 31845}, {31900, 31901}}}},
		Labels:    NewLabels("HAPROXY_GROUP", "external"),
		Discovery: json.RawMessage(`{"visibility":"FRAMEWORK","name":"web","ports":{"ports":[{"number":31845,"name":"http","protocol":"tcp","labels":{"labels":[{"key":"VIP_0","value":"/web:80"}]}}]}}`),
		Container: &ContainerInfo{Type: "MESOS", NetworkInfos: []NetworkInfo{{IPAddresses: []IPAddress{{}}, Name: "dcos", Labels: NewLabels("networks", "blue")}}},
	}
	got, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"web.1","name":"web","framework_id":"f-0001","executor_id":"","slave_id":"a-S1","state":"TASK_RUNNING",` +
		`"resources":{"cpus":0.1,"gpus":0.0,"mem":32.0,"disk":0.0,"ports":"[31845-31845, 31900-31901]"},"role":"*","statuses":[],` +
		`"labels":[{"key":"HAPROXY_GROUP","value":"external"}],` +
		`"discovery":{"visibility":"FRAMEWORK","name":"web","ports":{"ports":[{"number":31845,"name":"http","protocol":"tcp","labels":{"labels":[{"key":"VIP_0","value":"\/web:80"}]}}]}},` +
		`"container":{"type":"MESOS","network_infos":[{"ip_addresses":[{"protocol":"IPv4"}],"name":"dcos","labels":{"labels":[{"key":"networks","value":"blue"}]}}]}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !strings.Contains(string(got), `"labels":[{"key":"HAPROXY_GROUP"`) || !strings.Contains(string(got), `"labels":{"labels":[{"key":"networks"`) {
		t.Error("both label encodings expected in one task")
	}
}
