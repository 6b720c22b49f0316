package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// reply is a handler's answer, rendered after the state lock is
// released.
type reply struct {
	code    int
	body    any // JSON value; nil for no body
	headers map[string]string
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, rep reply) {
	for k, v := range rep.headers {
		w.Header().Set(k, v)
	}
	if rep.body == nil {
		w.WriteHeader(rep.code)
		return
	}
	s.writeJSON(w, r, rep.code, rep.body)
}

func errReply(code int, body ErrorBody) reply { return reply{code: code, body: body} }

func definitionErrReply(err error) reply {
	var de *DefinitionError
	if errors.As(err, &de) {
		return errReply(de.Status, de.Body)
	}
	return errReply(http.StatusBadRequest, ErrorBody{Message: err.Error()})
}

func methodNotAllowed(allow ...string) reply {
	return reply{code: http.StatusMethodNotAllowed, headers: map[string]string{"Allow": strings.Join(allow, ", ")}}
}

func deploymentReply(code int, d *deployment) reply {
	return reply{code: code, body: map[string]any{"version": formatTime(d.version), "deploymentId": d.id},
		headers: map[string]string{"Marathon-Deployment-Id": d.id}}
}

func isTrue(v string) bool { return v == "true" || v == "1" }

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxDefinition+1))
	if err != nil {
		return nil, invalidJSON(fmt.Errorf("read body: %w", err))
	}
	if len(b) > maxDefinition {
		return nil, invalidJSON(errors.New("request body too large"))
	}
	return b, nil
}

// route dispatches Marathon's endpoints.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	var rep reply
	switch {
	case p == "/ping":
		s.handlePing(w, r)
		return
	case p == "/v2/events":
		s.handleEvents(w, r)
		return
	case p == "/v2/info":
		if r.Method != http.MethodGet {
			rep = methodNotAllowed(http.MethodGet)
			break
		}
		rep = reply{code: http.StatusOK, body: s.info(s.self(r))}
	case p == "/v2/leader":
		rep = s.leader(r)
	case p == "/v2/apps" || p == "/v2/apps/":
		switch r.Method {
		case http.MethodGet:
			rep = s.listApps(r)
		case http.MethodPost:
			rep = s.createApp(r)
		default:
			rep = methodNotAllowed(http.MethodGet, http.MethodPost)
		}
	case strings.HasPrefix(p, "/v2/apps/"):
		rep = s.appRoute(r, strings.TrimSuffix(strings.TrimPrefix(p, "/v2/apps"), "/"))
	case p == "/v2/tasks":
		if r.Method != http.MethodGet {
			rep = methodNotAllowed(http.MethodGet)
			break
		}
		rep = s.listTasks(r)
	case p == "/v2/tasks/delete":
		if r.Method != http.MethodPost {
			rep = methodNotAllowed(http.MethodPost)
			break
		}
		rep = s.deleteTasks(r)
	case p == "/v2/pods" || p == "/v2/pods/":
		switch r.Method {
		case http.MethodHead:
			rep = reply{code: http.StatusOK}
		case http.MethodGet:
			rep = s.listPods()
		case http.MethodPost:
			rep = s.createPod(r)
		default:
			rep = methodNotAllowed(http.MethodHead, http.MethodGet, http.MethodPost)
		}
	case strings.HasPrefix(p, "/v2/pods/"):
		rep = s.podRoute(r, strings.TrimPrefix(p, "/v2/pods"))
	case p == "/v2/deployments":
		if r.Method != http.MethodGet {
			rep = methodNotAllowed(http.MethodGet)
			break
		}
		s.mu.Lock()
		list := []any{}
		for _, d := range s.deployments {
			list = append(list, d.object())
		}
		s.mu.Unlock()
		rep = reply{code: http.StatusOK, body: list}
	default:
		// As S:api/MarathonExceptionMapper.scala maps an unknown route.
		rep = errReply(http.StatusInternalServerError, ErrorBody{Message: "URI not found"})
	}
	s.send(w, r, rep)
}

