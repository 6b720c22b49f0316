package emulator

import (
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// event is one event of the bus: its type and its JSON.
type event struct {
	typ  string
	data []byte
}

// emit publishes an event to every stream.
func (s *Server) emit(ev event) { s.bus.publish(ev) }

// newEvent encodes an event of type typ: v is a struct whose fields
// include eventType and timestamp, in Marathon's order.
func (s *Server) newEvent(typ string, v any) event {
	data, err := marshal(v)
	if err != nil {
		s.log.Error("encode event", "type", typ, "err", err)
		data = []byte(`{"eventType":"` + typ + `"}`)
	}
	return event{typ: typ, data: data}
}

func (s *Server) stamp() string { return formatTime(s.now()) }

func (s *Server) statusUpdateEvent(t *mesosTask, taskID string) event {
	inst := t.inst
	ips := t.ips
	if ips == nil {
		ips = []ipAddress{}
	}
	ports := t.portsOf(taskID)
	return s.newEvent("status_update_event", struct {
		SlaveID     string      `json:"slaveId"`
		TaskID      string      `json:"taskId"`
		TaskStatus  string      `json:"taskStatus"`
		Message     string      `json:"message"`
		AppID       string      `json:"appId"`
		Host        string      `json:"host"`
		IPAddresses []ipAddress `json:"ipAddresses"`
		Ports       []int       `json:"ports"`
		Version     string      `json:"version"`
		EventType   string      `json:"eventType"`
		Timestamp   string      `json:"timestamp"`
	}{t.agent.cfg.ID, taskID, t.stateName(), t.message, inst.spec.id, t.agent.cfg.Hostname, ips, ports,
		formatTime(inst.version), "status_update_event", s.stamp()})
}

// portsOf returns the host ports of one Marathon task of t: all of them
// for an app task, those of the container's endpoints for a pod task.
func (t *mesosTask) portsOf(taskID string) []int {
	if t.terminal() {
		return []int{}
	}
	inst := t.inst
	if inst.pod == nil {
		return append([]int{}, t.hostPorts...)
	}
	out := []int{}
	k := 0
	for _, c := range inst.pod.Containers {
		for _, e := range c.Endpoints {
			if e.HostPort == nil || k >= len(t.hostPorts) {
				continue
			}
			if podTaskID(inst.id, c.Name, inst.incarnation) == taskID {
				out = append(out, t.hostPorts[k])
			}
			k++
		}
	}
	return out
}

func (s *Server) instanceChangedEvent(inst *instance) event {
	var agentID, host *string
	if inst.agent != nil && inst.condition != condScheduled {
		agentID, host = &inst.agent.cfg.ID, &inst.agent.cfg.Hostname
	}
	return s.newEvent("instance_changed_event", struct {
		InstanceID     string  `json:"instanceId"`
		Condition      string  `json:"condition"`
		RunSpecID      string  `json:"runSpecId"`
		AgentID        *string `json:"agentId"`
		Host           *string `json:"host"`
		RunSpecVersion string  `json:"runSpecVersion"`
		Timestamp      string  `json:"timestamp"`
		EventType      string  `json:"eventType"`
	}{inst.id, inst.condition, inst.spec.id, agentID, host, formatTime(inst.version), s.stamp(), "instance_changed_event"})
}

func (s *Server) apiPostEvent(r *http.Request, app map[string]any) event {
	return s.newEvent("api_post_event", struct {
		ClientIP      string         `json:"clientIp"`
		URI           string         `json:"uri"`
		AppDefinition map[string]any `json:"appDefinition"`
		EventType     string         `json:"eventType"`
		Timestamp     string         `json:"timestamp"`
	}{remoteIP(r.RemoteAddr), r.URL.Path, app, "api_post_event", s.stamp()})
}

// podEvent is pod_created_event, pod_updated_event or pod_deleted_event.
func (s *Server) podEvent(typ string, r *http.Request) event {
	return s.newEvent(typ, struct {
		ClientIP  string `json:"clientIp"`
		URI       string `json:"uri"`
		EventType string `json:"eventType"`
		Timestamp string `json:"timestamp"`
	}{remoteIP(r.RemoteAddr), r.URL.Path, typ, s.stamp()})
}

func (s *Server) groupChangeSuccessEvent(version time.Time) event {
	return s.newEvent("group_change_success", struct {
		GroupID   string `json:"groupId"`
		Version   string `json:"version"`
		EventType string `json:"eventType"`
		Timestamp string `json:"timestamp"`
	}{"/", formatTime(version), "group_change_success", s.stamp()})
}

func (s *Server) appTerminatedEvent(id string) event {
	return s.newEvent("app_terminated_event", struct {
		AppID     string `json:"appId"`
		EventType string `json:"eventType"`
		Timestamp string `json:"timestamp"`
	}{id, "app_terminated_event", s.stamp()})
}

// deploymentStepEvent is deployment_info or deployment_step_success for
// the current step.
func (s *Server) deploymentStepEvent(typ string, d *deployment) event {
	return s.newEvent(typ, struct {
		Plan        map[string]any `json:"plan"`
		CurrentStep map[string]any `json:"currentStep"`
		EventType   string         `json:"eventType"`
		Timestamp   string         `json:"timestamp"`
	}{d.plan(), map[string]any{"actions": []any{d.actionObject(d.current)}}, typ, s.stamp()})
}

func (s *Server) deploymentSuccessEvent(d *deployment) event {
	return s.newEvent("deployment_success", struct {
		ID        string         `json:"id"`
		Plan      map[string]any `json:"plan"`
		EventType string         `json:"eventType"`
		Timestamp string         `json:"timestamp"`
	}{d.id, d.plan(), "deployment_success", s.stamp()})
}

func (s *Server) deploymentFailedEvent(d *deployment) event {
	return s.newEvent("deployment_failed", struct {
		ID        string         `json:"id"`
		Plan      map[string]any `json:"plan"`
		Reason    string         `json:"reason"`
		EventType string         `json:"eventType"`
		Timestamp string         `json:"timestamp"`
	}{d.id, d.plan(), "The deployment has been canceled by a forced change", "deployment_failed", s.stamp()})
}

func (s *Server) streamEvent(typ, remote string) event {
	return s.newEvent(typ, struct {
		RemoteAddress string `json:"remoteAddress"`
		EventType     string `json:"eventType"`
		Timestamp     string `json:"timestamp"`
	}{remote, typ, s.stamp()})
}

// subscriber is one event stream connection.
type subscriber struct {
	ch     chan event
	done   chan struct{}
	once   sync.Once
	remote string

	mu     sync.Mutex
	active bool
	kick   func() // unblocks a write in progress
}

// close ends the stream: the handler returns and the connection closes.
func (sub *subscriber) close() {
	sub.once.Do(func() {
		close(sub.done)
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if sub.active && sub.kick != nil {
			sub.kick()
		}
	})
}

// bus fans events out to the event streams. Each stream has a bounded
// backlog; a stream whose backlog is full is closed (Marathon ≥ 1.8) or
// misses the event (≤ 1.7, dropEvents).
type bus struct {
	max        int
	dropEvents bool
	log        *slog.Logger

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

func newBus(max int, dropEvents bool, log *slog.Logger) *bus {
	return &bus{max: max, dropEvents: dropEvents, log: log, subs: map[*subscriber]struct{}{}}
}

func (b *bus) subscribe(remote string, kick func()) *subscriber {
	sub := &subscriber{ch: make(chan event, b.max), done: make(chan struct{}), remote: remote, active: true, kick: kick}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[sub] = struct{}{}
	return sub
}

// unsubscribe removes sub.
func (b *bus) unsubscribe(sub *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, sub)
}

func (b *bus) publish(ev event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		select {
		case sub.ch <- ev:
		default:
			if b.dropEvents {
				continue
			}
			b.log.Warn("closing connection for slow event consumer", "remote", sub.remote, "backlog", b.max)
			delete(b.subs, sub)
			sub.close()
		}
	}
}

