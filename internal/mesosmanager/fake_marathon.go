package mesosmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/weft-sdn/weft/internal/marathon"
)

// FakeMarathon is an in-memory MarathonSource: apps with their tasks and
// pod statuses that tests change, and an event stream tests feed with
// Send. Dump prints its state as text.
type FakeMarathon struct {
	// Fail, when set, is asked before every call (snapshot, app,
	// pod_status, events); a non-nil error fails it.
	Fail func(op string) error

	mu     sync.Mutex
	apps   map[string]marathon.App
	pods   map[string]marathon.PodStatus
	podsOK bool
	stream chan marathon.Event
	calls  map[string]int
}

// streamBuffer is the capacity of the fake's event channel.
const streamBuffer = 4096

// NewFakeMarathon returns a fake with no apps and pod support.
func NewFakeMarathon() *FakeMarathon {
	return &FakeMarathon{apps: map[string]marathon.App{}, pods: map[string]marathon.PodStatus{}, podsOK: true, calls: map[string]int{}}
}

func (f *FakeMarathon) call(op string) error {
	f.mu.Lock()
	f.calls[op]++
	fail := f.Fail
	f.mu.Unlock()
	if fail != nil {
		return fail(op)
	}
	return nil
}

// Calls returns how often op was called.
func (f *FakeMarathon) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// deepCopy copies v through JSON, so the fake never shares memory with
// its callers.
func deepCopy[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// PutApp adds or replaces an app (with its tasks).
func (f *FakeMarathon) PutApp(app marathon.App) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps[app.ID] = deepCopy(app)
}

// RemoveApp deletes an app.
func (f *FakeMarathon) RemoveApp(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.apps, id)
}

// PutTask adds or replaces a task of an app (by task id).
func (f *FakeMarathon) PutTask(appID string, t marathon.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	app, ok := f.apps[appID]
	if !ok {
		return fmt.Errorf("fake marathon: no app %s", appID)
	}
	t.AppID = appID
	i := slices.IndexFunc(app.Tasks, func(x marathon.Task) bool { return x.ID == t.ID })
	if i >= 0 {
		app.Tasks[i] = deepCopy(t)
	} else {
		app.Tasks = append(app.Tasks, deepCopy(t))
	}
	f.apps[appID] = app
	return nil
}

// RemoveTask deletes a task of an app.
func (f *FakeMarathon) RemoveTask(appID, taskID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	app, ok := f.apps[appID]
	if !ok {
		return
	}
	app.Tasks = slices.DeleteFunc(app.Tasks, func(x marathon.Task) bool { return x.ID == taskID })
	f.apps[appID] = app
}

// PutPod adds or replaces a pod status (with its instances).
func (f *FakeMarathon) PutPod(ps marathon.PodStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[ps.ID] = deepCopy(ps)
}

// RemovePod deletes a pod.
func (f *FakeMarathon) RemovePod(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pods, id)
}