// handlePing answers "pong", content negotiated (S:api/SystemResource.scala).
func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	accept := r.Header.Get("Accept")
	switch {
	case accept == "" || strings.Contains(accept, "*/*") || strings.Contains(accept, "text/"):
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "pong")
	case strings.Contains(accept, "application/json"):
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `"pong"`)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) leader(r *http.Request) reply {
	switch r.Method {
	case http.MethodGet:
		return reply{code: http.StatusOK, body: map[string]string{"leader": s.self(r)}}
	case http.MethodDelete:
		// Abdication: this emulator stays leader, but its streams close
		// as on a leadership loss.
		s.CloseEventStreams()
		return reply{code: http.StatusOK, body: map[string]string{"message": "Leadership abdicated"}}
	default:
		return methodNotAllowed(http.MethodGet, http.MethodDelete)
	}
}

// appRoute handles /v2/apps/{id}[/tasks[/{taskId}]|/restart|/*].
func (s *Server) appRoute(r *http.Request, rest string) reply {
	switch {
	case strings.HasSuffix(rest, "/restart") && r.Method == http.MethodPost:
		return s.restartApp(r, strings.TrimSuffix(rest, "/restart"))
	case strings.Contains(rest, "/tasks/"):
		i := strings.LastIndex(rest, "/tasks/")
		if r.Method != http.MethodDelete {
			return methodNotAllowed(http.MethodDelete)
		}
		return s.killAppTasks(r, rest[:i], []string{rest[i+len("/tasks/"):]}, true)
	case strings.HasSuffix(rest, "/tasks"):
		id := strings.TrimSuffix(rest, "/tasks")
		switch r.Method {
		case http.MethodGet:
			return s.appTasks(id)
		case http.MethodDelete:
			return s.killAppTasks(r, id, nil, false)
		default:
			return methodNotAllowed(http.MethodGet, http.MethodDelete)
		}
	case strings.HasSuffix(rest, "/*") && r.Method == http.MethodGet:
		return s.groupApps(strings.TrimSuffix(rest, "/*"))
	}
	switch r.Method {
	case http.MethodGet:
		return s.getApp(rest)
	case http.MethodPut, http.MethodPatch:
		return s.updateApp(r, rest)
	case http.MethodDelete:
		return s.deleteApp(r, rest)
	default:
		return methodNotAllowed(http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete)
	}
}

// appSpecLocked finds the app of a raw id; ok is false with the 404
// reply when there is none.
func (s *Server) appSpecLocked(id string) (*runSpec, reply, bool) {
	cid, _ := canonicalID(id)
	spec := s.specs[cid]
	if spec == nil || spec.isPod() {
		return nil, errReply(http.StatusNotFound, appNotFound(cid)), false
	}
	return spec, reply{}, true
}

// podSpecLocked finds the pod of a raw id; ok is false with the 404
// reply when there is none.
func (s *Server) podSpecLocked(id string) (*runSpec, reply, bool) {
	cid, _ := canonicalID(id)
	spec := s.specs[cid]
	if spec == nil || !spec.isPod() {
		return nil, errReply(http.StatusNotFound, podNotFound(cid)), false
	}
	return spec, reply{}, true
}

// lockCheckLocked refuses a change of a run spec a deployment holds,
// unless force, which cancels those deployments.
func (s *Server) lockCheckLocked(id string, force bool) (reply, bool) {
	ds := s.deploymentsOf(id)
	if len(ds) == 0 {
		return reply{}, true
	}
	if !force {
		return errReply(http.StatusConflict, lockedBody(deploymentIDs(ds))), false
	}
	s.cancelLocked(id)
	return reply{}, true
}

// existsLocked refuses to create a run spec whose id is taken.
func (s *Server) existsLocked(id string) (reply, bool) {
	if other := s.specs[id]; other != nil {
		kind := "An app"
		if other.isPod() {
			kind = "A pod"
		}
		return errReply(http.StatusConflict, ErrorBody{Message: fmt.Sprintf("%s with id [%s] already exists.", kind, id)}), false
	}
	return reply{}, true
}

