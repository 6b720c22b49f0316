package mesosmanager

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

// Timing of the leader loop.
const (
	// startupResyncWait is how long the loop waits for the event stream's
	// first Resync marker before it resyncs anyway (Marathon's stream may
	// be down while its REST API answers).
	startupResyncWait = 10 * time.Second
	// maxSweepInterval bounds the period of the sweep (grace periods and
	// retries).
	maxSweepInterval = time.Second
	// maxResyncBackoff bounds the delay before a failed resync is tried
	// again.
	maxResyncBackoff = time.Minute
)

// Run follows the event stream until ctx ends: it applies every event,
// resyncs on every Resync marker and periodically, and sweeps grace
// periods and retries. Only the leader runs it.
func (r *Reconciler) Run(ctx context.Context) error {
	events, err := r.src.Events(ctx)
	if err != nil {
		return fmt.Errorf("follow marathon events: %w", err)
	}
	sweepEvery := min(time.Duration(r.cfg.RetryInterval), maxSweepInterval)
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	resync := time.NewTimer(min(startupResyncWait, time.Duration(r.cfg.ResyncInterval)))
	defer resync.Stop()
	reason := "startup"
	failures := 0
	next := func(err error) {
		d := time.Duration(r.cfg.ResyncInterval)
		if err != nil {
			failures++
			d = min(time.Duration(r.cfg.RetryInterval)<<min(failures, 10), maxResyncBackoff, d)
		} else {
			failures = 0
		}
		resync.Reset(d)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("marathon event stream ended")
			}
			if rs, isResync := ev.(*marathon.Resync); isResync {
				next(r.handleResync(ctx, rs))
				reason = "periodic"
				continue
			}
			r.HandleEvent(ctx, ev)
		case <-sweep.C:
			r.Sweep(ctx)
		case <-resync.C:
			next(r.Resync(ctx, reason))
			reason = "periodic"
		}
	}
}

func (r *Reconciler) handleResync(ctx context.Context, rs *marathon.Resync) error {
	r.mu.Lock()
	r.sync.StreamConnected = true
	r.mu.Unlock()
	reason := rs.Reason
	if reason == "" {
		reason = "connected"
	}
	return r.Resync(ctx, reason)
}

// HandleEvent applies one item of the event stream: a Marathon event or a
// marker. A failure is logged and left for a retry; it never stops the
// handling of other events (a panic in the handling of one event is
// recovered and logged, too).
func (r *Reconciler) HandleEvent(ctx context.Context, ev marathon.Event) {
	defer r.recoverBug("event "+ev.EventType(), nil)
	switch e := ev.(type) {
	case *marathon.Resync:
		if err := r.handleResync(ctx, e); err != nil {
			r.log.Warn("resync failed", "err", err)
		}
		return
	case *marathon.Disconnected:
		r.mu.Lock()
		r.sync.StreamConnected = false
		r.sync.Reconnects++
		if e.Err != nil {
			r.sync.LastDisconnect = e.Err.Error()
		}
		r.mu.Unlock()
		r.m.reconnects.Inc()
		return
	}
	r.noteEvent(ev)
	switch e := ev.(type) {
	case *marathon.StatusUpdateEvent:
		r.onStatusUpdate(ctx, e)
	case *marathon.InstanceChangedEvent:
		r.onInstanceChanged(ctx, e)
	case *marathon.UnknownInstanceTerminatedEvent:
		r.onInstanceGone(ctx, e.InstanceID, e.RunSpecID, "", "terminal: unknown instance terminated", e.Time())
	case *marathon.AppTerminatedEvent:
		r.onAppTerminated(ctx, e.AppID)
	case *marathon.APIPostEvent:
		if e.AppDefinition != nil && e.AppDefinition.ID != "" {
			r.putSpec(r.appSpec(e.AppDefinition))
		}
	case *marathon.PodEvent:
		r.onPodEvent(ctx, e)
	}
}

