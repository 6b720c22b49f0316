package marathon

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name  string
		event string
		data  string
		check func(t *testing.T, ev Event)
	}{
		{"status update", "status_update_event",
			`{"slaveId":"a-S3","taskId":"grp_app.instance-11111111-2222-3333-4444-555555555555._app.1","taskStatus":"TASK_RUNNING","message":"","appId":"/grp/app","host":"agent1","ipAddresses":[{"ipAddress":"10.0.1.5","protocol":"IPv4"}],"ports":[31005],"version":"2020-01-01T00:00:00.000Z","eventType":"status_update_event","timestamp":"2020-01-01T00:00:01.000Z","brandNew":1}`,
			func(t *testing.T, ev Event) {
				e := ev.(*StatusUpdateEvent)
				if e.TaskStatus != TaskRunning || e.AppID != "/grp/app" || e.Host != "agent1" || e.Agent() != "a-S3" ||
					!reflect.DeepEqual(e.Ports, []int{31005}) || e.Version != "2020-01-01T00:00:00.000Z" ||
					e.Time().IsZero() || len(e.Raw) == 0 {
					t.Errorf("event = %+v", e)
				}
				if got := e.Addresses(); !reflect.DeepEqual(got, []netip.Addr{netip.MustParseAddr("10.0.1.5")}) {
					t.Errorf("addresses = %v", got)
				}
				if id, _ := InstanceIDFromTaskID(e.TaskID); id != "grp_app.instance-11111111-2222-3333-4444-555555555555" {
					t.Errorf("instance id = %q", id)
				}
			}},
		{"instance changed while scheduled", "instance_changed_event",
			`{"instanceId":"grp_app.instance-x","condition":"Scheduled","runSpecId":"/grp/app","agentId":null,"host":null,"runSpecVersion":"v","timestamp":"t","eventType":"instance_changed_event"}`,
			func(t *testing.T, ev Event) {
				e := ev.(*InstanceChangedEvent)
				if e.InstanceID != "grp_app.instance-x" || e.Condition != ConditionScheduled || e.AgentID != "" || e.Host != "" || e.RunSpecVersion != "v" {
					t.Errorf("event = %+v", e)
				}
			}},
		{"health changed null", "instance_health_changed_event",
			`{"instanceId":"i","runSpecId":"/a","healthy":null,"eventType":"instance_health_changed_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*InstanceHealthChangedEvent); e.Healthy != nil || e.InstanceID != "i" {
					t.Errorf("event = %+v", e)
				}
			}},
		{"failed health check: taskId holds the instance id", "failed_health_check_event",
			`{"appId":"/a","taskId":"a.instance-1","healthCheck":{"protocol":"HTTP"},"eventType":"failed_health_check_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*HealthEvent); e.InstanceIDOrTask() != "a.instance-1" || string(e.HealthCheck) != `{"protocol":"HTTP"}` {
					t.Errorf("event = %+v", e)
				}
			}},
		{"health status changed", "health_status_changed_event",
			`{"appId":"/a","instanceId":"a.instance-1","version":"v","alive":false,"eventType":"health_status_changed_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*HealthEvent); e.Alive == nil || *e.Alive || e.InstanceIDOrTask() != "a.instance-1" {
					t.Errorf("event = %+v", e)
				}
			}},
		{"app terminated", "app_terminated_event",
			`{"appId":"/web","eventType":"app_terminated_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*AppTerminatedEvent); e.AppID != "/web" {
					t.Errorf("event = %+v", e)
				}
			}},
		{"api post with an app", "api_post_event",
			`{"clientIp":"1.2.3.4","uri":"/v2/apps/web","appDefinition":{"id":"/web","networks":[{"mode":"container","name":"weft","labels":{"networks":"blue"}}]},"eventType":"api_post_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				e := ev.(*APIPostEvent)
				if e.URI != "/v2/apps/web" || e.AppDefinition == nil {
					t.Fatalf("event = %+v", e)
				}
				n := AppNetworks(e.AppDefinition)
				if len(n) != 1 || n[0].Name != "weft" || n[0].Labels["networks"] != "blue" {
					t.Errorf("networks = %+v", n)
				}
			}},
		{"pod deleted", "pod_deleted_event",
			`{"clientIp":"1.2.3.4","uri":"/v2/pods/db","eventType":"pod_deleted_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*PodEvent); e.EventType() != EventPodDeleted || e.URI != "/v2/pods/db" {
					t.Errorf("event = %+v", e)
				}
			}},
		{"deployment info", "deployment_info",
			`{"plan":{"id":"p","steps":[{"actions":[{"action":"StartPod","pod":"/db"}]}]},"currentStep":{"actions":[{"action":"ScaleApplication","app":"/x"},{"action":"ScalePod","pod":"/db"},{"action":"ScaleApplication","app":"/x"}]},"eventType":"deployment_info","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				e := ev.(*DeploymentEvent)
				if got := e.RunSpecs(); !reflect.DeepEqual(got, []string{"/x", "/db"}) {
					t.Errorf("run specs = %v", got)
				}
			}},
		{"deployment failed", "deployment_failed",
			`{"id":"d","plan":{"id":"d","steps":[{"actions":[{"action":"StopApplication","app":"/y"}]}]},"reason":"boom","eventType":"deployment_failed","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				e := ev.(*DeploymentEvent)
				if e.ID != "d" || e.Reason != "boom" || !reflect.DeepEqual(e.RunSpecs(), []string{"/y"}) {
					t.Errorf("event = %+v", e)
				}
			}},
		{"group change", "group_change_success",
			`{"groupId":"/","version":"v","eventType":"group_change_success","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*GroupChangeEvent); e.GroupID != "/" {
					t.Errorf("event = %+v", e)
				}
			}},
		{"stream attached", "event_stream_attached",
			`{"remoteAddress":"0:0:0:0:0:0:0:1","eventType":"event_stream_attached","timestamp":"2015-09-30T12:44:30.061Z"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*StreamAttachmentEvent); e.RemoteAddress != "0:0:0:0:0:0:0:1" || e.EventType() != EventStreamAttached {
					t.Errorf("event = %+v", e)
				}
			}},
		{"scheduler registered", "scheduler_registered_event",
			`{"frameworkId":"f","master":"m","eventType":"scheduler_registered_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*SchedulerEvent); e.FrameworkID != "f" {
					t.Errorf("event = %+v", e)
				}
			}},
		{"unknown instance terminated", "unknown_instance_terminated_event",
			`{"instanceId":"i","runSpecId":"/a","condition":"Gone","eventType":"unknown_instance_terminated_event","timestamp":"t"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*UnknownInstanceTerminatedEvent); !IsTerminalCondition(e.Condition) {
					t.Errorf("event = %+v", e)
				}
			}},
		{"unknown type passes through", "brand_new_event",
			`{"eventType":"brand_new_event","timestamp":"t","stuff":[1,2,3]}`,
			func(t *testing.T, ev Event) {
				e := ev.(*RawEvent)
				if e.EventType() != "brand_new_event" || string(e.Data()) != `{"eventType":"brand_new_event","timestamp":"t","stuff":[1,2,3]}` {
					t.Errorf("event = %+v", e)
				}
			}},
		{"type from the event line when eventType is missing", "app_terminated_event",
			`{"appId":"/z"}`,
			func(t *testing.T, ev Event) {
				if e := ev.(*AppTerminatedEvent); e.EventType() != EventAppTerminated || e.AppID != "/z" {
					t.Errorf("event = %+v", e)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := DecodeEvent(tc.event, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ev)
		})
	}
}

func TestDecodeEventErrors(t *testing.T) {
	tests := []struct{ name, event, data, path string }{
		{"bad port", "status_update_event", `{"eventType":"status_update_event","ports":["x"]}`, "$.ports[0]"},
		{"not an object", "status_update_event", `[1]`, "$"},
		{"not JSON", "x", `{"eventType":`, "$.eventType"},
		{"known type, odd envelope", "status_update_event", `{"eventType":"status_update_event","timestamp":5}`, "$.timestamp"},
		{"no type at all", "", `{"a":1}`, "$.eventType"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEvent(tc.event, []byte(tc.data))
			var de *DecodeError
			if !errors.As(err, &de) || de.Path != tc.path {
				t.Errorf("err = %v, want path %s", err, tc.path)
			}
		})
	}
}
