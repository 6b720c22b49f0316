package marathon

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestAppNetworks(t *testing.T) {
	lbl := map[string]string{"networks": "blue"}
	tests := []struct {
		name string
		app  App
		want []NetworkAttachment
		mode NetworkMode
	}{
		{"nothing: host", App{}, []NetworkAttachment{{Mode: NetworkModeHost, Source: "default"}}, NetworkModeHost},
		{"1.5 host", App{Networks: []Network{{Mode: NetworkModeHost}}},
			[]NetworkAttachment{{Mode: NetworkModeHost, Source: "networks"}}, NetworkModeHost},
		{"1.5 two container networks", App{Networks: []Network{
			{Mode: NetworkModeContainer, Name: "weft", Labels: lbl},
			{Mode: NetworkModeContainer, Name: "red"},
		}}, []NetworkAttachment{
			{Mode: NetworkModeContainer, Name: "weft", Labels: lbl, Source: "networks"},
			{Mode: NetworkModeContainer, Name: "red", Labels: map[string]string{}, Source: "networks"},
		}, NetworkModeContainer},
		{"1.5 entry without mode is a container network", App{Networks: []Network{{Name: "weft"}}},
			[]NetworkAttachment{{Mode: NetworkModeContainer, Name: "weft", Labels: map[string]string{}, Source: "networks"}}, NetworkModeContainer},
		{"1.4 ipAddress", App{IPAddress: &IPAddressSpec{NetworkName: "weft", Labels: lbl}},
			[]NetworkAttachment{{Mode: NetworkModeContainer, Name: "weft", Labels: lbl, Source: "ipAddress"}}, NetworkModeContainer},
		{"1.4 ipAddress beats docker USER", App{IPAddress: &IPAddressSpec{NetworkName: "weft"}, Container: &Container{Docker: &Docker{Network: "USER"}}},
			[]NetworkAttachment{{Mode: NetworkModeContainer, Name: "weft", Labels: map[string]string{}, Source: "ipAddress"}}, NetworkModeContainer},
		{"1.4 docker USER without ipAddress", App{Container: &Container{Docker: &Docker{Network: "USER"}}},
			[]NetworkAttachment{{Mode: NetworkModeContainer, Labels: map[string]string{}, Source: "docker.network"}}, NetworkModeContainer},
		{"1.4 docker BRIDGE", App{Container: &Container{Docker: &Docker{Network: "BRIDGE"}}},
			[]NetworkAttachment{{Mode: NetworkModeBridge, Source: "docker.network"}}, NetworkModeBridge},
		{"1.4 docker HOST", App{Container: &Container{Docker: &Docker{Network: "HOST"}}},
			[]NetworkAttachment{{Mode: NetworkModeHost, Source: "docker.network"}}, NetworkModeHost},
		{"both styles: 1.5 container networks win", App{
			Networks:  []Network{{Mode: NetworkModeContainer, Name: "new"}},
			IPAddress: &IPAddressSpec{NetworkName: "old"},
		}, []NetworkAttachment{{Mode: NetworkModeContainer, Name: "new", Labels: map[string]string{}, Source: "networks"}}, NetworkModeContainer},
		{"both styles: a host-only networks list does not hide ipAddress", App{
			Networks:  []Network{{Mode: NetworkModeHost}},
			IPAddress: &IPAddressSpec{NetworkName: "old"},
		}, []NetworkAttachment{{Mode: NetworkModeContainer, Name: "old", Labels: map[string]string{}, Source: "ipAddress"}}, NetworkModeContainer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppNetworks(&tc.app)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AppNetworks = %+v, want %+v", got, tc.want)
			}
			if m := AppNetworkMode(&tc.app); m != tc.mode {
				t.Errorf("mode = %s, want %s", m, tc.mode)
			}
		})
	}
	if AppNetworks(nil) != nil || PodNetworks(nil) != nil {
		t.Error("nil run spec has networks")
	}
}

func TestAppNetworksLabelsAreCopies(t *testing.T) {
	app := App{Networks: []Network{{Mode: NetworkModeContainer, Name: "n", Labels: map[string]string{"a": "1"}}}}
	got := AppNetworks(&app)
	got[0].Labels["a"] = "changed"
	if app.Networks[0].Labels["a"] != "1" {
		t.Error("AppNetworks shares the app's label map")
	}
}

func TestTaskAddresses(t *testing.T) {
	task := Task{IPAddresses: []TaskIPAddress{
		{IPAddress: "10.0.0.1", Protocol: "IPv4"},
		{IPAddress: "bogus"},
		{IPAddress: "::ffff:10.0.0.1"},
		{IPAddress: "fd00::1", Protocol: "IPv6"},
	}}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	if got := TaskAddresses(&task); !reflect.DeepEqual(got, want) {
		t.Errorf("TaskAddresses = %v", got)
	}
	if TaskAddresses(nil) != nil || PodInstanceAddresses(nil) != nil {
		t.Error("nil has addresses")
	}
}