// recoverBug turns a panic (a bug) in the handling of one event, resync or
// sweep into an error log, so that one bad object never stops the
// manager (the original died on one). errp, when set, receives an error.
func (r *Reconciler) recoverBug(what string, errp *error) {
	p := recover()
	if p == nil {
		return
	}
	r.log.Error("bug: handling panicked; skipped, the manager goes on", "what", what, "panic", p, "stack", string(debug.Stack()))
	if errp != nil {
		*errp = fmt.Errorf("%s: internal error: %v", what, p)
	}
}

// timed is what every Marathon event offers through its EventMeta.
type timed interface{ Time() time.Time }

func (r *Reconciler) noteEvent(ev marathon.Event) {
	now := r.clock.Now()
	le := LastEvent{Type: ev.EventType(), Received: now}
	if t, ok := ev.(timed); ok {
		if ts := t.Time(); !ts.IsZero() {
			lag := now.Sub(ts)
			le.Timestamp = ts.UTC().Format(time.RFC3339Nano)
			le.LagMillis = lag.Milliseconds()
			if lag >= 0 {
				r.m.lag.Observe(lag.Seconds())
			}
			r.m.lastLag.Set(lag.Seconds())
		}
	}
	r.m.events.WithLabelValues(ev.EventType()).Inc()
	r.mu.Lock()
	r.last = le
	r.mu.Unlock()
}

// specFor returns the run spec of an app or pod id, reading it from
// Marathon when it is not cached. nil, nil: Marathon does not know it.
func (r *Reconciler) specFor(ctx context.Context, id string) (*runSpec, error) {
	if id == "" {
		return nil, nil
	}
	if s := r.getSpec(id); s != nil {
		return s, nil
	}
	app, err := r.src.App(ctx, id)
	if err == nil {
		s := r.appSpec(app)
		r.putSpec(s)
		return s, nil
	}
	if !marathon.IsNotFound(err) {
		return nil, fmt.Errorf("read app %s: %w", id, err)
	}
	ps, err := r.src.PodStatus(ctx, id)
	if err == nil {
		s := r.podSpec(ps)
		r.putSpec(s)
		return s, nil
	}
	if marathon.IsNotFound(err) {
		return nil, nil
	}
	return nil, fmt.Errorf("read pod %s: %w", id, err)
}

func isManagedSpec(s *runSpec) bool { return s != nil && len(s.Managed) > 0 }

