package mesosmanager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weft-sdn/weft/internal/api"
	"github.com/weft-sdn/weft/internal/marathon"
)

// Resync reads Marathon's whole state and makes the controller agree with
// it: the ports the manager tagged whose task Marathon no longer runs are
// deleted and released, and the metadata of the ports of every live task
// on a managed network is filled in. Ports the manager never tagged are
// left alone. reason is "connected", "reconnected", "periodic" or
// "startup". Running it twice in a row writes nothing the second time.
func (r *Reconciler) Resync(ctx context.Context, reason string) (err error) {
	start := r.clock.Now()
	func() {
		defer r.recoverBug("resync", &err)
		err = r.resync(ctx, reason)
	}()
	took := r.clock.Now().Sub(start)
	result := "ok"
	r.mu.Lock()
	if err != nil {
		result = "error"
		r.sync.ResyncErrors++
		r.sync.LastResyncError = err.Error()
	} else {
		r.sync.ResyncCount++
		r.sync.LastResync = start
		r.sync.LastResyncError = ""
		r.sync.LastResyncTook = took.Round(time.Millisecond).String()
	}
	r.mu.Unlock()
	r.m.resyncs.WithLabelValues(reason, result).Inc()
	if err != nil {
		r.log.Warn("resync with marathon failed", "reason", reason, "err", err)
		return err
	}
	return nil
}

func (r *Reconciler) resync(ctx context.Context, reason string) error {
	snap, err := r.src.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read marathon state: %w", err)
	}
	if err := r.refreshNodes(ctx); err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	ports, err := r.ctrl.ListPorts(ctx, "")
	if err != nil {
		r.ctrlErr("list_ports", err)
		return fmt.Errorf("list ports: %w", err)
	}

	specs := make(map[string]*runSpec, len(snap.Apps)+len(snap.Pods))
	for _, app := range snap.Apps {
		specs[app.ID] = r.appSpec(app)
	}
	for _, ps := range snap.Pods {
		specs[ps.ID] = r.podSpec(ps)
	}
	r.mu.Lock()
	old := r.insts
	r.mu.Unlock()
	now := r.clock.Now()
	liveApp := map[string]bool{}
	livePod := map[string]bool{}
	insts := map[string]*instance{}
	for _, key := range sortedKeys(snap.Instances) {
		si := snap.Instances[key]
		n := instanceFrom(si)
		if n.liveForPorts() {
			if n.Kind == marathon.KindPodInstance {
				livePod[n.InstanceID] = true
			} else {
				liveApp[n.TaskID] = true
			}
		}
		if !isManagedSpec(specs[n.AppID]) || !n.liveForPorts() {
			continue
		}
		message := ""
		if si.PodInstance != nil {
			message = si.PodInstance.Message
		}
		if o := old[key]; o != nil {
			n.UnreachableSince, n.ContainerID, n.Ports = o.UnreachableSince, o.ContainerID, o.Ports
			if n.Host == "" {
				n.Host = o.Host
			}
			if len(n.Addresses) == 0 {
				n.Addresses = o.Addresses
			}
		}
		if waitingState(n.Kind, n.State, message) {
			if n.UnreachableSince.IsZero() {
				n.UnreachableSince = now
			}
		} else {
			n.UnreachableSince = time.Time{}
		}
		n.Updated = now
		insts[key] = n
	}
	r.mu.Lock()
	r.specs = specs
	r.insts = insts
	for k := range r.problems {
		if insts[k.task] == nil {
			delete(r.problems, k)
		}
	}
	r.m.problems.Set(float64(len(r.problems)))
	r.ports = map[string]PortView{}
	r.updatePendingLocked()
	r.mu.Unlock()

	// Ports the manager tagged for tasks Marathon no longer runs.
	var errs []error
	kept := make([]api.Port, 0, len(ports))
	stale := 0
	for _, p := range ports {
		if !isManagedPort(&p) || liveApp[p.TaskID] || (p.InstanceID != "" && livePod[p.InstanceID]) {
			kept = append(kept, p)
			if isManagedPort(&p) {
				r.notePort(&p)
			}
			continue
		}
		stale++
		if err := r.releasePort(ctx, p, fmt.Sprintf("stale: task %s is not running in marathon", p.TaskID)); err != nil {
			errs = append(errs, err)
		}
	}

	// Metadata of the ports of every live task.
	byNode := map[string][]api.Port{}
	var nodeless []api.Port
	for _, p := range kept {
		if p.Node == "" {
			nodeless = append(nodeless, p)
			continue
		}
		byNode[p.Node] = append(byNode[p.Node], p)
	}
	for _, key := range sortedKeys(insts) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := insts[key]
		node := r.nodeName(ctx, n.Host)
		cands := kept
		if node != "" {
			cands = append(append([]api.Port{}, byNode[node]...), nodeless...)
		}
		r.reconcile(ctx, n, specs[n.AppID], cands, true)
	}
	r.log.Info("resynced with marathon", "reason", reason, "apps", len(snap.Apps), "pods", len(snap.Pods),
		"managed_tasks", len(insts), "ports", len(ports), "stale_released", stale)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release stale ports: %w", err)
	}
	return nil
}