func TestTaskStates(t *testing.T) {
	tests := []struct {
		state                                string
		terminal, unreachable, unknown, live bool
	}{
		{TaskStaging, false, false, false, true},
		{TaskStarting, false, false, false, true},
		{TaskRunning, false, false, false, true},
		{TaskKilling, false, false, false, true},
		{TaskFinished, true, false, false, false},
		{TaskFailed, true, false, false, false},
		{TaskKilled, true, false, false, false},
		{TaskError, true, false, false, false},
		{TaskDropped, true, false, false, false},
		{TaskGone, true, false, false, false},
		{TaskGoneByOperator, true, false, false, false},
		{TaskUnreachable, false, true, false, false},
		{TaskLost, false, true, false, false},
		{TaskUnknown, false, false, true, false},
		{"TASK_FROM_THE_FUTURE", false, false, false, false},
	}
	for _, tc := range tests {
		if IsTerminalTaskState(tc.state) != tc.terminal || IsUnreachableTaskState(tc.state) != tc.unreachable ||
			IsUnknownTaskState(tc.state) != tc.unknown || IsActiveTaskState(tc.state) != tc.live {
			t.Errorf("%s classified wrongly", tc.state)
		}
	}
	conds := []struct {
		c                              string
		terminal, unreachable, unknown bool
	}{
		{ConditionRunning, false, false, false},
		{ConditionScheduled, false, false, false},
		{ConditionKilling, false, false, false},
		{ConditionKilled, true, false, false},
		{ConditionGone, true, false, false},
		{ConditionUnreachable, false, true, false},
		{ConditionUnreachableInactive, false, true, false},
		{ConditionUnknown, false, false, true},
	}
	for _, tc := range conds {
		if IsTerminalCondition(tc.c) != tc.terminal || IsUnreachableCondition(tc.c) != tc.unreachable || IsUnknownCondition(tc.c) != tc.unknown {
			t.Errorf("%s classified wrongly", tc.c)
		}
	}
}

func TestInstanceIDFromTaskID(t *testing.T) {
	const u = "dc6cfe60-6812-11e7-a18e-70b3d5800003"
	tests := []struct {
		task, want string
		ok         bool
	}{
		{"grp_app.instance-" + u + "._app.3", "grp_app.instance-" + u, true},
		{"grp_pod.instance-" + u + ".web.2", "grp_pod.instance-" + u, true},
		{"grp_pod.instance-" + u + ".web", "grp_pod.instance-" + u, true},
		{"grp_app.marathon-" + u + ".$anon.1", "grp_app.marathon-" + u, true},
		{"my.dotted.app.instance-" + u + "._app.1", "my.dotted.app.instance-" + u, true},
		{"grp_app." + u, "grp_app.marathon-" + u, true},
		{"grp_app_" + u, "grp_app.marathon-" + u, true},
		{"grp_app." + u + ".2", "grp_app.marathon-" + u, true},
		{"grp_app.instance-" + u, "grp_app.instance-" + u, true},
		{"nodots", "", false},
		{"trailing.", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := InstanceIDFromTaskID(tc.task)
		if got != tc.want || ok != tc.ok {
			t.Errorf("InstanceIDFromTaskID(%q) = %q, %v; want %q, %v", tc.task, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	got, err := ParseTimestamp("2017-07-19T17:34:41.967Z")
	if err != nil || !got.Equal(time.Date(2017, 7, 19, 17, 34, 41, 967e6, time.UTC)) {
		t.Errorf("ParseTimestamp = %v, %v", got, err)
	}
	if _, err := ParseTimestamp("yesterday"); err == nil {
		t.Error("bad time stamp accepted")
	}
}

func TestSnapshotIndex(t *testing.T) {
	apps, err := DecodeApps(readFixture(t, "marathon/marathon-lb/marathon15_apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	pods, err := DecodePodStatuses([]byte("[" + podStatusJSON + "]"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSnapshot(apps, pods)
	if len(s.Apps) != 1 || len(s.Pods) != 1 || len(s.Instances) != 2 || !s.PodsSupported {
		t.Fatalf("snapshot = %+v", s)
	}
	task, ok := s.Instances["pywebserver.8cad6a69-6ca8-11e7-beb2-0e2beceebfcc"]
	if !ok || task.Kind != KindAppTask || task.RunSpecID != "/pywebserver" || task.State != TaskRunning ||
		task.InstanceID != "pywebserver.marathon-8cad6a69-6ca8-11e7-beb2-0e2beceebfcc" || task.Terminal() ||
		!reflect.DeepEqual(task.Addresses, []netip.Addr{netip.MustParseAddr("172.17.0.2")}) || task.Networks[0].Mode != NetworkModeBridge {
		t.Errorf("app task = %+v", task)
	}
	const iid = "grp_pod.instance-dc6cfe60-6812-11e7-a18e-70b3d5800003"
	pi, ok := s.Instances[iid]
	if !ok || pi.Kind != KindPodInstance || pi.Host != "10.0.0.5" || len(pi.TaskIDs) != 2 || pi.Networks[0].Name != "weft" || len(pi.Addresses) != 2 {
		t.Errorf("pod instance = %+v", pi)
	}
	if got, ok := s.InstanceByTaskID(iid + ".web.1"); !ok || got != pi {
		t.Error("InstanceByTaskID did not find the pod instance of a container task")
	}
	if got, ok := s.InstanceByTaskID(task.Key); !ok || got != task {
		t.Error("InstanceByTaskID did not find the app task")
	}
	if got, ok := s.InstanceByID(task.InstanceID); !ok || got != task {
		t.Error("InstanceByID did not find the app task")
	}
	if got, ok := s.InstanceByID(iid); !ok || got != pi {
		t.Error("InstanceByID did not find the pod instance")
	}
	if _, ok := s.InstanceByID("nope"); ok {
		t.Error("found a missing instance")
	}
}