func (r *Reconciler) onStatusUpdate(ctx context.Context, e *marathon.StatusUpdateEvent) {
	spec, specErr := r.specFor(ctx, e.AppID)
	if specErr != nil {
		r.log.Warn("cannot read the run spec of a task; will retry", "task", e.TaskID, "app", e.AppID, "err", specErr)
	}
	kind := marathon.KindAppTask
	if spec != nil {
		kind = spec.Kind
	}
	key := e.TaskID
	if kind == marathon.KindPodInstance {
		if id, ok := marathon.InstanceIDFromTaskID(e.TaskID); ok {
			key = id
		}
	}
	old := r.getInst(key)
	if spec != nil && !isManagedSpec(spec) && old == nil {
		// Not on a managed network: nothing of ours.
		return
	}
	if spec == nil && specErr == nil && old == nil && !marathon.IsTerminalTaskState(e.TaskStatus) {
		// Marathon no longer knows the app (deleted meanwhile).
		return
	}
	n := &instance{Key: key, Kind: kind, AppID: e.AppID}
	if old != nil {
		n = old.clone()
	}
	n.AppID = e.AppID
	if kind == marathon.KindAppTask {
		n.TaskID = e.TaskID
		n.InstanceID, _ = marathon.InstanceIDFromTaskID(e.TaskID)
		n.State = e.TaskStatus
	} else {
		n.InstanceID = key
		if n.TaskID == "" {
			n.TaskID = e.TaskID
		}
		if e.TaskStatus == marathon.TaskRunning {
			n.State = marathon.PodInstanceStable
		} else if n.State == "" {
			n.State = marathon.PodInstanceStaging
		}
	}
	if e.Host != "" && e.Host != "unknown" {
		n.Host = e.Host
	}
	if a := e.Agent(); a != "" {
		n.AgentID = a
	}
	if addrs := e.Addresses(); len(addrs) > 0 {
		if kind == marathon.KindPodInstance {
			for _, a := range addrs {
				if !slices.Contains(n.Addresses, a) {
					n.Addresses = append(n.Addresses, a)
				}
			}
		} else {
			n.Addresses = addrs
		}
	}
	n.EventTime = e.Time()
	managed := isManagedSpec(spec)
	switch {
	case kind == marathon.KindAppTask && marathon.IsTerminalTaskState(e.TaskStatus):
		r.finish(ctx, n, "terminal: "+e.TaskStatus, managed, n.EventTime)
	case kind == marathon.KindPodInstance && marathon.IsTerminalTaskState(e.TaskStatus):
		// One container ended; the instance's condition decides.
		r.putInst(n)
	case kind == marathon.KindAppTask && waitingState(kind, e.TaskStatus, ""):
		if n.UnreachableSince.IsZero() {
			n.UnreachableSince = r.clock.Now()
			r.log.Info("task unreachable; its ports are kept for the grace period", "task", n.Key, "state", e.TaskStatus, "grace", time.Duration(r.cfg.UnreachableGrace))
		}
		r.putInst(n)
	default:
		if !n.UnreachableSince.IsZero() {
			r.log.Info("task is back", "task", n.Key, "state", e.TaskStatus)
			n.UnreachableSince = time.Time{}
		}
		if spec == nil {
			// The spec could not be read: try again later.
			r.retryLater(n)
			r.putInst(n)
			return
		}
		if r.cameBack(n.Key) || strings.HasPrefix(n.Releasing, "unreachable") {
			// Its addresses are released and may be given out again: the
			// task must be restarted. Say so, loudly, once.
			r.log.Error("a task came back after its ports were released for being unreachable beyond the grace period; restart it", "task", n.Key, "app", n.AppID, "host", n.Host)
			r.putInst(n)
			r.setProblems(n, []Problem{{Task: n.Key, App: n.AppID, Message: "the task came back after its ports were released for being unreachable beyond the grace period; its addresses may be given to another task: restart it"}})
			return
		}
		n.Releasing = ""
		if old != nil && old.Retries >= maxPortWaits && old.NextRetry.IsZero() {
			// A new status update: wait for the port again.
			n.Retries = 0
		}
		if len(n.Addresses) == 0 && n.ContainerID == "" && r.containerOf == nil {
			// Retried on the next status update, which brings addresses.
			r.putInst(n)
			r.setProblems(n, labelProblems(n, spec))
			return
		}
		r.reconcile(ctx, n, spec, nil, false)
	}
}

// finish releases the ports of a task that is gone and forgets it; a
// failed release is retried by the sweep.
func (r *Reconciler) finish(ctx context.Context, n *instance, reason string, byAddress bool, notAfter time.Time) {
	if err := r.release(ctx, n, reason, byAddress, notAfter); err != nil {
		r.log.Warn("release failed; will retry", "task", n.Key, "reason", reason, "err", err)
		n.Releasing = reason
		r.retryLater(n)
		r.putInst(n)
		return
	}
	r.dropInst(n.Key)
	if strings.HasPrefix(reason, "unreachable") {
		r.mu.Lock()
		r.released[n.Key] = r.clock.Now()
		r.mu.Unlock()
	}
}

// cameBack tells (once) whether the task had its ports released for being
// unreachable.
func (r *Reconciler) cameBack(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.released[key]
	delete(r.released, key)
	return ok
}