// closeAll closes every stream.
func (b *bus) closeAll() {
	b.mu.Lock()
	subs := make([]*subscriber, 0, len(b.subs))
	for sub := range b.subs {
		subs = append(subs, sub)
	}
	b.mu.Unlock()
	for _, sub := range subs {
		sub.close()
	}
}

// acceptsEventStream reports whether some Accept header value is
// exactly text/event-stream (Jetty's EventSourceServlet compares each
// value with string equality).
func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if v == "text/event-stream" {
			return true
		}
	}
	return false
}

// handleEvents serves GET /v2/events (§4): 405 without the exact Accept
// header; else 200 with Connection: close and no chunking, the client's
// own event_stream_attached first (broadcast after subscribing), frames
// "event: T\r\ndata: J\r\n\r\n" filtered by event_type at write time,
// "\r" + "\n" heartbeats, and event_stream_detached on close.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !acceptsEventStream(r) {
		htmlError(w, r, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream;charset=UTF-8")
	h.Set("Connection", "close")
	// Identity transfer encoding: no chunking, the body ends when the
	// connection closes (as with Jetty's EventSourceServlet).
	h.Set("Transfer-Encoding", "identity")
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	if !s.ready.Load() {
		return
	}
	var filter map[string]bool
	if types := r.URL.Query()["event_type"]; len(types) > 0 {
		filter = map[string]bool{}
		for _, t := range types {
			filter[t] = true
		}
	}
	remote := remoteIP(r.RemoteAddr)
	sub := s.bus.subscribe(remote, func() { _ = rc.SetWriteDeadline(time.Now()) })
	s.emit(s.streamEvent("event_stream_attached", remote))
	defer func() {
		sub.mu.Lock()
		sub.active = false
		sub.mu.Unlock()
		s.bus.unsubscribe(sub)
		s.emit(s.streamEvent("event_stream_detached", remote))
	}()
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-r.Context().Done():
			return
		case <-sub.done:
			return
		case ev := <-sub.ch:
			if filter != nil && !filter[ev.typ] {
				continue
			}
			frame := make([]byte, 0, len(ev.data)+len(ev.typ)+20)
			frame = append(frame, "event: "...)
			frame = append(frame, ev.typ...)
			frame = append(frame, "\r\ndata: "...)
			frame = append(frame, ev.data...)
			frame = append(frame, "\r\n\r\n"...)
			if _, err := w.Write(frame); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		case <-heartbeat.C:
			for _, b := range []string{"\r", "\n"} {
				if _, err := w.Write([]byte(b)); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			}
		}
	}
}
