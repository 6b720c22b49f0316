package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fixtureDir = "../../../shared/fixtures/"

// readFixture reads a shared fixture (read-only test data).
func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, rel))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// firstJSONValue returns the first JSON value of data: the Contrail sample
// has prose after its JSON ("Strip off following part").
func firstJSONValue(t testing.TB, data []byte) []byte {
	t.Helper()
	var raw json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		t.Fatalf("first JSON value: %v", err)
	}
	return raw
}

// appFixtures are every fixture holding apps, with what must come out.
var appFixtures = []struct {
	file  string
	first bool // decode only the first JSON value
	list  bool // {"apps":[…]}
	check func(t *testing.T, apps []App)
}{
	{
		file: "marathon/marathon-lb/marathon15_apps.json", list: true,
		check: func(t *testing.T, apps []App) {
			if len(apps) != 1 {
				t.Fatalf("apps = %d, want 1", len(apps))
			}
			a := apps[0]
			want := App{ID: "/pywebserver", Instances: 1, Version: "2017-07-19T17:34:41.967Z"}
			if a.ID != want.ID || a.Instances != want.Instances || a.Version != want.Version {
				t.Errorf("app = %s/%d/%s", a.ID, a.Instances, a.Version)
			}
			if a.Labels["HAPROXY_GROUP"] != "external" || a.Labels["HAPROXY_0_VHOST"] != "myvhost.com" {
				t.Errorf("labels = %v", a.Labels)
			}
			if a.Container == nil || a.Container.Type != "DOCKER" || a.Container.Docker.Image != "python:3" {
				t.Fatalf("container = %+v", a.Container)
			}
			pm := a.Container.PortMappings
			if len(pm) != 1 || pm[0].ContainerPort != 80 || pm[0].HostPort == nil || *pm[0].HostPort != 0 ||
				pm[0].ServicePort != 10101 || pm[0].Name != "test" || pm[0].Protocol != "tcp" {
				t.Errorf("portMappings = %+v", pm)
			}
			if len(a.Networks) != 1 || a.Networks[0].Mode != NetworkModeBridge {
				t.Errorf("networks = %+v", a.Networks)
			}
			if len(a.Tasks) != 1 {
				t.Fatalf("tasks = %d", len(a.Tasks))
			}
			task := a.Tasks[0]
			if task.ID != "pywebserver.8cad6a69-6ca8-11e7-beb2-0e2beceebfcc" || task.AppID != "/pywebserver" ||
				task.State != TaskRunning || task.Host != "10.0.2.148" ||
				task.Agent() != "db7b40e2-791c-445f-b373-183e2a648a86-S1" ||
				!reflect.DeepEqual(task.Ports, []int{1565}) || task.StartedAt != "2017-07-19T17:35:15.654Z" {
				t.Errorf("task = %+v", task)
			}
			if got := TaskAddresses(&task); !reflect.DeepEqual(got, []netip.Addr{netip.MustParseAddr("172.17.0.2")}) {
				t.Errorf("TaskAddresses = %v", got)
			}
			if got := AppNetworks(&a); !reflect.DeepEqual(got, []NetworkAttachment{{Mode: NetworkModeBridge, Source: "networks"}}) {
				t.Errorf("AppNetworks = %+v", got)
			}
			if id, ok := InstanceIDFromTaskID(task.ID); !ok || id != "pywebserver.marathon-8cad6a69-6ca8-11e7-beb2-0e2beceebfcc" {
				t.Errorf("instance id = %q, %v", id, ok)
			}
		},
	},
	{
		file: "marathon/rest-api-examples/app.json",
		check: func(t *testing.T, apps []App) {
			a := apps[0]
			if a.ID != "/foo" || a.Instances != 2 || a.Cmd != "sleep 1000" || a.Labels["owner"] != "zeus" {
				t.Errorf("app = %+v", a)
			}
			d := a.Container.Docker
			if d == nil || d.Network != "BRIDGE" || len(d.PortMappings) != 1 || d.PortMappings[0].ServicePort != 10019 ||
				d.PortMappings[0].Labels["vip"] != "192.168.0.1:80" {
				t.Errorf("docker = %+v", d)
			}
			ip := a.IPAddress
			if ip == nil || ip.NetworkName != "" || !reflect.DeepEqual(ip.Groups, []string{"dev"}) ||
				ip.Discovery == nil || ip.Discovery.Ports[0].Number != 8080 || ip.Discovery.Ports[0].Name != "rest-endpoint" {
				t.Errorf("ipAddress = %+v", ip)
			}
			if len(a.PortDefinitions) != 1 || a.PortDefinitions[0].Name != "http" {
				t.Errorf("portDefinitions = %+v", a.PortDefinitions)
			}
			if !reflect.DeepEqual(a.Constraints, [][]string{{"hostname", "LIKE", "srv2.*"}}) {
				t.Errorf("constraints = %v", a.Constraints)
			}
			// ipAddress wins over docker BRIDGE: container network, unnamed
			// (Marathon's default network), labels from ipAddress.
			want := []NetworkAttachment{{Mode: NetworkModeContainer, Labels: map[string]string{"environment": "dev"}, Source: "ipAddress"}}
			if got := AppNetworks(&a); !reflect.DeepEqual(got, want) {
				t.Errorf("AppNetworks = %+v", got)
			}
		},
	},
	{
		file: "marathon/rest-api-examples/app_list.json", list: true,
		check: func(t *testing.T, apps []App) {
			a := apps[0]
			if a.ID != "/myapp" || a.Instances != 3 || a.Container != nil || a.Args != nil ||
				!reflect.DeepEqual(a.Ports, []int{10013, 10015}) || a.Version != "2015-09-25T15:13:48.343Z" {
				t.Errorf("app = %+v", a)
			}
			if len(a.Deployments) != 1 || a.Deployments[0].ID != "9538079c-3898-4e32-aa31-799bf9097f74" {
				t.Errorf("deployments = %+v", a.Deployments)
			}
			if got := AppNetworks(&a); !reflect.DeepEqual(got, []NetworkAttachment{{Mode: NetworkModeHost, Source: "default"}}) {
				t.Errorf("AppNetworks = %+v", got)
			}
		},
	},
	{
		file: "marathon/system-tests/pinger-container-app.json",
		check: func(t *testing.T, apps []App) {
			a := apps[0]
			if a.ID != "/pinger-container-app" || a.IPAddress == nil || a.IPAddress.NetworkName != "dcos" ||
				a.IPAddress.Discovery.Ports[0].Number != 7777 || a.IPAddress.Discovery.Ports[0].Protocol != "tcp" {
				t.Errorf("app = %+v", a)
			}
			want := []NetworkAttachment{{Mode: NetworkModeContainer, Name: "dcos", Labels: map[string]string{}, Source: "ipAddress"}}
			if got := AppNetworks(&a); !reflect.DeepEqual(got, want) {
				t.Errorf("AppNetworks = %+v", got)
			}
		},
	},
	{
		file: "contrail/contrail-controller/marathon-input-example.json", first: true,
		check: func(t *testing.T, apps []App) {
			a := apps[0]
			if a.ID != "app-id-1" || a.Container.Type != "MESOS" || a.Container.Docker.Image != "rastasheep/ubuntu-sshd" {
				t.Errorf("app = %+v", a)
			}
			want := []NetworkAttachment{{
				Mode: NetworkModeContainer,
				Name: "contrail-cni-plugin",
				Labels: map[string]string{
					"networks":        "blue-network",
					"network-subnets": "5.5.5.0/24",
					"project-name":    "default-project",
					"domain-name":     "default-domain",
					"floating-ips":    "default-domain:default-project:__public__:__fip_pool_public__(10.66.77.123),default-domain:default-project:__public__:__fip_pool_public2__(10.33.44.11)",
					"security-groups": "default-domain:default-project:security_groups_mesos",
				},
				Source: "ipAddress",
			}}
			got := AppNetworks(&a)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("AppNetworks = %+v", got)
			}
			if !got[0].Managed() || AppNetworkMode(&a) != NetworkModeContainer {
				t.Error("contrail attachment not a managed container network")
			}
		},
	},
	{
		file: "l4lb-dns/marathon-lb/1-nginx-marathon1.5.json",
		check: func(t *testing.T, apps []App) {
			a := apps[0]
			if a.ID != "nginx" || a.Instances != 5 || a.Labels["HAPROXY_DEPLOYMENT_GROUP"] != "nginx" {
				t.Errorf("app = %+v", a)
			}
			pm := a.Container.PortMappings
			if len(pm) != 1 || pm[0].ContainerPort != 8080 || pm[0].HostPort == nil || *pm[0].HostPort != 0 || pm[0].ServicePort != 10000 {
				t.Errorf("portMappings = %+v", pm)
			}
			want := []NetworkAttachment{{Mode: NetworkModeBridge, Source: "networks"}}
			got := AppNetworks(&a)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("AppNetworks = %+v", got)
			}
			if got[0].Managed() || AppNetworkMode(&a) != NetworkModeBridge {
				t.Error("bridge attachment reported as managed")
			}
		},
	},
}

