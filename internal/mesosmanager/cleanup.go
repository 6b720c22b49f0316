package mesosmanager

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// Limits of the Mesos master client.
const (
	mesosTimeout       = 15 * time.Second
	maxMasterState     = 256 << 20
	maxRecordIOSize    = 64 << 20
	mesosMinBackoff    = time.Second
	mesosMaxBackoff    = 30 * time.Second
	maxCleanupInterval = 5 * time.Second
)

// --- the master's /master/state ---

// mesosMaster is the MesosSource of a Mesos master.
type mesosMaster struct {
	base string
	hc   *http.Client
}

// NewMesosMaster returns the MesosSource of the Mesos master at base
// ("http://master:5050"), which reads GET /master/state (/state on
// masters that answer 404 there). A non-leading master redirects to the
// leader, which the client follows. A nil hc uses a client with a 15 s
// timeout.
func NewMesosMaster(base string, hc *http.Client) MesosSource {
	if hc == nil {
		hc = &http.Client{Timeout: mesosTimeout}
	}
	return &mesosMaster{base: strings.TrimRight(base, "/"), hc: hc}
}

func (m *mesosMaster) State(ctx context.Context) (*MesosState, error) {
	var lastErr error
	for _, path := range []string{"/master/state", "/state"} {
		body, status, err := m.get(ctx, path)
		if err != nil {
			return nil, err
		}
		if status == http.StatusNotFound {
			lastErr = fmt.Errorf("GET %s%s: 404", m.base, path)
			continue
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("GET %s%s: status %d: %s", m.base, path, status, shortText(body))
		}
		st, err := ParseMasterState(body)
		if err != nil {
			return nil, fmt.Errorf("GET %s%s: %w", m.base, path, err)
		}
		return st, nil
	}
	return nil, lastErr
}

func (m *mesosMaster) get(ctx context.Context, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("mesos master: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("mesos master: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMasterState+1))
	if err != nil {
		return nil, 0, fmt.Errorf("mesos master: read %s: %w", path, err)
	}
	if len(body) > maxMasterState {
		return nil, 0, fmt.Errorf("mesos master: %s is larger than %d bytes", path, maxMasterState)
	}
	return body, resp.StatusCode, nil
}