// assignServicePortsLocked gives every port 0 a service port (10000 and
// up), keeping those an earlier version of the app had.
func (s *Server) assignServicePortsLocked(a, old *App) {
	var oldPorts []int
	if old != nil && old.HostNetworking() == a.HostNetworking() {
		oldPorts = servicePortsOf(old)
	}
	pick := func(i, p int) int {
		if p == 0 && i < len(oldPorts) && oldPorts[i] != 0 && !s.servicePorts[oldPorts[i]] {
			p = oldPorts[i]
		}
		if p == 0 {
			for p = 10000; p < 20000 && s.servicePorts[p]; p++ {
			}
		}
		s.servicePorts[p] = true
		return p
	}
	if a.HostNetworking() {
		for i := range a.PortDefinitions {
			a.PortDefinitions[i].Port = pick(i, a.PortDefinitions[i].Port)
		}
		return
	}
	for i := range a.PortMappings {
		a.PortMappings[i].ServicePort = pick(i, a.PortMappings[i].ServicePort)
	}
}

func (s *Server) releaseServicePortsLocked(a *App) {
	for _, p := range servicePortsOf(a) {
		delete(s.servicePorts, p)
	}
}

// createApp handles POST /v2/apps.
func (s *Server) createApp(r *http.Request) reply {
	body, err := readBody(r)
	if err != nil {
		return definitionErrReply(err)
	}
	app, err := DecodeApp(body, s.cfg.DefaultNetworkName)
	if err != nil {
		return definitionErrReply(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rep, ok := s.existsLocked(app.ID); !ok {
		return rep
	}
	if rep, ok := s.lockCheckLocked(app.ID, isTrue(r.URL.Query().Get("force"))); !ok {
		return rep
	}
	spec, d := s.createAppLocked(r, app)
	info := s.appObject(spec)
	info["tasksStaged"], info["tasksRunning"], info["tasksHealthy"], info["tasksUnhealthy"] = 0, 0, 0, 0
	info["tasks"] = []any{}
	info["deployments"] = []any{map[string]any{"id": d.id}}
	return reply{code: http.StatusCreated, body: info,
		headers: map[string]string{"Location": "/v2/apps" + app.ID, "Marathon-Deployment-Id": d.id}}
}

func (s *Server) createAppLocked(r *http.Request, app *App) (*runSpec, *deployment) {
	v := s.nextVersionLocked()
	s.assignServicePortsLocked(app, nil)
	spec := &runSpec{id: app.ID, app: app, version: v, lastScalingAt: v, lastConfigChangeAt: v}
	s.specs[app.ID] = spec
	s.emit(s.apiPostEvent(r, s.appObject(spec)))
	s.emit(s.groupChangeSuccessEvent(v))
	return spec, s.startDeploymentLocked(spec, v, stepsFor(spec, kindStart, kindScale), nil)
}

// updateApp handles PUT and PATCH /v2/apps/{id}: a partial update
// (top-level fields of the body replace the app's); only instances
// changing is a scale, anything else a restart.
func (s *Server) updateApp(r *http.Request, rawID string) reply {
	id, _ := canonicalID(rawID)
	body, err := readBody(r)
	if err != nil {
		return definitionErrReply(err)
	}
	patch, err := decodeObject(body)
	if err != nil {
		return definitionErrReply(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	spec := s.specs[id]
	if spec != nil && spec.isPod() {
		return errReply(http.StatusConflict, ErrorBody{Message: fmt.Sprintf("A pod with id [%s] already exists.", id)})
	}
	merged := map[string]json.RawMessage{}
	if spec != nil {
		cur, _ := marshal(s.appObject(spec))
		_ = json.Unmarshal(cur, &merged)
		if _, ok := patch["cmd"]; ok {
			delete(merged, "args")
		}
		if _, ok := patch["args"]; ok {
			delete(merged, "cmd")
		}
		if _, ok := patch["ipAddress"]; ok {
			delete(merged, "networks")
		}
	}
	maps.Copy(merged, patch)
	merged["id"], _ = json.Marshal(id)
	data, _ := json.Marshal(merged)
	app, err := DecodeApp(data, s.cfg.DefaultNetworkName)
	if err != nil {
		return definitionErrReply(err)
	}
	if rep, ok := s.lockCheckLocked(id, isTrue(r.URL.Query().Get("force"))); !ok {
		return rep
	}
	if spec == nil {
		_, d := s.createAppLocked(r, app)
		return deploymentReply(http.StatusCreated, d)
	}
	old := spec.app
	s.releaseServicePortsLocked(old)
	s.assignServicePortsLocked(app, old)
	scaleOnly := sameExceptInstances(old, app)
	v := s.nextVersionLocked()
	spec.app, spec.version, spec.lastScalingAt = app, v, v
	kind := kindScale
	if !scaleOnly {
		spec.lastConfigChangeAt, spec.failures, kind = v, 0, kindRestart
	}
	s.emit(s.apiPostEvent(r, s.appObject(spec)))
	s.emit(s.groupChangeSuccessEvent(v))
	return deploymentReply(http.StatusOK, s.startDeploymentLocked(spec, v, stepsFor(spec, kind), nil))
}

// sameExceptInstances reports whether two definitions differ at most in
// their instance count.
func sameExceptInstances(a, b *App) bool {
	oa, ob := a.object(), b.object()
	delete(oa, "instances")
	delete(ob, "instances")
	ja, err1 := marshal(oa)
	jb, err2 := marshal(ob)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// deleteApp handles DELETE /v2/apps/{id}: the app disappears at once, a
// StopApplication deployment kills its instances.
func (s *Server) deleteApp(r *http.Request, rawID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, rep, ok := s.appSpecLocked(rawID)
	if !ok {
		return rep
	}
	if rep, ok := s.lockCheckLocked(spec.id, isTrue(r.URL.Query().Get("force"))); !ok {
		return rep
	}
	delete(s.specs, spec.id)
	s.releaseServicePortsLocked(spec.app)
	v := s.nextVersionLocked()
	s.emit(s.groupChangeSuccessEvent(v))
	return deploymentReply(http.StatusOK, s.startDeploymentLocked(spec, v, stepsFor(spec, kindStop), nil))
}

// restartApp handles POST /v2/apps/{id}/restart.
func (s *Server) restartApp(r *http.Request, rawID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, rep, ok := s.appSpecLocked(rawID)
	if !ok {
		return rep
	}
	if rep, ok := s.lockCheckLocked(spec.id, isTrue(r.URL.Query().Get("force"))); !ok {
		return rep
	}
	v := s.nextVersionLocked()
	spec.version, spec.lastConfigChangeAt, spec.failures = v, v, 0
	s.emit(s.groupChangeSuccessEvent(v))
	return deploymentReply(http.StatusOK, s.startDeploymentLocked(spec, v, stepsFor(spec, kindRestart), nil))
}

// labelSelector is one requirement of a label selector.
type labelSelector func(map[string]string) bool

// parseLabelSelector parses Marathon's label selector: comma-separated
// requirements `k`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`.
func parseLabelSelector(s string) ([]labelSelector, error) {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	parts = append(parts, s[start:])
	var out []labelSelector
	for _, p := range parts {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
			return nil, fmt.Errorf("empty requirement in %q", s)
		case strings.Contains(p, "!="):
			k, v, _ := strings.Cut(p, "!=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			out = append(out, func(l map[string]string) bool { x, ok := l[k]; return !ok || x != v })
		case strings.Contains(p, "=="):
			k, v, _ := strings.Cut(p, "==")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			out = append(out, func(l map[string]string) bool { x, ok := l[k]; return ok && x == v })
		case strings.Contains(p, " notin ") || strings.Contains(p, " in "):
			neg := strings.Contains(p, " notin ")
			sep := " in "
			if neg {
				sep = " notin "
			}
			k, set, _ := strings.Cut(p, sep)
			set = strings.TrimSpace(set)
			if !strings.HasPrefix(set, "(") || !strings.HasSuffix(set, ")") {
				return nil, fmt.Errorf("bad set in %q", p)
			}
			var vals []string
			for _, v := range strings.Split(set[1:len(set)-1], ",") {
				vals = append(vals, strings.TrimSpace(v))
			}
			k = strings.TrimSpace(k)
			out = append(out, func(l map[string]string) bool {
				x, ok := l[k]
				in := ok && slices.Contains(vals, x)
				if neg {
					return !in
				}
				return in
			})
		default:
			k := p
			out = append(out, func(l map[string]string) bool { _, ok := l[k]; return ok })
		}
	}
	return out, nil
}

// listApps handles GET /v2/apps[?id&cmd&label&embed].
func (s *Server) listApps(r *http.Request) reply {
	q := r.URL.Query()
	embed := embedSet(q["embed"])
	e := appEmbed{counts: true, deployments: true, tasks: embed["tasks"], lastTaskFailure: embed["lastTaskFailure"], readiness: embed["readiness"]}
	var selectors []labelSelector
	if l := q.Get("label"); l != "" {
		var err error
		if selectors, err = parseLabelSelector(l); err != nil {
			return errReply(http.StatusBadRequest, ErrorBody{Message: "Invalid label selector: " + err.Error()})
		}
	}
	idFilter := strings.ToLower(q.Get("id"))
	cmdFilter := strings.ToLower(q.Get("cmd"))
	s.mu.Lock()
	defer s.mu.Unlock()
	apps := []any{}
next:
	for _, spec := range s.sortedSpecs(false) {
		if idFilter != "" && !strings.Contains(strings.ToLower(spec.id), idFilter) {
			continue
		}
		if cmdFilter != "" && (spec.app.Cmd == nil || !strings.Contains(strings.ToLower(*spec.app.Cmd), cmdFilter)) {
			continue
		}
		for _, sel := range selectors {
			if !sel(spec.app.Labels) {
				continue next
			}
		}
		apps = append(apps, s.appInfo(spec, e))
	}
	return reply{code: http.StatusOK, body: map[string]any{"apps": apps}}
}

// getApp handles GET /v2/apps/{id}: counts, tasks, lastTaskFailure and
// deployments are always embedded.
func (s *Server) getApp(rawID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, rep, ok := s.appSpecLocked(rawID)
	if !ok {
		return rep
	}
	return reply{code: http.StatusOK, body: map[string]any{"app": s.appInfo(spec, appEmbed{tasks: true, counts: true, deployments: true, lastTaskFailure: true})}}
}

// groupApps handles GET /v2/apps/{group}/*.
func (s *Server) groupApps(group string) reply {
	g, _ := canonicalID(group)
	s.mu.Lock()
	defer s.mu.Unlock()
	apps := []any{}
	for _, spec := range s.sortedSpecs(false) {
		if g == "/" || strings.HasPrefix(spec.id, g+"/") {
			apps = append(apps, s.appInfo(spec, appEmbed{tasks: true, counts: true, deployments: true, lastTaskFailure: true}))
		}
	}
	return reply{code: http.StatusOK, body: map[string]any{"*": apps}}
}

// appTasks handles GET /v2/apps/{id}/tasks.
func (s *Server) appTasks(rawID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, rep, ok := s.appSpecLocked(rawID)
	if !ok {
		return rep
	}
	tasks := []any{}
	for _, i := range s.instancesOf(spec.id) {
		if t := s.taskObject(i, false); t != nil {
			tasks = append(tasks, t)
		}
	}
	return reply{code: http.StatusOK, body: map[string]any{"tasks": tasks}}
}

// listTasks handles GET /v2/tasks[?status=running|staging]: app tasks
// only, with servicePorts.
func (s *Server) listTasks(r *http.Request) reply {
	q := r.URL.Query()
	want := map[string]bool{}
	for _, v := range append(q["status"], q["status[]"]...) {
		switch strings.ToLower(v) {
		case "running":
			want["TASK_RUNNING"] = true
		case "staging":
			want["TASK_STAGING"], want["TASK_STARTING"] = true, true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tasks := []any{}
	for _, spec := range s.sortedSpecs(false) {
		for _, i := range s.instancesOf(spec.id) {
			t := s.taskObject(i, true)
			if t == nil || (len(want) > 0 && !want[t["state"].(string)]) {
				continue
			}
			tasks = append(tasks, t)
		}
	}
	return reply{code: http.StatusOK, body: map[string]any{"tasks": tasks}}
}

// findAppTaskLocked finds the instance whose current task has the id.
func (s *Server) findAppTaskLocked(taskID string) *instance {
	t := s.tasks[taskID]
	if t == nil || t.inst.app == nil || s.instances[t.inst.id] != t.inst {
		return nil
	}
	return t.inst
}

// killAppTasks handles DELETE /v2/apps/{id}/tasks[/{taskId}]
// [?scale&wipe&host&force]. Without scale or wipe the instances are
// relaunched (their goal stays Running); wipe decommissions them (a
// replacement instance is scheduled); scale decommissions them and
// lowers the app's instances with a deployment.
func (s *Server) killAppTasks(r *http.Request, rawID string, taskIDs []string, single bool) reply {
	q := r.URL.Query()
	scale, wipe, host := isTrue(q.Get("scale")), isTrue(q.Get("wipe")), q.Get("host")
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, rep, ok := s.appSpecLocked(rawID)
	if !ok {
		return rep
	}
	var insts []*instance
	if taskIDs == nil {
		for _, i := range s.instancesOf(spec.id) {
			if i.task != nil && (host == "" || i.task.agent.cfg.Hostname == host) {
				insts = append(insts, i)
			}
		}
	}
	for _, id := range taskIDs {
		inst := s.findAppTaskLocked(id)
		if inst == nil || inst.spec != spec {
			return errReply(http.StatusNotFound, taskNotFound(id))
		}
		insts = append(insts, inst)
	}
	if scale {
		if rep, ok := s.lockCheckLocked(spec.id, isTrue(q.Get("force"))); !ok {
			return rep
		}
		return deploymentReply(http.StatusOK, s.scaleDownLocked(spec, insts))
	}
	tasks := []any{}
	for _, i := range insts {
		if t := s.taskObject(i, false); t != nil {
			tasks = append(tasks, t)
		}
	}
	for _, i := range insts {
		s.killInstanceLocked(i, wipe)
	}
	if single && len(tasks) == 1 {
		return reply{code: http.StatusOK, body: map[string]any{"task": tasks[0]}}
	}
	return reply{code: http.StatusOK, body: map[string]any{"tasks": tasks}}
}

// scaleDownLocked lowers an app's instances by the given instances and
// removes exactly those with a ScaleApplication deployment.
func (s *Server) scaleDownLocked(spec *runSpec, insts []*instance) *deployment {
	app := *spec.app
	app.Instances = max(0, app.Instances-len(insts))
	v := s.nextVersionLocked()
	spec.app, spec.version, spec.lastScalingAt = &app, v, v
	s.emit(s.groupChangeSuccessEvent(v))
	return s.startDeploymentLocked(spec, v, stepsFor(spec, kindScale), append([]*instance{}, insts...))
}

// deleteTasks handles POST /v2/tasks/delete {"ids": [...]}: unknown ids
// are ignored.
func (s *Server) deleteTasks(r *http.Request) reply {
	body, err := readBody(r)
	if err != nil {
		return definitionErrReply(err)
	}
	var req struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return definitionErrReply(invalidJSON(err))
	}
	q := r.URL.Query()
	scale, wipe, force := isTrue(q.Get("scale")), isTrue(q.Get("wipe")), isTrue(q.Get("force"))
	s.mu.Lock()
	defer s.mu.Unlock()
	bySpec := map[*runSpec][]*instance{}
	var order []*runSpec
	for _, id := range req.IDs {
		inst := s.findAppTaskLocked(id)
		if inst == nil || s.specs[inst.spec.id] != inst.spec {
			continue
		}
		if _, ok := bySpec[inst.spec]; !ok {
			order = append(order, inst.spec)
		}
		bySpec[inst.spec] = append(bySpec[inst.spec], inst)
	}
	if scale {
		for _, spec := range order {
			if rep, ok := s.lockCheckLocked(spec.id, force); !ok {
				return rep
			}
		}
		var last *deployment
		for _, spec := range order {
			last = s.scaleDownLocked(spec, bySpec[spec])
		}
		if last == nil {
			return reply{code: http.StatusOK, body: map[string]any{"tasks": []any{}}}
		}
		return deploymentReply(http.StatusOK, last)
	}
	tasks := []any{}
	for _, spec := range order {
		for _, i := range bySpec[spec] {
			if t := s.taskObject(i, false); t != nil {
				tasks = append(tasks, t)
			}
			s.killInstanceLocked(i, wipe)
		}
	}
	return reply{code: http.StatusOK, body: map[string]any{"tasks": tasks}}
}

// Pods.

func (s *Server) listPods() reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	pods := []any{}
	for _, spec := range s.sortedSpecs(true) {
		pods = append(pods, s.podObject(spec))
	}
	return reply{code: http.StatusOK, body: pods}
}

// podRoute handles /v2/pods/{id}, {id}::status, ::status and
// {id}::instances/{instanceId}.
func (s *Server) podRoute(r *http.Request, rest string) reply {
	switch {
	case rest == "/::status":
		if r.Method != http.MethodGet {
			return methodNotAllowed(http.MethodGet)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		list := []any{}
		for _, spec := range s.sortedSpecs(true) {
			list = append(list, s.podStatus(spec))
		}
		return reply{code: http.StatusOK, body: list}
	case strings.HasSuffix(rest, "::status"):
		if r.Method != http.MethodGet {
			return methodNotAllowed(http.MethodGet)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		spec, rep, ok := s.podSpecLocked(strings.TrimSuffix(rest, "::status"))
		if !ok {
			return rep
		}
		return reply{code: http.StatusOK, body: s.podStatus(spec)}
	case strings.Contains(rest, "::instances/"):
		if r.Method != http.MethodDelete {
			return methodNotAllowed(http.MethodDelete)
		}
		i := strings.Index(rest, "::instances/")
		return s.killPodInstance(r, rest[:i], rest[i+len("::instances/"):])
	}
	switch r.Method {
	case http.MethodGet:
		id, _ := canonicalID(rest)
		s.mu.Lock()
		defer s.mu.Unlock()
		spec := s.specs[id]
		if spec == nil || !spec.isPod() {
			// PodsResource.find answers with a message that is itself JSON.
			inner, _ := marshal(podNotFound(id))
			return errReply(http.StatusNotFound, ErrorBody{Message: string(inner)})
		}
		return reply{code: http.StatusOK, body: s.podObject(spec)}
	case http.MethodPut:
		return s.updatePod(r, rest)
	case http.MethodDelete:
		return s.deletePod(r, rest)
	default:
		return methodNotAllowed(http.MethodGet, http.MethodPut, http.MethodDelete)
	}
}

// createPod handles POST /v2/pods.
func (s *Server) createPod(r *http.Request) reply {
	body, err := readBody(r)
	if err != nil {
		return definitionErrReply(err)
	}
	pod, err := DecodePod(body, s.cfg.DefaultNetworkName)
	if err != nil {
		return definitionErrReply(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rep, ok := s.existsLocked(pod.ID); !ok {
		return rep
	}
	if rep, ok := s.lockCheckLocked(pod.ID, isTrue(r.URL.Query().Get("force"))); !ok {
		return rep
	}
	spec, d := s.createPodLocked(r, pod, "pod_created_event")
	return reply{code: http.StatusCreated, body: s.podObject(spec),
		headers: map[string]string{"Location": "/v2/pods" + pod.ID, "Marathon-Deployment-Id": d.id}}
}

func (s *Server) createPodLocked(r *http.Request, pod *Pod, eventType string) (*runSpec, *deployment) {
	v := s.nextVersionLocked()
	spec := &runSpec{id: pod.ID, pod: pod, version: v, lastScalingAt: v, lastConfigChangeAt: v}
	s.specs[pod.ID] = spec
	s.emit(s.podEvent(eventType, r))
	s.emit(s.groupChangeSuccessEvent(v))
	return spec, s.startDeploymentLocked(spec, v, stepsFor(spec, kindStart, kindScale), nil)
}

// updatePod handles PUT /v2/pods/{id} (a whole definition): a change of
// scaling.instances only is a ScalePod, anything else a RestartPod.
func (s *Server) updatePod(r *http.Request, rawID string) reply {
	id, _ := canonicalID(rawID)
	body, err := readBody(r)
	if err != nil {
		return definitionErrReply(err)
	}
	raw, err := decodeObject(body)
	if err != nil {
		return definitionErrReply(err)
	}
	raw["id"], _ = json.Marshal(id)
	data, _ := json.Marshal(raw)
	pod, err := DecodePod(data, s.cfg.DefaultNetworkName)
	if err != nil {
		return definitionErrReply(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	spec := s.specs[id]
	if spec != nil && !spec.isPod() {
		return errReply(http.StatusConflict, ErrorBody{Message: fmt.Sprintf("An app with id [%s] already exists.", id)})
	}
	if rep, ok := s.lockCheckLocked(id, isTrue(r.URL.Query().Get("force"))); !ok {
		return rep
	}
	if spec == nil {
		spec, d := s.createPodLocked(r, pod, "pod_updated_event")
		return reply{code: http.StatusCreated, body: s.podObject(spec), headers: map[string]string{"Marathon-Deployment-Id": d.id}}
	}
	old := spec.pod.object()
	cur := pod.object()
	delete(old, "scaling")
	delete(cur, "scaling")
	jo, _ := marshal(old)
	jc, _ := marshal(cur)
	v := s.nextVersionLocked()
	spec.pod, spec.version, spec.lastScalingAt = pod, v, v
	kind := kindScale
	if string(jo) != string(jc) {
		spec.lastConfigChangeAt, spec.failures, kind = v, 0, kindRestart
	}
	s.emit(s.podEvent("pod_updated_event", r))
	s.emit(s.groupChangeSuccessEvent(v))
	d := s.startDeploymentLocked(spec, v, stepsFor(spec, kind), nil)
	return reply{code: http.StatusOK, body: s.podObject(spec), headers: map[string]string{"Marathon-Deployment-Id": d.id}}
}

// deletePod handles DELETE /v2/pods/{id}: 202 with the deployment id.
func (s *Server) deletePod(r *http.Request, rawID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, rep, ok := s.podSpecLocked(rawID)
	if !ok {
		return rep
	}
	if rep, ok := s.lockCheckLocked(spec.id, isTrue(r.URL.Query().Get("force"))); !ok {
		return rep
	}
	delete(s.specs, spec.id)
	v := s.nextVersionLocked()
	s.emit(s.podEvent("pod_deleted_event", r))
	s.emit(s.groupChangeSuccessEvent(v))
	d := s.startDeploymentLocked(spec, v, stepsFor(spec, kindStop), nil)
	return reply{code: http.StatusAccepted, headers: map[string]string{"Marathon-Deployment-Id": d.id, "Location": "/v2/deployments/" + d.id}}
}

// killPodInstance handles DELETE /v2/pods/{id}::instances/{instance}
// [?wipe]: the instance is relaunched unless wipe.
func (s *Server) killPodInstance(r *http.Request, rawID, instanceID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, rep, ok := s.podSpecLocked(rawID)
	if !ok {
		return rep
	}
	inst := s.instances[instanceID]
	if inst == nil || inst.spec != spec {
		return errReply(http.StatusNotFound, ErrorBody{Message: fmt.Sprintf("Instance '%s' does not exist", instanceID)})
	}
	st := s.podInstanceStatus(inst)
	s.killInstanceLocked(inst, isTrue(r.URL.Query().Get("wipe")))
	return reply{code: http.StatusOK, body: st}
}
