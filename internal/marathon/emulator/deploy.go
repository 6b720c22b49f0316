package emulator

import (
	"slices"
	"sort"
	"time"
)

// Deployment actions (S:core/deployment/DeploymentPlan.scala).
const (
	actStartApp   = "StartApplication"
	actScaleApp   = "ScaleApplication"
	actStopApp    = "StopApplication"
	actRestartApp = "RestartApplication"
	actStartPod   = "StartPod"
	actScalePod   = "ScalePod"
	actStopPod    = "StopPod"
	actRestartPod = "RestartPod"
)

// deployment is a deployment plan of one run spec, one action a step.
type deployment struct {
	id      string
	version time.Time
	spec    *runSpec
	steps   []string
	current int
	started bool
	// toKill are the instances a scale step removes (kill with
	// scale=true); nil means "by killSelection".
	toKill []*instance
	// old are the instances a restart step replaces; replaced marks the
	// start of their decommissioning.
	old      map[*instance]bool
	replaced bool
}

// Kinds of step, independent of app or pod.
const (
	kindStart = iota
	kindScale
	kindStop
	kindRestart
)

func stepKind(action string) int {
	switch action {
	case actScaleApp, actScalePod:
		return kindScale
	case actStopApp, actStopPod:
		return kindStop
	case actRestartApp, actRestartPod:
		return kindRestart
	default:
		return kindStart
	}
}

// stepsFor names the actions of a step kind list for spec.
func stepsFor(spec *runSpec, kinds ...int) []string {
	names := map[int][2]string{
		kindStart:   {actStartApp, actStartPod},
		kindScale:   {actScaleApp, actScalePod},
		kindStop:    {actStopApp, actStopPod},
		kindRestart: {actRestartApp, actRestartPod},
	}
	var out []string
	for _, k := range kinds {
		n := names[k]
		if spec.isPod() {
			out = append(out, n[1])
		} else {
			out = append(out, n[0])
		}
	}
	return out
}

func (d *deployment) actionObject(i int) map[string]any {
	key := "app"
	if d.spec.isPod() {
		key = "pod"
	}
	return map[string]any{"action": d.steps[i], key: d.spec.id}
}

// stepObjects renders the steps, one action each.
func (d *deployment) stepObjects() []any {
	steps := make([]any, 0, len(d.steps))
	for i := range d.steps {
		steps = append(steps, map[string]any{"actions": []any{d.actionObject(i)}})
	}
	return steps
}

// plan renders the "light" plan of deployment events (≥ 1.8).
func (d *deployment) plan() map[string]any {
	return map[string]any{"id": d.id, "steps": d.stepObjects(), "version": formatTime(d.version)}
}

// object renders the deployment as GET /v2/deployments does.
func (d *deployment) object() map[string]any {
	apps, pods := []string{}, []string{}
	if d.spec.isPod() {
		pods = append(pods, d.spec.id)
	} else {
		apps = append(apps, d.spec.id)
	}
	var current []any
	if d.current < len(d.steps) {
		a := d.actionObject(d.current)
		a["readinessCheckResults"] = []any{}
		current = append(current, a)
	}
	return map[string]any{
		"id": d.id, "version": formatTime(d.version), "affectedApps": apps, "affectedPods": pods,
		"steps": d.stepObjects(), "currentActions": nonNilSlice(current), "currentStep": d.current + 1, "totalSteps": len(d.steps),
	}
}

func nonNilSlice(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

// deploymentsOf returns the running deployments of a run spec id.
func (s *Server) deploymentsOf(id string) []*deployment {
	var out []*deployment
	for _, d := range s.deployments {
		if d.spec.id == id {
			out = append(out, d)
		}
	}
	return out
}

func deploymentIDs(ds []*deployment) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.id)
	}
	return out
}

// cancelLocked cancels the deployments of a run spec (force=true):
// each ends with deployment_failed.
func (s *Server) cancelLocked(id string) {
	for _, d := range s.deploymentsOf(id) {
		s.removeDeploymentLocked(d)
		s.emit(s.deploymentFailedEvent(d))
	}
}

func (s *Server) removeDeploymentLocked(d *deployment) {
	s.deployments = slices.DeleteFunc(s.deployments, func(x *deployment) bool { return x == d })
}