// Snapshot implements MarathonSource.
func (f *FakeMarathon) Snapshot(ctx context.Context) (*marathon.Snapshot, error) {
	if err := f.call("snapshot"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	apps := make([]marathon.App, 0, len(f.apps))
	for _, id := range sortedKeys(f.apps) {
		apps = append(apps, deepCopy(f.apps[id]))
	}
	var pods []marathon.PodStatus
	if f.podsOK {
		pods = []marathon.PodStatus{}
		for _, id := range sortedKeys(f.pods) {
			pods = append(pods, deepCopy(f.pods[id]))
		}
	}
	f.mu.Unlock()
	return marathon.NewSnapshot(apps, pods), nil
}

func notFound(what, id string) error {
	return &marathon.APIError{Method: http.MethodGet, URL: "fake", StatusCode: http.StatusNotFound, Message: fmt.Sprintf("%s '%s' does not exist", what, id)}
}

// App implements MarathonSource.
func (f *FakeMarathon) App(ctx context.Context, id string) (*marathon.App, error) {
	if err := f.call("app"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	app, ok := f.apps[id]
	if !ok {
		return nil, notFound("App", id)
	}
	c := deepCopy(app)
	return &c, nil
}

// PodStatus implements MarathonSource.
func (f *FakeMarathon) PodStatus(ctx context.Context, id string) (*marathon.PodStatus, error) {
	if err := f.call("pod_status"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ps, ok := f.pods[id]
	if !ok {
		return nil, notFound("Pod", id)
	}
	c := deepCopy(ps)
	return &c, nil
}

// Events implements MarathonSource. One subscription at a time: a new one
// replaces the old. The channel closes when ctx ends.
func (f *FakeMarathon) Events(ctx context.Context) (<-chan marathon.Event, error) {
	if err := f.call("events"); err != nil {
		return nil, err
	}
	ch := make(chan marathon.Event, streamBuffer)
	f.mu.Lock()
	f.stream = ch
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.stream == ch {
			f.stream = nil
		}
		close(ch)
	}()
	return ch, nil
}

// ErrNoSubscriber is returned by Send when nobody follows the stream.
var ErrNoSubscriber = errors.New("fake marathon: no event subscriber")

// Send puts events into the current subscription, in order.
func (f *FakeMarathon) Send(evs ...marathon.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stream == nil {
		return ErrNoSubscriber
	}
	for _, ev := range evs {
		select {
		case f.stream <- ev:
		default:
			return errors.New("fake marathon: event buffer full")
		}
	}
	return nil
}

// Subscribed tells whether a subscription is open.
func (f *FakeMarathon) Subscribed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stream != nil
}

// Dump prints the apps, tasks, pods and instances, one a line.
func (f *FakeMarathon) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, id := range sortedKeys(f.apps) {
		app := f.apps[id]
		var nets []string
		for _, a := range marathon.AppNetworks(&app) {
			nets = append(nets, string(a.Mode)+":"+a.Name)
		}
		fmt.Fprintf(&b, "app %s networks=[%s]\n", id, strings.Join(nets, ","))
		tasks := slices.Clone(app.Tasks)
		sort.Slice(tasks, func(i, j int) bool { return tasks[i].ID < tasks[j].ID })
		for _, t := range tasks {
			var addrs []string
			for _, a := range t.IPAddresses {
				addrs = append(addrs, a.IPAddress)
			}
			fmt.Fprintf(&b, "  task %s state=%s host=%s ips=%s\n", t.ID, t.State, t.Host, strings.Join(addrs, ","))
		}
	}
	for _, id := range sortedKeys(f.pods) {
		ps := f.pods[id]
		fmt.Fprintf(&b, "pod %s status=%s\n", id, ps.Status)
		for _, in := range ps.Instances {
			var addrs []string
			for _, n := range in.Networks {
				addrs = append(addrs, n.Addresses...)
			}
			fmt.Fprintf(&b, "  instance %s status=%s host=%s ips=%s\n", in.ID, in.Status, in.AgentHostname, strings.Join(addrs, ","))
		}
	}
	return b.String()
}

// FakeMesos is an in-memory MesosSource: tests set the agents and the
// task containers. Dump prints them.
type FakeMesos struct {
	// Fail, when set, fails State with its error.
	Fail func() error

	mu         sync.Mutex
	agents     []MesosAgent
	containers map[string]string
}

// NewFakeMesos returns a fake master with the given agents.
func NewFakeMesos(agents ...MesosAgent) *FakeMesos {
	return &FakeMesos{agents: slices.Clone(agents), containers: map[string]string{}}
}

// SetAgents replaces the registered agents.
func (f *FakeMesos) SetAgents(agents ...MesosAgent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agents = slices.Clone(agents)
}

// SetContainer records the container of a task.
func (f *FakeMesos) SetContainer(taskID, containerID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[taskID] = containerID
}

// State implements MesosSource.
func (f *FakeMesos) State(ctx context.Context) (*MesosState, error) {
	if f.Fail != nil {
		if err := f.Fail(); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(map[string]string, len(f.containers))
	for k, v := range f.containers {
		c[k] = v
	}
	return &MesosState{Agents: slices.Clone(f.agents), Containers: c}, nil
}

// Dump prints the agents and containers, one a line.
func (f *FakeMesos) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	agents := slices.Clone(f.agents)
	sort.Slice(agents, func(i, j int) bool { return agents[i].ID < agents[j].ID })
	for _, a := range agents {
		fmt.Fprintf(&b, "agent %s hostname=%s ip=%s active=%t\n", a.ID, a.Hostname, a.IP, a.Active)
	}
	for _, t := range sortedKeys(f.containers) {
		fmt.Fprintf(&b, "container %s task=%s\n", f.containers[t], t)
	}
	return b.String()
}