func shortText(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// containerIDJSON is a Mesos ContainerID, nested for child containers.
type containerIDJSON struct {
	Value  string           `json:"value"`
	Parent *containerIDJSON `json:"parent,omitempty"`
}

// root returns the top-level container's id: the one the CNI plugin was
// called for (a pod task runs in a child container of the executor's).
func (c *containerIDJSON) root() string {
	for c != nil && c.Parent != nil {
		c = c.Parent
	}
	if c == nil {
		return ""
	}
	return c.Value
}

type containerStatusJSON struct {
	ContainerID *containerIDJSON `json:"container_id"`
}

// statusJSON is the part of a TaskStatus, v0 or v1, that names its
// container.
type statusJSON struct {
	ContainerStatus *containerStatusJSON `json:"container_status"`
}

// v1StatusJSON is a v1 TaskStatus, which names its task.
type v1StatusJSON struct {
	TaskID struct {
		Value string `json:"value"`
	} `json:"task_id"`
	statusJSON
}

// container returns the top-level container id the status names, "" if
// none.
func (s statusJSON) container() string {
	if s.ContainerStatus == nil {
		return ""
	}
	return s.ContainerStatus.ContainerID.root()
}

// latestContainer returns the top-level container id of the latest of a
// task's statuses that names one, "" if none does.
func latestContainer(statuses []statusJSON) string {
	for i := len(statuses) - 1; i >= 0; i-- {
		if id := statuses[i].container(); id != "" {
			return id
		}
	}
	return ""
}

// ParseMasterState decodes a master /master/state document (v0 JSON):
// the agents of "slaves" and the container ids of the tasks' latest
// statuses.
func ParseMasterState(data []byte) (*MesosState, error) {
	var doc struct {
		Slaves []struct {
			ID       string `json:"id"`
			Hostname string `json:"hostname"`
			PID      string `json:"pid"`
			Active   *bool  `json:"active"`
		} `json:"slaves"`
		Frameworks []struct {
			Tasks []struct {
				ID       string       `json:"id"`
				Statuses []statusJSON `json:"statuses"`
			} `json:"tasks"`
		} `json:"frameworks"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode master state: %w", err)
	}
	if doc.Slaves == nil {
		return nil, errors.New("decode master state: no \"slaves\" list (not a master /state document?)")
	}
	st := &MesosState{Containers: map[string]string{}}
	for _, s := range doc.Slaves {
		a := MesosAgent{ID: s.ID, Hostname: s.Hostname, IP: pidIP(s.PID), Active: s.Active == nil || *s.Active}
		st.Agents = append(st.Agents, a)
	}
	for _, f := range doc.Frameworks {
		for _, t := range f.Tasks {
			if id := latestContainer(t.Statuses); id != "" {
				st.Containers[t.ID] = id
			}
		}
	}
	return st, nil
}

// pidIP returns the address of a libprocess pid "slave(1)@10.0.0.1:5051"
// ("" if it has none).
func pidIP(pid string) string {
	_, hostport, ok := strings.Cut(pid, "@")
	if !ok {
		return ""
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	return host
}

// --- the v1 operator API SUBSCRIBE stream ---

// MesosEvent is an event of the master's operator API stream that the
// manager uses.
type MesosEvent struct {
	// Type is SUBSCRIBED, AGENT_ADDED, AGENT_REMOVED, TASK_ADDED,
	// TASK_UPDATED, HEARTBEAT, or another type (ignored).
	Type string
	// Agents is the full agent list (SUBSCRIBED) or the added agent.
	Agents []MesosAgent
	// AgentID is the removed agent (AGENT_REMOVED).
	AgentID string
	// Containers maps task ids to container ids (SUBSCRIBED, TASK_*).
	Containers map[string]string
}

type agentJSON struct {
	AgentInfo struct {
		Hostname string `json:"hostname"`
		ID       struct {
			Value string `json:"value"`
		} `json:"id"`
	} `json:"agent_info"`
	Active *bool  `json:"active"`
	PID    string `json:"pid"`
}

func (a agentJSON) agent() MesosAgent {
	return MesosAgent{ID: a.AgentInfo.ID.Value, Hostname: a.AgentInfo.Hostname, IP: pidIP(a.PID), Active: a.Active == nil || *a.Active}
}

type v1TaskJSON struct {
	TaskID struct {
		Value string `json:"value"`
	} `json:"task_id"`
	Statuses []statusJSON `json:"statuses"`
}

func (t v1TaskJSON) addContainer(m map[string]string) {
	if id := latestContainer(t.Statuses); id != "" {
		m[t.TaskID.Value] = id
	}
}

// DecodeOperatorEvent decodes one event of the operator API stream (one
// RecordIO record, or one line of a recording).
func DecodeOperatorEvent(data []byte) (MesosEvent, error) {
	var doc struct {
		Type       string `json:"type"`
		Subscribed *struct {
			GetState *struct {
				GetAgents *struct {
					Agents []agentJSON `json:"agents"`
				} `json:"get_agents"`
				GetTasks *struct {
					Tasks []v1TaskJSON `json:"tasks"`
				} `json:"get_tasks"`
			} `json:"get_state"`
		} `json:"subscribed"`
		AgentAdded *struct {
			Agent agentJSON `json:"agent"`
		} `json:"agent_added"`
		AgentRemoved *struct {
			AgentID struct {
				Value string `json:"value"`
			} `json:"agent_id"`
		} `json:"agent_removed"`
		TaskAdded *struct {
			Task v1TaskJSON `json:"task"`
		} `json:"task_added"`
		TaskUpdated *struct {
			Status v1StatusJSON `json:"status"`
		} `json:"task_updated"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return MesosEvent{}, fmt.Errorf("decode operator event: %w", err)
	}
	ev := MesosEvent{Type: doc.Type, Containers: map[string]string{}}
	switch doc.Type {
	case "SUBSCRIBED":
		if doc.Subscribed == nil || doc.Subscribed.GetState == nil || doc.Subscribed.GetState.GetAgents == nil {
			return ev, errors.New("decode operator event: SUBSCRIBED without get_state.get_agents")
		}
		ev.Agents = []MesosAgent{}
		for _, a := range doc.Subscribed.GetState.GetAgents.Agents {
			ev.Agents = append(ev.Agents, a.agent())
		}
		if gt := doc.Subscribed.GetState.GetTasks; gt != nil {
			for _, t := range gt.Tasks {
				t.addContainer(ev.Containers)
			}
		}
	case "AGENT_ADDED":
		if doc.AgentAdded == nil {
			return ev, errors.New("decode operator event: AGENT_ADDED without agent_added")
		}
		ev.Agents = []MesosAgent{doc.AgentAdded.Agent.agent()}
	case "AGENT_REMOVED":
		if doc.AgentRemoved == nil || doc.AgentRemoved.AgentID.Value == "" {
			return ev, errors.New("decode operator event: AGENT_REMOVED without agent_removed.agent_id")
		}
		ev.AgentID = doc.AgentRemoved.AgentID.Value
	case "TASK_ADDED":
		if doc.TaskAdded != nil {
			doc.TaskAdded.Task.addContainer(ev.Containers)
		}
	case "TASK_UPDATED":
		if doc.TaskUpdated != nil {
			s := doc.TaskUpdated.Status
			if id := s.container(); id != "" {
				ev.Containers[s.TaskID.Value] = id
			}
		}
	}
	return ev, nil
}

// RecordIOReader reads the RecordIO framing of the operator API:
// "<length>\n<length bytes>", repeated.
type RecordIOReader struct {
	r *bufio.Reader
}

// NewRecordIOReader returns a reader of records from r.
func NewRecordIOReader(r io.Reader) *RecordIOReader {
	return &RecordIOReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record; io.EOF at a clean end.
func (rr *RecordIOReader) Next() ([]byte, error) {
	line, err := rr.r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && strings.TrimSpace(line) == "" {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("recordio: read length: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("recordio: bad length %q", strings.TrimSpace(line))
	}
	if n > maxRecordIOSize {
		return nil, fmt.Errorf("recordio: record of %d bytes exceeds %d", n, maxRecordIOSize)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(rr.r, buf); err != nil {
		return nil, fmt.Errorf("recordio: read record: %w", err)
	}
	return buf, nil
}

// subscribeOnce opens SUBSCRIBE on the master and hands every event to fn
// until the stream ends.
func subscribeOnce(ctx context.Context, hc *http.Client, base string, fn func(MesosEvent)) error {
	body := []byte(`{"type":"SUBSCRIBE"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/api/v1", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("mesos subscribe: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("mesos subscribe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("mesos subscribe: status %d: %s", resp.StatusCode, shortText(b))
	}
	rr := NewRecordIOReader(resp.Body)
	for {
		rec, err := rr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("mesos subscribe: stream closed by the master")
			}
			return fmt.Errorf("mesos subscribe: %w", err)
		}
		ev, err := DecodeOperatorEvent(rec)
		if err != nil {
			return fmt.Errorf("mesos subscribe: %w", err)
		}
		fn(ev)
	}
}

// --- the tracker and the cleanup ---

// AgentView is a Mesos agent as the cleanup follows it.
type AgentView struct {
	MesosAgent
	Present     bool      `json:"present"`
	GoneSince   time.Time `json:"gone_since,omitzero"`
	NodeDeleted string    `json:"node_deleted,omitempty"`
	Done        bool      `json:"done"`
}

// Cleanup follows the Mesos master's agents and deletes the Weft node of
// an agent gone for longer than the grace period, once per disappearance
// (the controller then releases everything the node held). A node is
// never deleted while another registered agent has its name or address (an
// agent that re-registered under a new id). Every replica observes; only
// the leader deletes, so the history survives a change of leader. It also
// serves the Mesos container id of a task for port matching.
type Cleanup struct {
	src       MesosSource
	subscribe func(ctx context.Context, fn func(MesosEvent)) error
	ctrl      Controller
	// releasePort deletes a port left on a deleted node (with its
	// floating IPs); nil deletes the port only.
	releasePort func(ctx context.Context, p api.Port) error
	grace       time.Duration
	poll        time.Duration
	log         *slog.Logger
	clock       Clock
	m           *metrics

	mu         sync.Mutex
	agents     map[string]*AgentView
	containers map[string]string
}

// newCleanup returns the cleanup module over src (polled every poll) or,
// when subscribe is set, over the operator API stream it opens.
func newCleanup(src MesosSource, subscribe func(ctx context.Context, fn func(MesosEvent)) error, ctrl Controller, grace, poll time.Duration, log *slog.Logger, clock Clock, m *metrics) *Cleanup {
	return &Cleanup{src: src, subscribe: subscribe, ctrl: ctrl, grace: grace, poll: poll, log: log, clock: clock, m: m,
		agents: map[string]*AgentView{}, containers: map[string]string{}}
}

// ContainerOf returns the Mesos container id of a task, "" if unknown.
func (c *Cleanup) ContainerOf(taskID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.containers[taskID]
}

// Agents returns the followed agents, sorted by id.
func (c *Cleanup) Agents() []AgentView {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]AgentView, 0, len(c.agents))
	for _, id := range sortedKeys(c.agents) {
		out = append(out, *c.agents[id])
	}
	return out
}

// Observe runs the observation (poll or stream) until ctx ends.
func (c *Cleanup) Observe(ctx context.Context) {
	if c.subscribe != nil {
		backoff := mesosMinBackoff
		for ctx.Err() == nil {
			start := c.clock.Now()
			err := c.subscribe(ctx, func(ev MesosEvent) { c.Apply(ev) })
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("mesos operator stream lost; reconnecting", "err", err, "delay", backoff)
			if c.clock.Now().Sub(start) > mesosMaxBackoff {
				backoff = mesosMinBackoff
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, mesosMaxBackoff)
		}
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.Poll(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("read mesos master state", "err", err)
		}
		t.Reset(c.poll)
	}
}

// RunDeletes deletes the nodes of agents gone beyond the grace period
// until ctx ends; only the leader runs it.
func (c *Cleanup) RunDeletes(ctx context.Context) {
	every := min(max(c.grace/10, 100*time.Millisecond), maxCleanupInterval)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Check(ctx)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Poll reads the master's state once and records it.
func (c *Cleanup) Poll(ctx context.Context) error {
	st, err := c.src.State(ctx)
	if err != nil {
		return err
	}
	c.Apply(MesosEvent{Type: "SUBSCRIBED", Agents: st.Agents, Containers: st.Containers})
	return nil
}

// Apply records an observation: a full agent list (SUBSCRIBED, or a
// poll), an agent added or removed, task containers.
func (c *Cleanup) Apply(ev MesosEvent) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Type {
	case "SUBSCRIBED":
		present := map[string]bool{}
		for _, a := range ev.Agents {
			present[a.ID] = true
			c.seenLocked(a)
		}
		for id, v := range c.agents {
			if !present[id] && v.Present {
				c.goneLocked(v, now)
			}
		}
		c.containers = map[string]string{}
	case "AGENT_ADDED":
		for _, a := range ev.Agents {
			c.seenLocked(a)
		}
	case "AGENT_REMOVED":
		if v, ok := c.agents[ev.AgentID]; ok && v.Present {
			c.goneLocked(v, now)
		}
	}
	for t, cid := range ev.Containers {
		c.containers[t] = cid
	}
}

func (c *Cleanup) seenLocked(a MesosAgent) {
	v, ok := c.agents[a.ID]
	if !ok {
		v = &AgentView{}
		c.agents[a.ID] = v
	}
	if !v.Present && !v.GoneSince.IsZero() {
		c.log.Info("mesos agent is back", "agent", a.ID, "hostname", a.Hostname)
	}
	v.MesosAgent = a
	v.Present, v.GoneSince, v.Done, v.NodeDeleted = true, time.Time{}, false, ""
}

func (c *Cleanup) goneLocked(v *AgentView, now time.Time) {
	v.Present, v.GoneSince = false, now
	c.log.Info("mesos agent removed; its node is deleted after the grace period", "agent", v.ID, "hostname", v.Hostname, "grace", c.grace)
}

// Check deletes the Weft node of every agent gone for longer than the
// grace period, once.
func (c *Cleanup) Check(ctx context.Context) {
	now := c.clock.Now()
	c.mu.Lock()
	var due []AgentView
	presentNames := map[string]bool{}
	for _, v := range c.agents {
		if v.Present {
			for _, s := range []string{v.Hostname, v.IP} {
				if s != "" {
					presentNames[s] = true
				}
			}
			continue
		}
		if !v.Done && now.Sub(v.GoneSince) >= c.grace {
			due = append(due, *v)
		}
	}
	c.mu.Unlock()
	if len(due) == 0 {
		return
	}
	nodes, err := c.ctrl.ListNodes(ctx)
	if err != nil {
		c.log.Warn("list nodes for the cleanup; will retry", "err", err)
		return
	}
	for _, a := range due {
		var deleted []string
		failed := false
		for _, n := range nodes {
			if !agentIsNode(a.MesosAgent, n) {
				continue
			}
			if presentNames[n.Name] || presentNames[n.UnderlayIP] {
				c.log.Info("not deleting the node of a removed agent: another registered agent has its name or address", "agent", a.ID, "node", n.Name)
				continue
			}
			if err := c.ctrl.DeleteNode(ctx, n.UUID); err != nil {
				c.log.Warn("delete the node of a removed mesos agent; will retry", "agent", a.ID, "node", n.Name, "err", err)
				failed = true
				continue
			}
			c.m.nodesDeleted.Inc()
			c.log.Info("deleted the node of a removed mesos agent; the controller releases what it held", "agent", a.ID, "hostname", a.Hostname, "node", n.Name, "gone_since", a.GoneSince)
			deleted = append(deleted, n.Name)
		}
		// The node's addresses went with it; its ports would stay behind
		// as dead records that refer to a node that no longer exists.
		for _, name := range deleted {
			if err := c.deletePortsOf(ctx, name); err != nil {
				c.log.Warn("delete the ports of a deleted node; will retry", "node", name, "err", err)
				failed = true
			}
		}
		if failed {
			continue
		}
		if len(deleted) == 0 {
			c.log.Info("removed mesos agent has no weft node", "agent", a.ID, "hostname", a.Hostname)
		}
		c.mu.Lock()
		if v, ok := c.agents[a.ID]; ok && !v.Present {
			v.Done, v.NodeDeleted = true, strings.Join(deleted, ",")
		}
		c.mu.Unlock()
	}
}

// deletePortsOf deletes every port on a node.
func (c *Cleanup) deletePortsOf(ctx context.Context, node string) error {
	ports, err := c.ctrl.ListPorts(ctx, node)
	if err != nil {
		return fmt.Errorf("list ports of node %s: %w", node, err)
	}
	var errs []error
	for _, p := range ports {
		if p.Node != node {
			continue
		}
		if c.releasePort != nil {
			err = c.releasePort(ctx, p)
		} else {
			err = c.ctrl.DeletePort(ctx, p.UUID)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// agentIsNode tells whether a Weft node is the agent's: same name as the
// agent's hostname or address, or the agent's address as underlay.
func agentIsNode(a MesosAgent, n api.Node) bool {
	for _, s := range []string{a.Hostname, a.IP} {
		if s != "" && (n.Name == s || n.UnderlayIP == s) {
			return true
		}
	}
	return false
}