// startDeploymentLocked registers a deployment and runs it as far as it
// goes.
func (s *Server) startDeploymentLocked(spec *runSpec, version time.Time, steps []string, toKill []*instance) *deployment {
	d := &deployment{id: randomUUID(), version: version, spec: spec, steps: steps, toKill: toKill}
	s.deployments = append(s.deployments, d)
	s.advanceLocked()
	return d
}

// advanceLocked moves every deployment forward as far as the state
// allows: deployment_info when a step starts, deployment_step_success
// when it is done, deployment_success after the last one.
func (s *Server) advanceLocked() {
	for {
		progressed := false
		for _, d := range slices.Clone(s.deployments) {
			if s.stepLocked(d) {
				progressed = true
			}
		}
		if !progressed {
			return
		}
	}
}

func (s *Server) stepLocked(d *deployment) bool {
	if !slices.Contains(s.deployments, d) {
		return false
	}
	progressed := false
	if !d.started {
		d.started = true
		s.emit(s.deploymentStepEvent("deployment_info", d))
		s.startStepLocked(d)
		progressed = true
	}
	if !s.stepDoneLocked(d) {
		return progressed
	}
	if stepKind(d.steps[d.current]) == kindStop {
		s.emit(s.appTerminatedEvent(d.spec.id))
	}
	s.emit(s.deploymentStepEvent("deployment_step_success", d))
	d.current++
	d.started = false
	if d.current >= len(d.steps) {
		s.removeDeploymentLocked(d)
		s.emit(s.deploymentSuccessEvent(d))
	}
	return true
}

func (s *Server) startStepLocked(d *deployment) {
	spec := d.spec
	switch stepKind(d.steps[d.current]) {
	case kindScale:
		if d.toKill != nil {
			s.decommissionLocked(d.toKill)
			return
		}
		var active []*instance
		for _, i := range s.instancesOf(spec.id) {
			if i.goal == goalRunning {
				active = append(active, i)
			}
		}
		switch n := spec.target() - len(active); {
		case n > 0:
			s.scheduleLocked(spec, n)
		case n < 0:
			s.decommissionLocked(victims(active, -n, spec.killSelection()))
		}
	case kindStop:
		s.decommissionLocked(s.instancesOf(spec.id))
	case kindRestart:
		d.old = map[*instance]bool{}
		for _, i := range s.instancesOf(spec.id) {
			d.old[i] = true
		}
		s.scheduleLocked(spec, spec.target())
	}
}

// decommissionLocked sets the goal of every instance (one
// instance_changed_event each), then kills them.
func (s *Server) decommissionLocked(insts []*instance) {
	for _, i := range insts {
		s.setGoalLocked(i, goalDecommissioned)
	}
	for _, i := range insts {
		if s.instances[i.id] == i {
			s.killInstanceLocked(i, false)
		}
	}
}

// victims picks n instances to remove: those not running first, then
// by killSelection.
func victims(active []*instance, n int, selection string) []*instance {
	c := slices.Clone(active)
	sort.SliceStable(c, func(a, b int) bool {
		ra, rb := c[a].condition == condRunning, c[b].condition == condRunning
		if ra != rb {
			return !ra
		}
		if selection == "OLDEST_FIRST" {
			return c[a].seq < c[b].seq
		}
		return c[a].seq > c[b].seq
	})
	return c[:min(n, len(c))]
}

// stepDoneLocked reports whether the current step is complete; a
// restart step decommissions the old instances once the new ones run.
func (s *Server) stepDoneLocked(d *deployment) bool {
	spec := d.spec
	target := spec.target()
	var running, active, decommissioning, old int
	for _, i := range s.instancesOf(spec.id) {
		switch {
		case d.old[i]:
			old++
		case i.goal != goalRunning:
			decommissioning++
		default:
			active++
			if i.condition == condRunning {
				running++
			}
		}
	}
	switch stepKind(d.steps[d.current]) {
	case kindScale:
		return active == target && running == target && decommissioning == 0
	case kindStop:
		return active+decommissioning+old == 0
	case kindRestart:
		if !d.replaced && active == target && running == target {
			d.replaced = true
			var olds []*instance
			for _, i := range s.instancesOf(spec.id) {
				if d.old[i] {
					olds = append(olds, i)
				}
			}
			s.decommissionLocked(olds)
			old = 0
			for _, i := range s.instancesOf(spec.id) {
				if d.old[i] {
					old++
				}
			}
		}
		return d.replaced && old == 0 && active == target && running == target && decommissioning == 0
	default:
		return true
	}
}