func TestDecodeAppFixtures(t *testing.T) {
	for _, tc := range appFixtures {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			data := readFixture(t, tc.file)
			if tc.first {
				data = firstJSONValue(t, data)
			}
			var apps []App
			if tc.list {
				var err error
				if apps, err = DecodeApps(data); err != nil {
					t.Fatal(err)
				}
			} else {
				a, err := DecodeApp(data)
				if err != nil {
					t.Fatal(err)
				}
				apps = []App{*a}
			}
			tc.check(t, apps)
		})
	}
}

func TestDecodeOtherFixtures(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, data []byte)
	}{
		{"marathon/rest-api-examples/app_tasks.json", func(t *testing.T, data []byte) {
			ts, err := DecodeTasks(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != 1 {
				t.Fatalf("tasks = %d", len(ts))
			}
			task := ts[0]
			if task.ID != "minecraft_survival-world.instance-564bd685-4c30-11e5-98c1-be5b2935a987" ||
				task.AppID != "/minecraft/survival-world" || task.State != TaskStaging || task.SlaveID != "agent0" ||
				task.Region != "primary" || task.Zone != "a" || task.Role != "*" || !reflect.DeepEqual(task.Ports, []int{31756}) {
				t.Errorf("task = %+v", task)
			}
			if !IsActiveTaskState(task.State) || IsTerminalTaskState(task.State) {
				t.Errorf("TASK_STAGING classified wrongly")
			}
		}},
		{"marathon/rest-api-examples/tasks.json", func(t *testing.T, data []byte) {
			ts, err := DecodeTasks(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != 2 {
				t.Fatalf("tasks = %d", len(ts))
			}
			if ts[0].AppID != "/frontend-foosball" || !reflect.DeepEqual(ts[0].ServicePorts, []int{10019}) ||
				ts[1].AppID != "/tools/docker/registry" || !reflect.DeepEqual(ts[1].Ports, []int{31721}) || ts[1].State != TaskRunning {
				t.Errorf("tasks = %+v", ts)
			}
			if len(TaskAddresses(&ts[0])) != 0 {
				t.Error("addresses for a task without ipAddresses")
			}
		}},
		{"marathon/rest-api-examples/deployments.json", func(t *testing.T, data []byte) {
			ds, err := DecodeDeployments(data)
			if err != nil {
				t.Fatal(err)
			}
			d := ds[0]
			if d.ID != "97c136bf-5a28-4821-9d94-480d9fbb01c8" || !reflect.DeepEqual(d.AffectedApps, []string{"/foo"}) ||
				!reflect.DeepEqual(d.AffectedPods, []string{"/bla"}) || len(d.Steps) != 2 ||
				d.Steps[1].Actions[0].RunSpec() != "/bla" || d.Steps[0].Actions[0].Action != "ScaleApplication" ||
				d.CurrentActions[0].App != "/foo" || d.CurrentStep != 1 || d.TotalSteps != 1 {
				t.Errorf("deployment = %+v", d)
			}
		}},
		{"marathon/rest-api-examples/group.json", func(t *testing.T, data []byte) {
			g, err := DecodeGroup(data)
			if err != nil {
				t.Fatal(err)
			}
			if g.ID != "/" || len(g.Groups) != 1 || g.Groups[0].ID != "/tools" || len(g.Groups[0].Apps) != 2 || len(g.Groups[0].Groups) != 2 {
				t.Fatalf("group = %+v", g)
			}
			oauth := g.Groups[0].Apps[0]
			if oauth.ID != "/tools/oauth-server" || oauth.Container.Docker.Network != "HOST" || AppNetworkMode(&oauth) != NetworkModeHost {
				t.Errorf("oauth = %+v", oauth)
			}
			reg := g.Groups[0].Groups[1].Apps[0]
			if reg.ID != "/tools/docker/registry" || reg.Container.Docker.PortMappings[0].ServicePort != 5000 {
				t.Errorf("registry = %+v", reg)
			}
			if got := AppNetworks(&reg); !reflect.DeepEqual(got, []NetworkAttachment{{Mode: NetworkModeBridge, Source: "docker.network"}}) {
				t.Errorf("registry networks = %+v", got)
			}
		}},
		{"marathon/rest-api-examples/info.json", func(t *testing.T, data []byte) {
			info, err := DecodeInfo(data)
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != "marathon" || info.Version != "1.5.0-SNAPSHOT" || !info.Elected || info.Leader != "localhost:8080" ||
				info.FrameworkID != "96d7da70-b731-4cfb-96a7-0ee877af615d-0000" ||
				info.MarathonConfig.DefaultNetworkName != "container-network" || info.MarathonConfig.MesosBridgeName != "mesos-bridge" ||
				!info.MarathonConfig.HA || info.HTTPConfig.HTTPPort != 8080 || info.HTTPConfig.HTTPSPort != 8443 {
				t.Errorf("info = %+v", info)
			}
		}},
		{"marathon/rest-api-examples/pod.json", func(t *testing.T, data []byte) {
			p, err := DecodePod(data)
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != "/foo" || p.Labels["owner"] != "zeus" || p.Scaling == nil || p.Scaling.Instances != 1 || p.Scaling.MaxInstances != 888 ||
				len(p.Containers) != 1 || p.Containers[0].Name != "container1" || p.Containers[0].Resources.Mem != 128 ||
				p.Containers[0].Image.ID != "mesosphere/marathon:latest" {
				t.Errorf("pod = %+v", p)
			}
			ep := p.Containers[0].Endpoints
			if len(ep) != 1 || ep[0].Name != "httpendpoint" || ep[0].ContainerPort != 80 || ep[0].HostPort == nil ||
				*ep[0].HostPort != 0 || !reflect.DeepEqual(ep[0].Protocol, []string{"tcp"}) {
				t.Errorf("endpoints = %+v", ep)
			}
			want := []NetworkAttachment{{Mode: NetworkModeContainer, Name: "my-network", Labels: map[string]string{}, Source: "networks"}}
			if got := PodNetworks(p); !reflect.DeepEqual(got, want) {
				t.Errorf("PodNetworks = %+v", got)
			}
		}},
		{"marathon/system-tests/simple-pod.json", func(t *testing.T, data []byte) {
			p, err := DecodePod(data)
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != "/simple-pod" || len(p.Containers) != 2 || p.Containers[1].Name != "ct2" || p.Containers[0].Image.Kind != "DOCKER" ||
				len(p.Containers[0].Endpoints) != 0 {
				t.Errorf("pod = %+v", p)
			}
			if got := PodNetworks(p); !reflect.DeepEqual(got, []NetworkAttachment{{Mode: NetworkModeHost, Source: "networks"}}) {
				t.Errorf("PodNetworks = %+v", got)
			}
		}},
		{"marathon/rest-api-examples/events.txt", func(t *testing.T, data []byte) {
			frames, err := readAllFrames(NewFrameReader(bytes.NewReader(data)))
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 3 {
				t.Fatalf("frames = %d", len(frames))
			}
			for _, f := range frames {
				if _, err := DecodeEvent(f.Event, []byte(f.Data)); err != nil {
					t.Error(err)
				}
			}
		}},
	}
	covered := map[string]bool{}
	for _, tc := range appFixtures {
		covered[tc.file] = true
	}
	for _, tc := range tests {
		covered[tc.file] = true
		t.Run(filepath.Base(tc.file), func(t *testing.T) { tc.check(t, readFixture(t, tc.file)) })
	}
	// Every file under fixtures/marathon must have a test above.
	err := filepath.WalkDir(filepath.Join(fixtureDir, "marathon"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(fixtureDir, path)
		if !covered[filepath.ToSlash(rel)] {
			t.Errorf("fixture %s has no decode test", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// podStatusJSON is the §3.7 shape with two networks and two containers.
const podStatusJSON = `{"id":"/grp/pod","spec":{"id":"/grp/pod","containers":[{"name":"web","endpoints":[{"name":"http","containerPort":80,"hostPort":0,"protocol":["tcp"],"labels":{"VIP_0":"/web:80"}}]}],
 "networks":[{"mode":"container","name":"weft","labels":{"networks":"blue"}}],"scaling":{"kind":"fixed","instances":1}},
 "status":"STABLE","statusSince":"2017-07-17T13:15:16.000Z","newField":{"x":[1,2]},"instances":[{
  "id":"grp_pod.instance-dc6cfe60-6812-11e7-a18e-70b3d5800003","status":"STABLE",
  "agentHostname":"10.0.0.5","agentId":"a1-S1","unknown":null,
  "networks":[{"name":"weft","addresses":["9.0.1.5","9.0.1.5"]},{"name":"other","addresses":["fd00::5"]}],
  "containers":[{"name":"web","status":"TASK_RUNNING","containerId":"grp_pod.instance-dc6cfe60-6812-11e7-a18e-70b3d5800003.web.1",
     "endpoints":[{"name":"http","allocatedHostPort":31001,"healthy":true}],"conditions":[]},
   {"name":"side","status":"TASK_RUNNING","containerId":"grp_pod.instance-dc6cfe60-6812-11e7-a18e-70b3d5800003.side.1"}],
  "specReference":"/v2/pods/grp/pod::versions/2017-07-17T13:15:00.000Z"}]}`

func TestDecodePodStatus(t *testing.T) {
	s, err := DecodePodStatus([]byte(podStatusJSON))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "/grp/pod" || s.Status != PodStatusStable || len(s.Instances) != 1 || s.Spec == nil || s.Spec.Scaling.Instances != 1 {
		t.Fatalf("status = %+v", s)
	}
	inst := s.Instances[0]
	if inst.Status != PodInstanceStable || inst.AgentHostname != "10.0.0.5" || inst.AgentID != "a1-S1" ||
		len(inst.Containers) != 2 || inst.Containers[0].Endpoints[0].AllocatedHostPort != 31001 ||
		inst.Containers[0].Endpoints[0].Healthy == nil || !*inst.Containers[0].Endpoints[0].Healthy {
		t.Errorf("instance = %+v", inst)
	}
	want := []netip.Addr{netip.MustParseAddr("9.0.1.5"), netip.MustParseAddr("fd00::5")}
	if got := PodInstanceAddresses(&inst); !reflect.DeepEqual(got, want) {
		t.Errorf("addresses = %v", got)
	}
	nets := PodNetworks(s.Spec)
	if len(nets) != 1 || nets[0].Name != "weft" || nets[0].Labels["networks"] != "blue" || !nets[0].Managed() {
		t.Errorf("PodNetworks = %+v", nets)
	}
	list, err := DecodePodStatuses([]byte("[" + podStatusJSON + "," + podStatusJSON + "]"))
	if err != nil || len(list) != 2 {
		t.Fatalf("DecodePodStatuses = %d, %v", len(list), err)
	}
}

func TestDecodeErrorPaths(t *testing.T) {
	tests := []struct {
		name   string
		decode func([]byte) error
		in     string
		path   string
	}{
		{"app field", decApp, `{"id":"/a","instances":"two"}`, "$.instances"},
		{"nested array", decApps, `{"apps":[{"id":"/a"},{"id":"/b","tasks":[{"id":"t1"},{"id":"t2","ports":[1,"x"]}]}]}`, "$.apps[1].tasks[1].ports[1]"},
		{"object for number", decApp, `{"id":"/a","container":{"portMappings":[{"containerPort":80},{"containerPort":{"a":1}}]}}`, "$.container.portMappings[1].containerPort"},
		{"quoted key", decApp, `{"id":"/a","labels":{"a b":1}}`, `$.labels["a b"]`},
		{"string for object", decApp, `{"id":"/a","ipAddress":"dcos"}`, "$.ipAddress"},
		{"labels array", decApp, `{"id":"/a","networks":[{"mode":"container","labels":["x"]}]}`, "$.networks[0].labels"},
		{"overflow", decApp, `{"id":"/a","instances":1e100}`, "$.instances"},
		{"wrong root", decApp, `[1,2]`, "$"},
		{"pod status", decPodStatus, `{"id":"/p","instances":[{"id":"i","networks":[{"name":"n","addresses":[5]}]}]}`, "$.instances[0].networks[0].addresses[0]"},
		{"syntax", decApp, `{"id":"/a","labels":{"x":"y",}}`, "$.labels.x"},
		{"truncated", decApp, `{"id":"/a","labels":{"x":`, "$.labels.x"},
		{"empty", decApp, ``, "$"},
		{"trailing", decApp, `{"id":"/a"} {}`, "$"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode([]byte(tc.in))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error = %v, want *DecodeError", err)
			}
			if de.Path != tc.path {
				t.Errorf("path = %q, want %q (%v)", de.Path, tc.path, err)
			}
			if !strings.Contains(err.Error(), de.Path) {
				t.Errorf("message %q lacks the path", err)
			}
		})
	}
}

func decApp(b []byte) error       { _, err := DecodeApp(b); return err }
func decApps(b []byte) error      { _, err := DecodeApps(b); return err }
func decPodStatus(b []byte) error { _, err := DecodePodStatus(b); return err }

func TestDecodeToleratesNullsAndUnknownFields(t *testing.T) {
	in := `{"id":"/a","instances":null,"labels":null,"container":null,"networks":null,"ipAddress":null,
		"args":null,"user":null,"portDefinitions":null,"tasks":[{"id":"t","ipAddresses":null,"ports":null,"newThing":{"a":[1]}}],
		"futureField":[{"deep":true}],"unreachableStrategy":"disabled"}`
	a, err := DecodeApp([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "/a" || a.Instances != 0 || a.Container != nil || a.IPAddress != nil || len(a.Tasks) != 1 || string(a.UnreachableStrategy) != `"disabled"` {
		t.Errorf("app = %+v", a)
	}
	if got := AppNetworks(a); !reflect.DeepEqual(got, []NetworkAttachment{{Mode: NetworkModeHost, Source: "default"}}) {
		t.Errorf("AppNetworks = %+v", got)
	}
}

func TestDecodeAppResponse(t *testing.T) {
	a, err := DecodeAppResponse([]byte(`{"app":{"id":"/x","tasks":[{"id":"x.1"}]}}`))
	if err != nil || a.ID != "/x" || len(a.Tasks) != 1 {
		t.Fatalf("app = %+v, %v", a, err)
	}
	if _, err := DecodeAppResponse([]byte(`{"apps":[]}`)); err == nil {
		t.Error("missing app accepted")
	}
}