// instancesOf returns the followed tasks of a Marathon instance id, by
// key: the pod instance, or the app tasks of the instance. It runs for
// every instance_changed_event, so it only sorts what it found.
func (r *Reconciler) instancesOf(id string) []*instance {
	var out []*instance
	r.mu.Lock()
	for _, i := range r.insts {
		if i.Key == id || i.InstanceID == id {
			out = append(out, i)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *instance) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func (r *Reconciler) onInstanceChanged(ctx context.Context, e *marathon.InstanceChangedEvent) {
	cond := e.Condition
	switch {
	case marathon.IsTerminalCondition(cond):
		r.onInstanceGone(ctx, e.InstanceID, e.RunSpecID, e.Host, "terminal: "+cond, e.Time())
	case marathon.IsUnreachableCondition(cond), marathon.IsUnknownCondition(cond):
		targets := r.instancesOf(e.InstanceID)
		if len(targets) == 0 {
			spec := r.getSpec(e.RunSpecID)
			if spec == nil || spec.Kind != marathon.KindPodInstance || !isManagedSpec(spec) {
				return
			}
			targets = []*instance{{Key: e.InstanceID, Kind: marathon.KindPodInstance, AppID: e.RunSpecID, InstanceID: e.InstanceID, TaskID: e.InstanceID, Host: e.Host, AgentID: e.AgentID}}
		}
		for _, t := range targets {
			if !t.UnreachableSince.IsZero() {
				continue
			}
			n := t.clone()
			n.UnreachableSince = r.clock.Now()
			if n.Kind == marathon.KindPodInstance {
				n.State = marathon.PodInstanceDegraded
			}
			r.log.Info("instance unreachable; its ports are kept for the grace period", "instance", e.InstanceID, "condition", cond, "grace", time.Duration(r.cfg.UnreachableGrace))
			r.putInst(n)
		}
	default:
		for _, t := range r.instancesOf(e.InstanceID) {
			if t.UnreachableSince.IsZero() && (t.Host != "" || e.Host == "") {
				continue
			}
			n := t.clone()
			if n.Host == "" && e.Host != "" {
				n.Host, n.AgentID = e.Host, e.AgentID
			}
			if !n.UnreachableSince.IsZero() && cond == marathon.ConditionRunning {
				r.log.Info("instance is back", "instance", e.InstanceID)
				n.UnreachableSince = time.Time{}
			}
			r.putInst(n)
		}
	}
}

// onInstanceGone releases the ports of an instance whose condition is
// terminal.
func (r *Reconciler) onInstanceGone(ctx context.Context, id, runSpecID, host, reason string, at time.Time) {
	spec := r.getSpec(runSpecID)
	if spec != nil && !isManagedSpec(spec) {
		return
	}
	managed := isManagedSpec(spec)
	targets := r.instancesOf(id)
	for _, t := range targets {
		r.finish(ctx, t.clone(), reason, managed, at)
	}
	if len(targets) > 0 {
		return
	}
	// Not followed (never seen running, or the manager started since):
	// release what is tagged with the instance.
	kind := marathon.KindAppTask
	if spec != nil {
		kind = spec.Kind
	}
	if kind == marathon.KindPodInstance {
		r.finish(ctx, &instance{Key: id, Kind: kind, AppID: runSpecID, InstanceID: id, Host: host}, reason, false, at)
		return
	}
	r.releaseTagged(ctx, r.nodeName(ctx, host), reason, func(p *api.Port) bool { return p.InstanceID == id })
}

// releaseTagged releases the manager's ports on node ("" all) that match
// and whose task the manager does not follow as live.
func (r *Reconciler) releaseTagged(ctx context.Context, node, reason string, match func(p *api.Port) bool) {
	ports, err := r.ctrl.ListPorts(ctx, node)
	if err != nil {
		r.ctrlErr("list_ports", err)
		r.log.Warn("list ports failed; the next resync releases what is left", "reason", reason, "err", err)
		return
	}
	for _, p := range ports {
		if !isManagedPort(&p) || !match(&p) {
			continue
		}
		if i := r.getInst(p.TaskID); i != nil && i.liveForPorts() {
			continue
		}
		if p.InstanceID != "" {
			if i := r.getInst(p.InstanceID); i != nil && i.Kind == marathon.KindPodInstance && i.liveForPorts() {
				continue
			}
		}
		if err := r.releasePort(ctx, p, reason); err != nil {
			r.log.Warn("release failed; the next resync releases it", "port", p.FQName, "err", err)
		}
	}
}

func (r *Reconciler) onAppTerminated(ctx context.Context, id string) {
	spec := r.getSpec(id)
	r.mu.Lock()
	delete(r.specs, id)
	r.mu.Unlock()
	if spec != nil && !isManagedSpec(spec) {
		return
	}
	reason := "app_terminated: " + id
	for _, t := range r.instList() {
		if t.AppID == id {
			r.finish(ctx, t.clone(), reason, spec != nil, time.Time{})
		}
	}
	r.releaseTagged(ctx, "", reason, func(p *api.Port) bool { return p.AppID == id })
}

func (r *Reconciler) onPodEvent(ctx context.Context, e *marathon.PodEvent) {
	id := podIDFromURI(e.URI)
	if id == "" {
		return // pod_created_event names no pod: its first status update reads it
	}
	ps, err := r.src.PodStatus(ctx, id)
	switch {
	case err == nil:
		r.putSpec(r.podSpec(ps))
	case marathon.IsNotFound(err):
		// Deleted: app_terminated_event follows once its instances are gone.
	default:
		r.log.Warn("cannot read a changed pod; the next resync reads it", "pod", id, "err", err)
	}
}

// podIDFromURI extracts the pod id of a pod event's uri
// ("/v2/pods/grp/pod", "/v2/pods/grp/pod::status").
func podIDFromURI(uri string) string {
	rest, ok := strings.CutPrefix(uri, "/v2/pods")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "::"); i >= 0 {
		rest = rest[:i]
	}
	if rest = strings.Trim(rest, "/"); rest == "" {
		return ""
	}
	return "/" + rest
}

// Sweep releases tasks unreachable for longer than the grace period and
// retries pending work. The leader loop calls it every second.
func (r *Reconciler) Sweep(ctx context.Context) {
	defer r.recoverBug("sweep", nil)
	now := r.clock.Now()
	grace := time.Duration(r.cfg.UnreachableGrace)
	r.mu.Lock()
	for k, at := range r.released {
		if now.Sub(at) > tombstoneTTL {
			delete(r.released, k)
		}
	}
	r.mu.Unlock()
	for _, i := range r.instList() {
		if ctx.Err() != nil {
			return
		}
		spec := r.getSpec(i.AppID)
		switch {
		case !i.UnreachableSince.IsZero() && now.Sub(i.UnreachableSince) >= grace && (i.Releasing == "" || !now.Before(i.NextRetry)):
			reason := fmt.Sprintf("unreachable: %s for %s (grace %s)", i.State, now.Sub(i.UnreachableSince).Round(time.Second), grace)
			r.log.Info("releasing the ports of a task unreachable beyond the grace period", "task", i.Key, "since", i.UnreachableSince)
			r.finish(ctx, i.clone(), reason, isManagedSpec(spec), time.Time{})
		case i.NextRetry.IsZero() || now.Before(i.NextRetry):
		case i.Releasing != "":
			r.finish(ctx, i.clone(), i.Releasing, isManagedSpec(spec), i.EventTime)
		default:
			if spec == nil {
				s, err := r.specFor(ctx, i.AppID)
				if err != nil || s == nil {
					n := i.clone()
					if s == nil && err == nil {
						// Marathon forgot the app: the stale sweep of the
						// next resync takes its ports.
						r.dropInst(n.Key)
						continue
					}
					r.retryLater(n)
					r.putInst(n)
					continue
				}
				spec = s
			}
			if !isManagedSpec(spec) {
				r.dropInst(i.Key)
				continue
			}
			r.reconcile(ctx, i, spec, nil, false)
		}
	}
}
